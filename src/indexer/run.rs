//! One indexing run: per cluster, read its head, decide what to apply from the checkpoint, fetch
//! and verify the segments, then apply them and move the checkpoint in one transaction under the
//! cluster's lock. A failing cluster is reported and the others go on.
//!
//! A segment is verified by streaming its stored bytes once into an unnamed-on-disk temporary
//! file while hashing and counting them (a size or sha256 that is not the listed one stops it
//! before anything is decoded), then decoding that file; applying decodes the file again. So a
//! cluster's run holds about one segment's decode buffers in memory whatever its head lists,
//! its disk use is bounded by the listed-bytes quota, and the bucket is read once per segment
//! (re-fetching to apply would read it twice and need the sha256 checked again).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};

use crate::cache::{self, KubernetesKind};
use crate::format::{
    self, ClusterName, Head, Identity, ListedSegment, ListedSegmentReader, Record, SegmentReader,
    SegmentType, StoredBytes,
};
use crate::store::{self, Fetched, Store};

use super::accounts;
use super::apply::{AccountWriter, ApplyStats, ObjectBatch, RowBatch, RowMaker};
use super::checkpoint::{self, Applied, ClusterRecord, ClusterState, HeadSeen};
use super::db::Database;
use super::lifecycle::{check_heartbeat, state_for};
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

/// A verified segment, its stored bytes in a temporary file, with what applying needs to know
/// first.
struct Fetched_ {
    cluster: String,
    key: String,
    file: tempfile::NamedTempFile,
    /// Its stored size.
    stored_bytes: u64,
    segment_type: SegmentType,
    /// The cache types its records touch.
    types: BTreeSet<String>,
}

fn ms(t: DateTime<Utc>) -> i64 {
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

    async fn load_record(&self, cluster: &str) -> Result<Option<ClusterRecord>, Error> {
        let mut conn = self.database.connection("connecting").await?;
        Ok(checkpoint::load(&self.database, &mut conn, cluster).await?)
    }

    /// Indexes one cluster.
    pub async fn index_cluster(&self, cluster: &ClusterName) -> Result<Outcome, Error> {
        let now = Utc::now();
        let name = cluster.as_str();
        let record = self.load_record(name).await?;
        let layout = self.store.layout();

        // Decommissioned: evict now.
        let decommissioned_key = layout.decommissioned(cluster);
        match self.store.get(&decommissioned_key).await {
            Ok(_) => {
                return self
                    .evict(
                        cluster,
                        record,
                        now,
                        "decommissioned.json is present".into(),
                    )
                    .await;
            }
            Err(store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(name, e)),
        }

        let head_key = layout.head(cluster);
        let known = record.as_ref().and_then(|r| r.head_version.clone());
        let (head, version) = match self
            .store
            .get_if_changed(&head_key, known.as_ref())
            .await
            .map_err(|e| Error::store(name, e))?
        {
            // No head (deleted, or the whole prefix gone): a known cluster ages as a silent one.
            Fetched::Missing => {
                return match record {
                    Some(record) => self.age(cluster, record, now).await,
                    None => Ok(Outcome::NothingShipped),
                };
            }
            Fetched::Unchanged => {
                // Same head as last time: only the clock moved.
                let Some(record) = record else {
                    return Ok(Outcome::Unchanged {
                        state: ClusterState::Active,
                    });
                };
                return self.age(cluster, record, now).await;
            }
            Fetched::Changed(bytes, version) => {
                let head = Head::from_json(&head_key.to_string(), &bytes)
                    .map_err(|e| Error::format(name, e))?;
                (head, version)
            }
        };
        layout
            .verify_head(cluster, &head)
            .map_err(|e| Error::format(name, e))?;
        if head.cluster.as_str() != name {
            return Err(Error::Mismatch {
                cluster: name.to_string(),
                reason: format!("{head_key} names cluster {}", head.cluster),
            });
        }
        if let Err(ahead) = check_heartbeat(ms(now), ms(head.heartbeat_at)) {
            return Err(Error::FutureHeartbeat {
                cluster: name.to_string(),
                key: head_key.to_string(),
                heartbeat_at: head.heartbeat_at,
                ahead,
            });
        }

        // Identity and account.
        let identity = self.read_identity(cluster).await?;
        let requested = identity
            .as_ref()
            .and_then(|i| i.account.name.clone())
            .unwrap_or_else(|| name.to_string());
        let mut record = record.unwrap_or_else(|| ClusterRecord::new(name, &requested, ms(now)));
        if let Some(reason) = self.refusal(&record, identity.as_ref(), &requested).await? {
            record.state = ClusterState::Refused;
            record.error = Some(reason.clone());
            record.updated_at = ms(now);
            self.save_outside(&record).await?;
            return Ok(Outcome::Refused { reason });
        }
        let grant = self.options.policy.grant(name, &requested);
        let account = grant.account.clone();

        // Lifecycle by heartbeat.
        let state = state_for(
            ms(now),
            Some(ms(head.heartbeat_at)),
            false,
            &self.options.graces,
        );
        if state == ClusterState::Evicted {
            return self
                .evict(
                    cluster,
                    Some(record),
                    now,
                    format!(
                        "silent since {} (eviction grace {:?})",
                        head.heartbeat_at, self.options.graces.evict_after
                    ),
                )
                .await;
        }

        // Quotas on what the head lists, before anything is fetched.
        if let Err(e) = self.options.quotas.check_head(name, &head) {
            record.error = Some(crate::error_chain(&e));
            record.updated_at = ms(now);
            self.save_outside(&record).await?;
            return Err(e);
        }

        // What to apply (FORMAT §8.2).
        let same_account = if record.account == account {
            format::chain::Account::Same
        } else {
            format::chain::Account::Changed
        };
        let plan = format::plan(&head, record.checkpoint(), same_account);
        let fault = plan.fault();
        if let format::Plan::Rewound { .. } = plan {
            return Err(Error::format(
                name,
                format::Error::BrokenChain {
                    object: head_key.to_string(),
                    reason: fault.unwrap_or_default(),
                },
            ));
        }
        if let Some(fault) = &fault {
            tracing::warn!(cluster = %name, key = %head_key, fault = %fault, "chain fault");
        }
        let wanted: Vec<ListedSegment<'_>> = match plan.first() {
            Some(first) => head.segments().skip(first).collect(),
            None => Vec::new(),
        };
        let snapshot = matches!(plan, format::Plan::Reload(_));

        // Fetch and verify everything before applying anything.
        let mut fetched = Vec::new();
        for listed in &wanted {
            fetched.push(self.fetch_verified(cluster, &head, listed).await?);
        }
        let mut types: BTreeSet<String> = fetched
            .iter()
            .flat_map(|f| f.types.iter().cloned())
            .collect();
        super::Quotas::check(
            name,
            "the kinds the segments' records hold",
            types.len() as u64,
            self.options.quotas.kinds,
            "--max-kinds",
        )?;
        types.insert("applications".into());
        types.insert("clusters".into());
        self.database
            .ensure_tables_for(
                &types,
                &self.options.cache,
                self.options.max_new_cache_types,
            )
            .await?;

        // Apply and move the checkpoint in one transaction.
        let mut tx = self.database.begin_cluster(name).await?;
        let current = checkpoint::load(&self.database, tx.conn(), name).await?;
        if current.as_ref().and_then(ClusterRecord::checkpoint) != record.checkpoint() {
            tx.rollback().await?;
            return Ok(Outcome::Raced);
        }
        // The account: locked, free or already this cluster's. An account this cluster held
        // before and asks for no longer is emptied and given up in the same transaction, so
        // that moving never leaves rows behind in the old one.
        let previous = current
            .as_ref()
            .map(|c| c.account.clone())
            .filter(|previous| *previous != account);
        let mut locked = vec![account.as_str()];
        locked.extend(previous.as_deref());
        tx.lock_accounts(&locked).await?;
        if let Some(other) = accounts::holder(&self.database, tx.conn(), &account)
            .await?
            .filter(|holder| holder != name)
        {
            tx.rollback().await?;
            let reason = format!("account {account} is already claimed by cluster {other}");
            record.state = ClusterState::Refused;
            record.error = Some(reason.clone());
            self.save_outside(&record).await?;
            return Ok(Outcome::Refused { reason });
        }
        let agent = self.agent_of(name, &account)?;
        if let Some(previous) = &previous
            && accounts::holder(&self.database, tx.conn(), previous)
                .await?
                .as_deref()
                == Some(name)
        {
            let previous_agent = self.agent_of(name, previous)?;
            let database = self.database.clone();
            let mut writer = AccountWriter::new(
                &database,
                tx.conn(),
                name,
                previous,
                &previous_agent,
                &self.options.cache,
                ms(now),
            );
            writer.evict().await?;
            let deleted = writer.stats().rows_deleted;
            accounts::release(&self.database, tx.conn(), previous, name).await?;
            tracing::info!(cluster = %name, from = %previous, to = %account, rows_deleted = deleted, "the cluster moved to another account: the old one's rows are removed");
        }
        accounts::claim(&self.database, tx.conn(), &account, name, ms(now)).await?;
        let stats = {
            let database = self.database.clone();
            let mut writer = AccountWriter::new(
                &database,
                tx.conn(),
                name,
                &account,
                &agent,
                &self.options.cache,
                ms(now),
            );
            if snapshot {
                let previous = writer.cached_types().await?;
                writer.begin_snapshot().await?;
                let mut segments = fetched.iter();
                if let Some(first) = segments.next() {
                    self.load_snapshot(&mut writer, first).await?;
                }
                writer.finish_snapshot(&previous).await?;
                for diff in segments {
                    self.apply_diff(&mut writer, diff).await?;
                }
            } else {
                for diff in &fetched {
                    self.apply_diff(&mut writer, diff).await?;
                }
            }
            writer.stats().clone()
        };

        record.account = account;
        record.state = state;
        record.applied = Some(Applied {
            checkpoint: format::Checkpoint {
                epoch: head.epoch.clone(),
                seq: head.seq,
                sha256: Some(head.tip().sha256.clone()),
            },
            snapshot_seq: Some(head.snapshot.seq),
        });
        record.head_version = Some(version);
        record.head = Some(HeadSeen {
            epoch: head.epoch.clone(),
            seq: head.seq,
            heartbeat_at: ms(head.heartbeat_at),
            updated_at: ms(head.updated_at),
        });
        if !fetched.is_empty() {
            record.applied_at = Some(ms(now));
            record.lag_ms = Some((ms(now) - ms(head.updated_at)).max(0));
        }
        record.objects = super::db::count_to_i64(head.objects);
        record.kinds = Some(head.kinds.clone());
        if let Some(identity) = &identity {
            record.kube_system_uid = identity
                .kube_system_uid
                .clone()
                .or(record.kube_system_uid.take());
            record.ca_fingerprint = identity
                .ca_fingerprint
                .clone()
                .or(record.ca_fingerprint.take());
            record.forbidden_kinds = Some(identity.forbidden_kinds.clone());
            record.permissions = Some(identity.account.permissions.clone());
            record.identity = Some(identity.clone());
        }
        record.policy_grant = Some(grant);
        // A fault recovered from stays visible in `outpost status` until the chain moves on.
        record.error = fault.clone();
        record.updated_at = ms(now);
        checkpoint::save(&self.database, tx.conn(), &record).await?;
        tx.commit().await?;
        Ok(Outcome::Applied {
            fault,
            snapshot,
            segments: fetched.len(),
            stats,
            state,
        })
    }

    async fn read_identity(&self, cluster: &ClusterName) -> Result<Option<Identity>, Error> {
        let key = self.store.layout().identity(cluster);
        match self.store.get(&key).await {
            Ok((bytes, _)) => Ok(Some(
                Identity::from_json(&key.to_string(), &bytes)
                    .map_err(|e| Error::format(cluster.as_str(), e))?,
            )),
            Err(store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(cluster.as_str(), e)),
        }
    }

    /// Why this cluster must not be indexed now, if it must not.
    async fn refusal(
        &self,
        record: &ClusterRecord,
        identity: Option<&Identity>,
        requested: &str,
    ) -> Result<Option<String>, Error> {
        let name = record.cluster.as_str();
        if let Some(identity) = identity
            && !self.options.allow_identity_change.contains(name)
        {
            let changed = |pinned: &Option<String>, now: &Option<String>| matches!((pinned, now), (Some(a), Some(b)) if a != b);
            if changed(&record.kube_system_uid, &identity.kube_system_uid) {
                return Ok(Some(format!(
                    "identity changed: kube-system namespace UID {} where {} was pinned; if this is the same cluster rebuilt, allow it with --allow-identity-change {name}",
                    identity.kube_system_uid.as_deref().unwrap_or("?"),
                    record.kube_system_uid.as_deref().unwrap_or("?")
                )));
            }
            if changed(&record.ca_fingerprint, &identity.ca_fingerprint) {
                return Ok(Some(format!(
                    "identity changed: CA fingerprint {} where {} was pinned; if the CA was rotated, allow it with --allow-identity-change {name}",
                    identity.ca_fingerprint.as_deref().unwrap_or("?"),
                    record.ca_fingerprint.as_deref().unwrap_or("?")
                )));
            }
        }
        if let Err(reason) = self.options.policy.check(name, requested) {
            return Ok(Some(reason));
        }
        Ok(None)
    }

    /// The `agent` column of `account`'s rows, checked for this database.
    fn agent_of(&self, cluster: &str, account: &str) -> Result<String, Error> {
        cache::check_agent_name(&self.options.agent_name(account), self.database.dialect()).map_err(
            |e| Error::Cache {
                cluster: cluster.to_string(),
                source: e,
            },
        )
    }

    async fn save_outside(&self, record: &ClusterRecord) -> Result<(), Error> {
        let mut conn = self.database.connection("connecting").await?;
        Ok(checkpoint::save(&self.database, &mut conn, record).await?)
    }

    /// An unchanged head: moves the state with the heartbeat's age (evicting when due).
    async fn age(
        &self,
        cluster: &ClusterName,
        mut record: ClusterRecord,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        if matches!(record.state, ClusterState::Evicted | ClusterState::Refused) {
            return Ok(Outcome::Unchanged {
                state: record.state,
            });
        }
        let state = state_for(ms(now), record.heartbeat_at(), false, &self.options.graces);
        if state == ClusterState::Evicted {
            let reason = format!(
                "silent past the eviction grace ({:?})",
                self.options.graces.evict_after
            );
            return self.evict(cluster, Some(record), now, reason).await;
        }
        if state != record.state {
            record.state = state;
            record.updated_at = ms(now);
            self.save_outside(&record).await?;
        }
        Ok(Outcome::Unchanged { state })
    }

    /// Removes a cluster's rows and marks it EVICTED (the checkpoint is cleared, so a cluster
    /// that comes back is loaded from its snapshot).
    async fn evict(
        &self,
        cluster: &ClusterName,
        record: Option<ClusterRecord>,
        now: DateTime<Utc>,
        reason: String,
    ) -> Result<Outcome, Error> {
        let name = cluster.as_str();
        let Some(mut record) = record else {
            return Ok(Outcome::Evicted {
                rows_deleted: 0,
                reason,
            });
        };
        if record.state == ClusterState::Evicted {
            return Ok(Outcome::Unchanged {
                state: ClusterState::Evicted,
            });
        }
        let agent = self.agent_of(name, &record.account)?;
        let mut tx = self.database.begin_cluster(name).await?;
        tx.lock_accounts(&[record.account.as_str()]).await?;
        // Only the rows of an account this cluster holds: a cluster refused an account it asked
        // for (held by another) names that account in its row, and must not delete its rows.
        let holds = accounts::holder(&self.database, tx.conn(), &record.account)
            .await?
            .as_deref()
            == Some(name);
        let rows_deleted = if holds {
            let database = self.database.clone();
            let mut writer = AccountWriter::new(
                &database,
                tx.conn(),
                name,
                &record.account,
                &agent,
                &self.options.cache,
                ms(now),
            );
            writer.evict().await?;
            let deleted = writer.stats().rows_deleted;
            accounts::release(&self.database, tx.conn(), &record.account, name).await?;
            deleted
        } else {
            0
        };
        record.state = ClusterState::Evicted;
        record.applied = None;
        record.head_version = None;
        record.objects = 0;
        record.error = Some(reason.clone());
        record.updated_at = ms(now);
        checkpoint::save(&self.database, tx.conn(), &record).await?;
        tx.commit().await?;
        Ok(Outcome::Evicted {
            rows_deleted,
            reason,
        })
    }

    /// Downloads one segment into a temporary file, checking its size and sha256 as it streams,
    /// then decodes the copy, checking its header and every record, before anything is applied;
    /// notes the cache types its records touch.
    async fn fetch_verified(
        &self,
        cluster: &ClusterName,
        head: &Head,
        listed: &ListedSegment<'_>,
    ) -> Result<Fetched_, Error> {
        let name = cluster.as_str();
        let key = self.store.layout().listed(cluster, head, listed);
        let label = key.to_string();
        let stored = self
            .store
            .open_listed(cluster, head, listed)
            .await
            .map_err(|e| match e {
                store::Error::Verify(e) => Error::format(name, e),
                e => Error::store(name, e),
            })?;
        let copy_label = label.clone();
        let file = tokio::task::spawn_blocking(move || copy_verified(stored, &copy_label))
            .await
            .map_err(|e| Error::Task {
                cluster: name.to_string(),
                reason: e.to_string(),
            })?
            .map_err(|e| match e {
                CopyFailure::Read(reason) => Error::Task {
                    cluster: name.to_string(),
                    reason,
                },
                CopyFailure::Verify(e) => Error::format(name, e),
            })?;
        let check = file.reopen().map_err(|e| Error::Task {
            cluster: name.to_string(),
            reason: format!("reopening the copy of {label}: {e}"),
        })?;
        let limits = self.options.limits.clone();
        let head = head.clone();
        let index = listed.index;
        let max_puts = self.options.quotas.objects;
        let types = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let format_error = |e| Error::format(head.cluster.as_str(), e);
            let listed = head.segments().nth(index).ok_or_else(|| Error::Task {
                cluster: head.cluster.to_string(),
                reason: format!("{label}: the chain has no segment #{index}"),
            })?;
            let mut reader = ListedSegmentReader::new(
                &label,
                &head,
                &listed,
                std::io::BufReader::new(check),
                &limits,
            )
            .map_err(format_error)?;
            super::Quotas::check(
                head.cluster.as_str(),
                "the puts a segment's header announces",
                reader.header().counts.put,
                max_puts,
                "--max-objects",
            )?;
            let mut types = BTreeSet::new();
            while let Some(record) = reader.next_record().map_err(format_error)? {
                let target = match &record {
                    Record::Put { target, .. } | Record::Delete { target } => target,
                };
                types.insert(
                    KubernetesKind::from_manifest(&target.api_version, &target.kind)
                        .as_str()
                        .to_string(),
                );
            }
            reader.finish().map_err(format_error)?;
            Ok(types)
        })
        .await
        .map_err(|e| Error::Task {
            cluster: name.to_string(),
            reason: e.to_string(),
        })??;
        Ok(Fetched_ {
            cluster: name.to_string(),
            key: key.to_string(),
            file,
            stored_bytes: listed.bytes,
            segment_type: listed.segment_type,
            types,
        })
    }

    /// Loads a snapshot in the writer's two passes over its records (see
    /// [`AccountWriter::begin_snapshot`]). In each pass a blocking thread decodes the records
    /// and prepares the next batches ([`RowMaker`]) while this task writes the previous one, so
    /// the indexer's CPU work and the database's overlap. Progress counts both passes.
    async fn load_snapshot(
        &self,
        writer: &mut AccountWriter<'_>,
        segment: &Fetched_,
    ) -> Result<(), Error> {
        let cluster = segment.cluster.clone();
        let _turn = if segment.stored_bytes >= self.options.large_snapshot_bytes {
            let waited = std::time::Instant::now();
            let turn = self
                .options
                .large_loads
                .acquire()
                .await
                .map_err(|e| Error::Task {
                    cluster: cluster.clone(),
                    reason: format!("waiting for the turn of large snapshots: {e}"),
                })?;
            tracing::debug!(cluster = %cluster, waited_ms = waited.elapsed().as_millis() as u64, "large snapshot: its turn");
            Some(turn)
        } else {
            None
        };
        let mut progress = SnapshotProgress::new(&cluster, &self.options.progress);
        for pass in [SnapshotPass::Objects, SnapshotPass::Rows] {
            let (batches, mut prepared) = tokio::sync::mpsc::channel(2);
            let producer = {
                let key = segment.key.clone();
                let copy = segment.reopen()?;
                let limits = self.options.limits.clone();
                let maker = writer.row_maker();
                let cluster = cluster.clone();
                tokio::task::spawn_blocking(move || {
                    prepare_batches(pass, &key, copy, &limits, &maker, &cluster, &batches)
                })
            };
            while let Some(batch) = prepared.recv().await {
                progress.total = 2 * batch.total;
                progress.report();
                progress.done += batch.records;
                match batch.prepared {
                    Prepared::Objects(objects) => writer.store_objects(objects).await?,
                    Prepared::Rows(rows) => writer.store_rows(rows).await?,
                }
            }
            producer.await.map_err(|e| Error::Task {
                cluster: cluster.clone(),
                reason: e.to_string(),
            })??;
            if pass == SnapshotPass::Objects {
                writer.link_snapshot().await?;
            }
        }
        progress.finish();
        Ok(())
    }

    async fn apply_diff(
        &self,
        writer: &mut AccountWriter<'_>,
        segment: &Fetched_,
    ) -> Result<(), Error> {
        let cluster = segment.cluster.clone();
        debug_assert_eq!(segment.segment_type, SegmentType::Diff);
        let mut reader = SegmentReader::new(&segment.key, segment.reopen()?, &self.options.limits)
            .map_err(|e| Error::format(&cluster, e))?;
        while let Some(record) = reader
            .next_record()
            .map_err(|e| Error::format(&cluster, e))?
        {
            writer.apply(record).await?;
        }
        writer.finish_diff().await?;
        Ok(())
    }
}

impl Fetched_ {
    /// A new reader of the segment's stored bytes, from the start.
    fn reopen(&self) -> Result<std::io::BufReader<std::fs::File>, Error> {
        self.file
            .reopen()
            .map(|file| std::io::BufReader::with_capacity(256 << 10, file))
            .map_err(|e| Error::Task {
                cluster: self.cluster.clone(),
                reason: format!("reopening the copy of {}: {e}", self.key),
            })
    }
}

/// Why a segment's copy failed.
enum CopyFailure {
    /// Reading the store or writing the temporary file failed.
    Read(String),
    /// The bytes are not the listed ones.
    Verify(format::Error),
}

/// Copies a listed segment's stored bytes into a temporary file, and checks they were the
/// listed ones.
fn copy_verified(
    mut stored: StoredBytes<impl std::io::Read>,
    label: &str,
) -> Result<tempfile::NamedTempFile, CopyFailure> {
    use std::io::Write;
    let failed = |e: std::io::Error| CopyFailure::Read(format!("reading {label}: {e}"));
    let mut file = tempfile::NamedTempFile::new().map_err(failed)?;
    let mut writer = std::io::BufWriter::with_capacity(256 << 10, &mut file);
    std::io::copy(&mut stored, &mut writer).map_err(failed)?;
    writer.flush().map_err(failed)?;
    drop(writer);
    stored.finish().map_err(CopyFailure::Verify)?;
    Ok(file)
}

/// One pass of a snapshot load on a blocking thread: decodes the records and sends them on as
/// prepared batches, until the segment ends or the receiver is gone.
fn prepare_batches(
    pass: SnapshotPass,
    key: &str,
    bytes: impl std::io::Read,
    limits: &crate::format::DecodeLimits,
    maker: &RowMaker,
    cluster: &str,
    batches: &tokio::sync::mpsc::Sender<PreparedBatch>,
) -> Result<(), Error> {
    let mut reader =
        SegmentReader::new(key, bytes, limits).map_err(|e| Error::format(cluster, e))?;
    let total = reader.header().counts.put;
    loop {
        let mut records = Vec::with_capacity(super::apply_batch());
        while records.len() < super::apply_batch() {
            match reader
                .next_record()
                .map_err(|e| Error::format(cluster, e))?
            {
                Some(record) => records.push(record),
                None => break,
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let count = records.len() as u64;
        let prepared = match pass {
            SnapshotPass::Objects => Prepared::Objects(maker.objects(records)?),
            SnapshotPass::Rows => Prepared::Rows(maker.rows(records)?),
        };
        let batch = PreparedBatch {
            records: count,
            total,
            prepared,
        };
        if batches.blocking_send(batch).is_err() {
            // The writer stopped (its error is reported there).
            return Ok(());
        }
    }
}

/// A batch of a snapshot, prepared off the async task.
struct PreparedBatch {
    /// Records in this batch.
    records: u64,
    /// Records in the snapshot.
    total: u64,
    prepared: Prepared,
}

enum Prepared {
    Objects(ObjectBatch),
    Rows(RowBatch),
}

/// The two passes of a snapshot load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapshotPass {
    /// Objects and links.
    Objects,
    /// Cache rows.
    Rows,
}

/// Reports a large snapshot's progress: to the hook when there is one, else as a log line every
/// [`super::PROGRESS_FROM_RECORDS`] records.
struct SnapshotProgress<'a> {
    cluster: &'a str,
    hook: &'a super::ProgressHook,
    done: u64,
    total: u64,
    logged: Option<u64>,
}

impl<'a> SnapshotProgress<'a> {
    fn new(cluster: &'a str, hook: &'a super::ProgressHook) -> Self {
        Self {
            cluster,
            hook,
            done: 0,
            total: 0,
            logged: None,
        }
    }

    fn large(&self) -> bool {
        self.total >= 2 * super::PROGRESS_FROM_RECORDS
    }

    fn report(&mut self) {
        if !self.large() {
            return;
        }
        match &self.hook.0 {
            Some(report) => report(self.cluster, self.done, self.total),
            None => {
                if self
                    .logged
                    .is_none_or(|logged| self.done >= logged + super::PROGRESS_FROM_RECORDS)
                {
                    tracing::info!(cluster = %self.cluster, done = self.done, total = self.total, "loading snapshot");
                    self.logged = Some(self.done);
                }
            }
        }
    }

    fn finish(&self) {
        if self.large()
            && let Some(report) = &self.hook.0
        {
            report(self.cluster, self.total, self.total);
        }
    }
}
