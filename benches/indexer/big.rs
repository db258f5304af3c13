//! The big cluster: a simulated cluster of many objects through the agent's pipeline (redaction,
//! state, shipper) into a `file://` store, which the load children read, its first snapshot
//! shipped.

use std::path::Path;
use std::time::{Duration, Instant};

use outpost::agent::ship::Shipped;
use outpost::sim::Churn;
use outpost::store::Store;
use outpost::test_support::sim::SimCluster;

use crate::BIG;
use crate::report::progress;

/// The big cluster after its snapshot was shipped.
pub struct BigCluster {
    /// The `file://` store it ships into.
    pub store_url: String,
    pub store: Store,
    pub sim: SimCluster,
    /// The objects it holds, and its snapshot's records and compressed bytes.
    pub objects: usize,
    pub snapshot_records: u64,
    pub snapshot_bytes: u64,
}

/// `d` in seconds, as the progress lines show it.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A cluster of about `objects` objects shipping into a bucket under `dir`, its snapshot shipped;
/// each step timed.
pub async fn ship_snapshot(objects: usize, dir: &Path, started: Instant) -> BigCluster {
    let store_url = format!("file://{}", dir.join("bucket").display());
    std::fs::create_dir_all(dir.join("bucket")).expect("creates the bucket folder");
    let store = Store::open(&store_url).await.expect("opens the store");
    progress(
        started,
        &format!("generating a simulated cluster of ~{objects} objects"),
    );
    let t = Instant::now();
    let churn = Churn::new(42, objects);
    let generated = t.elapsed();
    let t = Instant::now();
    let mut sim = SimCluster::with_churn(&store, BIG, churn).on_wall_clock();
    let objects = sim.state().len();
    let through_agent = t.elapsed();
    let t = Instant::now();
    let Shipped::Snapshot {
        bytes: snapshot_bytes,
        records: snapshot_records,
        ..
    } = sim.ship().await
    else {
        panic!("the first ship is a snapshot")
    };
    let shipped = t.elapsed();
    progress(
        started,
        &format!(
            "{objects} objects: generated in {:.1} s, redacted into the agent's state in {:.1} s, snapshot of {snapshot_records} records ({:.1} MB) shipped in {:.1} s",
            secs(generated),
            secs(through_agent),
            snapshot_bytes as f64 / 1e6,
            secs(shipped)
        ),
    );
    BigCluster {
        store_url,
        store,
        sim,
        objects,
        snapshot_records,
        snapshot_bytes,
    }
}
