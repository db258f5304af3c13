//! The adversarial suite (docs/SECURITY.md): crafted buckets and ordinary-but-messy clusters
//! against the indexer on real databases. Each test is the regression test of one way a cluster
//! could harm another account, fail itself on ordinary objects, or make the indexer spend without
//! bound.

use outpost::format::ClusterName;
use outpost::indexer::{ClaimPolicy, Database, IndexOptions, Indexer, Outcome};
use outpost::store::Store;

#[macro_use]
mod common;

use common::chain::{Chain, pod};
use common::db::{TestDb, assert_no_failures, expected_rows, fresh_database, stored_rows};

async fn setup(kind: &str) -> Option<(TestDb, Store, Database)> {
    let db = fresh_database(kind).await?;
    let store = Store::open(&format!(
        "memory://trust-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .unwrap();
    let database = Database::connect(&db.url, None).await.unwrap();
    Some((db, store, database))
}

fn indexer(store: &Store, database: &Database, options: IndexOptions) -> Indexer {
    Indexer {
        store: store.clone(),
        database: database.clone(),
        options,
    }
}

/// Pods owned by kinds Outpost does not cache (an Argo Workflow, a ReplicaSet owned by a
/// Rollout) are ordinary: the cluster is indexed, on its first load (snapshot and diff in one
/// run) and on later diffs, and its rows are the reference builder's.
async fn owners_of_uncached_kinds_do_not_fail_a_cluster(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut chain = Chain::new(&store, "argo");
    let workflow_pod = pod(
        "ci",
        "build-1",
        Some(("argoproj.io/v1alpha1", "Workflow", "build")),
    );
    let mut replica_set = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-5d8f", "namespace": "ci", "uid": "uid-rs", "resourceVersion": "1",
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "name": "web", "uid": "uid-rollout", "controller": true}],
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
    });
    let rs_pod = pod(
        "ci",
        "web-5d8f-x",
        Some(("apps/v1", "ReplicaSet", "web-5d8f")),
    );
    chain
        .snapshot(&[workflow_pod.clone(), replica_set.clone(), rs_pod])
        .await;
    let mut changed = workflow_pod.clone();
    changed["metadata"]["resourceVersion"] = "2".into();
    changed["metadata"]["labels"]["step"] = "two".into();
    chain.diff(&[changed], &[]).await;
    chain.publish().await;

    let indexer = indexer(&store, &database, IndexOptions::default());
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "first load");
    assert_eq!(
        stored_rows(&database, "argo").await,
        expected_rows(&store, &chain.cluster, "argo").await
    );

    replica_set["metadata"]["resourceVersion"] = "3".into();
    replica_set["spec"]["replicas"] = 2.into();
    chain.diff(&[replica_set], &[workflow_pod]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "a later diff");
    assert_eq!(
        stored_rows(&database, "argo").await,
        expected_rows(&store, &chain.cluster, "argo").await
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(owners_of_uncached_kinds_do_not_fail_a_cluster: sqlite, postgres, mariadb);

/// A one-pod snapshot of `cluster`, published, with an identity asking for `account`.
async fn one_pod_cluster(store: &Store, cluster: &str, account: Option<&str>) -> Chain {
    let mut chain = Chain::new(store, cluster);
    chain.identity(account).await;
    chain
        .snapshot(&[pod("default", &format!("{cluster}-pod"), None)])
        .await;
    chain.publish().await;
    chain
}

fn any_account_policy() -> ClaimPolicy {
    ClaimPolicy::parse("p.yaml", "clusters:\n  '*': {accounts: ['*']}\n").unwrap()
}

fn outcome_of<'r>(report: &'r outpost::indexer::RunReport, cluster: &str) -> &'r Outcome {
    report
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .unwrap_or_else(|| panic!("{cluster} not in the report"))
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{cluster}: {}", outpost::error_chain(e)))
}

/// No cluster reaches into another's account: `PROD` is not an account name (on MySQL it would
/// collate equal to `prod`), without a policy a cluster may claim only its own name, with a
/// policy that allows anything an account still has one holder, and a refused claimant that
/// decommissions itself deletes nothing of the holder's.
async fn no_cluster_reaches_into_another_account(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let prod = one_pod_cluster(&store, "prod", None).await;
    let only = |names: &[&str]| -> Vec<ClusterName> {
        names.iter().map(|n| ClusterName::new(n).unwrap()).collect()
    };
    let open = indexer(&store, &database, IndexOptions::default());
    assert_no_failures(&open.run_once(None).await.unwrap(), "prod");
    let prod_rows = stored_rows(&database, "prod").await;
    assert_eq!(
        prod_rows,
        expected_rows(&store, &prod.cluster, "prod").await
    );

    let evil = one_pod_cluster(&store, "aaa-evil", Some("PROD")).await;
    let report = open.run_once(Some(&only(&["aaa-evil"]))).await.unwrap();
    match outcome_of(&report, "aaa-evil") {
        Outcome::Refused { reason } => assert!(reason.contains("account name"), "{reason}"),
        other => panic!("PROD: {other:?}"),
    }
    evil.identity(Some("prod")).await;
    let report = open.run_once(Some(&only(&["aaa-evil"]))).await.unwrap();
    match outcome_of(&report, "aaa-evil") {
        Outcome::Refused { reason } => {
            assert!(
                reason.contains("only the account of its own name"),
                "{reason}"
            )
        }
        other => panic!("prod without a policy: {other:?}"),
    }
    let any = IndexOptions {
        policy: any_account_policy(),
        ..IndexOptions::default()
    };
    let permissive = indexer(&store, &database, any);
    let report = permissive
        .run_once(Some(&only(&["aaa-evil"])))
        .await
        .unwrap();
    match outcome_of(&report, "aaa-evil") {
        Outcome::Refused { reason } => {
            assert!(
                reason.contains("already claimed by cluster prod"),
                "{reason}"
            )
        }
        other => panic!("prod with a policy allowing any: {other:?}"),
    }
    evil.decommission().await;
    let report = permissive
        .run_once(Some(&only(&["aaa-evil"])))
        .await
        .unwrap();
    assert!(
        matches!(
            outcome_of(&report, "aaa-evil"),
            Outcome::Evicted {
                rows_deleted: 0,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(stored_rows(&database, "prod").await, prod_rows);
    database.close().await;
    db.drop_database().await;
}
on_each_database!(no_cluster_reaches_into_another_account: sqlite, postgres, mariadb);

/// Two clusters asking for one account in the same run, indexed at once: exactly one holds it,
/// and its rows are the only ones there.
async fn one_account_has_one_holder_at_a_time(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let names: Vec<String> = (0..6).map(|i| format!("claimant-{i}")).collect();
    for name in &names {
        one_pod_cluster(&store, name, Some("shared")).await;
    }
    let options = IndexOptions {
        policy: any_account_policy(),
        concurrency: 6,
        ..IndexOptions::default()
    };
    let report = indexer(&store, &database, options)
        .run_once(None)
        .await
        .unwrap();
    let holders: Vec<&str> = names
        .iter()
        .filter(|name| matches!(outcome_of(&report, name), Outcome::Applied { .. }))
        .map(String::as_str)
        .collect();
    assert_eq!(holders.len(), 1, "{report:?}");
    let holder = ClusterName::new(holders[0]).unwrap();
    assert_eq!(
        stored_rows(&database, "shared").await,
        expected_rows(&store, &holder, "shared").await
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(one_account_has_one_holder_at_a_time: sqlite, postgres, mariadb);

/// A cluster that moves to another account leaves nothing in the old one, and the old one is
/// free for another cluster.
async fn a_cluster_moving_account_leaves_nothing_behind(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let options = IndexOptions {
        policy: any_account_policy(),
        ..IndexOptions::default()
    };
    let indexer = indexer(&store, &database, options);
    let mover = one_pod_cluster(&store, "mover", Some("before")).await;
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "before");
    assert!(!stored_rows(&database, "before").await.is_empty());
    mover.identity(Some("after")).await;
    let mut mover = mover;
    mover.now += chrono::Duration::seconds(30);
    mover.publish().await;
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "after");
    assert!(
        stored_rows(&database, "before").await.is_empty(),
        "rows left in the old account"
    );
    assert_eq!(
        stored_rows(&database, "after").await,
        expected_rows(&store, &mover.cluster, "after").await
    );
    one_pod_cluster(&store, "newcomer", Some("before")).await;
    let report = indexer.run_once(None).await.unwrap();
    assert!(
        matches!(outcome_of(&report, "newcomer"), Outcome::Applied { .. }),
        "{report:?}"
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(a_cluster_moving_account_leaves_nothing_behind: sqlite, postgres, mariadb);

/// A folder bucket in a temporary directory (so that a test can delete what a cluster wrote).
async fn folder_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("file://{}", dir.path().display()))
        .await
        .unwrap();
    (dir, store)
}

fn graces(stale_minutes: u64, evict_minutes: u64) -> outpost::indexer::Graces {
    outpost::indexer::Graces {
        stale_after: std::time::Duration::from_secs(stale_minutes * 60),
        evict_after: std::time::Duration::from_secs(evict_minutes * 60),
    }
}

fn state_of(records: &[outpost::indexer::checkpoint::ClusterRecord], cluster: &str) -> String {
    records
        .iter()
        .find(|r| r.cluster == cluster)
        .map(|r| r.state.to_string())
        .unwrap_or_else(|| panic!("{cluster} has no row"))
}

/// A cluster whose whole prefix disappears from the bucket (no longer listed), and one whose
/// `head.json` alone disappears, age to STALE and then EVICTED by their last heartbeat like
/// any silent cluster, while a cluster that keeps shipping is untouched.
async fn a_vanished_cluster_ages_and_is_evicted(kind: &str) {
    let Some(db) = fresh_database(kind).await else {
        return;
    };
    let database = Database::connect(&db.url, None).await.unwrap();
    let (dir, store) = folder_store().await;
    let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    for name in ["vanished", "headless", "steady"] {
        let mut chain = Chain::new(&store, name);
        if name != "steady" {
            chain.now = two_hours_ago;
        }
        chain
            .snapshot(&[pod("default", &format!("{name}-pod"), None)])
            .await;
        chain.publish().await;
    }
    let run = |graces| {
        indexer(
            &store,
            &database,
            IndexOptions {
                graces,
                ..IndexOptions::default()
            },
        )
    };
    let report = run(graces(180, 360)).run_once(None).await.unwrap();
    assert_no_failures(&report, kind);
    for name in ["vanished", "headless", "steady"] {
        assert!(!stored_rows(&database, name).await.is_empty(), "{name}");
    }

    let head = |name: &str| {
        dir.path().join(
            store
                .layout()
                .head(&ClusterName::new(name).unwrap())
                .path
                .as_ref(),
        )
    };
    std::fs::remove_dir_all(head("vanished").parent().unwrap()).unwrap();
    std::fs::remove_file(head("headless")).unwrap();

    let report = run(graces(60, 180)).run_once(None).await.unwrap();
    assert_no_failures(&report, kind);
    for name in ["vanished", "headless"] {
        assert_eq!(
            outcome_of(&report, name),
            &Outcome::Unchanged {
                state: outpost::indexer::ClusterState::Stale
            },
            "{name}"
        );
        assert!(!stored_rows(&database, name).await.is_empty(), "{name}");
    }

    let report = run(graces(30, 60)).run_once(None).await.unwrap();
    assert_no_failures(&report, kind);
    for name in ["vanished", "headless"] {
        assert!(
            matches!(outcome_of(&report, name), Outcome::Evicted { rows_deleted, .. } if *rows_deleted > 0),
            "{name}: {:?}",
            outcome_of(&report, name)
        );
        assert!(stored_rows(&database, name).await.is_empty(), "{name}");
    }
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    assert_eq!(state_of(&records, "vanished"), "EVICTED");
    assert_eq!(state_of(&records, "steady"), "ACTIVE");
    assert_eq!(
        stored_rows(&database, "steady").await,
        expected_rows(&store, &ClusterName::new("steady").unwrap(), "steady").await
    );

    // An evicted cluster that is gone is not visited again.
    let report = run(graces(30, 60)).run_once(None).await.unwrap();
    assert!(report.clusters.iter().all(|c| c.cluster != "vanished"));
    db.drop_database().await;
}

on_each_database!(a_vanished_cluster_ages_and_is_evicted: sqlite, postgres, mariadb);

/// A heartbeat far in the future is a fault: a cluster shipping one is not applied, and one
/// indexed before keeps its rows and ages by the last heartbeat it applied, to eviction.
async fn a_heartbeat_in_the_future_is_a_fault(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let run = |graces| {
        indexer(
            &store,
            &database,
            IndexOptions {
                graces,
                ..IndexOptions::default()
            },
        )
    };
    let mut ahead = Chain::new(&store, "ahead");
    ahead.now = chrono::Utc::now() + chrono::Duration::days(365);
    ahead.snapshot(&[pod("default", "ahead-pod", None)]).await;
    ahead.publish().await;
    let mut skewed = Chain::new(&store, "skewed");
    skewed.now = chrono::Utc::now() - chrono::Duration::hours(2);
    skewed.snapshot(&[pod("default", "skewed-pod", None)]).await;
    skewed.publish().await;

    let first = run(graces(180, 360)).run_once(None).await.unwrap();
    let error = first
        .failures()
        .find(|(name, _)| *name == "ahead")
        .map(|(_, e)| outpost::error_chain(e))
        .expect("the heartbeat a year ahead is a fault");
    assert!(
        error.contains("heartbeat") && error.contains("ahead"),
        "{error}"
    );
    assert!(stored_rows(&database, "ahead").await.is_empty());
    assert!(matches!(
        outcome_of(&first, "skewed"),
        Outcome::Applied { .. }
    ));
    let applied = stored_rows(&database, "skewed").await;

    // The skewed cluster's clock jumps a day ahead: the fault leaves its rows as they were.
    skewed.now = chrono::Utc::now() + chrono::Duration::days(1);
    skewed.publish().await;
    let second = run(graces(180, 360)).run_once(None).await.unwrap();
    assert!(second.failures().any(|(name, _)| name == "skewed"));
    assert_eq!(stored_rows(&database, "skewed").await, applied);
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    assert_eq!(state_of(&records, "skewed"), "ACTIVE");

    // Its last applied heartbeat is two hours old: past a one-hour eviction grace it is evicted.
    let third = run(graces(30, 60)).run_once(None).await.unwrap();
    assert!(third.failures().any(|(name, _)| name == "skewed"));
    assert!(stored_rows(&database, "skewed").await.is_empty());
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    assert_eq!(state_of(&records, "skewed"), "EVICTED");
    db.drop_database().await;
}

on_each_database!(a_heartbeat_in_the_future_is_a_fault: sqlite, postgres, mariadb);
