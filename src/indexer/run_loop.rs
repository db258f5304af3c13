//! The indexer as a long-running process: one run per tick of a trigger until shutdown, backing
//! off while whole runs fail.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;

use crate::format::ClusterName;
use crate::settings::schedule::Trigger;

use super::Indexer;

/// The longest pause between runs while whole runs keep failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The pause after `failures_in_a_row` whole runs failed one after the other: 10 s after the
/// first, doubling, at most [`MAX_BACKOFF`]; none before the first failure.
pub fn backoff(failures_in_a_row: u32) -> Duration {
    if failures_in_a_row == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(5u64 << failures_in_a_row.min(6)).min(MAX_BACKOFF)
}

impl Indexer {
    /// Indexes `only` these clusters (or all, see [`Indexer::run_once`]) at every tick of
    /// `trigger` until `shutdown` resolves, then closes the database. A failing run is logged
    /// and the loop goes on; a cluster's failure is that cluster's and is reported in its run.
    pub async fn run_every(
        &self,
        trigger: &Trigger,
        only: Option<&[ClusterName]>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut failures_in_a_row = 0u32;
        tokio::pin!(shutdown);
        loop {
            let started = tokio::time::Instant::now();
            match self.run_once(only).await {
                Ok(report) => {
                    let failed: BTreeSet<&str> = report.failures().map(|(c, _)| c).collect();
                    tracing::info!(
                        clusters = report.clusters.len(),
                        failed = failed.len(),
                        "index run done"
                    );
                    failures_in_a_row = 0;
                }
                Err(e) => {
                    failures_in_a_row += 1;
                    tracing::error!(error = %crate::error_chain(&e), failures_in_a_row, "index run failed");
                }
            }
            let delay = trigger.delay(Utc::now()).max(backoff(failures_in_a_row));
            // An interval counts from the run's start; a schedule's next time from now.
            let wake = match trigger {
                Trigger::Every(_) => started + delay,
                Trigger::Cron(_) => tokio::time::Instant::now() + delay,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                () = &mut shutdown => {
                    tracing::info!("stopping: signal received");
                    self.database.close().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_ten_seconds_up_to_five_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(5), Duration::from_secs(160));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
