//! One indexer over a fleet of small simulated clusters on PostgreSQL: its first
//! `run_once(None)` (every cluster's snapshot), then a run where one cluster in ten shipped one
//! diff and the rest answer a conditional GET.

use std::time::Instant;

use outpost::agent::ship::Shipped;
use outpost::cache::Dialect;
use outpost::indexer::{Database, IndexOptions, Indexer, Outcome};
use outpost::store::Store;
use outpost::test_support::db::TestDb;
use outpost::test_support::sim::SimCluster;

use crate::Config;
use crate::activity::{ActivitySampler, Samples};
use crate::measure::{CpuSampler, PG_PROCS, cpu_seconds};
use crate::report::progress;

/// What the fleet's two runs did and took.
pub struct FleetRun {
    pub clusters: usize,
    /// The objects of every cluster.
    pub objects: usize,
    pub first: RunOnce,
    pub next: RunOnce,
    /// What the PostgreSQL sessions were doing during the first run.
    pub samples: Samples,
}

/// One `run_once(None)` over the fleet.
pub struct RunOnce {
    /// Clusters applied: snapshots in the first run, diffs in the next.
    pub applied: usize,
    /// Clusters unchanged (none counted in the first run).
    pub unchanged: usize,
    /// Records of the diffs shipped before the run (none in the first run).
    pub records: u64,
    pub rows: u64,
    pub seconds: f64,
    /// CPU seconds of this process and of the PostgreSQL server.
    pub client_cpu: f64,
    pub server_cpu: f64,
}

/// `config.clusters` clusters of about `config.fleet_objects` objects shipped into a
/// `memory://` store and indexed twice by one indexer into the PostgreSQL database `pg`.
pub async fn fleet(config: &Config, pg: &TestDb, pg_db: &Database, started: Instant) -> FleetRun {
    progress(
        started,
        &format!(
            "fleet: generating {} clusters of ~{} objects into a memory:// store",
            config.clusters, config.fleet_objects
        ),
    );
    let fleet_store = Store::open(&format!(
        "memory://bench-fleet-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .expect("opens");
    let t = Instant::now();
    let mut changing = Vec::new();
    let mut fleet_objects = 0;
    for i in 0..config.clusters {
        let mut sim = SimCluster::new(
            &fleet_store,
            &format!("fleet-{i:04}"),
            1000 + i as u64,
            config.fleet_objects,
        )
        .on_wall_clock();
        fleet_objects += sim.state().len();
        assert!(matches!(sim.ship().await, Shipped::Snapshot { .. }));
        if i.is_multiple_of(10) {
            changing.push(sim);
        }
    }
    progress(
        started,
        &format!(
            "  {fleet_objects} objects in {} clusters generated and shipped in {:.1} s",
            config.clusters,
            t.elapsed().as_secs_f64()
        ),
    );
    let indexer = Indexer {
        store: fleet_store.clone(),
        database: pg_db.clone(),
        options: IndexOptions {
            concurrency: config.fleet_concurrency,
            ..IndexOptions::default()
        },
    };
    let (first, samples) = first_run(&indexer, pg, started).await;
    let next = next_run(&indexer, &mut changing, started).await;
    FleetRun {
        clusters: config.clusters,
        objects: fleet_objects,
        first,
        next,
        samples,
    }
}

/// The first run: every cluster's snapshot, with what the PostgreSQL sessions were doing.
async fn first_run(indexer: &Indexer, pg: &TestDb, started: Instant) -> (RunOnce, Samples) {
    let server = CpuSampler::start(PG_PROCS);
    let activity = ActivitySampler::start(
        Dialect::Postgres,
        &pg.url,
        pg.name().expect("a server database"),
    )
    .await;
    let client_before = cpu_seconds("self");
    let t = Instant::now();
    let report = indexer.run_once(None).await.expect("runs");
    let first = t.elapsed().as_secs_f64();
    let (client_cpu, server_cpu) = (cpu_seconds("self") - client_before, server.stop());
    let samples = activity.stop().await;
    assert_eq!(report.failures().count(), 0, "first run failures");
    let snapshots = report
        .clusters
        .iter()
        .filter(|c| matches!(c.result, Ok(Outcome::Applied { snapshot: true, .. })))
        .count();
    let first_rows: u64 = report.rows_written();
    progress(
        started,
        &format!(
            "  first run: {snapshots} snapshots, {first_rows} rows, in {first:.1} s ({:.1} clusters/s)",
            report.clusters.len() as f64 / first
        ),
    );
    let run = RunOnce {
        applied: snapshots,
        unchanged: 0,
        records: 0,
        rows: first_rows,
        seconds: first,
        client_cpu,
        server_cpu,
    };
    (run, samples)
}

/// The next run, once each of `changing` shipped one diff.
async fn next_run(indexer: &Indexer, changing: &mut [SimCluster], started: Instant) -> RunOnce {
    let mut changed_records = 0;
    for sim in changing {
        while !sim.state().has_changes() {
            sim.step(5.0, 1.0);
        }
        let Shipped::Diff { records, .. } = sim.ship().await else {
            panic!("{}: not a diff", sim.name)
        };
        changed_records += records;
    }
    let server = CpuSampler::start(PG_PROCS);
    let client_before = cpu_seconds("self");
    let t = Instant::now();
    let report = indexer.run_once(None).await.expect("runs");
    let second = t.elapsed().as_secs_f64();
    let (client_cpu, server_cpu) = (cpu_seconds("self") - client_before, server.stop());
    assert_eq!(report.failures().count(), 0, "second run failures");
    let diffs_applied = report
        .clusters
        .iter()
        .filter(|c| {
            matches!(
                c.result,
                Ok(Outcome::Applied {
                    snapshot: false,
                    ..
                })
            )
        })
        .count();
    let unchanged = report
        .clusters
        .iter()
        .filter(|c| matches!(c.result, Ok(Outcome::Unchanged { .. })))
        .count();
    let second_rows: u64 = report.rows_written();
    progress(
        started,
        &format!(
            "  second run: {diffs_applied} diffs ({changed_records} records, {second_rows} rows written), {unchanged} unchanged, in {second:.1} s ({:.1} clusters/s)",
            report.clusters.len() as f64 / second
        ),
    );
    RunOnce {
        applied: diffs_applied,
        unchanged,
        records: changed_records,
        rows: second_rows,
        seconds: second,
        client_cpu,
        server_cpu,
    }
}
