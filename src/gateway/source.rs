//! What the gateway reads from the indexer's tables: which cluster holds an account (and what
//! its agent reported), and that cluster's objects as the indexer last applied them.

use serde_json::Value;

use super::query::Position;
use crate::format::Identity;
use crate::indexer::Database;
use crate::indexer::db::{Error, opt_text, text};

/// An indexed cluster as the gateway serves it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster: String,
    /// `ACTIVE` or `STALE` (evicted and refused clusters are not served).
    pub state: String,
    pub identity: Option<Identity>,
    /// When the agent last changed its head (ms since the epoch): how old the answers are.
    pub head_updated_ms: Option<i64>,
    /// The position applied, as list `resourceVersion`s carry it.
    pub position: String,
}

/// One object of a list.
#[derive(Debug, Clone)]
pub struct Listed {
    pub position: Position,
    pub object: Value,
}

/// Reads the indexer's tables.
#[derive(Debug, Clone)]
pub struct Source {
    database: Database,
}

impl Source {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The cluster that holds `account`, if it is served (neither evicted nor refused).
    pub async fn cluster(&self, account: &str) -> Result<Option<ClusterView>, Error> {
        let what = format!("reading the cluster of account {account}");
        let db = &self.database;
        let row = sqlx::query(&db.sql(
            "SELECT c.cluster AS cluster, c.state AS state, c.identity AS identity, c.head_updated_at AS head_updated_at, c.epoch AS epoch, c.seq AS seq FROM outpost_accounts a JOIN outpost_clusters c ON c.cluster = a.cluster WHERE a.account = ? AND c.account = ? AND c.state IN ('ACTIVE', 'STALE')",
        ))
        .bind(account)
        .bind(account)
        .fetch_optional(db.pool())
        .await
        .map_err(|e| db.query_error(what.clone(), e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let read = |e| db.query_error(what.clone(), e);
        let identity = opt_text(&row, "identity")
            .map_err(read)?
            .and_then(|json| serde_json::from_str::<Identity>(&json).ok());
        let head_updated_ms: Option<i64> =
            sqlx::Row::try_get(&row, "head_updated_at").map_err(read)?;
        let seq: Option<i64> = sqlx::Row::try_get(&row, "seq").map_err(read)?;
        let epoch = opt_text(&row, "epoch").map_err(read)?;
        Ok(Some(ClusterView {
            cluster: text(&row, "cluster").map_err(read)?,
            state: text(&row, "state").map_err(read)?,
            identity,
            head_updated_ms,
            position: match (epoch, seq) {
                (Some(epoch), Some(seq)) => format!("{epoch}.{seq}"),
                _ => "0".into(),
            },
        }))
    }

    /// One object of `account`, if the cluster has it.
    pub async fn object(
        &self,
        account: &str,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let what = format!("reading {kind} {namespace}/{name} of account {account}");
        let db = &self.database;
        let row = sqlx::query(&db.sql(
            "SELECT object FROM outpost_resources WHERE account = ? AND namespace = ? AND api_version = ? AND kind = ? AND name = ?",
        ))
        .bind(account)
        .bind(namespace)
        .bind(api_version)
        .bind(kind)
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(|e| db.query_error(what.clone(), e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let object = text(&row, "object").map_err(|e| db.query_error(what, e))?;
        Ok(serde_json::from_str(&object).ok())
    }

    /// Up to `batch` objects of `kind` in `namespace` (every namespace: `None`), in (namespace,
    /// name) order, after `after`.
    pub async fn list(
        &self,
        account: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        after: Option<&Position>,
        batch: usize,
    ) -> Result<Vec<Listed>, Error> {
        let what = format!(
            "listing {kind} in {} of account {account}",
            namespace.unwrap_or("every namespace")
        );
        let db = &self.database;
        let mut sql = String::from(
            "SELECT namespace, name, object FROM outpost_resources WHERE account = ? AND api_version = ? AND kind = ?",
        );
        if namespace.is_some() {
            sql.push_str(" AND namespace = ?");
        }
        if after.is_some() {
            // `namespace >= ?` repeats what the rest implies so that an index on the namespace
            // can start at the page's first namespace instead of the account's.
            sql.push_str(" AND namespace >= ? AND (namespace > ? OR (namespace = ? AND name > ?))");
        }
        sql.push_str(&format!(" ORDER BY namespace, name LIMIT {batch}"));
        let sql = db.sql(&sql);
        let mut query = sqlx::query(&sql).bind(account).bind(api_version).bind(kind);
        if let Some(namespace) = namespace {
            query = query.bind(namespace);
        }
        if let Some(after) = after {
            query = query
                .bind(after.namespace.as_str())
                .bind(after.namespace.as_str())
                .bind(after.namespace.as_str())
                .bind(after.name.as_str());
        }
        let rows = query
            .fetch_all(db.pool())
            .await
            .map_err(|e| db.query_error(what.clone(), e))?;
        let mut listed = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = |e| db.query_error(what.clone(), e);
            let position = Position {
                namespace: text(row, "namespace").map_err(read)?,
                name: text(row, "name").map_err(read)?,
            };
            let object = text(row, "object").map_err(read)?;
            // An object the indexer stored is JSON it parsed; one that is not is skipped
            // rather than failing the whole list.
            match serde_json::from_str(&object) {
                Ok(object) => listed.push(Listed { position, object }),
                Err(error) => {
                    tracing::warn!(%account, %kind, namespace = %position.namespace, name = %position.name, %error, "a stored object is not JSON: left out")
                }
            }
        }
        Ok(listed)
    }
}
