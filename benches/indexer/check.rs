//! The correctness check of a run: every database's rows for the big cluster after the diffs
//! against the reference builder's rows for the agent's current objects, compared by digest.

use std::collections::BTreeMap;
use std::time::Instant;

use outpost::agent::state::State;
use outpost::cache;
use outpost::indexer::Database;
use outpost::test_support::rows;
use sha2::{Digest, Sha256};

use crate::BIG;
use crate::report::progress;

/// (type, id) → sha256 of the body without `cacheExpiry`.
type RowDigests = BTreeMap<(String, String), [u8; 32]>;

/// Each database's rows for the big cluster (holding `state`) against the reference builder's,
/// as a one-line verdict per database.
pub async fn check_rows(
    state: &State,
    dbs: &[(&'static str, &Database)],
    started: Instant,
) -> Vec<(&'static str, String)> {
    progress(
        started,
        "checking every database's rows against the reference builder",
    );
    let reference = expected_rows(state, BIG);
    let mut checks = Vec::new();
    for (label, database) in dbs {
        // What a database that limits ids cannot hold is left out, as the indexer leaves it.
        let expected: RowDigests = reference
            .iter()
            .filter(|((_, id), _)| {
                database
                    .dialect()
                    .max_id_length()
                    .is_none_or(|max| id.len() <= max)
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let (stored, bad) = stored_digests(database, BIG).await;
        let verdict = compare(&stored, &expected, bad);
        progress(started, &format!("  {label}: {verdict}"));
        checks.push((*label, verdict));
    }
    checks
}

/// The digest of a row's body as compared.
fn digest(body: &str) -> [u8; 32] {
    Sha256::digest(rows::comparable_body(body).to_string().as_bytes()).into()
}

/// The reference builder's rows for the agent's current objects.
fn expected_rows(state: &State, account: &str) -> RowDigests {
    let objects = state.entries().map(|e| {
        serde_json::from_str(&e.object.to_json().expect("an object as JSON"))
            .expect("an object's JSON")
    });
    rows::reference_rows(account, objects)
        .into_iter()
        .map(|row| ((row.type_name, row.id), digest(&row.body)))
        .collect()
}

/// The digests of `account`'s cats rows in the tables of the types with cached rows, and how
/// many of those rows have a `body_hash` that is not their body's.
async fn stored_digests(database: &Database, account: &str) -> (RowDigests, u64) {
    let types = rows::cached_types(database).await;
    let mut digests = RowDigests::new();
    let mut bad_hashes = 0;
    for row in rows::stored_rows_of(database, account, types).await {
        if row.body_hash != cache::body_hash(&row.body) {
            bad_hashes += 1;
        }
        digests.insert((row.type_name, row.id), digest(&row.body));
    }
    (digests, bad_hashes)
}

/// A one-line comparison: "ok" or what differs.
fn compare(stored: &RowDigests, expected: &RowDigests, bad_hashes: u64) -> String {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .collect();
    let extra: Vec<_> = stored
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let differ: Vec<_> = expected
        .iter()
        .filter(|(k, v)| stored.get(*k).is_some_and(|s| s != *v))
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() && extra.is_empty() && differ.is_empty() && bad_hashes == 0 {
        format!("ok ({} rows equal the reference builder's)", stored.len())
    } else {
        format!(
            "MISMATCH: {} missing (e.g. {:?}), {} extra (e.g. {:?}), {} bodies differ (e.g. {:?}), {} bad body_hash",
            missing.len(),
            missing.first(),
            extra.len(),
            extra.first(),
            differ.len(),
            differ.first(),
            bad_hashes
        )
    }
}
