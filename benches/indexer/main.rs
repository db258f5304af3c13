//! The indexer benchmark: snapshot loads, diffs, memory and a fleet of clusters, all in one run
//! against the same local database servers:
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

mod activity;
mod baselines;
mod big;
mod check;
mod diffs;
mod fleet;
mod load;
mod measure;
mod phases;
mod report;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use outpost::cache::Dialect;
use outpost::indexer::Database;
use outpost::test_support::bench;
use outpost::test_support::db::{TestDb, server_database};

use crate::report::{Report, Results};

/// The allocator the `outpost` binary uses, so memory and CPU figures are the indexer's own.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The big cluster's name, and its account's.
const BIG: &str = "big";

/// What to run, from the command line.
pub struct Config {
    /// Objects of the big cluster.
    pub objects: usize,
    /// Clusters of the fleet, and the objects of each.
    pub clusters: usize,
    pub fleet_objects: usize,
    /// Clusters the fleet's indexer indexes at once.
    pub fleet_concurrency: usize,
    /// The parts not to run (`phases`, `fleet`, `mysql`, `sqlite`, `check`).
    pub skip: BTreeSet<String>,
    /// `ALTER DATABASE ... SET jit = off` on the PostgreSQL databases (a diagnostic).
    pub pg_jit_off: bool,
    /// Leaves the databases in place for inspection (their names are printed).
    pub keep_databases: bool,
    /// A release run (`cargo bench` passes `--bench`) rather than the smoke run of `cargo test`.
    pub full: bool,
}

/// The configuration the arguments give.
fn config() -> Config {
    let args: Vec<String> = std::env::args().collect();
    let full = bench::is_full_run();
    let value = bench::flag::<String>;
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
    if std::env::var(load::ROLE_VAR).as_deref() == Ok("load") {
        runtime.block_on(load::load_role());
        return ExitCode::SUCCESS;
    }
    let config = config();
    let Some((pg, my)) = outpost::test_support::db::bench_servers(config.full) else {
        println!(
            "indexer bench: OUTPOST_TEST_POSTGRES_URL / OUTPOST_TEST_MYSQL_URL not set; skipped (run `just bench-indexer`)."
        );
        return ExitCode::SUCCESS;
    };
    runtime.block_on(bench(config, pg, my));
    ExitCode::SUCCESS
}

/// A fresh database on the server at `base`, dropped by [`TestDb::drop_database`].
async fn fresh_database(base: &str) -> TestDb {
    server_database(base, "outpost_bench").await
}

/// The databases a run loads into: a fresh one on each server measured, and a SQLite file.
pub struct Targets {
    pub pg: TestDb,
    pub my: Option<TestDb>,
    pub sqlite_url: Option<String>,
}

impl Targets {
    /// Fresh databases on the servers at `pg_base` and (unless skipped) `my_base`, and (unless
    /// skipped) a SQLite file in `dir`.
    async fn create(config: &Config, pg_base: &str, my_base: &str, dir: &Path) -> Self {
        let pg = fresh_database(pg_base).await;
        if config.pg_jit_off {
            pg.jit_off().await;
        }
        let my = if config.skip.contains("mysql") {
            None
        } else {
            Some(fresh_database(my_base).await)
        };
        let sqlite_url = (!config.skip.contains("sqlite"))
            .then(|| format!("sqlite://{}", dir.join("cache.db").display()));
        Self { pg, my, sqlite_url }
    }

    /// Each database as (label, URL, dialect, its server database whose sessions to sample).
    pub fn each(&self) -> Vec<(&'static str, &str, Dialect, Option<&TestDb>)> {
        let mut targets = vec![(
            "PostgreSQL",
            self.pg.url.as_str(),
            Dialect::Postgres,
            Some(&self.pg),
        )];
        if let Some(my) = &self.my {
            targets.push(("MariaDB", my.url.as_str(), Dialect::MySql, Some(my)));
        }
        if let Some(url) = &self.sqlite_url {
            targets.push(("SQLite", url.as_str(), Dialect::Sqlite, None));
        }
        targets
    }

    /// A connection pool to each.
    async fn connect(&self) -> Connected {
        let pg = Database::connect(&self.pg.url, None)
            .await
            .expect("connects");
        let my = match &self.my {
            Some(my) => Some(Database::connect(&my.url, None).await.expect("connects")),
            None => None,
        };
        let sqlite = match &self.sqlite_url {
            Some(url) => Some(Database::connect(url, None).await.expect("connects")),
            None => None,
        };
        Connected { pg, my, sqlite }
    }

    /// Drops the server databases, or with `keep`, prints where they are.
    async fn finish(&self, keep: bool) {
        if keep {
            eprintln!(
                "kept: {} (PostgreSQL){}",
                self.pg.url,
                self.my
                    .as_ref()
                    .map(|my| format!(", {} (MariaDB)", my.url))
                    .unwrap_or_default()
            );
            return;
        }
        self.pg.drop_database().await;
        if let Some(my) = &self.my {
            my.drop_database().await;
        }
    }
}

/// The [`Targets`], connected.
pub struct Connected {
    pub pg: Database,
    pub my: Option<Database>,
    pub sqlite: Option<Database>,
}

impl Connected {
    /// Each database with its label, in the report's order.
    fn labelled(&self) -> Vec<(&'static str, &Database)> {
        let mut dbs = vec![("PostgreSQL", &self.pg)];
        if let Some(db) = &self.my {
            dbs.push(("MariaDB", db));
        }
        if let Some(db) = &self.sqlite {
            dbs.push(("SQLite", db));
        }
        dbs
    }

    /// Closes every pool.
    async fn close(&self) {
        for (_, database) in self.labelled() {
            database.close().await;
        }
    }
}

/// The whole benchmark, its parts in the order their figures depend on: each snapshot load
/// into fresh databases first, then the baselines on the rows it wrote, the step-by-step replay,
/// the diffs into the loaded account, the check of its rows, and the fleet last.
async fn bench(config: Config, pg_base: String, my_base: String) {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut big = big::ship_snapshot(config.objects, dir.path(), started).await;

    let targets = Targets::create(&config, &pg_base, &my_base, dir.path()).await;
    let (loads, load_samples) = load::load_snapshots(&targets, &big.store_url, started).await;
    let dbs = targets.connect().await;
    let baselines = baselines::measure(&targets, &dbs, started).await;
    let written = baselines::written(&dbs).await;
    let phases = if config.skip.contains("phases") {
        Vec::new()
    } else {
        phases::breakdown(&config, &pg_base, &big.store, &big.sim.name, started).await
    };

    let diffs = diffs::diff_rounds(&mut big.sim, &big.store, &dbs.labelled(), started).await;
    let checks = if config.skip.contains("check") {
        Vec::new()
    } else {
        check::check_rows(big.sim.state(), &dbs.labelled(), started).await
    };
    // The big cluster's objects are not kept while the fleet is measured.
    drop(big.sim);

    let fleet = if config.skip.contains("fleet") {
        None
    } else {
        Some(fleet::fleet(&config, &targets.pg, &dbs.pg, started).await)
    };

    let results = Results {
        full: config.full,
        fleet_concurrency: config.fleet_concurrency,
        objects: big.objects,
        snapshot_records: big.snapshot_records,
        snapshot_bytes: big.snapshot_bytes,
        loads,
        load_samples,
        baselines,
        written,
        phases,
        diffs,
        checks,
        fleet,
    };
    let report = Report::of(&results, started);
    if config.full {
        let _ = std::fs::create_dir_all("target/tmp");
        let _ = std::fs::write(
            "target/tmp/bench-indexer.md",
            report.lines.join("\n") + "\n",
        );
    }

    dbs.close().await;
    targets.finish(config.keep_databases).await;
}
