//! The adversarial suite (docs/SECURITY.md): crafted buckets and ordinary-but-messy clusters
//! against the indexer on real databases, one module per trust boundary. Each test is the
//! regression test of one way a cluster could harm another account, fail itself on ordinary
//! objects, or make the indexer spend without bound.

use outpost::format::ClusterName;
use outpost::indexer::{Database, IndexOptions, Indexer, Outcome};
use outpost::store::Store;

// The helpers every test target shares, one folder up from this target's own.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod chains;
mod limits;
mod liveness;
mod objects;

use common::db::{TestDb, fresh_database};

/// A fresh database of `kind`, an empty memory bucket, and a connection to the database; `None`
/// when `kind`'s server is not set.
async fn setup(kind: &str) -> Option<(TestDb, Store, Database)> {
    let db = fresh_database(kind).await?;
    let store = Store::open(&format!(
        "memory://trust-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .expect("a memory bucket");
    let database = Database::connect(&db.url, None)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", db.url));
    Some((db, store, database))
}

/// An indexer of `store` into `database` under `options`.
fn indexer(store: &Store, database: &Database, options: IndexOptions) -> Indexer {
    Indexer {
        store: store.clone(),
        database: database.clone(),
        options,
    }
}

/// `cluster`'s outcome in `report`; fails when it is missing or failed.
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

/// What the reference builder computes under `options` for the objects the bucket holds for
/// `cluster` now.
async fn expected_rows_with(
    store: &Store,
    cluster: &ClusterName,
    account: &str,
    options: &outpost::cache::CacheOptions,
) -> common::db::Rows {
    let (_, objects) = common::replay(store, cluster)
        .await
        .unwrap_or_else(|| panic!("{cluster} has a head"));
    let resources: Vec<outpost::cache::Resource> = objects
        .into_values()
        .map(|(_, object)| {
            outpost::cache::Resource::parse(object).expect("a resource the bucket holds")
        })
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
