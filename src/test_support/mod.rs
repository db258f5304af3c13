//! Helpers the integration tests and the benchmarks share (the `test-support` feature): the test
//! servers named by the environment, fresh databases, simulated clusters shipping through the
//! agent's pipeline, and the cache rows a database holds next to the reference builder's.
//!
//! A failure here is the calling test's or benchmark's failure, so these helpers panic saying what
//! failed instead of returning errors.

pub mod bench;
pub mod db;
pub mod rows;
pub mod sim;

use crate::indexer::Outcome;
use crate::indexer::apply::ApplyStats;

/// The value of a test server's environment variable, or `None` (with the reason printed) when it
/// is not set — unless `OUTPOST_TEST_REQUIRE_SERVERS=1` (as in CI), which makes it a failure.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) => Some(value),
        Err(_) if std::env::var("OUTPOST_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!(
                "{var} is not set but OUTPOST_TEST_REQUIRE_SERVERS=1: start the servers with scripts/test"
            )
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set (run scripts/test to start the test servers)");
            None
        }
    }
}

/// Whether an applied outcome loaded a snapshot, and what it wrote; panics on any other outcome.
pub fn applied(outcome: &Outcome) -> (bool, &ApplyStats) {
    match outcome {
        Outcome::Applied {
            snapshot, stats, ..
        } => (*snapshot, stats),
        other => panic!("not applied: {other:?}"),
    }
}
