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

/// The stats of `cluster`'s applied outcome in `report`.
fn applied_stats(
    report: &outpost::indexer::RunReport,
    cluster: &str,
) -> outpost::indexer::apply::ApplyStats {
    match outcome_of(report, cluster) {
        Outcome::Applied { stats, .. } => stats.clone(),
        other => panic!("{cluster}: {other:?}"),
    }
}

/// `rows` without the rows whose id `drop` matches and without any relationship to such an
/// id (a group emptied so disappears, but for the sticky `service` and `pod` groups).
fn rows_without(rows: common::db::Rows, drop: impl Fn(&str) -> bool) -> common::db::Rows {
    rows.into_iter()
        .filter(|((_, id), _)| !drop(id))
        .map(|(key, mut body)| {
            if let Some(groups) = body["relationships"].as_object_mut() {
                for ids in groups.values_mut() {
                    if let Some(list) = ids.as_array_mut() {
                        list.retain(|id| !id.as_str().is_some_and(&drop));
                    }
                }
                groups.retain(|group, ids| {
                    group == "service"
                        || group == "pod"
                        || ids.as_array().is_some_and(|l| !l.is_empty())
                });
            }
            (key, body)
        })
        .collect()
}

/// `sql`'s count with `pattern` bound `binds` times.
async fn count_like(database: &Database, sql: &str, pattern: &str, binds: usize) -> i64 {
    let sql = database.sql(sql);
    let mut query = sqlx::query_scalar(&sql);
    for _ in 0..binds {
        query = query.bind(pattern);
    }
    query.fetch_one(database.pool()).await.unwrap()
}

/// An object whose cache id is longer than Clouddriver's 352 characters (a 63-character
/// namespace and a 253-character name) does not fail its cluster: where the database limits ids
/// (MySQL, SQLite) it is left out of every table and of the relationships of the rows pointing
/// to it, in the snapshot and the diff paths alike, and counted; PostgreSQL has no limit and
/// keeps it.
async fn an_object_with_an_overlong_cache_id_is_skipped_everywhere(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let namespace = "n".repeat(63);
    let long_name = "l".repeat(253);
    let long_pod = pod(&namespace, &long_name, None);
    let child = pod(
        &namespace,
        "child",
        Some(("apps/v1", "ReplicaSet", &long_name)),
    );
    let normal = pod(&namespace, "normal", None);
    let mut chain = Chain::new(&store, "longids");
    chain
        .snapshot(&[long_pod.clone(), child.clone(), normal.clone()])
        .await;
    chain.publish().await;
    let indexer = indexer(&store, &database, IndexOptions::default());
    let limited = database.dialect().max_id_length().is_some();
    let is_long = |id: &str| limited && id.len() > 352;

    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "snapshot");
    assert_eq!(
        applied_stats(&report, "longids").objects_id_too_long,
        u64::from(limited)
    );
    let expected = rows_without(
        expected_rows(&store, &chain.cluster, "longids").await,
        is_long,
    );
    assert_eq!(stored_rows(&database, "longids").await, expected);
    let pattern = format!("%{long_name}%");
    let in_resources = count_like(
        &database,
        "SELECT COUNT(*) FROM outpost_resources WHERE cache_id LIKE ?",
        &pattern,
        1,
    )
    .await;
    assert_eq!(in_resources, i64::from(!limited), "outpost_resources");
    let in_links = count_like(
        &database,
        "SELECT COUNT(*) FROM outpost_links WHERE a_id LIKE ? OR b_id LIKE ? OR declarer_id LIKE ?",
        &pattern,
        3,
    )
    .await;
    assert_eq!(in_links > 0, !limited, "outpost_links: {in_links}");

    // A diff changing the long object and the one pointing to it: still skipped, still counted.
    let mut changed = long_pod.clone();
    changed["metadata"]["resourceVersion"] = "2".into();
    changed["metadata"]["labels"]["step"] = "two".into();
    let mut child = child;
    child["metadata"]["resourceVersion"] = "2".into();
    chain.diff(&[changed, child], &[normal]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "diff");
    assert_eq!(
        applied_stats(&report, "longids").objects_id_too_long,
        u64::from(limited)
    );
    assert_eq!(
        stored_rows(&database, "longids").await,
        rows_without(
            expected_rows(&store, &chain.cluster, "longids").await,
            is_long
        )
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(an_object_with_an_overlong_cache_id_is_skipped_everywhere: sqlite, postgres, mariadb);

/// What the reference builder computes for an account holding exactly `objects`.
async fn reference_rows(account: &str, objects: &[serde_json::Value]) -> common::db::Rows {
    let store = Store::open(&format!("memory://reference-{:08x}", rand::random::<u32>()))
        .await
        .unwrap();
    let mut chain = Chain::new(&store, account);
    chain.snapshot(objects).await;
    chain.publish().await;
    expected_rows(&store, &chain.cluster, account).await
}

/// Two objects with one cache key as the database compares it — names differing only in `:`
/// and `;` (keys store `:` as `;`) everywhere, and on MySQL names differing only in case (the
/// `cats_v1_*` tables are utf8mb4_unicode_ci) — never overwrite each other: the first seen
/// keeps the key, the other is left out and counted, in the snapshot and the diff paths; and an
/// object renamed to another case replaces the old row on MySQL instead of being deleted with it
/// (the cats tables are compared exactly). Names are crafted in the bucket: the API server would
/// refuse upper case in most kinds, a bucket is not bound by it.
async fn objects_of_one_key_never_overwrite_each_other(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mysql = database.dialect() == outpost::cache::Dialect::MySql;
    let upper = pod("default", "Web", None);
    let lower = pod("default", "web", None);
    let colon = pod("default", "a:b", None);
    let semicolon = pod("default", "a;b", None);
    let normal = pod("default", "normal", None);
    let mut chain = Chain::new(&store, "keys");
    chain
        .snapshot(&[
            upper.clone(),
            lower.clone(),
            colon.clone(),
            semicolon.clone(),
            normal.clone(),
        ])
        .await;
    chain.publish().await;
    let indexer = indexer(&store, &database, IndexOptions::default());

    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "snapshot");
    assert_eq!(
        applied_stats(&report, "keys").objects_key_collision,
        1 + u64::from(mysql)
    );
    let mut winners = vec![upper.clone(), colon.clone(), normal.clone()];
    if !mysql {
        winners.push(lower.clone());
    }
    assert_eq!(
        stored_rows(&database, "keys").await,
        reference_rows("keys", &winners).await,
        "snapshot"
    );

    // A diff deleting the loser `a;b` and changing `web`: the winners' rows stay.
    let mut changed = lower.clone();
    changed["metadata"]["resourceVersion"] = "2".into();
    changed["metadata"]["labels"]["step"] = "two".into();
    chain.diff(&[changed.clone()], &[semicolon]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "diff");
    assert_eq!(
        applied_stats(&report, "keys").objects_key_collision,
        u64::from(mysql)
    );
    let mut winners = vec![upper.clone(), colon.clone(), normal.clone()];
    if !mysql {
        winners.push(changed);
    }
    assert_eq!(
        stored_rows(&database, "keys").await,
        reference_rows("keys", &winners).await,
        "diff"
    );

    // `web` alone, then renamed `Web`: the new row replaces the old one, it is not deleted.
    for object in [lower, upper] {
        let mut chain_now = Chain::new(&store, "keys");
        chain_now.now = chain.now + chrono::Duration::seconds(30);
        chain_now.snapshot(&[object.clone(), normal.clone()]).await;
        chain_now.publish().await;
        chain = chain_now;
        let report = indexer.run_once(None).await.unwrap();
        assert_no_failures(&report, "snapshot");
        assert_eq!(
            stored_rows(&database, "keys").await,
            reference_rows("keys", &[object.clone(), normal.clone()]).await,
            "{}",
            object["metadata"]["name"]
        );
    }
    database.close().await;
    db.drop_database().await;
}
on_each_database!(objects_of_one_key_never_overwrite_each_other: sqlite, postgres, mariadb);

/// What the reference builder computes under `options` for the objects the bucket holds for
/// `cluster` now.
async fn expected_rows_with(
    store: &Store,
    cluster: &ClusterName,
    account: &str,
    options: &outpost::cache::CacheOptions,
) -> common::db::Rows {
    let (_, objects) = common::replay(store, cluster).await.unwrap();
    let resources: Vec<outpost::cache::Resource> = objects
        .into_values()
        .map(|(_, object)| outpost::cache::Resource::parse(object).unwrap())
        .collect();
    outpost::cache::build_account(account, &resources, options, 0)
        .into_iter()
        .map(|row| {
            (
                (row.type_name, row.id),
                outpost::test_support::rows::comparable_body(&row.body),
            )
        })
        .collect()
}

fn fan_out_service(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "fan", "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": {"selector": {"app": "shared"}}})
}

fn fan_out_replica_set(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "fan", "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shared"}},
            "template": {"metadata": {"labels": {"app": "shared"}}, "spec": {"containers": []}}}})
}

/// Many Services and ReplicaSets sharing one label cost links in proportion to their number,
/// not its square: each Service keeps its first `max_selector_links` ReplicaSets by key, the cut
/// is counted, and the diff path (ReplicaSets coming and going around the bound) stores the
/// same links and rows as a snapshot of the same state.
async fn selector_fan_out_is_bounded(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    const SIDE: usize = 300;
    const BOUND: usize = 100;
    let cache = outpost::cache::CacheOptions {
        max_selector_links: outpost::cache::SelectorBound(BOUND),
        ..outpost::cache::CacheOptions::default()
    };
    let options = IndexOptions {
        cache: cache.clone(),
        ..IndexOptions::default()
    };
    let indexer = indexer(&store, &database, options);
    let services: Vec<_> = (0..SIDE)
        .map(|i| fan_out_service(&format!("svc-{i:03}")))
        .collect();
    let replica_sets: Vec<_> = (0..SIDE)
        .map(|i| fan_out_replica_set(&format!("rs-{i:03}")))
        .collect();
    let selector_links = || async {
        let sql = database
            .sql("SELECT COUNT(*) FROM outpost_links WHERE account = ? AND origin = 'selector'");
        let count: i64 = sqlx::query_scalar(&sql)
            .bind("fan")
            .fetch_one(database.pool())
            .await
            .unwrap();
        count as usize
    };
    // What a Service's row lists (the application row named after the ReplicaSets lists them
    // all, as it would without any Service).
    let max_listed = |rows: &common::db::Rows| {
        rows.iter()
            .filter(|((type_name, _), _)| type_name == "service")
            .map(|(_, body)| {
                body["relationships"]["replicaSet"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .max()
            .unwrap_or(0)
    };

    // The diff path: Services first, then ReplicaSets in two diffs, then a diff removing kept
    // ReplicaSets (others take their place) and adding one that sorts first.
    let mut chain = Chain::new(&store, "fan");
    chain.snapshot(&[pod("fan", "seed", None)]).await;
    chain.diff(&services, &[]).await;
    chain.diff(&replica_sets[..SIDE / 2], &[]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "first diffs");
    assert_eq!(
        applied_stats(&report, "fan").selector_links_cut,
        (SIDE * (SIDE / 2 - BOUND)) as u64
    );
    chain.diff(&replica_sets[SIDE / 2..], &[]).await;
    chain
        .diff(&[fan_out_replica_set("rs-000a")], &replica_sets[..10])
        .await;
    chain.publish().await;
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "later diffs");
    let by_diffs = stored_rows(&database, "fan").await;
    assert_eq!(
        by_diffs,
        expected_rows_with(&store, &chain.cluster, "fan", &cache).await
    );
    assert_eq!(selector_links().await, SIDE * BOUND);
    assert_eq!(max_listed(&by_diffs), BOUND);

    // A snapshot of the same state: the same rows and links, the cut reported.
    let mut state: Vec<_> = services.clone();
    state.push(pod("fan", "seed", None));
    state.push(fan_out_replica_set("rs-000a"));
    state.extend(replica_sets[10..].iter().cloned());
    let mut again = Chain::new(&store, "fan");
    again.now = chain.now + chrono::Duration::seconds(30);
    again.snapshot(&state).await;
    again.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "snapshot");
    assert_eq!(
        applied_stats(&report, "fan").selector_links_cut,
        (SIDE * (SIDE - 10 + 1 - BOUND)) as u64
    );
    assert_eq!(stored_rows(&database, "fan").await, by_diffs);
    assert_eq!(selector_links().await, SIDE * BOUND);
    database.close().await;
    db.drop_database().await;
}
on_each_database!(selector_fan_out_is_bounded: sqlite, postgres, mariadb);

/// How many of `types` have their resource table in `database`.
async fn tables_of(database: &Database, types: &[String]) -> usize {
    let mut conn = database.pool().acquire().await.unwrap();
    let mut count = 0;
    for type_name in types {
        let table = database.cache_tables(type_name).unwrap().resource;
        if database.table_exists(&mut conn, &table).await.unwrap() {
            count += 1;
        }
    }
    count
}

/// Invented kinds cost no DDL unless their objects can get rows: with the default kinds (custom
/// resources are not cached) a snapshot of 30 of them creates none of their tables; when every
/// kind is cached, one run creates at most `max_new_cache_types` new types' tables and the
/// cluster is indexed once the later runs created the rest.
async fn invented_kinds_create_bounded_tables(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    const KINDS: usize = 30;
    const PER_RUN: usize = 10;
    let objects: Vec<serde_json::Value> = (0..KINDS)
        .map(|i| {
            serde_json::json!({"apiVersion": format!("k{i:02}.example.com/v1"), "kind": format!("Thing{i:02}"),
                "metadata": {"name": "one", "namespace": "default", "uid": format!("uid-{i}"), "resourceVersion": "1"}})
        })
        .chain([pod("default", "web", None)])
        .collect();
    let types: Vec<String> = (0..KINDS)
        .map(|i| format!("Thing{i:02}.k{i:02}.example.com"))
        .collect();
    let mut chain = Chain::new(&store, "kinds");
    chain.snapshot(&objects).await;
    chain.publish().await;
    let report = indexer(&store, &database, IndexOptions::default())
        .run_once(None)
        .await
        .unwrap();
    assert_no_failures(&report, "default kinds");
    assert_eq!(
        tables_of(&database, &types).await,
        0,
        "tables of uncached kinds"
    );

    let all = IndexOptions {
        cache: outpost::cache::CacheOptions {
            kinds: outpost::cache::KindFilter::All,
            ..outpost::cache::CacheOptions::default()
        },
        max_new_cache_types: PER_RUN,
        ..IndexOptions::default()
    };
    let every_kind = indexer(&store, &database, all);
    // A new snapshot, which the runs below load under the new options.
    let mut again = Chain::new(&store, "kinds");
    again.now = chain.now + chrono::Duration::seconds(30);
    again.snapshot(&objects).await;
    again.publish().await;
    for run in 1..=KINDS / PER_RUN {
        let report = every_kind.run_once(None).await.unwrap();
        assert_eq!(
            tables_of(&database, &types).await,
            run * PER_RUN,
            "run {run}"
        );
        let failed = report.failures().count();
        assert_eq!(
            failed,
            usize::from(run < KINDS / PER_RUN),
            "run {run}: {report:?}"
        );
    }
    database.close().await;
    db.drop_database().await;
}
on_each_database!(invented_kinds_create_bounded_tables: sqlite, postgres, mariadb);

/// Two kinds whose cache types have one table name (`Widget.example.com` and
/// `Widget.example-com`) no longer delete each other's rows: the first seen keeps the table, the
/// other's objects are left out and counted, in the snapshot and the diff paths.
async fn kinds_of_one_table_never_delete_each_other(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let cache = outpost::cache::CacheOptions {
        kinds: outpost::cache::KindFilter::All,
        ..outpost::cache::CacheOptions::default()
    };
    let options = IndexOptions {
        cache: cache.clone(),
        ..IndexOptions::default()
    };
    let widget = |group: &str, name: &str| {
        serde_json::json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{group}-{name}"), "resourceVersion": "1"}})
    };
    let dotted = widget("example.com", "a");
    let dashed = widget("example-com", "b");
    let web = pod("default", "web", None);
    let mut chain = Chain::new(&store, "widgets");
    chain
        .snapshot(&[dotted.clone(), dashed.clone(), web.clone()])
        .await;
    chain.publish().await;
    let indexer = indexer(&store, &database, options);
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "snapshot");
    assert_eq!(applied_stats(&report, "widgets").objects_table_collision, 1);
    let reference = |objects: Vec<serde_json::Value>| {
        let cache = cache.clone();
        async move {
            let store = Store::open(&format!("memory://reference-{:08x}", rand::random::<u32>()))
                .await
                .unwrap();
            let mut chain = Chain::new(&store, "widgets");
            chain.snapshot(&objects).await;
            chain.publish().await;
            expected_rows_with(&store, &chain.cluster, "widgets", &cache).await
        }
    };
    assert_eq!(
        stored_rows(&database, "widgets").await,
        reference(vec![dotted.clone(), web.clone()]).await,
        "snapshot"
    );

    let mut changed = dashed.clone();
    changed["metadata"]["resourceVersion"] = "2".into();
    let mut dotted_changed = dotted.clone();
    dotted_changed["metadata"]["resourceVersion"] = "2".into();
    dotted_changed["metadata"]["labels"] = serde_json::json!({"step": "two"});
    chain.diff(&[changed, dotted_changed.clone()], &[]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "diff");
    assert_eq!(applied_stats(&report, "widgets").objects_table_collision, 1);
    assert_eq!(
        stored_rows(&database, "widgets").await,
        reference(vec![dotted_changed, web]).await,
        "diff"
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(kinds_of_one_table_never_delete_each_other: sqlite, postgres, mariadb);

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
    assert_eq!(record.checkpoint().map(|c| c.seq), Some(3));
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
