//! `outpost agent`: watch a cluster (or a simulated one) and ship it to the bucket until SIGTERM.

use std::process::ExitCode;

use bytes::Bytes;

use crate::agent::config::{self, AgentArgs};
use crate::format::Decommissioned;
use crate::store::Store;

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    crate::agent::run::tune_allocator();
    let config = config::load(&args)?;
    let store = Store::open(&config.bucket.url).await?;
    if config.decommission {
        let notice = Decommissioned::new(
            config.cluster.clone(),
            chrono::Utc::now(),
            Some("outpost agent --decommission".into()),
        );
        let key = store.layout().decommissioned(&config.cluster);
        store
            .put_overwrite(&key, Bytes::from(notice.to_json()?))
            .await?;
        eprintln!("{key}: cluster {} marked decommissioned", config.cluster);
        return Ok(ExitCode::SUCCESS);
    }
    let agent = crate::agent::build(&config, store).await?;
    let status = agent.status();
    let server = crate::agent::health::bind(config.listen, status.clone()).await?;
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(error = %crate::error_chain(&error), "health and metrics server stopped");
        }
    });
    tracing::info!(cluster = %config.cluster, bucket = %config.bucket.url, "agent starting");
    let state = agent
        .run(async {
            super::shutdown_signal().await;
            tracing::info!("shutdown requested: shipping what is pending");
        })
        .await;
    let status = status.lock().map(|s| s.clone()).unwrap_or_default();
    tracing::info!(cluster = %config.cluster, objects = state.len(), segments = status.segments, "agent stopped");
    Ok(ExitCode::SUCCESS)
}
