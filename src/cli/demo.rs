//! `outpost demo`: simulated clusters → the agent's pipeline → a local-folder bucket → the
//! indexer → SQLite, with churn for a short while; ends with the status table and queries to try.
//! Needs no server.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::agent::ship::Shipped;
use crate::agent::simulated::SimAgent;
use crate::cache::definition::AccountTemplate;
use crate::format::{ClusterName, Identity};
use crate::indexer::{Database, IndexOptions, Indexer, Outcome};
use crate::settings::duration::parse_duration;
use crate::sim::Churn;
use crate::store::Store;

/// Marks a directory as the demo's own, so a rerun may reset it.
const MARKER: &str = ".outpost-demo";

#[derive(Debug, Args)]
#[command(
    about = "Run the whole pipeline on simulated clusters, locally (no server needed)",
    long_about = "Simulates a few Kubernetes clusters with realistic objects and changes, ships them through the agent's pipeline (state, redaction, snapshots and diffs) into a local-folder bucket, and indexes that bucket into a SQLite database with Clouddriver's tables, while the clusters keep changing. Ends with the status table and SQL queries to try on the database.",
    after_help = "Examples:\n  outpost demo\n  outpost demo --clusters 5 --objects 2000 --duration 1m --dir /tmp/outpost-demo"
)]
pub struct DemoArgs {
    /// Where the bucket (bucket/) and the database (cache.db) go; reset on every run.
    #[arg(long, default_value = "outpost-demo")]
    pub dir: PathBuf,
    /// Number of simulated clusters.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub clusters: u16,
    /// Objects per cluster (approximately).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(10..=200_000))]
    pub objects: u32,
    /// How long the clusters keep changing after the first load.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Changes per second per cluster (each second of the demo plays 15 s of cluster time).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
}

/// Empties the demo directory (only if it is the demo's own) and returns the bucket and
/// database URLs.
fn prepare(dir: &Path) -> anyhow::Result<(String, String)> {
    if dir.exists() {
        let owned = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !owned && !empty {
            anyhow::bail!(
                "{} exists and is not a demo directory (no {MARKER} in it): choose another --dir",
                dir.display()
            );
        }
        for entry in [
            "bucket",
            "cache.db",
            "cache.db-wal",
            "cache.db-shm",
            "cache.db-journal",
        ] {
            let path = dir.join(entry);
            if path.is_dir() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot reset {}", path.display()))?;
            } else if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot reset {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir.join("bucket"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "outpost demo directory: reset by every `outpost demo`\n",
    )
    .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    Ok((
        format!("file://{}", dir.join("bucket").display()),
        format!("sqlite://{}", dir.join("cache.db").display()),
    ))
}

/// Progress on a terminal, log lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        Self { bar: Some(bar) }
    }

    fn step(&self, message: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(message);
                bar.inc(1);
            }
            None => tracing::info!("{message}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        anyhow::bail!(
            "invalid --rate {}: a number of changes per second, 0 or more",
            args.rate
        );
    }
    let (bucket, db_url) = prepare(&args.dir)?;
    let store = Store::open(&bucket).await?;
    let database = Database::connect(&db_url, None).await?;
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        // Every cluster becomes an account in the demo's account storage, as Clouddriver's
        // credentials poller would read it.
        options: IndexOptions {
            accounts: Some(AccountTemplate {
                environment: Some("demo".into()),
                ..AccountTemplate::default()
            }),
            ..IndexOptions::default()
        },
    };
    println!(
        "Simulating {} clusters of about {} objects each; bucket {bucket}, database {db_url}",
        args.clusters, args.objects
    );

    // The clusters and their first snapshots.
    let mut clusters = Vec::new();
    for i in 0..args.clusters {
        let name = ClusterName::new(&format!("demo-{}", i + 1))?;
        let key: [u8; 32] = rand::random();
        let churn = Churn::new(u64::from(i) + 1, args.objects as usize);
        let mut cluster = SimAgent::new(&store, name, churn, &key)?;
        let mut identity = Identity::new(cluster.name.clone(), Utc::now());
        identity.server_version = Some("simulated".into());
        identity.kube_system_uid = Some(format!("{:032x}", rand::random::<u128>()));
        cluster.describe(&mut identity);
        store
            .put_overwrite(
                &store.layout().identity(&cluster.name),
                identity.to_json()?.into(),
            )
            .await?;
        cluster.tick(Utc::now()).await?;
        clusters.push(cluster);
    }
    let started = std::time::Instant::now();
    let report = indexer.run_once(None).await?;
    let rows: u64 = report.rows_written();
    println!(
        "First load: {} clusters, {rows} Clouddriver rows written in {:.1}s",
        report.clusters.len(),
        started.elapsed().as_secs_f64()
    );

    // Churn: every second plays 15 s of cluster time, ships a diff per cluster, and indexes.
    let rounds = args.duration.as_secs().max(1);
    let progress = Progress::new(rounds);
    let (mut changes, mut diffs, mut written) = (0u64, 0u64, 0u64);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    for _ in 0..rounds {
        ticker.tick().await;
        for cluster in &mut clusters {
            changes += cluster.step(15.0, args.rate) as u64;
            match cluster.tick(Utc::now()).await {
                Ok(Shipped::Diff { .. } | Shipped::Snapshot { .. }) => diffs += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(cluster = %cluster.name, error = %crate::error_chain(&e), "ship failed")
                }
            }
        }
        let report = indexer.run_once(None).await?;
        for cluster in &report.clusters {
            match &cluster.result {
                Ok(Outcome::Applied { stats, .. }) => written += stats.rows_written,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(cluster = %cluster.cluster, error = %crate::error_chain(e), "index failed")
                }
            }
        }
        progress.step(format!(
            "{changes} changes, {diffs} segments shipped, {written} rows rewritten"
        ));
    }
    progress.finish();
    println!(
        "Churn: {changes} changes in {} cluster-minutes, {diffs} segments shipped, {written} Clouddriver rows rewritten (only those whose body changed)\n",
        rounds * 15 * u64::from(args.clusters) / 60
    );

    let statuses = super::status::collect(&database, Some(&store)).await?;
    let mut out = std::io::stdout().lock();
    super::status::print_table(&mut out, &statuses)?;
    writeln!(out)?;
    show_queries(&mut out, &database, &args.dir).await?;
    database.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Runs and prints a few queries a user can try on the database.
async fn show_queries(out: &mut impl Write, database: &Database, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("cache.db");
    let queries = [
        (
            "Rows per Clouddriver table",
            "SELECT 'deployment' AS type, COUNT(*) AS n FROM cats_v1_deployment UNION ALL SELECT 'replicaSet', COUNT(*) FROM cats_v1_replicaSet UNION ALL SELECT 'pod', COUNT(*) FROM cats_v1_pod UNION ALL SELECT 'service', COUNT(*) FROM cats_v1_service UNION ALL SELECT 'applications', COUNT(*) FROM cats_v1_applications",
        ),
        (
            "Applications and how many clusters each has",
            "SELECT json_extract(body, '$.attributes.name') AS application, json_array_length(json_extract(body, '$.relationships.clusters')) AS clusters FROM cats_v1_applications ORDER BY clusters DESC LIMIT 5",
        ),
        (
            "The accounts Clouddriver's credentials poller would load, and their namespaces",
            "SELECT id, json_array_length(json_extract(body, '$.namespaces')) AS namespaces, last_modified_by FROM accounts ORDER BY id",
        ),
        (
            "Plain SQL over the fleet: pods not Running, per cluster",
            "SELECT cluster, json_extract(object, '$.status.phase') AS phase, COUNT(*) AS pods FROM outpost_resources WHERE kind = 'Pod' AND json_extract(object, '$.status.phase') <> 'Running' GROUP BY cluster, phase",
        ),
    ];
    for (title, sql) in queries {
        writeln!(out, "{title}:\n  sqlite3 {} \"{sql}\"", path.display())?;
        match sqlx::query(sql).fetch_all(database.pool()).await {
            Ok(rows) => {
                for row in rows.iter().take(8) {
                    let cells: Vec<String> =
                        (0..sqlx::Row::len(row)).map(|i| cell(row, i)).collect();
                    writeln!(out, "    {}", cells.join(" | "))?;
                }
                if rows.is_empty() {
                    writeln!(out, "    (no rows)")?;
                }
            }
            Err(e) => writeln!(out, "    (query failed: {e})")?,
        }
    }
    Ok(())
}

/// One cell as text, whatever its type.
fn cell(row: &sqlx::any::AnyRow, index: usize) -> String {
    use sqlx::Row;
    if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(index) {
        return n.to_string();
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(index) {
        return s;
    }
    "NULL".into()
}
