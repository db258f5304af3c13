//! `outpost index`: load a bucket's clusters into Clouddriver's SQL cache, once or in a loop.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::cache::definition::AccountTemplate;
use crate::cache::{CacheOptions, KindFilter};
use crate::format::ClusterName;
use crate::indexer::{
    ClaimPolicy, Database, Graces, IndexOptions, Indexer, Outcome, ProgressHook, Quotas, RunReport,
};
use crate::settings::duration::parse_duration;
use crate::settings::schedule::{Schedule, Trigger};
use crate::store::Store;

use super::EXIT_FAULT;

#[derive(Debug, Clone, Args)]
#[command(
    about = "Load the bucket's clusters into Clouddriver's SQL cache (once, or in a loop)",
    long_about = "Reads every cluster's head.json, verifies the segments it has not applied yet and applies them to the database: its own outpost_* tables and Clouddriver's cats_v1_* tables, rows and checkpoint in one transaction per cluster, so runs may overlap, crash and be retried without losing or duplicating a change. A cluster whose data is faulty is reported and left untouched; the others go on.\n\nWith --once, exits 1 if any cluster failed. In a loop (--interval or --schedule), a failing run is logged and the loop goes on.\n\nThe database is --db, or --db-secret: an AWS Secrets Manager secret holding its URL or RDS's JSON for it, read once at start (so a Lambda function's settings hold an ARN, not a password).\n\nAs an AWS Lambda function (runtime provided.al2023): `just lambda-zip` builds target/lambda/outpost-lambda.zip, this binary as the custom runtime's `bootstrap`; set OUTPOST_BUCKET and OUTPOST_DB or OUTPOST_DB_SECRET (and any other OUTPOST_* setting below) on the function. A scheduled event indexes every cluster, an S3 event notification the clusters its keys name, {\"clusters\": [...]} those.",
    after_help = "Examples:\n  outpost index --bucket s3://fleet-bucket/prod --db postgres://clouddriver@db/clouddriver --once\n  outpost index --bucket gs://fleet --db mysql://clouddriver:secret@db/clouddriver --interval 30s\n  outpost index --bucket file:///var/tmp/outpost-demo --db sqlite:///var/tmp/cache.db --once --cluster eu-1\n  outpost index --bucket s3://fleet-bucket/prod --db-secret arn:aws:secretsmanager:eu-west-1:123456789012:secret:outpost-db-AbCdEf --once"
)]
pub struct IndexArgs {
    /// The bucket URL (file://, memory://, s3://, gs://, az://).
    #[arg(long, env = "OUTPOST_BUCKET")]
    pub bucket: String,
    #[command(flatten)]
    pub database: super::DatabaseArgs,
    /// Index once and exit (the default when neither --interval nor --schedule is given).
    #[arg(long, conflicts_with_all = ["interval", "schedule"])]
    pub once: bool,
    /// Serve as an AWS Lambda function: a scheduled event indexes every cluster, an S3 event
    /// notification the clusters its keys name. (Started with no arguments inside Lambda, the
    /// binary does this by itself.)
    #[arg(long, conflicts_with_all = ["once", "interval", "schedule", "clusters"])]
    pub lambda: bool,
    /// Index again this long after each run starts, e.g. 30s.
    #[arg(long, env = "OUTPOST_INDEX_INTERVAL", value_parser = parse_duration, conflicts_with = "schedule")]
    pub interval: Option<Duration>,
    /// Index on a cron schedule (5 fields, or 6 with seconds first), e.g. "*/1 * * * *".
    #[arg(long, env = "OUTPOST_INDEX_SCHEDULE", value_parser = Schedule::parse)]
    pub schedule: Option<Schedule>,
    /// Only these clusters (repeatable); default every cluster in the bucket.
    #[arg(long = "cluster")]
    pub clusters: Vec<String>,
    /// The `agent` column; `{account}` is replaced by the account.
    #[arg(long, env = "OUTPOST_AGENT_NAME", default_value = crate::indexer::DEFAULT_AGENT_TEMPLATE)]
    pub agent_name: String,
    /// Cache only these kinds (Clouddriver's kubernetes.cache.cacheKinds), e.g. deployment,replicaSet,Rollout.argoproj.io.
    #[arg(long, value_delimiter = ',', conflicts_with = "cache_all")]
    pub cache_kinds: Vec<String>,
    /// Cache every registered and custom kind (kubernetes.cache.cacheAll).
    #[arg(long)]
    pub cache_all: bool,
    /// Only objects with a moniker.spinnaker.io/application annotation (onlySpinnakerManaged).
    #[arg(long)]
    pub only_spinnaker_managed: bool,
    /// Flag a cluster STALE when its heartbeat is this old [default: 15m].
    #[arg(long, env = "OUTPOST_STALE_AFTER", value_parser = parse_duration)]
    pub stale_after: Option<Duration>,
    /// Evict a cluster's rows when its heartbeat is this old [default: 24h].
    #[arg(long, env = "OUTPOST_EVICT_AFTER", value_parser = parse_duration)]
    pub evict_after: Option<Duration>,
    /// A YAML claim policy: which accounts each cluster may claim (a malformed one stops the run);
    /// without one, each cluster may claim only the account of its own name.
    #[arg(long, env = "OUTPOST_CLAIM_POLICY")]
    pub policy: Option<std::path::PathBuf>,
    /// A YAML account template: register each ACTIVE cluster as an account in Clouddriver's
    /// account storage (its `accounts` table), named by the template's prefix and the granted
    /// account; without one, no account is registered (docs/CLOUDDRIVER.md).
    #[arg(long, env = "OUTPOST_ACCOUNT_TEMPLATE")]
    pub account_template: Option<std::path::PathBuf>,
    /// Accept (and pin anew) a changed identity of this cluster (repeatable).
    #[arg(long)]
    pub allow_identity_change: Vec<String>,
    /// Clusters indexed at once, each in its own transaction (1 to 8; always 1 on SQLite).
    #[arg(long, env = "OUTPOST_INDEX_CONCURRENCY", default_value_t = crate::indexer::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Quota: the most objects a cluster's head may count, or one segment put [default: 1000000].
    #[arg(long, env = "OUTPOST_MAX_OBJECTS")]
    pub max_objects: Option<u64>,
    /// Quota: the most stored bytes the segments a cluster's head lists may add up to
    /// [default: 4294967296, 4 GiB].
    #[arg(long, env = "OUTPOST_MAX_BYTES")]
    pub max_bytes: Option<u64>,
    /// Quota: the most diffs a cluster's head may list [default: 10000].
    #[arg(long, env = "OUTPOST_MAX_DIFFS")]
    pub max_diffs: Option<u64>,
    /// Quota: the most kinds a cluster's head may count or its records touch [default: 1000].
    #[arg(long, env = "OUTPOST_MAX_KINDS")]
    pub max_kinds: Option<u64>,
    /// Clouddriver's sql.table-namespace, if it uses one.
    #[arg(long, env = "OUTPOST_TABLE_NAMESPACE")]
    pub table_namespace: Option<String>,
}

/// The validated options (nothing is connected before this succeeds).
pub fn options(args: &IndexArgs) -> anyhow::Result<IndexOptions> {
    let defaults = Graces::default();
    let graces = Graces {
        stale_after: args.stale_after.unwrap_or(defaults.stale_after),
        evict_after: args.evict_after.unwrap_or(defaults.evict_after),
    };
    graces
        .check()
        .map_err(|reason| anyhow::anyhow!("invalid --stale-after/--evict-after: {reason}"))?;
    if !args.agent_name.contains("{account}") {
        anyhow::bail!(
            "invalid --agent-name {:?}: it must contain {{account}} (one agent per account)",
            args.agent_name
        );
    }
    if !(1..=crate::indexer::MAX_CONCURRENCY).contains(&args.concurrency) {
        anyhow::bail!(
            "invalid --concurrency {}: it must be between 1 and {}",
            args.concurrency,
            crate::indexer::MAX_CONCURRENCY
        );
    }
    let policy = match &args.policy {
        Some(path) => ClaimPolicy::load(path)?,
        None => ClaimPolicy::OwnName,
    };
    let accounts = match &args.account_template {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read account template {}", path.display()))?;
            Some(AccountTemplate::parse(&path.display().to_string(), &text)?)
        }
        None => None,
    };
    let kinds = if args.cache_all {
        KindFilter::All
    } else if !args.cache_kinds.is_empty() {
        KindFilter::Only(args.cache_kinds.iter().cloned().collect())
    } else {
        KindFilter::Default
    };
    let quota_defaults = Quotas::default();
    let quotas = Quotas {
        objects: args.max_objects.unwrap_or(quota_defaults.objects),
        bytes: args.max_bytes.unwrap_or(quota_defaults.bytes),
        diffs: args.max_diffs.unwrap_or(quota_defaults.diffs),
        kinds: args.max_kinds.unwrap_or(quota_defaults.kinds),
    };
    Ok(IndexOptions {
        quotas,
        cache: CacheOptions {
            kinds,
            only_spinnaker_managed: args.only_spinnaker_managed,
            ..CacheOptions::default()
        },
        agent_template: args.agent_name.clone(),
        graces,
        policy,
        allow_identity_change: args.allow_identity_change.iter().cloned().collect(),
        progress: terminal_progress(),
        concurrency: args.concurrency,
        accounts,
        ..IndexOptions::default()
    })
}

/// Progress bars for large snapshot loads when stderr is a terminal (logs otherwise).
fn terminal_progress() -> ProgressHook {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressHook::default();
    }
    let bars = indicatif::MultiProgress::new();
    let open: std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>> =
        std::sync::Mutex::default();
    ProgressHook(Some(std::sync::Arc::new(
        move |cluster: &str, done: u64, total: u64| {
            let Ok(mut open) = open.lock() else { return };
            let bar = open.entry(cluster.to_string()).or_insert_with(|| {
                let bar = bars.add(indicatif::ProgressBar::new(total));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} objects ({per_sec})",
                ) {
                    bar.set_style(style);
                }
                bar.set_prefix(cluster.to_string());
                bar
            });
            bar.set_position(done);
            if done >= total {
                bar.finish_and_clear();
                open.remove(cluster);
            }
        },
    )))
}

/// Prints one line per cluster of a run; returns whether any failed.
fn print_report(report: &RunReport) -> bool {
    let mut failed = false;
    for cluster in &report.clusters {
        let line = match &cluster.result {
            Ok(Outcome::Applied {
                fault,
                snapshot,
                segments,
                stats,
                state,
            }) => format!(
                "applied {segments} segment(s){} — {} records, {} rows written, {} unchanged, {} deleted ({state}){}",
                if *snapshot { " from a snapshot" } else { "" },
                stats.records,
                stats.rows_written,
                stats.rows_unchanged,
                stats.rows_deleted,
                fault
                    .as_ref()
                    .map_or(String::new(), |f| format!(" after a chain fault: {f}"))
            ),
            Ok(Outcome::Unchanged { state }) => format!("unchanged ({state})"),
            Ok(Outcome::Evicted {
                rows_deleted,
                reason,
            }) => format!("evicted, {rows_deleted} rows deleted: {reason}"),
            Ok(Outcome::Refused { reason }) => format!("refused: {reason}"),
            Ok(Outcome::Raced) => "another indexer is applying it; next run".to_string(),
            Ok(Outcome::NothingShipped) => "no head.json yet (nothing shipped)".to_string(),
            Err(e) => {
                failed = true;
                format!("FAILED: {}", crate::error_chain(e))
            }
        };
        println!("{}: {line}", cluster.cluster);
    }
    failed
}

/// Environment variables the Lambda runtime needs (it panics without them).
const LAMBDA_VARIABLES: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

pub async fn run(args: IndexArgs) -> anyhow::Result<ExitCode> {
    if args.lambda {
        let missing: Vec<&str> = LAMBDA_VARIABLES
            .iter()
            .copied()
            .filter(|v| std::env::var_os(v).is_none())
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "--lambda runs only inside AWS Lambda: {} not set",
                missing.join(", ")
            );
        }
    }
    let options = options(&args)?;
    let only: Vec<ClusterName> = args
        .clusters
        .iter()
        .map(|c| ClusterName::new(c).with_context(|| format!("invalid --cluster {c:?}")))
        .collect::<anyhow::Result<_>>()?;
    let trigger = match (&args.interval, &args.schedule) {
        (Some(interval), _) => Some(Trigger::Every(*interval)),
        (None, Some(schedule)) => Some(Trigger::Cron(schedule.clone())),
        (None, None) => None,
    };
    let store = Store::open(&args.bucket).await?;
    let db = args.database.url().await?;
    let database = Database::connect(&db, args.table_namespace.as_deref()).await?;
    let indexer = Indexer {
        store,
        database,
        options,
    };
    let only = (!only.is_empty()).then_some(only);
    if args.lambda {
        crate::indexer::lambda::serve(indexer)
            .await
            .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(trigger) = trigger else {
        let report = indexer.run_once(only.as_deref()).await?;
        let failed = print_report(&report);
        indexer.database.close().await;
        return Ok(if failed {
            ExitCode::from(EXIT_FAULT)
        } else {
            ExitCode::SUCCESS
        });
    };
    indexer
        .run_every(&trigger, only.as_deref(), super::shutdown_signal())
        .await;
    Ok(ExitCode::SUCCESS)
}
