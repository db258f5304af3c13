//! Small diffs into the big account: each round ten objects change in the big cluster, its
//! agent ships one diff, and every database's indexer applies it, timed.

use std::time::Instant;

use outpost::agent::ship::Shipped;
use outpost::indexer::apply::ApplyStats;
use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;
use outpost::test_support::applied;
use outpost::test_support::sim::SimCluster;

use crate::report::progress;

/// What the rounds shipped and applied.
pub struct DiffRounds {
    /// The records of each round's diff.
    pub records: Vec<u64>,
    /// Each database's (seconds, stats) of each round, in the order of the databases.
    pub by_database: Vec<(&'static str, Vec<(f64, ApplyStats)>)>,
}

/// Three rounds of a 10-object diff of `big` (shipping into `store`) applied to each of `dbs`.
pub async fn diff_rounds(
    big: &mut SimCluster,
    store: &Store,
    dbs: &[(&'static str, &Database)],
    started: Instant,
) -> DiffRounds {
    let indexers: Vec<(&str, Indexer)> = dbs
        .iter()
        .map(|(label, database)| {
            (
                *label,
                Indexer {
                    store: store.clone(),
                    database: (*database).clone(),
                    options: IndexOptions::default(),
                },
            )
        })
        .collect();
    let mut by_database: Vec<(&'static str, Vec<(f64, ApplyStats)>)> =
        dbs.iter().map(|(label, _)| (*label, Vec::new())).collect();
    let mut records_shipped = Vec::new();
    for round in 0..3 {
        let events = big.change_objects(10);
        let Shipped::Diff { records, .. } = big.ship().await else {
            panic!("round {round}: not a diff")
        };
        records_shipped.push(records);
        progress(
            started,
            &format!("diff {round}: {events} watch events → a diff of {records} records"),
        );
        for ((label, indexer), (_, rounds)) in indexers.iter().zip(&mut by_database) {
            let t = Instant::now();
            let outcome = indexer.index_cluster(&big.name).await.expect("indexes");
            let seconds = t.elapsed().as_secs_f64();
            let (snapshot, stats) = applied(&outcome);
            let stats = stats.clone();
            assert!(!snapshot, "{label}: a diff, not a reload");
            progress(
                started,
                &format!(
                    "  {label}: {:.0} ms, {} rows written, {} unchanged, {} deleted",
                    seconds * 1000.0,
                    stats.rows_written,
                    stats.rows_unchanged,
                    stats.rows_deleted
                ),
            );
            rounds.push((seconds, stats));
        }
    }
    DiffRounds {
        records: records_shipped,
        by_database,
    }
}
