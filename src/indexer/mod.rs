//! The indexer: reads clusters' chains from the bucket and loads them into Clouddriver's SQL
//! cache exactly once, keeping all its own state in the database it writes (no state of its own
//! between runs, so any number of runs, in any process, may follow each other).

pub mod accounts;
pub mod apply;
pub mod checkpoint;
mod cluster;
pub mod db;
mod fetch;
pub mod graph;
pub mod lambda;
pub mod lifecycle;
mod load;
pub mod policy;
pub mod registration;
pub mod run;
pub mod run_loop;

use std::collections::BTreeSet;

use crate::cache::CacheOptions;
use crate::cache::definition::AccountTemplate;
use crate::format::DecodeLimits;

pub use checkpoint::{ClusterRecord, ClusterState};
pub use db::Database;
pub use lifecycle::Graces;
pub use policy::ClaimPolicy;
pub use run::{Indexer, Outcome, RunReport};

/// What went wrong indexing; every variant names the cluster (or the bucket).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot list the clusters of {bucket}: {source}")]
    ListClusters {
        bucket: String,
        #[source]
        source: Box<crate::store::Error>,
    },
    #[error("cluster {cluster}: {source}")]
    Store {
        cluster: String,
        #[source]
        source: Box<crate::store::Error>,
    },
    #[error("cluster {cluster}: {source}")]
    Format {
        cluster: String,
        #[source]
        source: crate::format::Error,
    },
    #[error(
        "cluster {cluster}: {key} has a heartbeat at {heartbeat_at}, {ahead:?} ahead of this indexer's clock (more than the {:?} of clock skew tolerated): a heartbeat in the future would keep the cluster ACTIVE forever",
        lifecycle::MAX_CLOCK_SKEW
    )]
    FutureHeartbeat {
        cluster: String,
        key: String,
        heartbeat_at: chrono::DateTime<chrono::Utc>,
        ahead: std::time::Duration,
    },
    #[error("cluster {cluster}: {reason}")]
    Mismatch { cluster: String, reason: String },
    #[error("cluster {cluster}: {source}")]
    Cache {
        cluster: String,
        #[source]
        source: crate::cache::Error,
    },
    #[error(
        "cluster {cluster}: over its quota: {what} is {value}, more than the {limit} allowed (not indexed; raise it with {flag})"
    )]
    Quota {
        cluster: String,
        what: &'static str,
        value: u64,
        limit: u64,
        flag: &'static str,
    },
    #[error("cluster {cluster}: a decoding task failed: {reason}")]
    Task { cluster: String, reason: String },
    #[error(transparent)]
    Database(#[from] db::Error),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
}

impl Error {
    /// Whether the database gave this cluster's transaction up for a conflict with another
    /// transaction: a deadlock or a serialization failure (SQLSTATE `40001`, PostgreSQL's
    /// `40P01`). The transaction was rolled back whole; running it again is safe.
    pub fn is_conflict(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = source {
            if let Some(sqlx::Error::Database(database)) = error.downcast_ref::<sqlx::Error>() {
                return matches!(database.code().as_deref(), Some("40001" | "40P01"));
            }
            source = error.source();
        }
        false
    }

    fn store(cluster: &str, source: crate::store::Error) -> Self {
        Error::Store {
            cluster: cluster.to_string(),
            source: Box::new(source),
        }
    }

    fn format(cluster: &str, source: crate::format::Error) -> Self {
        Error::Format {
            cluster: cluster.to_string(),
            source,
        }
    }
}

/// Snapshots of at least this many records report their loading progress.
pub const PROGRESS_FROM_RECORDS: u64 = 10_000;

/// Called while a large snapshot loads: (cluster, records loaded, records in all). Without one,
/// progress is logged.
#[derive(Clone, Default)]
pub struct ProgressHook(pub Option<std::sync::Arc<ReportProgress>>);

/// (cluster, records loaded, records in all).
pub type ReportProgress = dyn Fn(&str, u64, u64) + Send + Sync;

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressHook(set)"
        } else {
            "ProgressHook(none)"
        })
    }
}

/// Records per batched snapshot write.
const APPLY_BATCH: usize = 400;

fn apply_batch() -> usize {
    APPLY_BATCH
}

/// The default `agent` column: what Clouddriver's own core caching agent of the account writes,
/// so that a Clouddriver agent for the account would adopt the rows.
pub const DEFAULT_AGENT_TEMPLATE: &str = "{account}/KubernetesCoreCachingAgent[1/1]";

/// How the indexer writes.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Which objects get rows and how (Clouddriver's account and provider settings).
    pub cache: CacheOptions,
    /// The `agent` column, with `{account}` replaced (default [`DEFAULT_AGENT_TEMPLATE`]).
    pub agent_template: String,
    /// Lifecycle graces.
    pub graces: Graces,
    /// Which accounts clusters may claim.
    pub policy: ClaimPolicy,
    /// Clusters whose changed identity is accepted (and pinned anew) this run.
    pub allow_identity_change: BTreeSet<String>,
    /// Decoding limits for segments.
    pub limits: DecodeLimits,
    /// Progress of large snapshot loads (a terminal's progress bars); logged when unset.
    pub progress: ProgressHook,
    /// Clusters indexed at once, each in its own transaction (default
    /// [`DEFAULT_CONCURRENCY`], at most [`MAX_CONCURRENCY`]; always 1 on SQLite).
    pub concurrency: usize,
    /// Snapshots of at least this many compressed bytes load one at a time, however many
    /// clusters are indexed at once, so that peak memory stays that of one large load (default
    /// [`LARGE_SNAPSHOT_BYTES`]).
    pub large_snapshot_bytes: u64,
    /// The most cache types whose tables one cluster's run creates (default
    /// [`DEFAULT_MAX_NEW_CACHE_TYPES`]); see [`Database::ensure_tables_for`].
    pub max_new_cache_types: usize,
    /// The turn of large snapshot loads (shared by clones of these options).
    pub large_loads: std::sync::Arc<tokio::sync::Semaphore>,
    /// What one cluster may make the indexer hold and write.
    pub quotas: Quotas,
    /// The template of the accounts registered in Clouddriver's account storage
    /// ([`registration`]); its prefix names every account, cache rows included. None: no
    /// `accounts` row is written, and accounts are named as granted.
    pub accounts: Option<AccountTemplate>,
}

/// What one cluster may make one run spend. A cluster over a quota is not indexed (its rows
/// stay as they were) and its error says which quota and by how much. Checked on what the head
/// lists before anything is fetched, and on what the segments hold while they are verified,
/// since a head's counts are informational and may lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Objects: the head's `objects`, and the puts of any one segment (a snapshot's are its
    /// objects). Default 1,000,000: ten times a very large real cluster.
    pub objects: u64,
    /// Stored (compressed) bytes of every segment the head lists. Default 4 GiB: real segments
    /// compress 5–30×, so this is a state of tens of GiB of JSON.
    pub bytes: u64,
    /// Diffs listed after the snapshot. Default 10,000: writers start a new snapshot long
    /// before (the reference writer after a few hundred).
    pub diffs: u64,
    /// Kinds: the head's `kinds`, and the cache types the records read in one run touch (each
    /// may create tables). Default 1,000: clusters with many CRDs have a few hundred.
    pub kinds: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            objects: 1_000_000,
            bytes: 4 << 30,
            diffs: 10_000,
            kinds: 1_000,
        }
    }
}

impl Quotas {
    /// The first quota `value` of `what` passes, as the error naming it.
    fn check(
        cluster: &str,
        what: &'static str,
        value: u64,
        limit: u64,
        flag: &'static str,
    ) -> Result<(), Error> {
        if value > limit {
            return Err(Error::Quota {
                cluster: cluster.to_string(),
                what,
                value,
                limit,
                flag,
            });
        }
        Ok(())
    }

    /// What the head says, before anything is fetched.
    pub fn check_head(&self, cluster: &str, head: &crate::format::Head) -> Result<(), Error> {
        Self::check(
            cluster,
            "the diffs head.json lists",
            head.diffs.len() as u64,
            self.diffs,
            "--max-diffs",
        )?;
        let bytes = head
            .segments()
            .fold(0u64, |sum, s| sum.saturating_add(s.bytes));
        Self::check(
            cluster,
            "the stored bytes head.json lists",
            bytes,
            self.bytes,
            "--max-bytes",
        )?;
        Self::check(
            cluster,
            "the objects head.json counts",
            head.objects,
            self.objects,
            "--max-objects",
        )?;
        Self::check(
            cluster,
            "the kinds head.json counts",
            head.kinds.len() as u64,
            self.kinds,
            "--max-kinds",
        )
    }
}

/// Snapshots from this size (about 4,000 objects) load one at a time by default.
pub const LARGE_SNAPSHOT_BYTES: u64 = 1 << 20;

/// Clusters indexed at once by default.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The most clusters indexed at once: one connection each, from a pool of eight.
pub const MAX_CONCURRENCY: usize = 8;

/// The default of [`IndexOptions::max_new_cache_types`]: far more kinds than a cluster caches
/// (Clouddriver's own kinds are about 30), far fewer tables than a crafted bucket could ask for.
pub const DEFAULT_MAX_NEW_CACHE_TYPES: usize = 100;

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            cache: CacheOptions::default(),
            agent_template: DEFAULT_AGENT_TEMPLATE.to_string(),
            graces: Graces::default(),
            policy: ClaimPolicy::OwnName,
            allow_identity_change: BTreeSet::new(),
            limits: DecodeLimits::default(),
            progress: ProgressHook::default(),
            concurrency: DEFAULT_CONCURRENCY,
            large_snapshot_bytes: LARGE_SNAPSHOT_BYTES,
            max_new_cache_types: DEFAULT_MAX_NEW_CACHE_TYPES,
            large_loads: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            quotas: Quotas::default(),
            accounts: None,
        }
    }
}

impl IndexOptions {
    /// The `agent` column of `account` (before shortening for the dialect).
    pub fn agent_name(&self, account: &str) -> String {
        self.agent_template.replace("{account}", account)
    }

    /// The Spinnaker account of `granted` (what the claim policy gave a cluster): the
    /// template's prefix and `granted`, checked for every place Clouddriver uses the name.
    pub fn account_of(&self, granted: &str) -> Result<String, crate::cache::definition::Error> {
        match &self.accounts {
            Some(template) => crate::cache::definition::account_name(&template.prefix, granted),
            None => Ok(granted.to_string()),
        }
    }
}
