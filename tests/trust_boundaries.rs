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

/// A head rewritten within its epoch (other diffs 2 and 3, then a new diff 4) is detected by the
/// sha256 of the last applied segment: the cluster is reloaded from its snapshot, no ghost of
/// the old diffs remains, and the fault is reported and kept for `outpost status`.
async fn a_rewritten_chain_is_reloaded_and_reported(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut chain = Chain::new(&store, "rewritten");
    chain.snapshot(&[pod("default", "base", None)]).await;
    chain.diff(&[pod("default", "ghost-2", None)], &[]).await;
    chain.diff(&[pod("default", "ghost-3", None)], &[]).await;
    chain.publish().await;
    let indexer = indexer(&store, &database, IndexOptions::default());
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "first load");

    chain.truncate(1);
    chain.diff(&[pod("default", "new-2", None)], &[]).await;
    chain.diff(&[pod("default", "new-3", None)], &[]).await;
    chain.diff(&[pod("default", "new-4", None)], &[]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    match outcome_of(&report, "rewritten") {
        Outcome::Applied {
            fault: Some(fault),
            snapshot: true,
            ..
        } => assert!(fault.contains("rewritten chain"), "{fault}"),
        other => panic!("a rewritten chain: {other:?}"),
    }
    assert_eq!(
        stored_rows(&database, "rewritten").await,
        expected_rows(&store, &chain.cluster, "rewritten").await
    );
    let record = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.cluster == "rewritten")
        .unwrap();
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("rewritten chain"),
        "{record:?}"
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(a_rewritten_chain_is_reloaded_and_reported: sqlite, postgres, mariadb);

/// A head whose seq goes backwards within its epoch is a fault: nothing is applied, the rows
/// stay as they were, and the cluster's error says so.
async fn a_head_going_backwards_is_a_fault(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut chain = Chain::new(&store, "rewound");
    chain.snapshot(&[pod("default", "base", None)]).await;
    chain.diff(&[pod("default", "two", None)], &[]).await;
    chain.diff(&[pod("default", "three", None)], &[]).await;
    chain.publish().await;
    let indexer = indexer(&store, &database, IndexOptions::default());
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "first load");
    let before = stored_rows(&database, "rewound").await;

    chain.truncate(2);
    chain.now += chrono::Duration::seconds(30);
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    let failures: Vec<String> = report
        .failures()
        .map(|(_, e)| outpost::error_chain(e))
        .collect();
    assert!(
        failures.len() == 1 && failures[0].contains("went backwards"),
        "{report:?}"
    );
    assert_eq!(stored_rows(&database, "rewound").await, before);
    let record = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.cluster == "rewound")
        .unwrap();
    assert!(
        record
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("went backwards"),
        "{record:?}"
    );
    assert_eq!(record.seq, Some(3));
    database.close().await;
    db.drop_database().await;
}
on_each_database!(a_head_going_backwards_is_a_fault: sqlite, postgres, mariadb);

/// The error of the one cluster of `report`, as a chain of messages.
fn only_failure(report: &outpost::indexer::RunReport) -> String {
    let failures: Vec<String> = report
        .failures()
        .map(|(_, e)| outpost::error_chain(e))
        .collect();
    assert_eq!(failures.len(), 1, "{report:?}");
    failures[0].clone()
}

/// A listed segment whose stored bytes are not the listed ones is refused by its sha256 before
/// anything is decoded: here a valid zstd frame of 64 MiB of zeros (a few KiB stored), which
/// decoding would refuse only after inflating it past a limit.
async fn stored_bytes_are_checked_before_decompressing(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut chain = Chain::new(&store, "bomb");
    let mut bomb = Vec::new();
    {
        let mut encoder = zstd::Encoder::new(&mut bomb, 1).unwrap();
        encoder.include_checksum(true).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut encoder, &zeros).unwrap();
        }
        encoder.finish().unwrap();
    }
    let key = store.layout().segment(
        &chain.cluster,
        &chain.epoch,
        1,
        outpost::format::SegmentType::Snapshot,
    );
    store
        .put_create(&key, bytes::Bytes::from(bomb.clone()))
        .await
        .unwrap();
    chain.head = Some(outpost::format::Head::new(
        chain.cluster.clone(),
        chain.epoch.clone(),
        outpost::format::SegmentRef {
            seq: 1,
            key: key.relative.clone(),
            sha256: "0".repeat(64),
            bytes: bomb.len() as u64,
        },
        chain.now,
        0,
        Default::default(),
    ));
    chain.publish().await;
    let report = indexer(&store, &database, IndexOptions::default())
        .run_once(None)
        .await
        .unwrap();
    let error = only_failure(&report);
    assert!(
        error.contains("broken chain") && error.contains("not decoded"),
        "{error}"
    );
    assert!(
        !error.contains("zip bomb") && !error.contains("longer than"),
        "{error}"
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(stored_bytes_are_checked_before_decompressing: sqlite, postgres, mariadb);

/// Quotas: a head listing more diffs or more stored bytes than allowed is refused before any
/// segment is fetched (here the listed sizes are lies, which fetching would have found), a
/// snapshot holding more objects than allowed whatever its head counts is refused while it is
/// verified; the rows stay as they were and the error is kept for `outpost status`.
async fn a_cluster_over_quota_is_refused_untouched(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut chain = Chain::new(&store, "greedy");
    chain.snapshot(&[pod("default", "base", None)]).await;
    chain.diff(&[pod("default", "one", None)], &[]).await;
    chain.publish().await;
    let quotas = outpost::indexer::Quotas {
        objects: 3,
        bytes: 1 << 20,
        diffs: 2,
        kinds: 1_000,
    };
    let options = IndexOptions {
        quotas,
        ..IndexOptions::default()
    };
    let indexer = indexer(&store, &database, options);
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "within quota");
    let before = stored_rows(&database, "greedy").await;
    let error_of = |database: Database| async move {
        outpost::indexer::checkpoint::load_all(&database)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.cluster == "greedy")
            .unwrap()
            .error
            .unwrap_or_default()
    };

    // Three diffs where two are allowed.
    chain.diff(&[pod("default", "two", None)], &[]).await;
    chain.diff(&[pod("default", "three", None)], &[]).await;
    chain.publish().await;
    let error = only_failure(&indexer.run_once(None).await.unwrap());
    assert!(
        error.contains("over its quota") && error.contains("--max-diffs"),
        "{error}"
    );
    assert_eq!(stored_rows(&database, "greedy").await, before);
    assert!(error_of(database.clone()).await.contains("--max-diffs"));

    // A head listing 2 GiB in one diff.
    chain.truncate(2);
    chain.head.as_mut().unwrap().diffs[0].bytes = 2 << 30;
    chain.publish().await;
    let error = only_failure(&indexer.run_once(None).await.unwrap());
    assert!(error.contains("--max-bytes"), "{error}");
    assert_eq!(stored_rows(&database, "greedy").await, before);

    // A snapshot of four objects whose head says one.
    chain
        .snapshot(&[
            pod("default", "a", None),
            pod("default", "b", None),
            pod("default", "c", None),
            pod("default", "d", None),
        ])
        .await;
    chain.head.as_mut().unwrap().objects = 1;
    chain.publish().await;
    let error = only_failure(&indexer.run_once(None).await.unwrap());
    assert!(error.contains("--max-objects"), "{error}");
    assert_eq!(stored_rows(&database, "greedy").await, before);
    assert!(error_of(database.clone()).await.contains("--max-objects"));
    database.close().await;
    db.drop_database().await;
}
on_each_database!(a_cluster_over_quota_is_refused_untouched: sqlite, postgres, mariadb);
