//! Indexer benchmark (issue #4), all in one run against the same local database servers:
//!
//! 1. a ~100k-object snapshot loaded by the indexer, rows/s against a raw `COPY ... FROM STDIN`
//!    of exactly the cats rows it wrote (PostgreSQL) and against multi-row `INSERT`s of ~500 rows
//!    (MariaDB), plus what it writes besides the cats rows (`outpost_resources`, `outpost_links`);
//! 2. a 10-object diff into that 100k-object account: time and rows touched, on PostgreSQL,
//!    MariaDB and SQLite (three rounds);
//! 3. the indexer's peak memory (VmHWM) while loading the snapshot: every snapshot load runs in a
//!    child process (this binary re-executed with `OUTPOST_BENCH_INDEXER_ROLE=load`);
//! 4. one indexer over 1,000 small simulated clusters: the first `run_once(None)` (all
//!    snapshots), then a run where 10% shipped one diff and the rest answer a conditional GET.
//!
//! Clusters come from `outpost::sim::Churn` through the agent's real pipeline (redaction → state
//! → shipper) into a `file://` store (the big one: the child processes read it) and a `memory://`
//! store (the fleet). After the diffs, every database's rows are compared with the reference
//! builder's rows for the agent's current objects.
//!
//! `cargo bench --bench indexer` (or `just bench-indexer`). Options after `--`: `--objects N`,
//! `--clusters N`, `--fleet-objects N`, `--fleet-concurrency N` (default the indexer's),
//! `--skip phases,fleet,mysql,sqlite,check`; diagnostics:
//! `--pg-jit-off`, `--keep-databases`. Database servers:
//! `OUTPOST_TEST_POSTGRES_URL` / `OUTPOST_TEST_MYSQL_URL`, by default the local ones
//! (postgres://postgres@127.0.0.1:5432/postgres, mysql://root@127.0.0.1:3306/mysql). Under
//! `cargo test` it runs a small smoke version when those variables are set, and skips otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use outpost::agent::ship::Shipped;
use outpost::agent::simulated::SimAgent;
use outpost::agent::state::State;
use outpost::cache::{self, CacheOptions, Dialect, KubernetesKind, Resource};
use outpost::format::{ClusterName, Record, SegmentReader, SegmentType};
use outpost::indexer::apply::{AccountWriter, ApplyStats};
use outpost::indexer::db::text;
use outpost::indexer::{Database, IndexOptions, Indexer, Outcome};
use outpost::sim::Churn;
use outpost::store::Store;
use outpost::test_support::applied;
use outpost::test_support::db::{TestDb, server_database};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The allocator the `outpost` binary uses, so memory and CPU figures are the indexer's own.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROLE_VAR: &str = "OUTPOST_BENCH_INDEXER_ROLE";
const BIG: &str = "big";

// ------------------------------------------------------------------------------ helpers --

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Prints a progress line with the time since the start of the run.
fn phase(started: Instant, what: &str) {
    eprintln!("[{:7.1} s] {what}", started.elapsed().as_secs_f64());
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A `/proc/<pid>/status` field in kB.
fn status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds (clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command may contain spaces: fields start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// CPU seconds used so far by every process named `names` (the database servers).
fn server_cpu(names: &[&str]) -> f64 {
    server_cpu_by_pid(names).values().sum()
}

/// CPU seconds used so far by each process named `names`.
fn server_cpu_by_pid(names: &[&str]) -> BTreeMap<String, f64> {
    let mut total = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let pid = entry.file_name().to_string_lossy().to_string();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if names.contains(&comm.trim()) {
                let cpu = cpu_seconds(&pid);
                total.insert(pid, cpu);
            }
        }
    }
    total
}

const PG_PROCS: &[&str] = &["postgres"];
const MYSQL_PROCS: &[&str] = &["mariadbd", "mysqld"];

fn procs_of(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Postgres => PG_PROCS,
        Dialect::MySql => MYSQL_PROCS,
        Dialect::Sqlite => &[],
    }
}

// ---------------------------------------------------------------------------- databases --

/// A fresh database on the server at `base`, dropped by [`TestDb::drop_database`].
async fn fresh_database(base: &str) -> TestDb {
    server_database(base, "outpost_bench").await
}

/// The cache types the account has rows in (plus applications and clusters).
async fn cache_types(database: &Database) -> BTreeSet<String> {
    let mut types: BTreeSet<String> = ["applications", "clusters"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sql = "SELECT DISTINCT cache_type AS t FROM outpost_resources WHERE cached = 1";
    for row in sqlx::query(sql)
        .fetch_all(database.pool())
        .await
        .expect("reads outpost_resources")
    {
        types.insert(text(&row, "t").expect("text"));
    }
    types
}

fn agent_of(account: &str, dialect: Dialect) -> String {
    cache::check_agent_name(&IndexOptions::default().agent_name(account), dialect)
        .expect("a valid agent name")
}

/// Rows and bytes of a table (bytes: on-disk size with indexes, as the server reports it).
async fn table_size(database: &Database, table: &str) -> (u64, u64) {
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(database.pool())
        .await
        .unwrap_or(0);
    let bytes: i64 = match database.dialect() {
        Dialect::Postgres => sqlx::query_scalar(&format!(
            "SELECT CAST(pg_total_relation_size('{table}') AS BIGINT)"
        ))
        .fetch_one(database.pool())
        .await
        .unwrap_or(0),
        Dialect::MySql => {
            let _ = sqlx::query(&format!("ANALYZE TABLE {table}"))
                .execute(database.pool())
                .await;
            sqlx::query_scalar(&format!(
                "SELECT CAST(data_length + index_length AS SIGNED) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ))
            .fetch_one(database.pool())
            .await
            .unwrap_or(0)
        }
        Dialect::Sqlite => 0,
    };
    (rows as u64, bytes as u64)
}

// -------------------------------------------------------------------- simulated clusters --

/// A simulated cluster (the agent's own pipeline, [`SimAgent`]) shipping into a store, on
/// real time.
struct SimCluster {
    agent: SimAgent,
    t: DateTime<Utc>,
}

impl std::ops::Deref for SimCluster {
    type Target = SimAgent;
    fn deref(&self) -> &SimAgent {
        &self.agent
    }
}

impl std::ops::DerefMut for SimCluster {
    fn deref_mut(&mut self) -> &mut SimAgent {
        &mut self.agent
    }
}

impl SimCluster {
    fn new(store: &Store, name: &str, seed: u64, objects: usize) -> Self {
        Self::with_churn(store, name, Churn::new(seed, objects))
    }

    /// A cluster holding `churn`'s initial objects (not shipped yet).
    fn with_churn(store: &Store, name: &str, churn: Churn) -> Self {
        let name = ClusterName::new(name).expect("a valid name");
        Self {
            agent: SimAgent::new(store, name, churn, &[3; 32]).expect("a valid key"),
            t: Utc::now() - chrono::Duration::seconds(30),
        }
    }

    /// Feeds churn events, in order, until `objects` distinct objects changed (the events a
    /// watch would have delivered by then); returns how many events that took.
    fn change_objects(&mut self, objects: usize) -> usize {
        let mut touched = BTreeSet::new();
        let mut events = 0;
        while touched.len() < objects {
            events += self.agent.step_while(1.0, 1.0, |event| {
                if touched.len() >= objects {
                    return false;
                }
                let o = event.object();
                touched.insert((
                    o["kind"].as_str().unwrap_or_default().to_string(),
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ));
                true
            });
        }
        events
    }

    async fn ship(&mut self) -> Shipped {
        // Real time (the indexer judges heartbeats against its clock), strictly increasing.
        self.t = Utc::now().max(self.t + chrono::Duration::milliseconds(1));
        let now = self.t;
        self.agent.tick(now).await.expect("ships")
    }
}

// --------------------------------------------------------------------------- child role --

/// The result of a snapshot load in a child process.
#[derive(Debug, Clone, Default)]
struct LoadResult {
    seconds: f64,
    records: u64,
    rows_written: u64,
    rows_deleted: u64,
    hwm_before_kb: u64,
    hwm_kb: u64,
    rss_kb: u64,
    cpu_seconds: f64,
}

/// In the child: connects, indexes the cluster once (its snapshot), prints the result.
async fn load_role() {
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
        "rows_deleted": stats.rows_deleted,
        "hwm_before_kb": hwm_before_kb,
        "hwm_kb": status_kb("self", "VmHWM:"),
        "rss_kb": status_kb("self", "VmRSS:"),
        "cpu_seconds": cpu_seconds("self") - cpu_before,
    });
    database.close().await;
    println!("RESULT {result}");
}

/// Runs a snapshot load of `cluster` from `store_url` into `db_url` in a child process.
/// With `OUTPOST_BENCH_PERF_DIR` set, the child runs under `perf record` (a flat profile per
/// load, `<dir>/load-<n>.perf.data`; figures measured so are not the bench's).
fn load_in_child(store_url: &str, db_url: &str, cluster: &str) -> LoadResult {
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
        rows_deleted: u("rows_deleted"),
        hwm_before_kb: u("hwm_before_kb"),
        hwm_kb: u("hwm_kb"),
        rss_kb: u("rss_kb"),
        cpu_seconds: v["cpu_seconds"].as_f64().unwrap_or(0.0),
    }
}

// ----------------------------------------------------------------------------- samplers --

/// CPU seconds used by the database server's processes between start and stop, sampled every
/// 200 ms so that PostgreSQL backends that exit (a child's connections) are counted too.
struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl CpuSampler {
    fn start(names: &'static [&'static str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let baseline = server_cpu_by_pid(names);
            let mut latest = baseline.clone();
            loop {
                let done = flag.load(Ordering::Relaxed);
                for (pid, cpu) in server_cpu_by_pid(names) {
                    latest.insert(pid, cpu);
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            latest
                .iter()
                .map(|(pid, cpu)| cpu - baseline.get(pid).copied().unwrap_or(0.0))
                .sum()
        });
        Self { stop, thread }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0.0)
    }
}

/// The statement text with its placeholders and lists folded, shortened.
fn statement_label(sql: &str) -> String {
    let mut out = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('?');
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    // Lists of values (possibly cut off by track_activity_query_size) shown as "…".
    let mut folded = String::new();
    let mut rest = out.as_str();
    loop {
        let next = [("IN (", ")"), ("VALUES ", " ON ")]
            .iter()
            .filter_map(|(open, close)| rest.find(open).map(|i| (i, *open, *close)))
            .min_by_key(|(i, _, _)| *i);
        let Some((i, open, close)) = next else {
            folded.push_str(rest);
            break;
        };
        folded.push_str(&rest[..i + open.len()]);
        folded.push('…');
        let after = &rest[i + open.len()..];
        match after.find(close) {
            Some(j) => rest = &after[j..],
            None => break,
        }
    }
    let out = folded;
    let out = out.trim().to_string();
    if out.chars().count() > 110 {
        format!("{}…", out.chars().take(110).collect::<String>())
    } else {
        out
    }
}

/// Samples, every 100 ms, what the sessions on one database are doing: the statement each
/// active session runs, or that it sits idle inside a transaction (waiting for the indexer).
struct ActivitySampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeMap<String, u64>>,
}

impl ActivitySampler {
    async fn start(dialect: Dialect, url: &str, name: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let name = name.to_string();
        let task = match dialect {
            Dialect::Postgres => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connects");
                tokio::spawn(async move {
                    let mut counts = BTreeMap::new();
                    while !flag.load(Ordering::Relaxed) {
                        let rows = sqlx::query("SELECT state, query, wait_event_type FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
                            .bind(&name)
                            .fetch_all(&pool)
                            .await
                            .unwrap_or_default();
                        for row in rows {
                            let state: String = row.try_get("state").unwrap_or_default();
                            let query: String = row.try_get("query").unwrap_or_default();
                            let wait: Option<String> =
                                row.try_get("wait_event_type").ok().flatten();
                            let label = if state == "active" {
                                match wait.as_deref() {
                                    Some(w @ ("IO" | "Lock" | "LWLock")) => {
                                        format!("{} [waiting: {w}]", statement_label(&query))
                                    }
                                    _ => statement_label(&query),
                                }
                            } else {
                                "(idle in transaction: the server waits for the indexer)".into()
                            };
                            *counts.entry(label).or_insert(0) += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    pool.close().await;
                    counts
                })
            }
            _ => {
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connects");
                tokio::spawn(async move {
                    let mut counts = BTreeMap::new();
                    while !flag.load(Ordering::Relaxed) {
                        let rows = sqlx::query("SELECT p.command AS command, p.info AS info, t.trx_id AS trx FROM information_schema.processlist p LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.id WHERE p.db = ? AND p.id <> CONNECTION_ID()")
                            .bind(&name)
                            .fetch_all(&pool)
                            .await
                            .unwrap_or_default();
                        for row in rows {
                            let command: String = row
                                .try_get::<String, _>("command")
                                .or_else(|_| {
                                    row.try_get::<Vec<u8>, _>("command")
                                        .map(|b| String::from_utf8_lossy(&b).to_string())
                                })
                                .unwrap_or_default();
                            let info: Option<String> = row
                                .try_get::<Option<String>, _>("info")
                                .or_else(|_| {
                                    row.try_get::<Option<Vec<u8>>, _>("info")
                                        .map(|b| b.map(|b| String::from_utf8_lossy(&b).to_string()))
                                })
                                .unwrap_or_default();
                            let in_trx = row
                                .try_get::<Option<String>, _>("trx")
                                .map(|t| t.is_some())
                                .or_else(|_| {
                                    row.try_get::<Option<u64>, _>("trx").map(|t| t.is_some())
                                })
                                .unwrap_or(false);
                            let label = match (command.as_str(), info) {
                                ("Query" | "Execute", Some(info)) => statement_label(&info),
                                ("Sleep", _) if in_trx => {
                                    "(idle in transaction: the server waits for the indexer)".into()
                                }
                                _ => continue,
                            };
                            *counts.entry(label).or_insert(0) += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    pool.close().await;
                    counts
                })
            }
        };
        Self { stop, task }
    }

    /// The sampled labels with their share of the samples, most frequent first.
    async fn stop(self) -> Vec<(String, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let counts = self.task.await.unwrap_or_default();
        let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }
}

/// The top `n` sampled statements as table rows (share of all samples, approx. seconds).
fn sample_rows(samples: &[(String, u64)], n: usize) -> Vec<String> {
    let total: u64 = samples.iter().map(|s| s.1).sum();
    let mut rows: Vec<String> = samples
        .iter()
        .take(n)
        .map(|(label, count)| {
            format!(
                "| `{}` | {:.0}% | {:.1} |",
                label.replace('|', "\\|").replace('`', "'"),
                *count as f64 * 100.0 / total.max(1) as f64,
                *count as f64 / 10.0
            )
        })
        .collect();
    let rest: u64 = samples.iter().skip(n).map(|s| s.1).sum();
    if rest > 0 {
        rows.push(format!(
            "| (everything else) | {:.0}% | {:.1} |",
            rest as f64 * 100.0 / total.max(1) as f64,
            rest as f64 / 10.0
        ));
    }
    rows
}

// ---------------------------------------------------------------------------- baselines --

/// One table's rows as read back, every value as text (`None`: NULL).
struct TableRows {
    table: String,
    columns: Vec<&'static str>,
    rows: Vec<Vec<Option<String>>>,
}

impl TableRows {
    /// Bytes of values.
    fn payload(&self) -> u64 {
        self.rows
            .iter()
            .flatten()
            .map(|v| v.as_ref().map_or(0, |v| v.len() as u64))
            .sum()
    }
}

const CATS_COLUMNS: &[&str] = &[
    "id",
    "agent",
    "application",
    "body_hash",
    "body",
    "last_updated",
];
const RESOURCE_COLUMNS: &[&str] = &[
    "account",
    "cache_id",
    "cache_type",
    "cluster",
    "api_version",
    "kind",
    "namespace",
    "name",
    "uid",
    "resource_version",
    "listed",
    "cached",
    "selector",
    "template_labels",
    "service_refs",
    "object",
];
const LINK_COLUMNS: &[&str] = &["account", "declarer_id", "a_id", "b_id", "origin"];

/// Every row of `table`, read back with the Any pool.
async fn read_table(database: &Database, table: &str, columns: &[&'static str]) -> TableRows {
    let text_type = match database.dialect() {
        Dialect::MySql => "CHAR",
        _ => "TEXT",
    };
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({c} AS {text_type}) AS {c}"))
        .collect();
    let rows = sqlx::query(&format!("SELECT {} FROM {table}", select.join(", ")))
        .fetch_all(database.pool())
        .await
        .expect("reads the rows back");
    let rows = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| outpost::indexer::db::opt_text(row, c).expect("a text value"))
                .collect()
        })
        .collect();
    TableRows {
        table: table.to_string(),
        columns: columns.to_vec(),
        rows,
    }
}

/// The rows of every cats resource table (Clouddriver's rows).
async fn read_cats_rows(database: &Database) -> Vec<TableRows> {
    let mut tables = Vec::new();
    for type_name in cache_types(database).await {
        let table = database.cache_tables(&type_name).expect("a name").resource;
        let rows = read_table(database, &table, CATS_COLUMNS).await;
        if !rows.rows.is_empty() {
            tables.push(rows);
        }
    }
    tables
}

/// Every row a snapshot load wrote: the cats rows, `outpost_resources` and `outpost_links`.
async fn read_all_rows(database: &Database) -> Vec<TableRows> {
    let mut tables = read_cats_rows(database).await;
    tables.push(read_table(database, "outpost_resources", RESOURCE_COLUMNS).await);
    tables.push(read_table(database, "outpost_links", LINK_COLUMNS).await);
    tables
}

fn csv_field(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for b in value.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Loads the rows into fresh `LIKE` copies of their tables (named `<prefix>_<table>`) with
/// `COPY ... FROM STDIN (FORMAT csv)`, in one transaction; returns (rows, seconds). The CSV is
/// encoded before the clock starts.
async fn copy_baseline(url: &str, prefix: &str, tables: &[TableRows]) -> (u64, f64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connects");
    let mut encoded = Vec::new();
    for table in tables {
        let copy = format!("{prefix}_{}", table.table);
        sqlx::query(&format!(
            "CREATE TABLE {copy} (LIKE {} INCLUDING ALL)",
            table.table
        ))
        .execute(&pool)
        .await
        .expect("creates the copy table");
        let mut csv = Vec::new();
        for row in &table.rows {
            for (index, value) in row.iter().enumerate() {
                if index > 0 {
                    csv.push(b',');
                }
                // Unquoted empty is NULL in CSV format.
                if let Some(value) = value {
                    csv_field(&mut csv, value);
                }
            }
            csv.push(b'\n');
        }
        encoded.push((copy, table.columns.join(", "), table.rows.len() as u64, csv));
    }
    let mut conn = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begins");
    let mut total = 0;
    for (copy, columns, rows, csv) in &encoded {
        let mut sink = conn
            .copy_in_raw(&format!(
                "COPY {copy} ({columns}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await
            .expect("COPY starts");
        for chunk in csv.chunks(1 << 20) {
            sink.send(chunk).await.expect("COPY data");
        }
        let copied = sink.finish().await.expect("COPY finishes");
        assert_eq!(copied, *rows, "{copy}: rows copied");
        total += copied;
    }
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .expect("commits");
    let seconds = started.elapsed().as_secs_f64();
    drop(conn);
    pool.close().await;
    (total, seconds)
}

/// Loads the rows into fresh `LIKE` copies of their tables (named `<prefix>_<table>`) with
/// multi-row `INSERT`s of up to 500 rows (and ~4 MB), in one transaction; returns (rows,
/// seconds).
async fn insert_baseline(url: &str, prefix: &str, tables: &[TableRows]) -> (u64, f64) {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connects");
    for table in tables {
        sqlx::query(&format!(
            "CREATE TABLE {prefix}_{} LIKE {}",
            table.table, table.table
        ))
        .execute(&pool)
        .await
        .expect("creates the copy table");
    }
    let mut conn = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begins");
    let mut total = 0;
    for table in tables {
        let rows = &table.rows;
        let one = format!("({})", vec!["?"; table.columns.len()].join(", "));
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < 500 && bytes < 4 << 20 {
                bytes += rows[end]
                    .iter()
                    .map(|v| v.as_ref().map_or(4, |v| v.len() + 4))
                    .sum::<usize>();
                end += 1;
            }
            let chunk = &rows[start..end];
            let values = vec![one.as_str(); chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO {prefix}_{} ({}) VALUES {values}",
                table.table,
                table.columns.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                for value in row {
                    query = query.bind(value);
                }
            }
            let done = query.execute(&mut *conn).await.expect("INSERT");
            total += done.rows_affected();
            start = end;
        }
    }
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .expect("commits");
    let seconds = started.elapsed().as_secs_f64();
    drop(conn);
    pool.close().await;
    (total, seconds)
}

// ----------------------------------------------------------------------- phase breakdown --

/// Wall, indexer-process CPU and server CPU of one phase.
#[derive(Debug, Clone, Default)]
struct PhaseTime {
    wall: f64,
    client_cpu: f64,
    server_cpu: f64,
}

struct Clock {
    procs: &'static [&'static str],
    wall: Instant,
    client: f64,
    server: f64,
}

impl Clock {
    fn start(procs: &'static [&'static str]) -> Self {
        Self {
            procs,
            wall: Instant::now(),
            client: cpu_seconds("self"),
            server: server_cpu(procs),
        }
    }

    fn stop(self) -> PhaseTime {
        PhaseTime {
            wall: self.wall.elapsed().as_secs_f64(),
            client_cpu: cpu_seconds("self") - self.client,
            server_cpu: server_cpu(self.procs) - self.server,
        }
    }
}

/// The snapshot load of `index_cluster` replayed step by step through the public
/// [`AccountWriter`] API into a fresh database, timing each step (rolled back at the end).
async fn snapshot_phases(
    store: &Store,
    database: &Database,
    cluster: &ClusterName,
) -> Vec<(&'static str, PhaseTime)> {
    let procs = procs_of(database.dialect());
    let mut phases = Vec::new();
    let options = IndexOptions::default();
    let name = cluster.as_str();

    let clock = Clock::start(procs);
    let (head_bytes, _) = store
        .get(&store.layout().head(cluster))
        .await
        .expect("a head");
    let head = outpost::format::Head::from_json("head.json", &head_bytes).expect("a head");
    let key = store.layout().segment(
        cluster,
        &head.epoch,
        head.snapshot.seq,
        SegmentType::Snapshot,
    );
    let (bytes, _) = store.get(&key).await.expect("the snapshot");
    phases.push(("GET the snapshot", clock.stop()));

    // What fetch_verified does besides the GET: one full decode pass.
    let clock = Clock::start(procs);
    let mut types = BTreeSet::new();
    let mut reader =
        SegmentReader::new("snapshot", &bytes[..], &options.limits).expect("a segment");
    while let Some(record) = reader.next_record().expect("a record") {
        let (Record::Put { target, .. } | Record::Delete { target }) = &record;
        types.insert(
            KubernetesKind::from_manifest(&target.api_version, &target.kind)
                .as_str()
                .to_string(),
        );
    }
    reader.finish().expect("a complete segment");
    phases.push(("decode + verify (zstd, JSON lines, sha256)", clock.stop()));

    let clock = Clock::start(procs);
    types.insert("applications".into());
    types.insert("clusters".into());
    for type_name in &types {
        database
            .ensure_cache_tables(type_name)
            .await
            .expect("creates the tables");
    }
    let mut tx = database.begin_cluster(name).await.expect("begins");
    phases.push(("create tables, BEGIN, lock", clock.stop()));

    let agent = agent_of(name, database.dialect());
    let now_ms = Utc::now().timestamp_millis();
    let mut writer = AccountWriter::new(
        database,
        tx.conn(),
        name,
        name,
        &agent,
        &options.cache,
        now_ms,
    );
    let clock = Clock::start(procs);
    let previous = writer.cached_types().await.expect("types");
    let mut load = writer.begin_snapshot().await.expect("begins the snapshot");
    for batch in batches(&bytes, &options) {
        load.load_batch(batch).await.expect("loads a batch");
    }
    phases.push((
        "pass 1: objects → outpost_resources, graph in memory (load_batch)",
        clock.stop(),
    ));
    let clock = Clock::start(procs);
    let mut second = load.link().await.expect("links the snapshot");
    phases.push((
        "partners matched, every link → outpost_links (link_snapshot)",
        clock.stop(),
    ));
    let clock = Clock::start(procs);
    for batch in batches(&bytes, &options) {
        second.write_batch(batch).await.expect("writes a batch");
    }
    phases.push((
        "pass 2: every object's cats row computed and written (write_batch)",
        clock.stop(),
    ));
    let clock = Clock::start(procs);
    second
        .finish(&previous)
        .await
        .expect("finishes the snapshot");
    let rows = writer.stats().rows_written;
    phases.push((
        "logical rows, vanished rows deleted (finish_snapshot)",
        clock.stop(),
    ));
    drop(writer);
    let clock = Clock::start(procs);
    tx.commit().await.expect("commits");
    phases.push(("COMMIT", clock.stop()));
    eprintln!("  (phase replay wrote {rows} cats rows)");
    phases
}

/// A snapshot's records in batches of 400, as the indexer reads them.
fn batches<'a>(bytes: &'a [u8], options: &IndexOptions) -> impl Iterator<Item = Vec<Record>> + 'a {
    let mut reader = SegmentReader::new("snapshot", bytes, &options.limits).expect("a segment");
    std::iter::from_fn(move || {
        let mut batch = Vec::with_capacity(400);
        while batch.len() < 400 {
            match reader.next_record().expect("a record") {
                Some(record) => batch.push(record),
                None => break,
            }
        }
        (!batch.is_empty()).then_some(batch)
    })
}

// ----------------------------------------------------------------------- correctness --

/// (type, id) → sha256 of the body without `cacheExpiry`.
type RowDigests = BTreeMap<(String, String), [u8; 32]>;

fn digest(body: &str) -> [u8; 32] {
    let mut value: Value = serde_json::from_str(body).expect("a JSON body");
    if let Some(attributes) = value["attributes"].as_object_mut() {
        attributes.remove("cacheExpiry");
    }
    Sha256::digest(value.to_string().as_bytes()).into()
}

/// The reference builder's rows for the agent's current objects.
fn expected_rows(state: &State, account: &str) -> RowDigests {
    let resources: Vec<Resource> = state
        .entries()
        .map(|e| {
            Resource::parse(serde_json::from_str(&e.object.to_json().expect("JSON")).expect("JSON"))
                .expect("a resource")
        })
        .collect();
    cache::build_account(account, &resources, &CacheOptions::default(), 0)
        .into_iter()
        .map(|row| ((row.type_name, row.id), digest(&row.body)))
        .collect()
}

/// Every cats row of `account`'s agent, checking each body_hash.
async fn stored_rows(database: &Database, account: &str) -> (RowDigests, u64) {
    let agent = agent_of(account, database.dialect());
    let mut rows = RowDigests::new();
    let mut bad_hashes = 0;
    for type_name in cache_types(database).await {
        let table = database.cache_tables(&type_name).expect("a name").resource;
        let sql = database.sql(&format!(
            "SELECT id, body_hash, body FROM {table} WHERE agent = ?"
        ));
        let Ok(found) = sqlx::query(&sql)
            .bind(&agent)
            .fetch_all(database.pool())
            .await
        else {
            continue;
        };
        for row in found {
            let id = text(&row, "id").expect("id");
            let hash = text(&row, "body_hash").expect("hash");
            let body = text(&row, "body").expect("body");
            if hash != cache::body_hash(&body) {
                bad_hashes += 1;
            }
            rows.insert((type_name.clone(), id), digest(&body));
        }
    }
    (rows, bad_hashes)
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

// ---------------------------------------------------------------------------------- main --

struct Config {
    objects: usize,
    clusters: usize,
    fleet_objects: usize,
    /// Clusters the fleet's indexer indexes at once.
    fleet_concurrency: usize,
    skip: BTreeSet<String>,
    /// `ALTER DATABASE ... SET jit = off` on the PostgreSQL databases (a diagnostic).
    pg_jit_off: bool,
    /// Leaves the databases in place for inspection (their names are printed).
    keep_databases: bool,
    full: bool,
}

fn config() -> Config {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |flag: &str, default: usize| {
        value(flag)
            .map(|v| v.replace('_', "").parse().expect("a number"))
            .unwrap_or(default)
    };
    Config {
        objects: number("--objects", if full { 100_000 } else { 600 }),
        clusters: number("--clusters", if full { 1000 } else { 10 }),
        fleet_objects: number("--fleet-objects", 100),
        fleet_concurrency: number("--fleet-concurrency", outpost::indexer::DEFAULT_CONCURRENCY),
        skip: value("--skip")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        pg_jit_off: args.iter().any(|a| a == "--pg-jit-off"),
        keep_databases: args.iter().any(|a| a == "--keep-databases"),
        full,
    }
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The same runtime as `outpost` itself (multi-threaded, one worker per core).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    if std::env::var(ROLE_VAR).as_deref() == Ok("load") {
        runtime.block_on(load_role());
        return ExitCode::SUCCESS;
    }
    let config = config();
    let urls = (
        std::env::var("OUTPOST_TEST_POSTGRES_URL").ok(),
        std::env::var("OUTPOST_TEST_MYSQL_URL").ok(),
    );
    let (pg, my) = match urls {
        (Some(pg), Some(my)) => (pg, my),
        _ if config.full => (
            urls.0
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            urls.1
                .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/mysql".into()),
        ),
        _ => {
            println!(
                "indexer bench: OUTPOST_TEST_POSTGRES_URL / OUTPOST_TEST_MYSQL_URL not set; skipped (run `just bench-indexer`)."
            );
            return ExitCode::SUCCESS;
        }
    };
    runtime.block_on(bench(config, pg, my));
    ExitCode::SUCCESS
}

async fn bench(config: Config, pg_base: String, my_base: String) {
    let started = Instant::now();
    let with_mysql = !config.skip.contains("mysql");
    let with_sqlite = !config.skip.contains("sqlite");
    let mut report = Vec::<String>::new();
    let mut out = |line: String| {
        println!("{line}");
        report.push(line);
    };

    // -- The big cluster, through the agent's pipeline into a file:// store. --------------
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store_url = format!("file://{}", dir.path().join("bucket").display());
    std::fs::create_dir_all(dir.path().join("bucket")).expect("creates the bucket folder");
    let store = Store::open(&store_url).await.expect("opens the store");
    phase(
        started,
        &format!(
            "generating a simulated cluster of ~{} objects",
            config.objects
        ),
    );
    let t = Instant::now();
    let churn = Churn::new(42, config.objects);
    let generated = t.elapsed();
    let t = Instant::now();
    let mut big = SimCluster::with_churn(&store, BIG, churn);
    let objects = big.state().len();
    let through_agent = t.elapsed();
    let t = Instant::now();
    let Shipped::Snapshot {
        bytes: snapshot_bytes,
        records: snapshot_records,
        ..
    } = big.ship().await
    else {
        panic!("the first ship is a snapshot")
    };
    let shipped = t.elapsed();
    phase(
        started,
        &format!(
            "{objects} objects: generated in {:.1} s, redacted into the agent's state in {:.1} s, snapshot of {snapshot_records} records ({:.1} MB) shipped in {:.1} s",
            secs(generated),
            secs(through_agent),
            snapshot_bytes as f64 / 1e6,
            secs(shipped)
        ),
    );

    // -- 1 + 3: snapshot loads, each in a child process. -----------------------------------
    let pg = fresh_database(&pg_base).await;
    if config.pg_jit_off {
        pg.jit_off().await;
    }
    let my = if with_mysql {
        Some(fresh_database(&my_base).await)
    } else {
        None
    };
    let sqlite_url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let mut loads: Vec<(&str, LoadResult, f64)> = Vec::new();
    let mut targets: Vec<(&str, String, Dialect)> =
        vec![("PostgreSQL", pg.url.clone(), Dialect::Postgres)];
    if let Some(my) = &my {
        targets.push(("MariaDB", my.url.clone(), Dialect::MySql));
    }
    if with_sqlite {
        targets.push(("SQLite", sqlite_url.clone(), Dialect::Sqlite));
    }
    let mut load_samples: Vec<(&str, Vec<(String, u64)>)> = Vec::new();
    for (label, url, dialect) in &targets {
        phase(
            started,
            &format!("snapshot load into {label} (child process)"),
        );
        let cpu = CpuSampler::start(procs_of(*dialect));
        let activity = match (dialect, &my) {
            (Dialect::Postgres, _) => Some(
                ActivitySampler::start(
                    Dialect::Postgres,
                    &pg.url,
                    pg.name().expect("a server database"),
                )
                .await,
            ),
            (Dialect::MySql, Some(my)) => Some(
                ActivitySampler::start(
                    Dialect::MySql,
                    &my.url,
                    my.name().expect("a server database"),
                )
                .await,
            ),
            _ => None,
        };
        let (store_url, url) = (store_url.clone(), url.clone());
        let result = tokio::task::spawn_blocking(move || load_in_child(&store_url, &url, BIG))
            .await
            .expect("the child's waiter");
        let server = cpu.stop();
        if let Some(activity) = activity {
            load_samples.push((label, activity.stop().await));
        }
        phase(
            started,
            &format!(
                "  {label}: {} records → {} cats rows in {:.1} s ({:.0} rows/s); VmHWM {:.0} MB; indexer CPU {:.1} s, server CPU {:.1} s",
                result.records,
                result.rows_written,
                result.seconds,
                result.rows_written as f64 / result.seconds,
                result.hwm_kb as f64 / 1024.0,
                result.cpu_seconds,
                server
            ),
        );
        loads.push((label, result, server));
    }

    let pg_db = Database::connect(&pg.url, None).await.expect("connects");
    let my_db = match &my {
        Some(my) => Some(Database::connect(&my.url, None).await.expect("connects")),
        None => None,
    };
    let sqlite_db = if with_sqlite {
        Some(
            Database::connect(&sqlite_url, None)
                .await
                .expect("connects"),
        )
    } else {
        None
    };

    // -- 1: baselines on exactly the rows the indexer wrote: its cats rows alone, and every
    // row it wrote (cats, outpost_resources, outpost_links). -------------------------------
    phase(started, "reading back PostgreSQL's rows; COPY baselines");
    let pg_rows = read_all_rows(&pg_db).await;
    let cats_tables = pg_rows.len() - 2;
    let (copied, copy_seconds) =
        copy_baseline(&pg.url, "bench_cats", &pg_rows[..cats_tables]).await;
    let (copied_all, copy_all_seconds) = copy_baseline(&pg.url, "bench_all", &pg_rows).await;
    let pg_payload: u64 = pg_rows[..cats_tables].iter().map(TableRows::payload).sum();
    let pg_payload_all: u64 = pg_rows.iter().map(TableRows::payload).sum();
    drop(pg_rows);
    phase(
        started,
        &format!(
            "  COPY: {copied} cats rows ({:.1} MB) in {copy_seconds:.2} s; every row written, {copied_all} rows ({:.1} MB), in {copy_all_seconds:.2} s",
            pg_payload as f64 / 1e6,
            pg_payload_all as f64 / 1e6
        ),
    );
    let mut inserted = None;
    if let (Some(my), Some(my_db)) = (&my, &my_db) {
        phase(started, "reading back MariaDB's rows; INSERT baselines");
        let my_rows = read_all_rows(my_db).await;
        let cats_tables = my_rows.len() - 2;
        let (rows, seconds) = insert_baseline(&my.url, "bench_cats", &my_rows[..cats_tables]).await;
        let (rows_all, seconds_all) = insert_baseline(&my.url, "bench_all", &my_rows).await;
        phase(
            started,
            &format!(
                "  multi-row INSERT: {rows} cats rows in {seconds:.2} s; every row written, {rows_all} rows, in {seconds_all:.2} s"
            ),
        );
        inserted = Some(((rows, seconds), (rows_all, seconds_all)));
    }

    // What the indexer writes besides the cats rows.
    let mut sizes = Vec::new();
    for (label, database) in [("PostgreSQL", Some(&pg_db)), ("MariaDB", my_db.as_ref())] {
        let Some(database) = database else { continue };
        let mut cats = (0, 0);
        for type_name in cache_types(database).await {
            let table = database.cache_tables(&type_name).expect("a name").resource;
            let (r, b) = table_size(database, &table).await;
            cats = (cats.0 + r, cats.1 + b);
        }
        let resources = table_size(database, "outpost_resources").await;
        let links = table_size(database, "outpost_links").await;
        sizes.push((label, cats, resources, links));
    }

    // -- Where a snapshot load's time goes (PostgreSQL, a second fresh database). ----------
    let mut phases = Vec::new();
    if !config.skip.contains("phases") {
        phase(
            started,
            "phase breakdown: the snapshot load replayed step by step on PostgreSQL",
        );
        let scratch = fresh_database(&pg_base).await;
        if config.pg_jit_off {
            scratch.jit_off().await;
        }
        let scratch_db = Database::connect(&scratch.url, None)
            .await
            .expect("connects");
        phases = snapshot_phases(&store, &scratch_db, &big.name).await;
        for (what, p) in &phases {
            phase(
                started,
                &format!(
                    "  {what}: {:.1} s wall, indexer CPU {:.1} s, server CPU {:.1} s",
                    p.wall, p.client_cpu, p.server_cpu
                ),
            );
        }
        scratch_db.close().await;
        scratch.drop_database().await;
    }

    // -- 2: 10-object diffs into the big account. -----------------------------------------
    let mut dbs: Vec<(&str, &Database)> = vec![("PostgreSQL", &pg_db)];
    if let Some(db) = &my_db {
        dbs.push(("MariaDB", db));
    }
    if let Some(db) = &sqlite_db {
        dbs.push(("SQLite", db));
    }
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
    let mut diffs: BTreeMap<&str, Vec<(f64, ApplyStats)>> = BTreeMap::new();
    let mut diff_records = Vec::new();
    for round in 0..3 {
        let events = big.change_objects(10);
        let Shipped::Diff { records, .. } = big.ship().await else {
            panic!("round {round}: not a diff")
        };
        diff_records.push(records);
        phase(
            started,
            &format!("diff {round}: {events} watch events → a diff of {records} records"),
        );
        for (label, indexer) in &indexers {
            let t = Instant::now();
            let outcome = indexer.index_cluster(&big.name).await.expect("indexes");
            let seconds = t.elapsed().as_secs_f64();
            let (snapshot, stats) = applied(&outcome);
            let stats = stats.clone();
            assert!(!snapshot, "{label}: a diff, not a reload");
            phase(
                started,
                &format!(
                    "  {label}: {:.0} ms, {} rows written, {} unchanged, {} deleted",
                    seconds * 1000.0,
                    stats.rows_written,
                    stats.rows_unchanged,
                    stats.rows_deleted
                ),
            );
            diffs.entry(label).or_default().push((seconds, stats));
        }
    }

    // -- Correctness: every database against the reference builder. -----------------------
    let mut checks = Vec::new();
    if !config.skip.contains("check") {
        phase(
            started,
            "checking every database's rows against the reference builder",
        );
        let reference = expected_rows(big.state(), BIG);
        for (label, database) in &dbs {
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
            let (stored, bad) = stored_rows(database, BIG).await;
            let verdict = compare(&stored, &expected, bad);
            phase(started, &format!("  {label}: {verdict}"));
            checks.push((*label, verdict));
        }
    }
    drop(big);

    // -- 4: 1,000 small clusters, one indexer, PostgreSQL. ---------------------------------
    let mut fleet = None;
    let mut fleet_samples = Vec::new();
    if !config.skip.contains("fleet") {
        phase(
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
            );
            fleet_objects += sim.state().len();
            assert!(matches!(sim.ship().await, Shipped::Snapshot { .. }));
            if i.is_multiple_of(10) {
                changing.push(sim);
            }
        }
        phase(
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
        let first_cpu = (cpu_seconds("self") - client_before, server.stop());
        fleet_samples = activity.stop().await;
        assert_eq!(report.failures().count(), 0, "first run failures");
        let snapshots = report
            .clusters
            .iter()
            .filter(|c| matches!(c.result, Ok(Outcome::Applied { snapshot: true, .. })))
            .count();
        let first_rows: u64 = report.rows_written();
        phase(
            started,
            &format!(
                "  first run: {snapshots} snapshots, {first_rows} rows, in {first:.1} s ({:.1} clusters/s)",
                report.clusters.len() as f64 / first
            ),
        );
        let mut changed_records = 0;
        for sim in &mut changing {
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
        let second_cpu = (cpu_seconds("self") - client_before, server.stop());
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
        phase(
            started,
            &format!(
                "  second run: {diffs_applied} diffs ({changed_records} records, {second_rows} rows written), {unchanged} unchanged, in {second:.1} s ({:.1} clusters/s)",
                report.clusters.len() as f64 / second
            ),
        );
        fleet = Some((
            config.clusters,
            fleet_objects,
            (snapshots, first_rows, first, first_cpu),
            (
                diffs_applied,
                changed_records,
                second_rows,
                unchanged,
                second,
                second_cpu,
            ),
        ));
    }

    // -- Report. ---------------------------------------------------------------------------
    let pg_load = &loads[0].1;
    out(String::new());
    out(format!(
        "Snapshot: {objects} objects, {snapshot_records} records, {:.1} MB compressed. {}.",
        snapshot_bytes as f64 / 1e6,
        if config.full {
            "Release build"
        } else {
            "Smoke run"
        }
    ));
    out(String::new());
    out("| Snapshot load | rows | s | rows/s | indexer peak RSS (VmHWM) | indexer CPU s | server CPU s |".into());
    out("|---|---:|---:|---:|---:|---:|---:|".into());
    for (label, r, server) in &loads {
        out(format!(
            "| indexer → {label} | {} | {:.1} | {} | {:.0} MB (idle {:.0} MB) | {:.1} | {} |",
            thousands(r.rows_written),
            r.seconds,
            thousands((r.rows_written as f64 / r.seconds) as u64),
            r.hwm_kb as f64 / 1024.0,
            r.hwm_before_kb as f64 / 1024.0,
            r.cpu_seconds,
            if *label == "SQLite" {
                "(in-process)".to_string()
            } else {
                format!("{server:.1}")
            }
        ));
        let _ = (r.rss_kb, r.rows_deleted);
    }
    out(format!(
        "| COPY FROM STDIN (csv) → PostgreSQL, the same cats rows | {} | {copy_seconds:.2} | {} | | | |",
        thousands(copied),
        thousands((copied as f64 / copy_seconds) as u64)
    ));
    out(format!(
        "| COPY FROM STDIN (csv) → PostgreSQL, every row the load wrote ({} with outpost_resources and outpost_links) | {} | {copy_all_seconds:.2} | {} | | | |",
        thousands(copied_all),
        thousands(copied),
        thousands((copied as f64 / copy_all_seconds) as u64)
    ));
    if let Some(((rows, seconds), (rows_all, seconds_all))) = inserted {
        out(format!(
            "| multi-row INSERT (500) → MariaDB, the same cats rows | {} | {seconds:.2} | {} | | | |",
            thousands(rows),
            thousands((rows as f64 / seconds) as u64)
        ));
        out(format!(
            "| multi-row INSERT (500) → MariaDB, every row the load wrote ({} with outpost_resources and outpost_links) | {} | {seconds_all:.2} | {} | | | |",
            thousands(rows_all),
            thousands(rows),
            thousands((rows as f64 / seconds_all) as u64)
        ));
    }
    out(String::new());
    // Same rows, so rows/s ratios are ratios of the baseline's time to the indexer's.
    let percent = |baseline: f64, load: f64| baseline / load * 100.0;
    out(format!(
        "Indexer / baseline (goal ≥ 50%): PostgreSQL {:.1}% of COPY of every row it wrote, {:.1}% of COPY of its cats rows alone{}.",
        percent(copy_all_seconds, pg_load.seconds),
        percent(copy_seconds, pg_load.seconds),
        match (inserted, loads.iter().find(|l| l.0 == "MariaDB")) {
            (Some(((_, seconds), (_, seconds_all))), Some((_, r, _))) => format!(
                "; MariaDB {:.1}% of multi-row INSERT of every row it wrote, {:.1}% of its cats rows alone",
                percent(seconds_all, r.seconds),
                percent(seconds, r.seconds)
            ),
            _ => String::new(),
        }
    ));
    out(String::new());
    out("| Written by a snapshot load | PostgreSQL rows | PostgreSQL size | MariaDB rows | MariaDB size (approx.) |".into());
    out("|---|---:|---:|---:|---:|".into());
    let mb = |b: u64| format!("{:.0} MB", b as f64 / 1e6);
    let pick = |i: usize| -> Vec<(u64, u64)> {
        sizes
            .iter()
            .map(|(_, cats, resources, links)| [*cats, *resources, *links][i])
            .collect()
    };
    for (i, name) in [
        "cats_v1_* (Clouddriver's rows)",
        "outpost_resources",
        "outpost_links",
    ]
    .iter()
    .enumerate()
    {
        let v = pick(i);
        let cell = |j: usize| {
            v.get(j)
                .map(|(r, b)| (thousands(*r), mb(*b)))
                .unwrap_or_default()
        };
        let (pr, pb) = cell(0);
        let (mr, mbytes) = cell(1);
        out(format!("| {name} | {pr} | {pb} | {mr} | {mbytes} |"));
    }
    if !phases.is_empty() {
        out(String::new());
        out(
            "| PostgreSQL snapshot load, step by step | wall s | indexer CPU s | server CPU s |"
                .into(),
        );
        out("|---|---:|---:|---:|".into());
        for (what, p) in &phases {
            out(format!(
                "| {what} | {:.1} | {:.1} | {:.1} |",
                p.wall, p.client_cpu, p.server_cpu
            ));
        }
    }
    for (label, samples) in &load_samples {
        out(String::new());
        out(format!(
            "What the {label} sessions were doing during the snapshot load (sampled every 100 ms):"
        ));
        out(String::new());
        out("| statement | share of samples | ≈ s |".into());
        out("|---|---:|---:|".into());
        for row in sample_rows(samples, 8) {
            out(row);
        }
    }
    out(String::new());
    out(format!(
        "Diffs of 10 changed objects ({:?} records) into the {objects}-object account, three rounds:",
        diff_records
    ));
    out(String::new());
    out(
        "| 10-object diff | ms (each round) | rows written | rows unchanged | rows deleted |"
            .into(),
    );
    out("|---|---:|---:|---:|---:|".into());
    for (label, _) in &dbs {
        let rounds = &diffs[label];
        let list = |f: &dyn Fn(&(f64, ApplyStats)) -> String| {
            rounds.iter().map(f).collect::<Vec<_>>().join(" / ")
        };
        out(format!(
            "| {label} | {} | {} | {} | {} |",
            list(&|(s, _)| format!("{:.0}", s * 1000.0)),
            list(&|(_, st)| st.rows_written.to_string()),
            list(&|(_, st)| st.rows_unchanged.to_string()),
            list(&|(_, st)| st.rows_deleted.to_string()),
        ));
    }
    if !checks.is_empty() {
        out(String::new());
        for (label, verdict) in &checks {
            out(format!("Rows after the diffs, {label}: {verdict}."));
        }
    }
    if let Some((clusters, fleet_objects, first, second)) = &fleet {
        out(String::new());
        out(format!(
            "One indexer, {clusters} clusters ({fleet_objects} objects in all), {} at once, PostgreSQL:",
            config.fleet_concurrency
        ));
        out(String::new());
        out("| run_once(None) | clusters | applied | rows written | s | clusters/s | indexer CPU s | server CPU s |".into());
        out("|---|---:|---:|---:|---:|---:|---:|---:|".into());
        out(format!(
            "| first run (every snapshot) | {clusters} | {} snapshots | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            first.0,
            thousands(first.1),
            first.2,
            *clusters as f64 / first.2,
            first.3.0,
            first.3.1
        ));
        out(format!(
            "| next run (10% shipped one diff, {} records in all) | {clusters} | {} diffs, {} unchanged | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            second.1,
            second.0,
            second.3,
            thousands(second.2),
            second.4,
            *clusters as f64 / second.4,
            second.5.0,
            second.5.1
        ));
        if !fleet_samples.is_empty() {
            out(String::new());
            out("What the PostgreSQL sessions were doing during the first run (sampled every 100 ms):".into());
            out(String::new());
            out("| statement | share of samples | ≈ s |".into());
            out("|---|---:|---:|".into());
            for row in sample_rows(&fleet_samples, 8) {
                out(row);
            }
        }
    }
    out(String::new());
    out(format!(
        "Whole run: {:.0} s.",
        started.elapsed().as_secs_f64()
    ));

    if config.full {
        let _ = std::fs::create_dir_all("target/tmp");
        let _ = std::fs::write("target/tmp/bench-indexer.md", report.join("\n") + "\n");
    }

    pg_db.close().await;
    if let Some(db) = &my_db {
        db.close().await;
    }
    if let Some(db) = &sqlite_db {
        db.close().await;
    }
    if config.keep_databases {
        eprintln!(
            "kept: {} (PostgreSQL){}",
            pg.url,
            my.as_ref()
                .map(|my| format!(", {} (MariaDB)", my.url))
                .unwrap_or_default()
        );
        return;
    }
    pg.drop_database().await;
    if let Some(my) = &my {
        my.drop_database().await;
    }
}
