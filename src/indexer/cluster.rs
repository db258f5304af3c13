//! One cluster's run, in four steps with a typed value between each: [`Indexer::plan`] reads
//! the cluster's row, its head and its identity and decides what to do ([`Planned`]);
//! [`Indexer::fetch`] downloads and verifies the segments that plan names ([`Fetched`]);
//! [`Indexer::apply`] writes their rows inside the cluster's transaction; [`Indexer::record`]
//! moves the checkpoint in that same transaction and commits. Eviction and ageing, the outcomes
//! that apply no segment, are here too.

use chrono::{DateTime, Utc};

use crate::format::{self, ClusterName, Head, Identity, Plan, SegmentType};
use crate::store::{self, Version};

use super::accounts;
use super::apply::{AccountWriter, ApplyStats};
use super::checkpoint::{self, Applied, ClusterRecord, ClusterState, HeadSeen};
use super::db::ClusterTransaction;
use super::fetch::FetchedSegment;
use super::lifecycle::{check_heartbeat, state_for};
use super::policy::Grant;
use super::registration::{self, Registration};
use super::run::{Outcome, ms};
use super::{Error, Indexer};

/// A step's result: the value the next step needs, or the cluster's outcome already.
enum Step<T> {
    Next(T),
    Done(Outcome),
}

/// What a cluster's run is to do, decided from its row and its head before any segment is read.
struct Planned {
    /// The cluster's row as it was read; the transaction checks it still is.
    record: ClusterRecord,
    head: Head,
    version: Version,
    identity: Option<Identity>,
    /// What the claim policy granted.
    grant: Grant,
    /// The Spinnaker account of the grant ([`super::IndexOptions::account_of`]): the one its
    /// rows are written to and, with a template, registered.
    account: String,
    /// Its state by the head's heartbeat.
    state: ClusterState,
    /// The segments to read (never [`Plan::Rewound`]).
    plan: Plan,
    /// The chain fault the plan recovers from, if any.
    fault: Option<String>,
}

/// Why the cluster's transaction applies nothing after all.
enum Declined {
    /// Another indexer moved the checkpoint meanwhile.
    Raced,
    /// Another cluster holds the account (the reason says which).
    AccountTaken(String),
    /// Clouddriver has an account of that name that Outpost did not register for this cluster.
    AccountExists { account: String, reason: String },
}

/// The verified segments a plan names, ready to apply: the snapshot when the plan reloads the
/// account, then the diffs in chain order.
struct Fetched {
    snapshot: Option<FetchedSegment>,
    diffs: Vec<FetchedSegment>,
}

impl Fetched {
    fn len(&self) -> usize {
        usize::from(self.snapshot.is_some()) + self.diffs.len()
    }

    fn iter(&self) -> impl Iterator<Item = &FetchedSegment> {
        self.snapshot.iter().chain(&self.diffs)
    }
}

impl Indexer {
    /// Indexes one cluster: plan, fetch, apply, record.
    pub async fn index_cluster(&self, cluster: &ClusterName) -> Result<Outcome, Error> {
        let now = Utc::now();
        let planned = match self.plan(cluster, now).await? {
            Step::Next(planned) => planned,
            Step::Done(outcome) => return Ok(outcome),
        };
        let fetched = self.fetch(cluster, &planned).await?;
        let mut tx = self.database.begin_cluster(cluster.as_str()).await?;
        let stats = match self
            .apply(&mut tx, cluster, &planned, &fetched, now)
            .await?
        {
            Ok(stats) => stats,
            Err(declined) => {
                tx.rollback().await?;
                return self.declined(planned, declined, now).await;
            }
        };
        self.record(tx, planned, &fetched, stats, now).await
    }

    /// The outcome of a transaction that applied nothing (rolled back): a refused cluster's row
    /// says why.
    async fn declined(
        &self,
        planned: Planned,
        declined: Declined,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        match declined {
            Declined::Raced => Ok(Outcome::Raced),
            Declined::AccountTaken(reason) => self.refuse(planned.record, reason, now).await,
            Declined::AccountExists { account, reason } => {
                let mut conn = self.database.connection("connecting").await?;
                registration::record(
                    &self.database,
                    &mut conn,
                    &account,
                    planned.record.cluster.as_str(),
                    &Registration::Conflict(reason.clone()),
                    ms(now),
                )
                .await?;
                drop(conn);
                self.refuse(planned.record, reason, now).await
            }
        }
    }

    /// Reads the cluster's row, `decommissioned.json`, the head (conditionally) and the
    /// identity, and decides: evict, age, refuse, or which segments to read.
    async fn plan(
        &self,
        cluster: &ClusterName,
        now: DateTime<Utc>,
    ) -> Result<Step<Planned>, Error> {
        let name = cluster.as_str();
        let record = self.load_record(name).await?;
        let layout = self.store.layout();

        if self.decommissioned(cluster).await? {
            return self
                .evict(
                    cluster,
                    record,
                    now,
                    "decommissioned.json is present".into(),
                )
                .await
                .map(Step::Done);
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
            store::Fetched::Missing => {
                return match record {
                    Some(record) => self.age(cluster, record, now).await.map(Step::Done),
                    None => Ok(Step::Done(Outcome::NothingShipped)),
                };
            }
            store::Fetched::Unchanged => {
                // Same head as last time: only the clock moved.
                let Some(record) = record else {
                    return Ok(Step::Done(Outcome::Unchanged {
                        state: ClusterState::Active,
                    }));
                };
                return self.age(cluster, record, now).await.map(Step::Done);
            }
            store::Fetched::Changed(bytes, version) => {
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
            return self.refuse(record, reason, now).await.map(Step::Done);
        }
        let grant = self.options.policy.grant(name, &requested);
        let account = match self.options.account_of(&grant.account) {
            Ok(account) => account,
            Err(e) => {
                return self
                    .refuse(record, e.to_string(), now)
                    .await
                    .map(Step::Done);
            }
        };

        // Lifecycle by heartbeat.
        let state = state_for(
            ms(now),
            Some(ms(head.heartbeat_at)),
            false,
            &self.options.graces,
        );
        if state == ClusterState::Evicted {
            let reason = format!(
                "silent since {} (eviction grace {:?})",
                head.heartbeat_at, self.options.graces.evict_after
            );
            return self
                .evict(cluster, Some(record), now, reason)
                .await
                .map(Step::Done);
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
        if let Plan::Rewound { .. } = plan {
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
        Ok(Step::Next(Planned {
            record,
            head,
            version,
            identity,
            grant,
            account,
            state,
            plan,
            fault,
        }))
    }

    /// Marks the cluster REFUSED for `reason` (outside any transaction: nothing is applied).
    async fn refuse(
        &self,
        mut record: ClusterRecord,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        record.state = ClusterState::Refused;
        record.error = Some(reason.clone());
        record.updated_at = ms(now);
        self.save_outside(&record).await?;
        Ok(Outcome::Refused { reason })
    }

    /// Downloads and verifies every segment the plan names before anything is applied, and
    /// makes sure the tables of the cache types their records touch exist.
    async fn fetch(&self, cluster: &ClusterName, planned: &Planned) -> Result<Fetched, Error> {
        let name = cluster.as_str();
        let head = &planned.head;
        let mut fetched = Fetched {
            snapshot: None,
            diffs: Vec::new(),
        };
        if let Some(first) = planned.plan.first() {
            for listed in head.segments().skip(first) {
                let segment = self.fetch_verified(cluster, head, &listed).await?;
                match listed.segment_type {
                    SegmentType::Snapshot => fetched.snapshot = Some(segment),
                    SegmentType::Diff => fetched.diffs.push(segment),
                }
            }
        }
        let mut types: std::collections::BTreeSet<String> = fetched
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
        Ok(fetched)
    }

    /// Inside the cluster's transaction: checks that no other run moved the checkpoint, takes
    /// the account (giving up the one it held before, emptied), and writes the segments' rows.
    /// When it declines, the transaction is to be rolled back.
    async fn apply(
        &self,
        tx: &mut ClusterTransaction,
        cluster: &ClusterName,
        planned: &Planned,
        fetched: &Fetched,
        now: DateTime<Utc>,
    ) -> Result<Result<ApplyStats, Declined>, Error> {
        let name = cluster.as_str();
        let account = planned.account.as_str();
        let current = checkpoint::load(&self.database, tx.conn(), name).await?;
        if current.as_ref().and_then(ClusterRecord::checkpoint) != planned.record.checkpoint() {
            return Ok(Err(Declined::Raced));
        }
        // The account: locked, free or already this cluster's. An account this cluster held
        // before and asks for no longer is emptied and given up in the same transaction, so
        // that moving never leaves rows behind in the old one.
        let previous = current
            .as_ref()
            .map(|c| c.account.clone())
            .filter(|previous| previous != account);
        let mut locked = vec![account];
        locked.extend(previous.as_deref());
        tx.lock_accounts(&locked).await?;
        if let Some(other) = accounts::holder(&self.database, tx.conn(), account)
            .await?
            .filter(|holder| holder != name)
        {
            return Ok(Err(Declined::AccountTaken(format!(
                "account {account} is already claimed by cluster {other}"
            ))));
        }
        if let Some(reason) =
            registration::conflict(&self.database, tx.conn(), name, account).await?
        {
            return Ok(Err(Declined::AccountExists {
                account: account.to_string(),
                reason,
            }));
        }
        let agent = self.agent_of(name, account)?;
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
            registration::unregister(&self.database, tx.conn(), name, previous, ms(now)).await?;
            tracing::info!(cluster = %name, from = %previous, to = %account, rows_deleted = deleted, "the cluster moved to another account: the old one's rows are removed");
        }
        accounts::claim(&self.database, tx.conn(), account, name, ms(now)).await?;
        let database = self.database.clone();
        let mut writer = AccountWriter::new(
            &database,
            tx.conn(),
            name,
            account,
            &agent,
            &self.options.cache,
            ms(now),
        );
        if let Some(snapshot) = &fetched.snapshot {
            let previous = writer.cached_types().await?;
            self.load_snapshot(&mut writer, snapshot, &previous).await?;
        }
        for diff in &fetched.diffs {
            self.apply_diff(&mut writer, diff).await?;
        }
        let stats = writer.stats().clone();
        self.register(tx, name, planned, now).await?;
        Ok(Ok(stats))
    }

    /// Registers the cluster's account from the template, after its rows are written and in
    /// their transaction: only an ACTIVE cluster with its identity pinned (a STALE one changes
    /// nothing, so a flapping heartbeat never makes Clouddriver rebuild the account).
    async fn register(
        &self,
        tx: &mut ClusterTransaction,
        cluster: &str,
        planned: &Planned,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let Some(template) = &self.options.accounts else {
            return Ok(());
        };
        if planned.state != ClusterState::Active {
            return Ok(());
        }
        let account = planned.account.as_str();
        let outcome = if planned.identity.is_none() {
            Registration::Pending(format!(
                "{} is missing: the cluster's identity is pinned before it becomes an account",
                self.store.layout().identity(&planned.head.cluster)
            ))
        } else {
            let namespaces =
                registration::reported_namespaces(&self.database, tx.conn(), account).await?;
            if namespaces.len() > registration::MAX_NAMESPACES {
                Registration::Refused(format!(
                    "the cluster reports more than {} namespaces, more than an account definition lists",
                    registration::MAX_NAMESPACES
                ))
            } else {
                match template.definition(&planned.grant.account, &namespaces) {
                    Ok(definition) => {
                        registration::register(
                            &self.database,
                            tx.conn(),
                            cluster,
                            &definition,
                            ms(now),
                        )
                        .await?
                    }
                    Err(e) => Registration::Refused(e.to_string()),
                }
            }
        };
        if matches!(outcome, Registration::Pending(_) | Registration::Refused(_)) {
            registration::record(
                &self.database,
                tx.conn(),
                account,
                cluster,
                &outcome,
                ms(now),
            )
            .await?;
        }
        Ok(())
    }

    /// Moves the checkpoint to the head just applied, with what the head and the identity say,
    /// and commits the transaction: rows and checkpoint together.
    async fn record(
        &self,
        mut tx: ClusterTransaction,
        planned: Planned,
        fetched: &Fetched,
        stats: ApplyStats,
        now: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        let snapshot = fetched.snapshot.is_some();
        let segments = fetched.len();
        let state = planned.state;
        let fault = planned.fault.clone();
        let record = applied_record(planned, segments > 0, ms(now));
        checkpoint::save(&self.database, tx.conn(), &record).await?;
        tx.commit().await?;
        Ok(Outcome::Applied {
            fault,
            snapshot,
            segments,
            stats,
            state,
        })
    }

    /// Whether the cluster's `decommissioned.json` is present.
    async fn decommissioned(&self, cluster: &ClusterName) -> Result<bool, Error> {
        let key = self.store.layout().decommissioned(cluster);
        match self.store.get(&key).await {
            Ok(_) => Ok(true),
            Err(store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(cluster.as_str(), e)),
        }
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
    pub(super) async fn evict(
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
            // The account row last, in the rows' transaction: an account without rows is
            // harmless, rows without an account are listed but cannot be opened.
            registration::unregister(&self.database, tx.conn(), name, &record.account, ms(now))
                .await?;
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
}

/// The cluster's row once `planned` is applied (`applied_segments`: whether any segment was):
/// the checkpoint at the head's tip, the head as read, what the identity says, and the fault the
/// plan recovered from, which stays visible in `outpost status` until the chain moves on.
fn applied_record(planned: Planned, applied_segments: bool, now_ms: i64) -> ClusterRecord {
    let Planned {
        mut record,
        head,
        version,
        identity,
        grant,
        account,
        state,
        fault,
        ..
    } = planned;
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
    if applied_segments {
        record.applied_at = Some(now_ms);
        record.lag_ms = Some((now_ms - ms(head.updated_at)).max(0));
    }
    record.objects = super::db::count_to_i64(head.objects);
    record.kinds = Some(head.kinds);
    if let Some(identity) = identity {
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
        record.identity = Some(identity);
    }
    record.policy_grant = Some(grant);
    record.error = fault;
    record.updated_at = now_ms;
    record
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::format::{Epoch, SegmentRef};

    fn planned(identity: Option<Identity>, fault: Option<String>) -> Planned {
        let cluster = ClusterName::new("eu-1").unwrap();
        let epoch = Epoch::from_parts(1_700_000_000_000, 7).unwrap();
        let at = |seq: u64| SegmentRef {
            seq,
            key: format!("k/{seq}"),
            sha256: format!("{seq:x}").repeat(64)[..64].to_string(),
            bytes: 10,
        };
        let updated = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
        let mut head = Head::new(
            cluster,
            epoch,
            at(3),
            updated,
            12,
            BTreeMap::from([("Pod".to_string(), 12)]),
        );
        head.push_diff(at(4), updated, 12, BTreeMap::new()).unwrap();
        let mut record = ClusterRecord::new("eu-1", "old-account", 0);
        record.kube_system_uid = Some("pinned-uid".into());
        record.error = Some("an earlier fault".into());
        Planned {
            record,
            head,
            version: Version {
                e_tag: Some("etag".into()),
                version: None,
            },
            identity,
            grant: Grant {
                account: "eu-1".into(),
                by: "own name".into(),
            },
            account: "eu-1".into(),
            state: ClusterState::Stale,
            plan: Plan::Resume { from: 1 },
            fault,
        }
    }

    #[test]
    fn the_applied_record_holds_the_head_tip_as_its_checkpoint() {
        let record = applied_record(planned(None, None), true, 1_800_000_060_000);
        let applied = record.applied.as_ref().unwrap();
        assert_eq!(applied.checkpoint.seq, 4);
        assert_eq!(
            applied.checkpoint.sha256.as_deref(),
            Some(&"4".repeat(64)[..])
        );
        assert_eq!(applied.snapshot_seq, Some(3));
        let head = record.head.as_ref().unwrap();
        assert_eq!((head.seq, head.updated_at), (4, 1_800_000_000_000));
        assert_eq!(record.account, "eu-1");
        assert_eq!(record.state, ClusterState::Stale);
        assert_eq!(record.lag_ms, Some(60_000));
        assert_eq!(record.applied_at, Some(1_800_000_060_000));
        assert_eq!(record.error, None, "a success clears the last fault");
        assert_eq!(record.objects, 12);
        assert_eq!(record.head_version.unwrap().e_tag.as_deref(), Some("etag"));
        assert_eq!(record.kube_system_uid.as_deref(), Some("pinned-uid"));
    }

    #[test]
    fn a_head_with_nothing_new_moves_the_checkpoint_but_not_the_applied_time() {
        let record = applied_record(planned(None, None), false, 1_800_000_060_000);
        assert_eq!(record.applied_at, None);
        assert_eq!(record.lag_ms, None);
        assert_eq!(record.checkpoint().map(|c| c.seq), Some(4));
    }

    #[test]
    fn the_identity_pins_what_it_names_and_a_recovered_fault_stays_visible() {
        let mut identity = Identity::new(ClusterName::new("eu-1").unwrap(), Utc::now());
        identity.ca_fingerprint = Some("ca".into());
        let fault = Some("rewritten chain".to_string());
        let record = applied_record(planned(Some(identity.clone()), fault.clone()), true, 0);
        assert_eq!(record.ca_fingerprint.as_deref(), Some("ca"));
        assert_eq!(
            record.kube_system_uid.as_deref(),
            Some("pinned-uid"),
            "an identity without a UID keeps the pinned one"
        );
        assert_eq!(record.identity, Some(identity));
        assert_eq!(record.error, fault);
    }
}
