//! The indexer against real databases (SQLite, PostgreSQL, MariaDB): what it writes equals the
//! reference builder's rows for the cluster's current objects after a snapshot and after every
//! diff; a diff rewrites only what changed; a tampered segment leaves its cluster untouched while
//! others are indexed; two indexers at once give the same rows as one; a run cancelled mid-apply
//! (its connection dropped inside the transaction) and rerun converges; many clusters indexed at
//! once by one indexer give the same rows, a lost conflict retried; large snapshots take turns.

use std::collections::BTreeSet;

use outpost::agent::ship::Shipped;
use outpost::indexer::{Database, IndexOptions, Indexer, Outcome};
use outpost::store::Store;
use outpost::test_support::sim::SimCluster;

#[macro_use]
mod common;

use common::db::{Rows, TestDb, assert_no_failures, expected_rows, fresh_database, stored_rows};

/// Each simulated cluster's stored rows equal the reference builder's for its objects.
async fn assert_clusters_match(
    database: &Database,
    store: &Store,
    sims: &[SimCluster],
    context: &str,
) {
    for sim in sims {
        let account = sim.name.as_str();
        assert_same(
            &stored_rows(database, account).await,
            &expected_rows(store, &sim.name, account).await,
            &format!("{context}: {account}"),
        );
    }
}

fn assert_same(stored: &Rows, expected: &Rows, context: &str) {
    let stored_keys: BTreeSet<_> = stored.keys().collect();
    let expected_keys: BTreeSet<_> = expected.keys().collect();
    let missing: Vec<_> = expected_keys.difference(&stored_keys).take(5).collect();
    let extra: Vec<_> = stored_keys.difference(&expected_keys).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}: missing {missing:?}, extra {extra:?} ({} stored, {} expected)",
        stored.len(),
        expected.len()
    );
    for (key, body) in expected {
        assert_eq!(&stored[key], body, "{context}: row {key:?} differs");
    }
}

/// Whether an applied outcome loaded a snapshot, its rows written and unchanged.
fn applied(outcome: &Outcome) -> (bool, u64, u64) {
    let (snapshot, stats) = outpost::test_support::applied(outcome);
    (snapshot, stats.rows_written, stats.rows_unchanged)
}

async fn incremental_equals_rebuild(kind: &str) {
    let Some(db) = fresh_database(kind).await else {
        return;
    };
    let store = Store::open(&format!(
        "memory://idx-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .unwrap();
    let database = Database::connect(&db.url, None).await.unwrap();
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions::default(),
    };
    let mut sim = SimCluster::new(&store, "sim-a", 7, 400);
    assert!(matches!(sim.ship().await, Shipped::Snapshot { .. }));
    let outcome = indexer.index_cluster(&sim.name).await.unwrap();
    let (snapshot, written, _) = applied(&outcome);
    assert!(snapshot);
    let expected = expected_rows(&store, &sim.name, "sim-a").await;
    assert_eq!(written as usize, expected.len(), "every row written once");
    assert_same(
        &stored_rows(&database, "sim-a").await,
        &expected,
        &format!("{kind}: after the snapshot"),
    );

    // Diffs: a few changes each; rows written follow the change, not the account.
    for round in 0..6 {
        sim.step(15.0, 1.0);
        let shipped_snapshot = match sim.ship().await {
            Shipped::Diff { .. } => false,
            // The agent restarted the chain (the diffs outweighed the snapshot): the indexer
            // reloads it, still rewriting only the rows that changed.
            Shipped::Snapshot { .. } => true,
            other => panic!("round {round}: {other:?}"),
        };
        let outcome = indexer.index_cluster(&sim.name).await.unwrap();
        let (snapshot, written, _) = applied(&outcome);
        assert_eq!(snapshot, shipped_snapshot, "round {round}");
        let expected = expected_rows(&store, &sim.name, "sim-a").await;
        assert!(
            (written as usize) < expected.len() / 4,
            "round {round}: {written} rows written of {}",
            expected.len()
        );
        assert_same(
            &stored_rows(&database, "sim-a").await,
            &expected,
            &format!("{kind}: after diff round {round}"),
        );
    }
    // Nothing new: nothing written.
    assert!(matches!(
        indexer.index_cluster(&sim.name).await.unwrap(),
        Outcome::Unchanged { .. }
    ));
    database.close().await;
    db.drop_database().await;
}

on_each_database!(incremental_equals_rebuild: sqlite, postgres, mariadb);

async fn setup(kind: &str) -> Option<(TestDb, Store, Database)> {
    let db = fresh_database(kind).await?;
    let store = Store::open(&format!(
        "memory://idx-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .unwrap();
    let database = Database::connect(&db.url, None).await.unwrap();
    Some((db, store, database))
}

fn indexer(store: &Store, database: &Database) -> Indexer {
    Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions::default(),
    }
}

async fn a_tampered_segment_leaves_its_cluster_untouched(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut a = SimCluster::new(&store, "tamper-a", 11, 200);
    let mut b = SimCluster::new(&store, "tamper-b", 12, 200);
    a.ship().await;
    b.ship().await;
    let report = indexer(&store, &database).run_once(None).await.unwrap();
    assert_eq!(report.failures().count(), 0);
    let a_before = stored_rows(&database, "tamper-a").await;

    a.step(15.0, 2.0);
    b.step(15.0, 2.0);
    assert!(matches!(a.ship().await, Shipped::Diff { .. }));
    assert!(matches!(b.ship().await, Shipped::Diff { .. }));
    // Flip one byte in the middle of a's new diff.
    let head = a.shipper().head().unwrap().clone();
    let diff = head.diffs.last().unwrap();
    let key = store.layout().segment(
        &a.name,
        &head.epoch,
        diff.seq,
        outpost::format::SegmentType::Diff,
    );
    let (bytes, _) = store.get(&key).await.unwrap();
    let mut tampered = bytes.to_vec();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x20;
    store.put_overwrite(&key, tampered.into()).await.unwrap();

    let report = indexer(&store, &database).run_once(None).await.unwrap();
    let failures: Vec<(&str, String)> = report
        .failures()
        .map(|(c, e)| (c, outpost::error_chain(e)))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, "tamper-a");
    assert!(
        failures[0].1.contains(&key.relative),
        "the error names the segment: {}",
        failures[0].1
    );
    assert_same(
        &stored_rows(&database, "tamper-a").await,
        &a_before,
        "the tampered cluster's rows",
    );
    assert_same(
        &stored_rows(&database, "tamper-b").await,
        &expected_rows(&store, &b.name, "tamper-b").await,
        "the other cluster",
    );
    // The error is kept for `outpost status`.
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    let a_record = records.iter().find(|r| r.cluster == "tamper-a").unwrap();
    assert!(
        a_record
            .error
            .as_deref()
            .is_some_and(|e| e.contains(&key.relative))
    );
    database.close().await;
    db.drop_database().await;
}

on_each_database!(a_tampered_segment_leaves_its_cluster_untouched: sqlite, postgres, mariadb);

async fn concurrent_and_cancelled_runs_converge(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    // A second connection pool: a second indexer process.
    let other = Database::connect(&db.url, None).await.unwrap();
    let mut sims: Vec<SimCluster> = (0..3)
        .map(|i| SimCluster::new(&store, &format!("race-{i}"), 20 + i, 300))
        .collect();
    for sim in &mut sims {
        sim.ship().await;
    }
    // Cancel a run part-way through (its transaction's connection is dropped), several times at
    // different points; then two indexers at once.
    for delay_ms in [5, 20, 60] {
        let run = indexer(&store, &database);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(delay_ms), async move {
            run.run_once(None).await
        })
        .await;
    }
    for round in 0..3 {
        let (first, second) = (indexer(&store, &database), indexer(&store, &other));
        let (one, two) = tokio::join!(first.run_once(None), second.run_once(None));
        for report in [one.unwrap(), two.unwrap()] {
            assert_no_failures(&report, &format!("round {round}"));
        }
        assert_clusters_match(&database, &store, &sims, &format!("{kind} round {round}")).await;
        for sim in &mut sims {
            sim.step(15.0, 2.0);
            sim.ship().await;
        }
    }
    // Exactly one checkpoint per cluster, at its head.
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    assert_eq!(records.len(), 3);
    database.close().await;
    other.close().await;
    db.drop_database().await;
}

on_each_database!(concurrent_and_cancelled_runs_converge: sqlite, postgres, mariadb);

/// Many clusters indexed at once by one indexer (the most it allows), over three rounds of
/// churn: every cluster's rows equal the reference builder's, and no cluster fails (a lost
/// conflict is retried).
async fn many_clusters_at_once_equal_the_reference(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut sims: Vec<SimCluster> = (0..12)
        .map(|i| SimCluster::new(&store, &format!("many-{i:02}"), 40 + i, 150))
        .collect();
    let mut run = indexer(&store, &database);
    run.options.concurrency = outpost::indexer::MAX_CONCURRENCY;
    for round in 0..3 {
        for sim in &mut sims {
            if round > 0 {
                sim.step(15.0, 3.0);
            }
            sim.ship().await;
        }
        let report = run.run_once(None).await.unwrap();
        assert_no_failures(&report, &format!("{kind} round {round}"));
        let order: Vec<&str> = report.clusters.iter().map(|c| c.cluster.as_str()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "the report keeps the bucket's order");
        assert_clusters_match(&database, &store, &sims, &format!("{kind} round {round}")).await;
    }
    database.close().await;
    db.drop_database().await;
}

on_each_database!(many_clusters_at_once_equal_the_reference: postgres, mariadb);

/// A real deadlock between two transactions (each locks a row the other then wants) is what
/// `is_conflict` recognises, so the indexer retries it; another database error is not.
async fn a_deadlock_is_a_conflict(kind: &str) {
    let Some((db, _store, database)) = setup(kind).await else {
        return;
    };
    let mut setup_conn = database.connection("setup").await.unwrap();
    for sql in [
        "CREATE TABLE deadlock_probe (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
        "INSERT INTO deadlock_probe (id, v) VALUES (1, 0), (2, 0)",
    ] {
        sqlx::query(sql).execute(&mut *setup_conn).await.unwrap();
    }
    drop(setup_conn);
    let lock = |id: i32| format!("UPDATE deadlock_probe SET v = v + 1 WHERE id = {id}");
    let mut one = database.connection("one").await.unwrap();
    let mut two = database.connection("two").await.unwrap();
    sqlx::query("BEGIN").execute(&mut *one).await.unwrap();
    sqlx::query("BEGIN").execute(&mut *two).await.unwrap();
    sqlx::query(&lock(1)).execute(&mut *one).await.unwrap();
    sqlx::query(&lock(2)).execute(&mut *two).await.unwrap();
    let (lock_two, lock_one) = (lock(2), lock(1));
    let (a, b) = tokio::join!(
        sqlx::query(&lock_two).execute(&mut *one),
        sqlx::query(&lock_one).execute(&mut *two),
    );
    let to_error = |source: sqlx::Error| {
        outpost::indexer::Error::Database(outpost::indexer::db::Error::Query {
            url: "test".into(),
            what: "locking".into(),
            source,
        })
    };
    let conflicts: Vec<bool> = [a, b]
        .into_iter()
        .filter_map(|r| r.err())
        .map(|e| to_error(e).is_conflict())
        .collect();
    assert!(
        !conflicts.is_empty(),
        "{kind}: one transaction loses the deadlock"
    );
    assert!(conflicts.iter().all(|c| *c), "{kind}: {conflicts:?}");
    let _ = sqlx::query("ROLLBACK").execute(&mut *one).await;
    let _ = sqlx::query("ROLLBACK").execute(&mut *two).await;
    let other = sqlx::query("SELECT no_such_column FROM deadlock_probe")
        .execute(&mut *one)
        .await
        .unwrap_err();
    assert!(!to_error(other).is_conflict());
    drop((one, two));
    database.close().await;
    db.drop_database().await;
}

on_each_database!(a_deadlock_is_a_conflict: postgres, mariadb);

/// Large snapshots take turns: while their turn is held elsewhere, a run that must load one
/// waits (its cluster stays unapplied), and goes on once the turn is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_snapshots_load_one_at_a_time() {
    let Some((db, store, database)) = setup("sqlite").await else {
        return;
    };
    let mut sim = SimCluster::new(&store, "turns", 60, 100);
    sim.ship().await;
    let mut run = indexer(&store, &database);
    run.options.large_snapshot_bytes = 1;
    let held = std::sync::Arc::clone(&run.options.large_loads)
        .acquire_owned()
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { run.run_once(None).await });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "the load waits for its turn");
    drop(held);
    let report = tokio::time::timeout(std::time::Duration::from_secs(60), waiting)
        .await
        .expect("the load goes on once the turn is free")
        .unwrap()
        .unwrap();
    assert_eq!(report.failures().count(), 0);
    let account = sim.name.as_str();
    assert_same(
        &stored_rows(&database, account).await,
        &expected_rows(&store, &sim.name, account).await,
        "after its turn",
    );
    database.close().await;
    db.drop_database().await;
}
