//! Snapshot loads in child processes (this binary re-executed with [`ROLE_VAR`]` = load`), so
//! that each load's peak memory (VmHWM) and CPU are the indexer's alone.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use outpost::format::ClusterName;
use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;
use outpost::test_support::applied;
use serde_json::{Value, json};

use crate::activity::{ActivitySampler, Samples};
use crate::measure::{CpuSampler, cpu_seconds, procs_of, status_kb};
use crate::report::progress;
use crate::{BIG, Targets};

/// The environment variable that makes this binary a load child (`load`) instead of the
/// benchmark.
pub const ROLE_VAR: &str = "OUTPOST_BENCH_INDEXER_ROLE";

/// A snapshot load into one database.
pub struct Load {
    pub label: &'static str,
    pub result: LoadResult,
    /// CPU seconds the database server used meanwhile.
    pub server_cpu: f64,
}

/// The big cluster's snapshot (shipped into `store_url`) loaded into each target database,
/// each load in a child process, with the server's CPU and what its sessions did meanwhile.
pub async fn load_snapshots(
    targets: &Targets,
    store_url: &str,
    started: Instant,
) -> (Vec<Load>, Vec<(&'static str, Samples)>) {
    let mut loads = Vec::new();
    let mut load_samples = Vec::new();
    for (label, url, dialect, server) in targets.each() {
        progress(
            started,
            &format!("snapshot load into {label} (child process)"),
        );
        let cpu = CpuSampler::start(procs_of(dialect));
        let activity = match server {
            Some(server) => Some(
                ActivitySampler::start(
                    dialect,
                    &server.url,
                    server.name().expect("a server database"),
                )
                .await,
            ),
            None => None,
        };
        let (store_url, url) = (store_url.to_string(), url.to_string());
        let result = tokio::task::spawn_blocking(move || load_in_child(&store_url, &url, BIG))
            .await
            .expect("the child's waiter");
        let server_cpu = cpu.stop();
        if let Some(activity) = activity {
            load_samples.push((label, activity.stop().await));
        }
        progress(
            started,
            &format!(
                "  {label}: {} records → {} cats rows in {:.1} s ({:.0} rows/s); VmHWM {:.0} MB; indexer CPU {:.1} s, server CPU {:.1} s",
                result.records,
                result.rows_written,
                result.seconds,
                result.rows_written as f64 / result.seconds,
                result.hwm_kb as f64 / 1024.0,
                result.cpu_seconds,
                server_cpu
            ),
        );
        loads.push(Load {
            label,
            result,
            server_cpu,
        });
    }
    (loads, load_samples)
}

/// The result of a snapshot load in a child process.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub seconds: f64,
    pub records: u64,
    pub rows_written: u64,
    /// The child's peak RSS (VmHWM) before the load and after it.
    pub hwm_before_kb: u64,
    pub hwm_kb: u64,
    pub cpu_seconds: f64,
}

/// In the child: connects, indexes the cluster once (its snapshot), prints the result.
pub async fn load_role() {
    let store_url = std::env::var("OUTPOST_BENCH_STORE").expect("OUTPOST_BENCH_STORE");
    let db_url = std::env::var("OUTPOST_BENCH_DB").expect("OUTPOST_BENCH_DB");
    let cluster = ClusterName::new(&std::env::var("OUTPOST_BENCH_CLUSTER").expect("cluster"))
        .expect("a valid name");
    let store = Store::open(&store_url).await.expect("opens the store");
    let database = Database::connect(&db_url, None).await.expect("connects");
    let indexer = Indexer {
        store,
        database: database.clone(),
        options: IndexOptions::default(),
    };
    let hwm_before_kb = status_kb("self", "VmHWM:");
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let outcome = indexer.index_cluster(&cluster).await.expect("indexes");
    let seconds = started.elapsed().as_secs_f64();
    let (snapshot, stats) = applied(&outcome);
    let stats = stats.clone();
    assert!(snapshot, "a snapshot load");
    let result = json!({
        "seconds": seconds,
        "records": stats.records,
        "rows_written": stats.rows_written,
        "hwm_before_kb": hwm_before_kb,
        "hwm_kb": status_kb("self", "VmHWM:"),
        "cpu_seconds": cpu_seconds("self") - cpu_before,
    });
    database.close().await;
    println!("RESULT {result}");
}

/// Runs a snapshot load of `cluster` from `store_url` into `db_url` in a child process.
/// With `OUTPOST_BENCH_PERF_DIR` set, the child runs under `perf record` (a flat profile per
/// load, `<dir>/load-<n>.perf.data`; figures measured so are not the bench's).
pub fn load_in_child(store_url: &str, db_url: &str, cluster: &str) -> LoadResult {
    let exe = std::env::current_exe().expect("this binary");
    let mut command = match std::env::var("OUTPOST_BENCH_PERF_DIR") {
        Ok(dir) => {
            static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = LOADS.fetch_add(1, Ordering::SeqCst);
            let mut perf = Command::new("perf");
            perf.args(["record", "-q", "-F", "999", "-o"])
                .arg(format!("{dir}/load-{n}.perf.data"))
                .arg("--")
                .arg(&exe);
            perf
        }
        Err(_) => Command::new(&exe),
    };
    let output = command
        .env(ROLE_VAR, "load")
        .env("OUTPOST_BENCH_STORE", store_url)
        .env("OUTPOST_BENCH_DB", db_url)
        .env("OUTPOST_BENCH_CLUSTER", cluster)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("the child runs");
    assert!(output.status.success(), "the load child failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    let v: Value = serde_json::from_str(line).expect("JSON");
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    LoadResult {
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        records: u("records"),
        rows_written: u("rows_written"),
        hwm_before_kb: u("hwm_before_kb"),
        hwm_kb: u("hwm_kb"),
        cpu_seconds: v["cpu_seconds"].as_f64().unwrap_or(0.0),
    }
}
