//! A cluster's row in `outpost_clusters`: the checkpoint (epoch and seq applied, head version),
//! its lifecycle state, identity and counts — everything the stateless indexer knows about it.

use std::fmt;
use std::str::FromStr;

use sqlx::{AnyConnection, Row};

use crate::cache::Dialect;

use super::db::{Database, Error, opt_text, placeholders, text};

/// Where a cluster is in its lifecycle (see [`super::lifecycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClusterState {
    /// Heartbeat recent: rows current.
    Active,
    /// Heartbeat older than the stale grace: rows kept, flagged.
    Stale,
    /// Heartbeat older than the eviction grace, or decommissioned: rows removed.
    Evicted,
    /// Its identity differs from the pinned one, or the claim policy refuses its account: rows
    /// untouched (none written) until an operator allows it.
    Refused,
}

impl ClusterState {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Active => "ACTIVE",
            ClusterState::Stale => "STALE",
            ClusterState::Evicted => "EVICTED",
            ClusterState::Refused => "REFUSED",
        }
    }
}

impl fmt::Display for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClusterState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ACTIVE" => Ok(ClusterState::Active),
            "STALE" => Ok(ClusterState::Stale),
            "EVICTED" => Ok(ClusterState::Evicted),
            "REFUSED" => Ok(ClusterState::Refused),
            other => Err(format!("unknown cluster state {other:?}")),
        }
    }
}

/// One `outpost_clusters` row. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    pub cluster: String,
    /// The Spinnaker account its rows belong to.
    pub account: String,
    pub state: ClusterState,
    /// The checkpoint: the last epoch and seq whose records are committed, and the seq of the
    /// snapshot they started from.
    pub epoch: Option<String>,
    pub seq: Option<i64>,
    pub snapshot_seq: Option<i64>,
    /// The sha256 of the stored bytes of segment `seq` (NULL in rows written before it was
    /// kept: such a checkpoint is trusted once, see [`crate::format::Checkpoint`]).
    pub sha256: Option<String>,
    /// The version (ETag) of the `head.json` last applied, for conditional GETs.
    pub head_version: Option<String>,
    /// The head as last read (may be ahead of the checkpoint when applying failed).
    pub head_epoch: Option<String>,
    pub head_seq: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub head_updated_at: Option<i64>,
    /// When the checkpoint last moved, and how far behind the head's last change it was then.
    pub applied_at: Option<i64>,
    pub lag_ms: Option<i64>,
    pub objects: i64,
    /// JSON: objects per kind, as the head says.
    pub kinds: Option<String>,
    /// JSON: the cluster's identity.json as last read.
    pub identity: Option<String>,
    /// The pinned identity: a cluster presenting another kube-system UID or CA is refused.
    pub kube_system_uid: Option<String>,
    pub ca_fingerprint: Option<String>,
    /// JSON: kinds the agent could not read.
    pub forbidden_kinds: Option<String>,
    /// JSON: permissions the cluster asks for its account.
    pub permissions: Option<String>,
    /// JSON: what the claim policy granted (for the account registration step).
    pub policy_grant: Option<String>,
    /// The last error indexing this cluster, cleared by the next success.
    pub error: Option<String>,
    pub updated_at: i64,
}

impl ClusterRecord {
    /// The checkpoint as the segment choice reads it: whole, or none when the epoch or seq is
    /// missing or not valid (then the state is reloaded).
    pub fn checkpoint(&self) -> Option<crate::format::Checkpoint> {
        Some(crate::format::Checkpoint {
            epoch: crate::format::Epoch::new(self.epoch.as_deref()?).ok()?,
            seq: super::db::count_from_i64(self.seq?),
            sha256: self.sha256.clone(),
        })
    }

    /// A cluster seen for the first time.
    pub fn new(cluster: &str, account: &str, now_ms: i64) -> Self {
        Self {
            cluster: cluster.to_string(),
            account: account.to_string(),
            state: ClusterState::Active,
            epoch: None,
            seq: None,
            snapshot_seq: None,
            sha256: None,
            head_version: None,
            head_epoch: None,
            head_seq: None,
            heartbeat_at: None,
            head_updated_at: None,
            applied_at: None,
            lag_ms: None,
            objects: 0,
            kinds: None,
            identity: None,
            kube_system_uid: None,
            ca_fingerprint: None,
            forbidden_kinds: None,
            permissions: None,
            policy_grant: None,
            error: None,
            updated_at: now_ms,
        }
    }
}

const COLUMNS: &str = "cluster, account, state, epoch, seq, snapshot_seq, sha256, head_version, head_epoch, head_seq, heartbeat_at, head_updated_at, applied_at, lag_ms, objects, kinds, identity, kube_system_uid, ca_fingerprint, forbidden_kinds, permissions, policy_grant, error, updated_at";

fn from_row(database: &Database, row: &sqlx::any::AnyRow) -> Result<ClusterRecord, Error> {
    let get = |e: sqlx::Error| database.query_error("reading outpost_clusters", e);
    let state: String = text(row, "state").map_err(get)?;
    Ok(ClusterRecord {
        cluster: text(row, "cluster").map_err(get)?,
        account: text(row, "account").map_err(get)?,
        state: state.parse().map_err(|reason: String| Error::Query {
            url: database.url().to_string(),
            what: "reading outpost_clusters".into(),
            source: sqlx::Error::Decode(reason.into()),
        })?,
        epoch: opt_text(row, "epoch").map_err(get)?,
        seq: row.try_get("seq").map_err(get)?,
        snapshot_seq: row.try_get("snapshot_seq").map_err(get)?,
        sha256: opt_text(row, "sha256").map_err(get)?,
        head_version: opt_text(row, "head_version").map_err(get)?,
        head_epoch: opt_text(row, "head_epoch").map_err(get)?,
        head_seq: row.try_get("head_seq").map_err(get)?,
        heartbeat_at: row.try_get("heartbeat_at").map_err(get)?,
        head_updated_at: row.try_get("head_updated_at").map_err(get)?,
        applied_at: row.try_get("applied_at").map_err(get)?,
        lag_ms: row.try_get("lag_ms").map_err(get)?,
        objects: row.try_get("objects").map_err(get)?,
        kinds: opt_text(row, "kinds").map_err(get)?,
        identity: opt_text(row, "identity").map_err(get)?,
        kube_system_uid: opt_text(row, "kube_system_uid").map_err(get)?,
        ca_fingerprint: opt_text(row, "ca_fingerprint").map_err(get)?,
        forbidden_kinds: opt_text(row, "forbidden_kinds").map_err(get)?,
        permissions: opt_text(row, "permissions").map_err(get)?,
        policy_grant: opt_text(row, "policy_grant").map_err(get)?,
        error: opt_text(row, "error").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

/// Reads one cluster's row.
pub async fn load(
    database: &Database,
    conn: &mut AnyConnection,
    cluster: &str,
) -> Result<Option<ClusterRecord>, Error> {
    let sql = database.sql(&format!(
        "SELECT {COLUMNS} FROM outpost_clusters WHERE cluster = ?"
    ));
    let row = sqlx::query(&sql)
        .bind(cluster)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| database.query_error(format!("reading cluster {cluster}"), e))?;
    row.map(|row| from_row(database, &row)).transpose()
}

/// Every cluster's row, by name.
pub async fn load_all(database: &Database) -> Result<Vec<ClusterRecord>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM outpost_clusters ORDER BY cluster");
    let rows = sqlx::query(&sql)
        .fetch_all(database.pool())
        .await
        .map_err(|e| database.query_error("reading outpost_clusters", e))?;
    rows.iter().map(|row| from_row(database, row)).collect()
}

/// Inserts or replaces one cluster's row.
pub async fn save(
    database: &Database,
    conn: &mut AnyConnection,
    record: &ClusterRecord,
) -> Result<(), Error> {
    let columns: Vec<&str> = COLUMNS.split(", ").collect();
    let values = vec!["?"; columns.len()].join(", ");
    let updates: Vec<String> = columns[1..]
        .iter()
        .map(|c| match database.dialect() {
            Dialect::MySql => format!("{c} = VALUES({c})"),
            _ => format!("{c} = excluded.{c}"),
        })
        .collect();
    let upsert = match database.dialect() {
        Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {}", updates.join(", ")),
        _ => format!("ON CONFLICT (cluster) DO UPDATE SET {}", updates.join(", ")),
    };
    let sql = placeholders(
        database.dialect(),
        &format!("INSERT INTO outpost_clusters ({COLUMNS}) VALUES ({values}) {upsert}"),
    );
    sqlx::query(&sql)
        .bind(&record.cluster)
        .bind(&record.account)
        .bind(record.state.as_str())
        .bind(&record.epoch)
        .bind(record.seq)
        .bind(record.snapshot_seq)
        .bind(&record.sha256)
        .bind(&record.head_version)
        .bind(&record.head_epoch)
        .bind(record.head_seq)
        .bind(record.heartbeat_at)
        .bind(record.head_updated_at)
        .bind(record.applied_at)
        .bind(record.lag_ms)
        .bind(record.objects)
        .bind(&record.kinds)
        .bind(&record.identity)
        .bind(&record.kube_system_uid)
        .bind(&record.ca_fingerprint)
        .bind(&record.forbidden_kinds)
        .bind(&record.permissions)
        .bind(&record.policy_grant)
        .bind(&record.error)
        .bind(record.updated_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| database.query_error(format!("saving cluster {}", record.cluster), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in [
            ClusterState::Active,
            ClusterState::Stale,
            ClusterState::Evicted,
            ClusterState::Refused,
        ] {
            assert_eq!(state.as_str().parse::<ClusterState>(), Ok(state));
        }
        assert!("GONE".parse::<ClusterState>().is_err());
    }
}
