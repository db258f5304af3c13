//! The command line: clap commands, and the only place that wires the modules together.
//!
//! Exit codes (documented in `outpost --help`):
//! - 0: success;
//! - 1: the command ran and found a fault (e.g. `inspect` found a broken chain);
//! - 2: the command could not run: bad arguments or configuration, an unreachable bucket.

mod agent;
mod demo;
mod gateway;
mod index;
mod inspect;
mod status;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code: a fault was found.
pub const EXIT_FAULT: u8 = 1;
/// Exit code: the command could not run.
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "outpost",
    version,
    about = "Give Spinnaker a live view of many Kubernetes clusters through object storage, with no inbound connection to any cluster.",
    after_help = "Exit codes: 0 success; 1 a fault was found (e.g. a broken chain); 2 the command could not run (bad arguments, configuration, unreachable bucket).\n\nBucket URLs: file:///path, memory://name, s3://bucket/prefix?region=..&endpoint=.., gs://bucket/prefix, az://container/prefix?account=..; credentials come from each cloud's usual environment (AWS profiles/SSO/IRSA/instance roles, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "OUTPOST_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `outpost=debug` (also RUST_LOG).
    #[arg(long, global = true, default_value = "warn", env = "OUTPOST_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Agent(Box<crate::agent::config::AgentArgs>),
    Index(Box<index::IndexArgs>),
    Status(status::StatusArgs),
    Gateway(gateway::GatewayArgs),
    Demo(demo::DemoArgs),
    Inspect(inspect::InspectArgs),
}

/// Runs the command line and turns the outcome into an exit code, printing any error once with
/// its chain of causes.
pub fn main() -> ExitCode {
    // Inside AWS Lambda (a custom runtime runs its `bootstrap` without arguments), serve the
    // indexer; its settings come from OUTPOST_* variables.
    let lambda =
        std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let cli = if lambda {
        Cli::parse_from(["outpost", "index", "--lambda"])
    } else {
        Cli::parse()
    };
    // kube, object_store and aws-config all use rustls: one process-wide crypto provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_logging(cli.log_format, &cli.log);
    // The agent's work is light (about half a millisecond of CPU per watch event) and one
    // thread keeps its memory in one allocator heap, which it can hand back to the system after
    // each full list (agent::run); the other commands use every core.
    let mut builder = match cli.command {
        Command::Agent(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Agent(args) => agent::run(*args).await,
            Command::Index(args) => index::run(*args).await,
            Command::Status(args) => status::run(args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Inspect(args) => inspect::run(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Where `index`, `status` and `gateway` find their database: its URL, or an AWS Secrets
/// Manager secret holding it (exactly one of the two).
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DatabaseArgs {
    /// The database: postgres://, mysql:// (MySQL or MariaDB) or sqlite:// URL.
    #[arg(long, env = "OUTPOST_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Instead of --db: the ARN (or name) of an AWS Secrets Manager secret whose SecretString
    /// is the database URL, or the JSON RDS keeps for a database ({"engine": "postgres" |
    /// "mysql" | "mariadb", "host", "port", "username", "password", "dbname"}); read once at
    /// start with the AWS default credentials (environment, profile, web identity, container or
    /// instance role, the Lambda function's role), which need secretsmanager:GetSecretValue on it
    /// (and kms:Decrypt when it is encrypted with a key of your own).
    #[arg(long, env = "OUTPOST_DB_SECRET", value_name = "ARN")]
    pub db_secret: Option<String>,
}

impl DatabaseArgs {
    /// The database URL: the one given, or the one the secret holds.
    pub async fn url(&self) -> anyhow::Result<String> {
        match (&self.db, &self.db_secret) {
            (Some(url), None) => Ok(url.clone()),
            (None, Some(secret)) => crate::indexer::db::secret::read_database_url(secret)
                .await
                .context("cannot get the database URL from --db-secret"),
            _ => anyhow::bail!("give exactly one of --db and --db-secret"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C: how every long-running command is asked to stop.
fn shutdown_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

/// An error and its causes on one line, each said once.
pub fn error_chain(error: &anyhow::Error) -> String {
    crate::error_chain(error.as_ref())
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn causes_already_in_the_message_are_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] std::io::Error);
        let e = anyhow::Error::new(Outer(std::io::Error::other("disk on fire")))
            .context("could not save");
        assert_eq!(
            super::error_chain(&e),
            "could not save: outer: disk on fire"
        );
    }

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
