//! `outpost gateway`: serve each indexed cluster's objects as a read-only Kubernetes API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::gateway::server::{self, Listener};
use crate::gateway::source::Source;
use crate::gateway::tokens::Tokens;
use crate::indexer::Database;

#[derive(Debug, Args)]
#[command(
    about = "Serve each indexed cluster as a read-only Kubernetes API, for Clouddriver's live calls",
    long_about = "Answers the Kubernetes API for every cluster the indexer holds, under https://<gateway>/clusters/<account>, from the indexer's tables: discovery as the cluster's API server served it, gets and lists (label and field selectors, pages, JSON, YAML and the Table form kubectl prints) of every object as the cluster had it at its last applied diff. Writes are refused; logs, exec and watches are not available for a cluster reached through its bucket. Stateless: run any number beside Clouddriver.",
    after_help = "Examples:\n  outpost gateway --db postgres://reader@db/clouddriver --tls-cert tls.crt --tls-key tls.key --tokens tokens.yaml\n  outpost gateway --db sqlite:///var/tmp/outpost-demo/cache.db --plain-http --listen 127.0.0.1:8443 --tokens tokens.yaml\n\nA kubeconfig for one account: server https://<gateway>/clusters/<account>, the CA of --tls-cert, and a token of --tokens."
)]
pub struct GatewayArgs {
    // The indexer's database, only read.
    #[command(flatten)]
    pub database: super::DatabaseArgs,
    /// Where to listen.
    #[arg(long, env = "OUTPOST_GATEWAY_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// The serving certificate chain (PEM).
    #[arg(
        long,
        env = "OUTPOST_GATEWAY_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "plain_http"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "OUTPOST_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (behind a proxy that terminates TLS).
    #[arg(long)]
    pub plain_http: bool,
    /// The bearer tokens of the gateway's consumers (YAML: name, token, accounts), read again
    /// when the file changes.
    #[arg(long, env = "OUTPOST_GATEWAY_TOKENS")]
    pub tokens: PathBuf,
}

pub async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let listener = match (&args.tls_cert, &args.tls_key, args.plain_http) {
        (Some(cert), Some(key), false) => Listener::Tls(crate::gateway::tls_config(cert, key)?),
        (None, None, true) => Listener::Plain,
        _ => anyhow::bail!(
            "give --tls-cert and --tls-key (HTTPS), or --plain-http behind a proxy that terminates TLS"
        ),
    };
    let tokens = Tokens::load(&args.tokens)?;
    let database = Database::connect_reader(&args.database.url().await?).await?;
    let (bound, serving) =
        server::bind(args.listen, listener, Source::new(database), tokens).await?;
    tracing::info!(address = %bound, "serving the gateway");
    eprintln!("outpost gateway: listening on {bound}");
    tokio::select! {
        served = serving => served?,
        () = super::shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}
