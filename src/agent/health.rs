//! The agent's HTTP endpoints: `/healthz` (the process answers), `/readyz` (the first snapshot is
//! shipped, or another live agent is the writer) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::run::{SharedStatus, Status};

/// Why the endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not listen on {address} for /healthz, /readyz and /metrics: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the health and metrics server on {address} failed: {source}")]
    Serve {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `address` (so a taken port is an error at start) and returns the server to run.
pub async fn bind(
    address: SocketAddr,
    status: SharedStatus,
) -> Result<impl std::future::Future<Output = Result<(), Error>>, Error> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(status);
    Ok(async move {
        axum::serve(listener, app)
            .await
            .map_err(|source| Error::Serve {
                address: bound,
                source,
            })
    })
}

fn snapshot(status: &SharedStatus) -> Status {
    status
        .lock()
        .map(|s| s.clone())
        .unwrap_or_else(|e| e.into_inner().clone())
}

async fn ready(
    axum::extract::State(status): axum::extract::State<SharedStatus>,
) -> impl IntoResponse {
    if snapshot(&status).ready {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first snapshot is not shipped yet\n",
        )
    }
}

async fn metrics(
    axum::extract::State(status): axum::extract::State<SharedStatus>,
) -> impl IntoResponse {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatusCollector(snapshot(&status))));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "encoding failed\n".to_string(),
        ),
    }
}

/// Renders a status as metrics at scrape time.
#[derive(Debug)]
struct StatusCollector(Status);

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let counters: [(&str, &str, u64); 7] = [
            (
                "outpost_watch_events",
                "Watch events received (including initial lists).",
                s.watch_events,
            ),
            (
                "outpost_relists",
                "Relists started (initial lists and relists after 410 Gone).",
                s.relists,
            ),
            (
                "outpost_segments_written",
                "Segments written to the bucket.",
                s.segments,
            ),
            (
                "outpost_segment_bytes_written",
                "Bytes of segments written to the bucket.",
                s.segment_bytes,
            ),
            (
                "outpost_heartbeats_written",
                "head.json heartbeat refreshes.",
                s.heartbeats,
            ),
            (
                "outpost_ship_errors",
                "Failed ship attempts.",
                s.ship_errors,
            ),
            (
                "outpost_watch_errors",
                "Watch failures (a kind could not be listed or watched).",
                s.watch_errors,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, i64); 4] = [
            (
                "outpost_objects",
                "Objects held (all kinds).",
                s.objects as i64,
            ),
            (
                "outpost_writer",
                "1 while this agent is the cluster's writer.",
                i64::from(s.writer),
            ),
            (
                "outpost_ready",
                "1 once the first snapshot is shipped.",
                i64::from(s.ready),
            ),
            (
                "outpost_last_push_timestamp_seconds",
                "Unix time of the last successful push (0: none).",
                s.last_push.map_or(0, |t| t.timestamp()),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let latency = ConstGauge::new(s.last_push_seconds);
        latency.encode(encoder.encode_descriptor(
            "outpost_last_push_duration_seconds",
            "How long the last push (segment and head) took.",
            None,
            latency.metric_type(),
        )?)?;
        let mut per_kind = encoder.encode_descriptor(
            "outpost_kind_objects",
            "Objects held per kind.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (kind, count) in &s.objects_per_kind {
            ConstGauge::new(*count as i64)
                .encode(per_kind.encode_family(&vec![("kind".to_string(), kind.clone())])?)?;
        }
        let mut unavailable = encoder.encode_descriptor(
            "outpost_kind_unavailable",
            "1 for each configured kind that cannot be watched (e.g. RBAC forbids it).",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for kind in s.unavailable.keys() {
            ConstGauge::new(1)
                .encode(unavailable.encode_family(&vec![("kind".to_string(), kind.clone())])?)?;
        }
        Ok(())
    }
}
