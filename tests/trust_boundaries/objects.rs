//! Objects: ordinary but messy objects (owned by uncached kinds, with overlong cache ids, with
//! one cache key or one table name between two of them) fail no cluster and overwrite no row.

use outpost::indexer::{Database, IndexOptions};
use outpost::store::Store;

use crate::common;
use crate::common::chain::{Chain, pod};
use crate::common::db::{assert_no_failures, expected_rows, stored_rows};
use crate::{applied_stats, expected_rows_with, indexer, setup};

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
    query
        .fetch_one(database.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
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
        .expect("a memory bucket");
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

/// Two kinds whose cache types have one table name (`Widget.example.com` and
/// `Widget.example-com`) never delete each other's rows: the first seen keeps the table, the
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
