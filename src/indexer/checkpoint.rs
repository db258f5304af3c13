//! A cluster's row in `outpost_clusters`: what its rows hold of its chain, the head last applied,
//! its lifecycle state, identity and counts — everything the stateless indexer knows about it.
//! This module is the only one that maps the row to SQL.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sqlx::{AnyConnection, Row};

use crate::cache::Dialect;
use crate::format::documents::ForbiddenKind;
use crate::format::{Checkpoint, Epoch, Identity};
use crate::store::Version;

use super::db::{Database, Error, count_from_i64, count_to_i64, opt_text, placeholders, text};
use super::policy::Grant;

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

/// What a cluster's rows hold of its chain: set whole by the transaction that applies
/// segments, cleared whole by the one that removes the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The epoch, seq and sha256 of the last segment applied.
    pub checkpoint: Checkpoint,
    /// The seq of the snapshot the rows were loaded from (`None` only in a row that lacks it).
    pub snapshot_seq: Option<u64>,
}

/// The head last applied, as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSeen {
    pub epoch: Epoch,
    pub seq: u64,
    /// Its `heartbeat_at` and `updated_at`.
    pub heartbeat_at: i64,
    pub updated_at: i64,
}

/// One `outpost_clusters` row. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    pub cluster: String,
    /// The Spinnaker account its rows belong to.
    pub account: String,
    pub state: ClusterState,
    /// What its rows hold; `None` before the first load and once they are removed.
    pub applied: Option<Applied>,
    /// The version (ETag) of the `head.json` last applied, for conditional GETs.
    pub head_version: Option<Version>,
    /// The head last applied; kept when the rows are removed, so that a silent cluster ages by
    /// its last heartbeat.
    pub head: Option<HeadSeen>,
    /// When the checkpoint last moved, and how far behind the head's last change it was then.
    pub applied_at: Option<i64>,
    pub lag_ms: Option<i64>,
    pub objects: i64,
    /// Objects per kind, as the head says.
    pub kinds: Option<BTreeMap<String, u64>>,
    /// The cluster's identity.json as last read.
    pub identity: Option<Identity>,
    /// The pinned identity: a cluster presenting another kube-system UID or CA is refused.
    pub kube_system_uid: Option<String>,
    pub ca_fingerprint: Option<String>,
    /// Kinds the agent could not read.
    pub forbidden_kinds: Option<Vec<ForbiddenKind>>,
    /// Permissions the cluster asks for its account.
    pub permissions: Option<BTreeMap<String, Vec<String>>>,
    /// What the claim policy granted (for the account registration step).
    pub policy_grant: Option<Grant>,
    /// The last error indexing this cluster, cleared by the next success.
    pub error: Option<String>,
    pub updated_at: i64,
}

impl ClusterRecord {
    /// The checkpoint as the segment choice reads it.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.applied.as_ref().map(|applied| &applied.checkpoint)
    }

    /// The last heartbeat applied, if any.
    pub fn heartbeat_at(&self) -> Option<i64> {
        self.head.as_ref().map(|head| head.heartbeat_at)
    }

    /// A cluster seen for the first time.
    pub fn new(cluster: &str, account: &str, now_ms: i64) -> Self {
        Self {
            cluster: cluster.to_string(),
            account: account.to_string(),
            state: ClusterState::Active,
            applied: None,
            head_version: None,
            head: None,
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
    let epoch = |column| -> Result<Option<Epoch>, Error> {
        Ok(opt_text(row, column)
            .map_err(get)?
            .and_then(|text| Epoch::new(&text).ok()))
    };
    let count = |column| -> Result<Option<u64>, Error> {
        let stored: Option<i64> = row.try_get(column).map_err(get)?;
        Ok(stored.map(count_from_i64))
    };
    let applied = match (epoch("epoch")?, count("seq")?) {
        (Some(epoch), Some(seq)) => Some(Applied {
            checkpoint: Checkpoint {
                epoch,
                seq,
                sha256: opt_text(row, "sha256").map_err(get)?,
            },
            snapshot_seq: count("snapshot_seq")?,
        }),
        _ => None,
    };
    let heartbeat_at: Option<i64> = row.try_get("heartbeat_at").map_err(get)?;
    let head_updated_at: Option<i64> = row.try_get("head_updated_at").map_err(get)?;
    let head = match (
        epoch("head_epoch")?,
        count("head_seq")?,
        heartbeat_at,
        head_updated_at,
    ) {
        (Some(epoch), Some(seq), Some(heartbeat_at), Some(updated_at)) => Some(HeadSeen {
            epoch,
            seq,
            heartbeat_at,
            updated_at,
        }),
        _ => None,
    };
    Ok(ClusterRecord {
        cluster: text(row, "cluster").map_err(get)?,
        account: text(row, "account").map_err(get)?,
        state: state.parse().map_err(|reason: String| Error::Query {
            url: database.url().to_string(),
            what: "reading outpost_clusters".into(),
            source: sqlx::Error::Decode(reason.into()),
        })?,
        applied,
        head_version: opt_text(row, "head_version")
            .map_err(get)?
            .as_deref()
            .and_then(version_of),
        head,
        applied_at: row.try_get("applied_at").map_err(get)?,
        lag_ms: row.try_get("lag_ms").map_err(get)?,
        objects: row.try_get("objects").map_err(get)?,
        kinds: json_of(opt_text(row, "kinds").map_err(get)?),
        identity: json_of(opt_text(row, "identity").map_err(get)?),
        kube_system_uid: opt_text(row, "kube_system_uid").map_err(get)?,
        ca_fingerprint: opt_text(row, "ca_fingerprint").map_err(get)?,
        forbidden_kinds: json_of(opt_text(row, "forbidden_kinds").map_err(get)?),
        permissions: json_of(opt_text(row, "permissions").map_err(get)?),
        policy_grant: json_of(opt_text(row, "policy_grant").map_err(get)?),
        error: opt_text(row, "error").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

/// A JSON column's value; text that is not the expected JSON reads as absent (the next
/// successful run writes it anew).
fn json_of<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    serde_json::from_str(&text?).ok()
}

/// A value as its JSON column holds it.
fn json_text<T: serde::Serialize>(value: Option<&T>) -> Option<String> {
    serde_json::to_string(value?).ok()
}

/// The `head_version` column: the store's opaque version as JSON.
fn version_text(version: &Version) -> String {
    serde_json::json!({"e_tag": version.e_tag, "version": version.version}).to_string()
}

fn version_of(text: &str) -> Option<Version> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(Version {
        e_tag: value["e_tag"].as_str().map(str::to_string),
        version: value["version"].as_str().map(str::to_string),
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
    let applied = record.applied.as_ref();
    let head = record.head.as_ref();
    sqlx::query(&sql)
        .bind(&record.cluster)
        .bind(&record.account)
        .bind(record.state.as_str())
        .bind(applied.map(|a| a.checkpoint.epoch.to_string()))
        .bind(applied.map(|a| count_to_i64(a.checkpoint.seq)))
        .bind(applied.and_then(|a| a.snapshot_seq).map(count_to_i64))
        .bind(applied.and_then(|a| a.checkpoint.sha256.clone()))
        .bind(record.head_version.as_ref().map(version_text))
        .bind(head.map(|h| h.epoch.to_string()))
        .bind(head.map(|h| count_to_i64(h.seq)))
        .bind(head.map(|h| h.heartbeat_at))
        .bind(head.map(|h| h.updated_at))
        .bind(record.applied_at)
        .bind(record.lag_ms)
        .bind(record.objects)
        .bind(json_text(record.kinds.as_ref()))
        .bind(json_text(record.identity.as_ref()))
        .bind(&record.kube_system_uid)
        .bind(&record.ca_fingerprint)
        .bind(json_text(record.forbidden_kinds.as_ref()))
        .bind(json_text(record.permissions.as_ref()))
        .bind(json_text(record.policy_grant.as_ref()))
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
