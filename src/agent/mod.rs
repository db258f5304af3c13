//! The in-cluster agent: watch (or simulate) a cluster, keep its redacted state, and ship
//! snapshots and diffs to the bucket as the one elected writer.

pub mod api_error;
mod build;
pub mod compressed;
pub mod config;
pub mod discovery;
pub mod health;
pub mod key;
pub mod redact;
pub mod run;
pub mod ship;
pub mod simulated;
pub mod state;
pub mod watch;

pub use build::{Agent, Error, build};
