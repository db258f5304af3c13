//! Liveness: a cluster ages by the last heartbeat the indexer applied, whether it stops
//! shipping, vanishes from the bucket or ships a heartbeat from the future.

use outpost::format::ClusterName;
use outpost::indexer::{Database, IndexOptions, Outcome};
use outpost::store::Store;

use crate::common::chain::{Chain, pod};
use crate::common::db::{assert_no_failures, expected_rows, fresh_database, stored_rows};
use crate::{indexer, outcome_of, setup};

/// A folder bucket in a temporary directory (so that a test can delete what a cluster wrote).
async fn folder_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(&format!("file://{}", dir.path().display()))
        .await
        .expect("a folder bucket");
    (dir, store)
}

/// Graces of `stale_minutes` to STALE and `evict_minutes` to EVICTED.
fn graces(stale_minutes: u64, evict_minutes: u64) -> outpost::indexer::Graces {
    outpost::indexer::Graces {
        stale_after: std::time::Duration::from_secs(stale_minutes * 60),
        evict_after: std::time::Duration::from_secs(evict_minutes * 60),
    }
}

/// `cluster`'s state in `records`, as `outpost status` shows it.
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
