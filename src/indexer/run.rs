//! One indexing run over a bucket: which clusters, how many at once, retried on a lost
//! transaction conflict, and what each one's outcome was. A failing cluster is reported and the
//! others go on; one cluster's run is [`super::cluster`].

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};

use crate::cache;
use crate::format::ClusterName;
use crate::store::Store;

use super::apply::ApplyStats;
use super::checkpoint::{self, ClusterRecord, ClusterState};
use super::db::Database;
use super::lifecycle::state_for;
use super::{Error, IndexOptions};

/// What a run did to one cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Segments were applied (`snapshot`: the account was reloaded from a snapshot; `fault`: the
    /// chain fault that reload recovered from, a rewritten chain).
    Applied {
        fault: Option<String>,
        snapshot: bool,
        segments: usize,
        stats: ApplyStats,
        state: ClusterState,
    },
    /// Nothing new since the last run (the state may have moved, e.g. to STALE).
    Unchanged { state: ClusterState },
    /// Its rows were removed (decommissioned, or silent past the eviction grace).
    Evicted { rows_deleted: u64, reason: String },
    /// Not indexed until an operator acts (identity changed, account not allowed or taken).
    Refused { reason: String },
    /// A cluster never indexed whose `head.json` does not exist yet (its agent has not shipped
    /// a chain): nothing to do, and not a fault.
    NothingShipped,
    /// Another indexer moved the checkpoint meanwhile; the next run goes on from there.
    Raced,
}

/// One cluster's result.
#[derive(Debug)]
pub struct ClusterReport {
    pub cluster: String,
    pub result: Result<Outcome, Error>,
}

/// A whole run's results, by cluster.
#[derive(Debug, Default)]
pub struct RunReport {
    pub clusters: Vec<ClusterReport>,
}

impl RunReport {
    /// The clusters that failed.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Error)> {
        self.clusters
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|e| (c.cluster.as_str(), e)))
    }

    /// Cache rows written (inserted or rewritten) over every cluster applied.
    pub fn rows_written(&self) -> u64 {
        self.clusters
            .iter()
            .filter_map(|c| match &c.result {
                Ok(Outcome::Applied { stats, .. }) => Some(stats.rows_written),
                _ => None,
            })
            .sum()
    }
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// How many times a cluster is indexed when its transaction keeps losing conflicts.
pub const CONFLICT_ATTEMPTS: u32 = 3;

/// Indexes one bucket into one database.
#[derive(Debug, Clone)]
pub struct Indexer {
    pub store: Store,
    pub database: Database,
    pub options: IndexOptions,
}

impl Indexer {
    /// Indexes `only` these clusters, or every cluster in the bucket (one LIST) and every
    /// cluster the database knows and has not evicted.
    pub async fn run_once(&self, only: Option<&[ClusterName]>) -> Result<RunReport, Error> {
        let clusters = match only {
            Some(clusters) => clusters.to_vec(),
            None => {
                let listed = self
                    .store
                    .list_clusters()
                    .await
                    .map_err(|e| Error::ListClusters {
                        bucket: self.store.url().to_string(),
                        source: Box::new(e),
                    })?;
                self.with_known_clusters(listed).await?
            }
        };
        let concurrency = match self.database.dialect() {
            // One connection, and SQLite writes one transaction at a time anyway.
            cache::Dialect::Sqlite => 1,
            _ => self.options.concurrency.max(1),
        };
        let clusters = futures::stream::iter(clusters)
            .map(|cluster| async move {
                // A panic indexing one cluster is that cluster's failure, not the run's.
                let result = std::panic::AssertUnwindSafe(self.index_cluster_retrying(&cluster))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        let reason = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "a panic".to_string());
                        Err(Error::Task {
                            cluster: cluster.to_string(),
                            reason: format!("indexing panicked: {reason}"),
                        })
                    });
                match &result {
                    Ok(outcome) => tracing::info!(cluster = %cluster, ?outcome, "indexed"),
                    Err(e) => {
                        tracing::error!(cluster = %cluster, error = %crate::error_chain(e), "indexing failed");
                        self.record_fault(&cluster, e).await;
                    }
                }
                ClusterReport {
                    cluster: cluster.to_string(),
                    result,
                }
            })
            .buffered(concurrency)
            .collect()
            .await;
        Ok(RunReport { clusters })
    }

    /// [`index_cluster`](Self::index_cluster), run again (up to [`CONFLICT_ATTEMPTS`] in all)
    /// when the database gave its transaction up for a conflict with another cluster's
    /// ([`Error::is_conflict`]): the transaction was rolled back whole, so nothing is applied
    /// twice.
    async fn index_cluster_retrying(&self, cluster: &ClusterName) -> Result<Outcome, Error> {
        let mut attempt = 1;
        loop {
            match self.index_cluster(cluster).await {
                Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                    tracing::warn!(cluster = %cluster, attempt, error = %crate::error_chain(&e), "transaction conflict: indexing the cluster again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// `listed` followed by the clusters of the database that the listing lacks and that are not
    /// evicted: a cluster whose prefix (or whole `head.json`) disappeared is silent, and must age
    /// to STALE and EVICTED like any silent cluster instead of keeping its rows forever.
    async fn with_known_clusters(
        &self,
        mut listed: Vec<ClusterName>,
    ) -> Result<Vec<ClusterName>, Error> {
        let seen: BTreeSet<String> = listed.iter().map(|c| c.to_string()).collect();
        for record in checkpoint::load_all(&self.database).await? {
            if record.state == ClusterState::Evicted || seen.contains(&record.cluster) {
                continue;
            }
            match ClusterName::new(&record.cluster) {
                Ok(name) => listed.push(name),
                Err(e) => {
                    tracing::warn!(cluster = %record.cluster, error = %e, "a cluster of outpost_clusters has a name the bucket format refuses: not visited");
                }
            }
        }
        Ok(listed)
    }

    /// Best effort, after a fault: keeps the error in the cluster's row for `outpost status`,
    /// and ages the cluster by the last heartbeat it applied. A cluster whose chain stays faulty
    /// has shipped nothing usable since then, so it goes STALE and EVICTED like a silent one.
    async fn record_fault(&self, cluster: &ClusterName, error: &Error) {
        let now = Utc::now();
        let Ok(Some(mut record)) = self.load_record(cluster.as_str()).await else {
            return;
        };
        let fault = crate::error_chain(error);
        if !matches!(record.state, ClusterState::Evicted | ClusterState::Refused) {
            let state = state_for(ms(now), record.heartbeat_at(), false, &self.options.graces);
            if state == ClusterState::Evicted {
                let reason = format!(
                    "silent past the eviction grace ({:?}): nothing applied since, its chain is faulty: {fault}",
                    self.options.graces.evict_after
                );
                match self.evict(cluster, Some(record), now, reason).await {
                    Ok(outcome) => {
                        tracing::warn!(cluster = %cluster, ?outcome, "a faulty cluster past the eviction grace is evicted")
                    }
                    Err(e) => {
                        tracing::error!(cluster = %cluster, error = %crate::error_chain(&e), "evicting a faulty cluster failed")
                    }
                }
                return;
            }
            record.state = state;
        }
        record.error = Some(fault);
        record.updated_at = ms(now);
        if let Err(e) = self.save_outside(&record).await {
            tracing::error!(cluster = %cluster, error = %crate::error_chain(&e), "recording the fault failed");
        }
    }

    pub(super) async fn load_record(&self, cluster: &str) -> Result<Option<ClusterRecord>, Error> {
        let mut conn = self.database.connection("connecting").await?;
        Ok(checkpoint::load(&self.database, &mut conn, cluster).await?)
    }

    /// The `agent` column of `account`'s rows, checked for this database.
    pub(super) fn agent_of(&self, cluster: &str, account: &str) -> Result<String, Error> {
        cache::check_agent_name(&self.options.agent_name(account), self.database.dialect()).map_err(
            |e| Error::Cache {
                cluster: cluster.to_string(),
                source: e,
            },
        )
    }

    pub(super) async fn save_outside(&self, record: &ClusterRecord) -> Result<(), Error> {
        let mut conn = self.database.connection("connecting").await?;
        Ok(checkpoint::save(&self.database, &mut conn, record).await?)
    }
}
