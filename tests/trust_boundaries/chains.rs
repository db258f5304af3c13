//! Chains: a head rewritten or rewound within its epoch is detected, reported and kept for
//! `outpost status`, and never leaves rows of the chain it replaced.

use outpost::indexer::{IndexOptions, Outcome};

use crate::common::chain::{Chain, pod};
use crate::common::db::{assert_no_failures, expected_rows, stored_rows};
use crate::{indexer, outcome_of, setup};

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
