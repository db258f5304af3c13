//! Limits: what a bucket can make the indexer spend is bounded (selector links, new tables,
//! bytes decompressed, a cluster's quotas), and a cluster over a bound is refused untouched.

use outpost::indexer::{Database, IndexOptions};

use crate::common;
use crate::common::chain::{Chain, pod};
use crate::common::db::{assert_no_failures, stored_rows};
use crate::{applied_stats, expected_rows_with, indexer, setup};

/// A Service in namespace `fan` selecting `app: shared`.
fn fan_out_service(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "fan", "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": {"selector": {"app": "shared"}}})
}

/// A ReplicaSet in namespace `fan` whose pods are labelled `app: shared`.
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
    let mut conn = database
        .pool()
        .acquire()
        .await
        .expect("a database connection");
    let mut count = 0;
    for type_name in types {
        let table = database
            .cache_tables(type_name)
            .unwrap_or_else(|e| panic!("the tables of {type_name}: {e}"))
            .resource;
        if database
            .table_exists(&mut conn, &table)
            .await
            .unwrap_or_else(|e| panic!("whether {table} exists: {e}"))
        {
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
