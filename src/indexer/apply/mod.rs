//! Applying a cluster's records to the database inside its transaction: the redacted objects in
//! `outpost_resources`, the relationship graph in `outpost_links`, and the Clouddriver rows in
//! `cats_v1_*`, rewriting only rows whose body changes.
//!
//! The graph is stored as undirected links, each with the key whose manifest declares it:
//! `owner` and `logical` links are declared by the object alone (its owner references, its
//! application and cluster); `selector` links (Service → ReplicaSet) are declared by the Service
//! but depend on the ReplicaSet's template labels; `reference` links (Ingress or StatefulSet →
//! Service) are declared by the referrer but hold only while the Service exists. A row's
//! relationships are the other ends of every link touching it. When object X changes, the rows
//! whose bodies may change are X, every key linked to X before and every key linked after — so a
//! diff of k objects touches k objects and their neighbours, never the whole account.
//!
//! A snapshot is loaded in bulk and in two passes over its records, without reading its own rows
//! back: the first replaces the account's objects with batched inserts and builds the whole graph
//! in memory ([`super::graph`]: one interned copy of each key), whose links are then inserted;
//! the second computes every row's body from the graph and writes it only where its hash differs
//! from the stored one (this agent's stored hashes are read once per type). Rows of this agent
//! that the snapshot did not produce are deleted.

mod diff;
mod rows;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use sqlx::AnyConnection;

use crate::cache::{self, CacheData, CacheOptions, Dialect, KubernetesKind};
use crate::format::segment::ObjectRef;

use super::db::{Database, Error, opt_text, text};
use super::graph::{LinkRow, Origin};

pub use diff::DiffApply;
use rows::ParserParts;
pub use rows::{ObjectBatch, ObjectMaker, RowBatch, RowMaker};
pub use snapshot::{SnapshotLoad, SnapshotRows};

/// Rows per multi-row statement and ids per `IN (...)` list.
const BATCH: usize = 400;

/// Labels or a selector, by key.
type Labels = BTreeMap<String, String>;

/// Link origins (the `origin` column).
const OWNER: Origin = Origin::Owner;
const LOGICAL: Origin = Origin::Logical;
const SELECTOR: Origin = Origin::Selector;
const REFERENCE: Origin = Origin::Reference;

/// What applying did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Records read.
    pub records: u64,
    /// Cache rows inserted or rewritten (their body changed).
    pub rows_written: u64,
    /// Cache rows whose recomputed body was unchanged (not rewritten).
    pub rows_unchanged: u64,
    /// Cache rows deleted.
    pub rows_deleted: u64,
    /// Objects left out of every table because their cache id is longer than the database's
    /// [`Dialect::max_id_length`] (Clouddriver drops such items too).
    pub objects_id_too_long: u64,
    /// Objects left out of every table because another object of the account already has
    /// their cache key as the database compares it: names that differ only in `:` and `;`
    /// (keys store `:` as `;`), or on MySQL only in case. The first seen keeps the key.
    pub objects_key_collision: u64,
    /// Selector links (Service → ReplicaSet) not stored because the Service matched more
    /// ReplicaSets than [`CacheOptions::max_selector_links`].
    pub selector_links_cut: u64,
    /// Objects left out of every table because their cache type's table name is another type's
    /// already in the account (`Widget.example.com` and `Widget.example-com`: table names keep
    /// only letters, digits and `_`; PostgreSQL folds them to lower case). The first type seen
    /// keeps the table.
    pub objects_table_collision: u64,
}

/// Why a record could not be applied (the cluster's transaction is rolled back).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Database(#[from] Error),
    #[error("cluster {cluster}: object {object} cannot be cached: {source}")]
    Manifest {
        cluster: String,
        object: String,
        #[source]
        source: cache::Error,
    },
    #[error(
        "cluster {cluster}: row {id} belongs in table {table}, which does not exist (a run creates a bounded number of new cache types' tables: the next run goes on)"
    )]
    MissingTable {
        cluster: String,
        table: String,
        id: String,
    },
    #[error("cluster {cluster}: object {object} is not valid JSON: {source}")]
    Json {
        cluster: String,
        object: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One object as stored in `outpost_resources`.
#[derive(Debug, Clone)]
struct ResourceRow {
    cache_id: String,
    cache_type: String,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    resource_version: String,
    listed: bool,
    cached: bool,
    selector: Option<String>,
    template_labels: Option<String>,
    service_refs: Option<String>,
    object: String,
}

/// A link row of `outpost_links` (diffs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Link {
    declarer: String,
    a: String,
    b: String,
    origin: Origin,
}

impl Link {
    fn row(&self) -> LinkRow<'_> {
        LinkRow {
            declarer: &self.declarer,
            a: &self.a,
            b: &self.b,
            origin: self.origin,
        }
    }
}

/// Writes one account's rows within a cluster's transaction.
pub struct AccountWriter<'c> {
    database: Database,
    conn: &'c mut AnyConnection,
    cluster: String,
    account: String,
    /// The `agent` column (already shortened for the dialect).
    agent: String,
    options: CacheOptions,
    now_ms: i64,
    /// Keys whose rows must be recomputed when the diff is done.
    dirty: BTreeSet<String>,
    /// The cache type holding each `cats_v1_*` table among the account's objects, for the diff
    /// path (read on first use).
    table_types: Option<HashMap<String, String>>,
    /// Services whose selector links must be matched anew (they were at the bound and a
    /// ReplicaSet they match came or went).
    relink: BTreeSet<String>,
    stats: ApplyStats,
}

impl<'c> AccountWriter<'c> {
    /// A writer for `account`'s rows on `conn` (inside the cluster's transaction).
    pub fn new(
        database: &Database,
        conn: &'c mut AnyConnection,
        cluster: &str,
        account: &str,
        agent: &str,
        options: &CacheOptions,
        now_ms: i64,
    ) -> Self {
        Self {
            database: database.clone(),
            conn,
            cluster: cluster.to_string(),
            account: account.to_string(),
            agent: agent.to_string(),
            options: options.clone(),
            now_ms,
            dirty: BTreeSet::new(),
            relink: BTreeSet::new(),
            table_types: None,
            stats: ApplyStats::default(),
        }
    }

    /// What was done so far.
    pub fn stats(&self) -> &ApplyStats {
        &self.stats
    }

    fn sql(&self, sql: &str) -> String {
        self.database.sql(sql)
    }

    fn error(&self, what: impl Into<String>) -> impl Fn(sqlx::Error) -> Error + '_ {
        let what = what.into();
        move |e| {
            self.database
                .query_error(format!("cluster {}: {what}", self.cluster), e)
        }
    }

    /// Forgets the account's objects and links (its cache rows stay).
    async fn clear_objects(&mut self) -> Result<(), ApplyError> {
        for table in ["outpost_resources", "outpost_links"] {
            let sql = self.sql(&format!("DELETE FROM {table} WHERE account = ?"));
            sqlx::query(&sql)
                .bind(&self.account)
                .execute(&mut *self.conn)
                .await
                .map_err(|e| {
                    self.database
                        .query_error(format!("cluster {}: clearing {table}", self.cluster), e)
                })?;
        }
        Ok(())
    }

    /// What parsing records into rows needs of this writer.
    fn parser_parts(&self) -> ParserParts {
        ParserParts {
            cluster: self.cluster.clone(),
            account: self.account.clone(),
            options: self.options.clone(),
            max_id: self.database.dialect().max_id_length(),
        }
    }

    /// The cache types of the account's cached objects.
    pub async fn cached_types(&mut self) -> Result<BTreeSet<String>, ApplyError> {
        let sql = self.sql("SELECT DISTINCT cache_type AS v FROM outpost_resources WHERE account = ? AND cached = 1");
        let types: Vec<String> = sqlx::query(&sql)
            .bind(&self.account)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(|e| {
                self.database
                    .query_error(format!("cluster {}: listing cache types", self.cluster), e)
            })?
            .iter()
            .map(|row| text(row, "v"))
            .collect::<Result<_, _>>()
            .map_err(self.error("decoding"))?;
        Ok(types.into_iter().collect())
    }

    async fn delete_rows(&mut self, table: &str, ids: &[String]) -> Result<(), ApplyError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = self.sql(&format!(
            "DELETE FROM {table} WHERE {} AND {}",
            self.database.exact_in("agent", 1),
            self.database.exact_in("id", ids.len())
        ));
        let mut query = sqlx::query(&sql);
        query = self.database.bind_exact(query, &[self.agent.as_str()]);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        query = self.database.bind_exact(query, &ids);
        let result = query
            .execute(&mut *self.conn)
            .await
            .map_err(self.error(format!("deleting from {table}")))?;
        self.stats.rows_deleted += result.rows_affected();
        Ok(())
    }

    /// Counts selector links cut for `service` (and logs them).
    fn note_cut(&mut self, service: &str, cut: usize) {
        tracing::warn!(cluster = %self.cluster, service = %service, cut, bound = self.options.max_selector_links.0, "the service's selector matches more replica sets than the bound: links to the last ones by key are not stored");
        self.stats.selector_links_cut += cut as u64;
    }

    /// Inserts or rewrites rows `(id, body_hash, body)` of one type.
    async fn upsert_rows(
        &mut self,
        type_name: &str,
        upserts: &[(String, String, String)],
    ) -> Result<(), ApplyError> {
        let tables = self.database.cache_tables(type_name)?;
        for chunk in upserts.chunks(BATCH / 4) {
            let values = vec!["(?, ?, NULL, ?, ?, ?)"; chunk.len()].join(", ");
            let upsert = match self.database.dialect() {
                // MySQL's `(id, agent)` key is case-insensitive: a row whose stored id differs
                // only in case from ours (an object renamed so) takes our exact id, so that the
                // exact delete of the old id does not remove it.
                Dialect::MySql => {
                    "ON DUPLICATE KEY UPDATE id = VALUES(id), application = VALUES(application), body_hash = VALUES(body_hash), body = VALUES(body), last_updated = VALUES(last_updated)"
                }
                _ => {
                    "ON CONFLICT (id, agent) DO UPDATE SET application = excluded.application, body_hash = excluded.body_hash, body = excluded.body, last_updated = excluded.last_updated"
                }
            };
            let sql = self.sql(&format!(
                "INSERT INTO {} (id, agent, application, body_hash, body, last_updated) VALUES {values} {upsert}",
                tables.resource
            ));
            let mut query = sqlx::query(&sql);
            for (id, hash, body) in chunk {
                query = query
                    .bind(id)
                    .bind(&self.agent)
                    .bind(hash)
                    .bind(body)
                    .bind(self.now_ms);
            }
            query
                .execute(&mut *self.conn)
                .await
                .map_err(self.error(format!("writing {}", tables.resource)))?;
            self.stats.rows_written += chunk.len() as u64;
        }
        Ok(())
    }

    async fn insert_resources(&mut self, rows: &[ResourceRow]) -> Result<(), ApplyError> {
        const COLUMNS: &str = "account, cache_id, cache_type, cluster, api_version, kind, namespace, name, uid, resource_version, listed, cached, selector, template_labels, service_refs, object";
        for chunk in rows.chunks(BATCH / 2) {
            let one = format!("({})", vec!["?"; 16].join(", "));
            let values = vec![one.as_str(); chunk.len()].join(", ");
            let updates: Vec<String> = COLUMNS
                .split(", ")
                .skip(2)
                .map(|c| match self.database.dialect() {
                    Dialect::MySql => format!("{c} = VALUES({c})"),
                    _ => format!("{c} = excluded.{c}"),
                })
                .collect();
            let upsert = match self.database.dialect() {
                Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {}", updates.join(", ")),
                _ => format!(
                    "ON CONFLICT (account, cache_id) DO UPDATE SET {}",
                    updates.join(", ")
                ),
            };
            let sql = self.sql(&format!(
                "INSERT INTO outpost_resources ({COLUMNS}) VALUES {values} {upsert}"
            ));
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query
                    .bind(&self.account)
                    .bind(&row.cache_id)
                    .bind(&row.cache_type)
                    .bind(&self.cluster)
                    .bind(&row.api_version)
                    .bind(&row.kind)
                    .bind(&row.namespace)
                    .bind(&row.name)
                    .bind(&row.uid)
                    .bind(&row.resource_version)
                    .bind(i64::from(row.listed))
                    .bind(i64::from(row.cached))
                    .bind(&row.selector)
                    .bind(&row.template_labels)
                    .bind(&row.service_refs)
                    .bind(&row.object);
            }
            query
                .execute(&mut *self.conn)
                .await
                .map_err(self.error("writing outpost_resources"))?;
        }
        Ok(())
    }

    async fn insert_links(&mut self, links: &[LinkRow<'_>]) -> Result<(), ApplyError> {
        for chunk in links.chunks(BATCH) {
            let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = self.sql(&format!(
                "INSERT INTO outpost_links (account, declarer_id, a_id, b_id, origin) VALUES {values}"
            ));
            let mut query = sqlx::query(&sql);
            for link in chunk {
                query = query
                    .bind(&self.account)
                    .bind(link.declarer)
                    .bind(link.a)
                    .bind(link.b)
                    .bind(link.origin.as_str());
            }
            query
                .execute(&mut *self.conn)
                .await
                .map_err(self.error("writing outpost_links"))?;
        }
        Ok(())
    }

    /// Removes every row of the account: its objects, links and this agent's cache rows of
    /// every type it had (eviction).
    pub async fn evict(&mut self) -> Result<(), ApplyError> {
        let mut types = self.cached_types().await?;
        types.insert("applications".into());
        types.insert("clusters".into());
        self.clear_objects().await?;
        for type_name in &types {
            let tables = self.database.cache_tables(type_name)?;
            let sql = self.sql(&format!(
                "DELETE FROM {} WHERE {}",
                tables.resource,
                self.database.exact_in("agent", 1)
            ));
            let mut query = sqlx::query(&sql);
            query = self.database.bind_exact(query, &[self.agent.as_str()]);
            let result = query
                .execute(&mut *self.conn)
                .await
                .map_err(self.error(format!("evicting from {}", tables.resource)))?;
            self.stats.rows_deleted += result.rows_affected();
        }
        Ok(())
    }
}

fn json_string<T: serde::Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

fn object_label(target: &ObjectRef) -> String {
    if target.namespace.is_empty() {
        format!("{} {}/{}", target.api_version, target.kind, target.name)
    } else {
        format!(
            "{} {}/{}/{}",
            target.api_version, target.kind, target.namespace, target.name
        )
    }
}

/// The cache key of an object reference in `account`.
pub fn key_of(target: &ObjectRef, account: &str) -> String {
    cache::infrastructure_key(
        KubernetesKind::from_manifest(&target.api_version, &target.kind).as_str(),
        account,
        &target.namespace,
        &target.name,
    )
}

/// Logs the first object of `type_name` left out because `holder` holds its table.
fn warn_table_collision(cluster: &str, table: &str, holder: &str, type_name: &str) {
    tracing::warn!(cluster = %cluster, table = %table, kept = %holder, skipped = %type_name, "two cache types have one table name: the first keeps it, the other's objects are left out of every table");
}

/// Logs an object left out because `id` (the object `name`) holds its key.
fn warn_collision(cluster: &str, id: &str, name: &str, row: &ResourceRow) {
    tracing::warn!(cluster = %cluster, kept = %id, kept_name = %name, skipped = %row.cache_id, skipped_name = %row.name, "two objects have one cache key as the database compares it: the first keeps it, the other is left out of every table");
}

/// For an application or cluster row: the hash its body would have with the stored body's
/// `cacheExpiry` instead of the fresh one.
fn same_but_expiry(data: &CacheData, stored_body: &str) -> Option<String> {
    let cache::Attributes::Logical { name, .. } = &data.attributes else {
        return None;
    };
    let value: Value = serde_json::from_str(stored_body).ok()?;
    let cache_expiry = value.pointer("/attributes/cacheExpiry")?.as_i64()?;
    let mut with_stored = data.clone();
    with_stored.attributes = cache::Attributes::Logical {
        name: name.clone(),
        cache_expiry,
    };
    Some(cache::body_hash(&with_stored.body()))
}
