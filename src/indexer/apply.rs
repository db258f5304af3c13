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
//! A snapshot is loaded in bulk: the account's objects and links are replaced with batched
//! inserts, partner links are computed per namespace, then every row's body is computed in
//! batches and written only where its hash differs from the stored one; rows of this agent that
//! no longer exist are deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::cache::{
    self, CacheData, CacheKey, CacheOptions, Dialect, KubernetesKind, Resource, selector_matches,
};
use crate::format::Record;
use crate::format::segment::ObjectRef;

use super::db::{Database, Error, opt_text, text};

/// Rows per multi-row statement and ids per `IN (...)` list.
const BATCH: usize = 400;

/// Labels or a selector, by key.
type Labels = BTreeMap<String, String>;

/// Link origins (the `origin` column).
const OWNER: &str = "owner";
const LOGICAL: &str = "logical";
const SELECTOR: &str = "selector";
const REFERENCE: &str = "reference";

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

/// A link row of `outpost_links`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Link {
    declarer: String,
    a: String,
    b: String,
    origin: &'static str,
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
    stats: ApplyStats,
    /// During a snapshot load: the ids that have a row, per type.
    kept: Option<BTreeMap<String, BTreeSet<String>>>,
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
            stats: ApplyStats::default(),
            kept: None,
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

    fn row_of(
        &self,
        target: &ObjectRef,
        resource_version: &str,
        object: &str,
    ) -> Result<(ResourceRow, Resource), ApplyError> {
        let value: Value = serde_json::from_str(object).map_err(|source| ApplyError::Json {
            cluster: self.cluster.clone(),
            object: object_label(target),
            source,
        })?;
        let resource = Resource::parse(value).map_err(|source| ApplyError::Manifest {
            cluster: self.cluster.clone(),
            object: object_label(target),
            source,
        })?;
        let key = resource.key(&self.account);
        let listed = self.options.lists_kind(resource.kind());
        let cached = self.options.caches(&resource);
        let names = resource.service_names();
        Ok((
            ResourceRow {
                cache_id: key.to_string(),
                cache_type: key.group().to_string(),
                api_version: target.api_version.clone(),
                kind: target.kind.clone(),
                namespace: target.namespace.clone(),
                name: target.name.clone(),
                uid: target.uid.clone(),
                resource_version: resource_version.to_string(),
                listed,
                cached,
                selector: resource.selector().and_then(json_string),
                template_labels: resource.template_labels().and_then(json_string),
                service_refs: (!names.is_empty()).then(|| json_string(&names)).flatten(),
                object: object.to_string(),
            },
            resource,
        ))
    }

    /// The links an object declares by itself (owners, application, cluster).
    fn direct_links(&self, row: &ResourceRow, resource: &Resource) -> Vec<Link> {
        if !row.cached {
            return Vec::new();
        }
        let mut links: Vec<Link> = resource
            .owner_references()
            .iter()
            .map(|owner| Link {
                declarer: row.cache_id.clone(),
                a: row.cache_id.clone(),
                b: cache::infrastructure_key(
                    owner.kind.as_str(),
                    &self.account,
                    &row.namespace,
                    &owner.name,
                ),
                origin: OWNER,
            })
            .collect();
        let logical = resource.logical_links(&self.account, &self.options);
        for key in logical.application.iter().chain(logical.cluster.iter()) {
            links.push(Link {
                declarer: row.cache_id.clone(),
                a: row.cache_id.clone(),
                b: key.to_string(),
                origin: LOGICAL,
            });
        }
        if let (Some(application), Some(cluster)) = (&logical.application, &logical.cluster) {
            links.push(Link {
                declarer: row.cache_id.clone(),
                a: cluster.to_string(),
                b: application.to_string(),
                origin: LOGICAL,
            });
        }
        links
    }

    // ------------------------------------------------------------------ snapshot (bulk) --

    /// Starts a snapshot load: forgets the account's objects and links (its cache rows stay
    /// until [`finish_snapshot`](Self::finish_snapshot) rewrites or deletes them).
    pub async fn begin_snapshot(&mut self) -> Result<(), ApplyError> {
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

    /// Adds a batch of a snapshot's records (puts only).
    pub async fn load_batch(&mut self, records: Vec<Record>) -> Result<(), ApplyError> {
        let mut rows: BTreeMap<String, ResourceRow> = BTreeMap::new();
        let mut links: Vec<Link> = Vec::new();
        for record in records {
            self.stats.records += 1;
            if let Record::Put {
                target,
                resource_version,
                object,
            } = record
            {
                let (row, resource) = self.row_of(&target, &resource_version, object.get())?;
                links.extend(self.direct_links(&row, &resource));
                rows.insert(row.cache_id.clone(), row);
            }
        }
        let rows: Vec<ResourceRow> = rows.into_values().collect();
        self.insert_resources(&rows).await?;
        self.insert_links(&links).await?;
        Ok(())
    }

    /// Computes the partner links of the loaded snapshot, then every row; deletes the rows of
    /// `previous_types` (the types the account had before) and of the new types that this agent
    /// wrote but that no longer exist.
    pub async fn finish_snapshot(
        &mut self,
        previous_types: &BTreeSet<String>,
    ) -> Result<(), ApplyError> {
        self.link_partners_in_bulk().await?;
        let mut types: BTreeSet<String> = previous_types.clone();
        types.extend(self.cached_types().await?);
        types.insert("applications".into());
        types.insert("clusters".into());
        self.kept = Some(BTreeMap::new());
        // Every object row, in id order, in batches.
        let mut after = String::new();
        loop {
            let sql = self.sql(&format!(
                "SELECT cache_id AS v FROM outpost_resources WHERE account = ? AND cached = 1 AND cache_id > ? ORDER BY cache_id LIMIT {BATCH}"
            ));
            let ids: Vec<String> = sqlx::query(&sql)
                .bind(&self.account)
                .bind(&after)
                .fetch_all(&mut *self.conn)
                .await
                .map_err(|e| {
                    self.database
                        .query_error(format!("cluster {}: listing objects", self.cluster), e)
                })?
                .iter()
                .map(|row| text(row, "v"))
                .collect::<Result<_, _>>()
                .map_err(self.error("decoding"))?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            self.recompute(ids).await?;
        }
        // Every logical row.
        let logical = self.logical_keys().await?;
        for chunk in logical.chunks(BATCH) {
            self.recompute(chunk.to_vec()).await?;
        }
        // Rows this agent wrote that are gone.
        let kept = self.kept.take().unwrap_or_default();
        let none = BTreeSet::new();
        for type_name in &types {
            self.delete_rows_not_in(type_name, kept.get(type_name).unwrap_or(&none))
                .await?;
        }
        Ok(())
    }

    /// Every logical key some link touches.
    async fn logical_keys(&mut self) -> Result<Vec<String>, ApplyError> {
        let sql = self.sql(
            "SELECT a_id AS v FROM outpost_links WHERE account = ? AND origin = 'logical' UNION SELECT b_id FROM outpost_links WHERE account = ? AND origin = 'logical'",
        );
        let ids: Vec<String> = sqlx::query(&sql)
            .bind(&self.account)
            .bind(&self.account)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(|e| {
                self.database
                    .query_error(format!("cluster {}: listing logical keys", self.cluster), e)
            })?
            .iter()
            .map(|row| text(row, "v"))
            .collect::<Result<_, _>>()
            .map_err(self.error("decoding"))?;
        let mut keys: Vec<String> = ids
            .into_iter()
            .filter(|id| CacheKey::parse(id).is_some_and(|k| k.is_logical()))
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
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

    /// Deletes this agent's rows of `type_name` whose ids are not in `kept`, paging through the
    /// stored ids (no SQL joins the cache tables to ours: their collations may differ on MySQL).
    async fn delete_rows_not_in(
        &mut self,
        type_name: &str,
        kept: &BTreeSet<String>,
    ) -> Result<(), ApplyError> {
        let tables = self.database.cache_tables(type_name)?;
        let mut after = String::new();
        loop {
            let sql = self.sql(&format!(
                "SELECT id AS v FROM {} WHERE agent = ? AND id > ? ORDER BY id LIMIT {BATCH}",
                tables.resource
            ));
            let ids: Vec<String> = sqlx::query(&sql)
                .bind(&self.agent)
                .bind(&after)
                .fetch_all(&mut *self.conn)
                .await
                .map_err(self.error(format!("listing {}", tables.resource)))?
                .iter()
                .map(|row| text(row, "v"))
                .collect::<Result<_, _>>()
                .map_err(self.error("decoding"))?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            let gone: Vec<String> = ids.into_iter().filter(|id| !kept.contains(id)).collect();
            self.delete_rows(&tables.resource, &gone).await?;
        }
        Ok(())
    }

    async fn delete_rows(&mut self, table: &str, ids: &[String]) -> Result<(), ApplyError> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = vec!["?"; ids.len()].join(", ");
        let sql = self.sql(&format!(
            "DELETE FROM {table} WHERE agent = ? AND id IN ({list})"
        ));
        let mut query = sqlx::query(&sql).bind(&self.agent);
        for id in ids {
            query = query.bind(id);
        }
        let result = query
            .execute(&mut *self.conn)
            .await
            .map_err(self.error(format!("deleting from {table}")))?;
        self.stats.rows_deleted += result.rows_affected();
        Ok(())
    }

    /// Selector and reference links among the whole (freshly loaded) account, per namespace.
    async fn link_partners_in_bulk(&mut self) -> Result<(), ApplyError> {
        // Services with a selector (cached: they declare) and listed service names (partners).
        let sql = self.sql("SELECT cache_id, namespace, name, cached, selector FROM outpost_resources WHERE account = ? AND cache_type = 'service' AND listed = 1");
        let services = sqlx::query(&sql)
            .bind(&self.account)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(|e| {
                self.database
                    .query_error(format!("cluster {}: reading services", self.cluster), e)
            })?;
        let mut selectors: BTreeMap<String, Vec<(String, Labels)>> = BTreeMap::new();
        let mut service_ids: BTreeMap<(String, String), String> = BTreeMap::new();
        for row in &services {
            let id: String = text(row, "cache_id").map_err(self.error("reading services"))?;
            let namespace: String =
                text(row, "namespace").map_err(self.error("reading services"))?;
            let name: String = text(row, "name").map_err(self.error("reading services"))?;
            let cached: i64 = row
                .try_get("cached")
                .map_err(self.error("reading services"))?;
            let selector: Option<String> =
                opt_text(row, "selector").map_err(self.error("reading services"))?;
            service_ids.insert((namespace.clone(), name), id.clone());
            if cached == 1
                && let Some(selector) = selector.and_then(|s| serde_json::from_str(&s).ok())
            {
                selectors.entry(namespace).or_default().push((id, selector));
            }
        }
        // ReplicaSets (listed) against the selectors of their namespace.
        let mut links = Vec::new();
        let mut after = String::new();
        loop {
            let sql = self.sql(&format!("SELECT cache_id, namespace, template_labels FROM outpost_resources WHERE account = ? AND listed = 1 AND template_labels IS NOT NULL AND cache_id > ? ORDER BY cache_id LIMIT {BATCH}"));
            let rows = sqlx::query(&sql)
                .bind(&self.account)
                .bind(&after)
                .fetch_all(&mut *self.conn)
                .await
                .map_err(|e| {
                    self.database
                        .query_error(format!("cluster {}: reading replica sets", self.cluster), e)
                })?;
            let Some(last) = rows.last() else { break };
            after = text(last, "cache_id").map_err(self.error("reading replica sets"))?;
            for row in &rows {
                let id: String =
                    text(row, "cache_id").map_err(self.error("reading replica sets"))?;
                let namespace: String =
                    text(row, "namespace").map_err(self.error("reading replica sets"))?;
                let labels: Option<String> =
                    opt_text(row, "template_labels").map_err(self.error("reading replica sets"))?;
                let Some(labels) =
                    labels.and_then(|l| serde_json::from_str::<BTreeMap<String, String>>(&l).ok())
                else {
                    continue;
                };
                for (service, selector) in selectors.get(&namespace).into_iter().flatten() {
                    if selector_matches(selector, &labels) {
                        links.push(Link {
                            declarer: service.clone(),
                            a: service.clone(),
                            b: id.clone(),
                            origin: SELECTOR,
                        });
                    }
                }
            }
            if links.len() >= BATCH {
                self.insert_links(&links).await?;
                links.clear();
            }
        }
        // Ingresses and StatefulSets (cached) against the services of their namespace.
        let mut after = String::new();
        loop {
            let sql = self.sql(&format!("SELECT cache_id, namespace, service_refs FROM outpost_resources WHERE account = ? AND cached = 1 AND service_refs IS NOT NULL AND cache_id > ? ORDER BY cache_id LIMIT {BATCH}"));
            let rows = sqlx::query(&sql)
                .bind(&self.account)
                .bind(&after)
                .fetch_all(&mut *self.conn)
                .await
                .map_err(self.error("reading service references"))?;
            let Some(last) = rows.last() else { break };
            after = text(last, "cache_id").map_err(self.error("reading service references"))?;
            for row in &rows {
                let id: String =
                    text(row, "cache_id").map_err(self.error("reading service references"))?;
                let namespace: String =
                    text(row, "namespace").map_err(self.error("reading service references"))?;
                let refs: Option<String> = opt_text(row, "service_refs")
                    .map_err(self.error("reading service references"))?;
                for name in refs
                    .and_then(|r| serde_json::from_str::<Vec<String>>(&r).ok())
                    .unwrap_or_default()
                {
                    if let Some(service) = service_ids.get(&(namespace.clone(), name)) {
                        links.push(Link {
                            declarer: id.clone(),
                            a: id.clone(),
                            b: service.clone(),
                            origin: REFERENCE,
                        });
                    }
                }
            }
        }
        self.insert_links(&links).await?;
        Ok(())
    }

    // ---------------------------------------------------------------- diff (incremental) --

    /// Applies one record of a diff.
    pub async fn apply(&mut self, record: Record) -> Result<(), ApplyError> {
        self.stats.records += 1;
        match record {
            Record::Put {
                target,
                resource_version,
                object,
            } => {
                let (row, resource) = self.row_of(&target, &resource_version, object.get())?;
                let id = row.cache_id.clone();
                self.touch_neighbours(&id).await?;
                self.forget_links_of(&id).await?;
                self.insert_resources(std::slice::from_ref(&row)).await?;
                let mut links = self.direct_links(&row, &resource);
                links.extend(self.partner_links(&row).await?);
                self.insert_links(&links).await?;
                self.touch_neighbours(&id).await?;
                self.dirty.insert(id);
            }
            Record::Delete { target } => {
                let id = key_of(&target, &self.account);
                self.touch_neighbours(&id).await?;
                self.forget_links_of(&id).await?;
                let sql =
                    self.sql("DELETE FROM outpost_resources WHERE account = ? AND cache_id = ?");
                sqlx::query(&sql)
                    .bind(&self.account)
                    .bind(&id)
                    .execute(&mut *self.conn)
                    .await
                    .map_err(|e| {
                        self.database
                            .query_error(format!("cluster {}: deleting {id}", self.cluster), e)
                    })?;
                self.dirty.insert(id);
            }
        }
        Ok(())
    }

    /// Recomputes every row a diff touched.
    pub async fn finish_diff(&mut self) -> Result<(), ApplyError> {
        let dirty: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        for chunk in dirty.chunks(BATCH) {
            self.recompute(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// Marks every key linked to `id` for recomputation.
    async fn touch_neighbours(&mut self, id: &str) -> Result<(), ApplyError> {
        let neighbours = self
            .neighbours(std::slice::from_ref(&id.to_string()))
            .await?;
        for set in neighbours.into_values() {
            self.dirty.extend(set);
        }
        Ok(())
    }

    /// Removes the links that depend on `id`'s manifest or existence: those it declared, and the
    /// partner links others declared to it.
    async fn forget_links_of(&mut self, id: &str) -> Result<(), ApplyError> {
        let sql = self.sql("DELETE FROM outpost_links WHERE account = ? AND declarer_id = ?");
        sqlx::query(&sql)
            .bind(&self.account)
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(|e| {
                self.database
                    .query_error(format!("cluster {}: unlinking {id}", self.cluster), e)
            })?;
        let sql = self.sql("DELETE FROM outpost_links WHERE account = ? AND b_id = ? AND origin IN ('selector', 'reference')");
        sqlx::query(&sql)
            .bind(&self.account)
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(|e| {
                self.database
                    .query_error(format!("cluster {}: unlinking {id}", self.cluster), e)
            })?;
        Ok(())
    }

    /// `(cache_id, column)` of the account's objects in `namespace` that satisfy `condition`
    /// (SQL over outpost_resources' columns), with `column` decoded from JSON; rows whose value
    /// is missing or malformed are left out.
    async fn in_namespace<T: serde::de::DeserializeOwned>(
        &mut self,
        namespace: &str,
        column: &str,
        condition: &str,
        what: &str,
    ) -> Result<Vec<(String, T)>, ApplyError> {
        let sql = self.sql(&format!(
            "SELECT cache_id, {column} FROM outpost_resources WHERE account = ? AND namespace = ? AND {condition} AND {column} IS NOT NULL"
        ));
        let rows = sqlx::query(&sql)
            .bind(&self.account)
            .bind(namespace)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(self.error(what))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = text(row, "cache_id").map_err(self.error(what))?;
            let value = opt_text(row, column).map_err(self.error(what))?;
            if let Some(value) = value.and_then(|v| serde_json::from_str(&v).ok()) {
                found.push((id, value));
            }
        }
        Ok(found)
    }

    /// The selector and reference links of one (new or changed) object with the objects of its
    /// namespace, in both roles.
    async fn partner_links(&mut self, row: &ResourceRow) -> Result<Vec<Link>, ApplyError> {
        let mut links = Vec::new();
        if !row.listed {
            return Ok(links);
        }
        let link = |declarer: &str, a: &str, b: &str, origin| Link {
            declarer: declarer.to_string(),
            a: a.to_string(),
            b: b.to_string(),
            origin,
        };
        let id = row.cache_id.as_str();
        // As a Service: the ReplicaSets it selects, and the referrers naming it.
        if row.cache_type == "service" {
            if row.cached
                && let Some(selector) = row
                    .selector
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Labels>(s).ok())
            {
                let replica_sets: Vec<(String, Labels)> = self
                    .in_namespace(
                        &row.namespace,
                        "template_labels",
                        "listed = 1",
                        "reading replica sets",
                    )
                    .await?;
                for (rs, labels) in replica_sets {
                    if selector_matches(&selector, &labels) {
                        links.push(link(id, id, &rs, SELECTOR));
                    }
                }
            }
            let referrers: Vec<(String, Vec<String>)> = self
                .in_namespace(
                    &row.namespace,
                    "service_refs",
                    "cached = 1",
                    "reading service references",
                )
                .await?;
            for (referrer, names) in referrers {
                if names.contains(&row.name) {
                    links.push(link(&referrer, &referrer, id, REFERENCE));
                }
            }
        }
        // As a ReplicaSet: the Services selecting it.
        if let Some(labels) = row
            .template_labels
            .as_deref()
            .and_then(|l| serde_json::from_str::<Labels>(l).ok())
        {
            let services: Vec<(String, Labels)> = self
                .in_namespace(
                    &row.namespace,
                    "selector",
                    "cache_type = 'service' AND cached = 1",
                    "reading services",
                )
                .await?;
            for (service, selector) in services {
                if service != id && selector_matches(&selector, &labels) {
                    links.push(link(&service, &service, id, SELECTOR));
                }
            }
        }
        // As a referrer (Ingress, StatefulSet): the Services it names that exist.
        if row.cached
            && let Some(names) = row
                .service_refs
                .as_deref()
                .and_then(|r| serde_json::from_str::<Vec<String>>(r).ok())
        {
            for name in names {
                let service =
                    cache::infrastructure_key("service", &self.account, &row.namespace, &name);
                let sql = self.sql("SELECT COUNT(*) FROM outpost_resources WHERE account = ? AND cache_id = ? AND listed = 1");
                let count: i64 = sqlx::query_scalar(&sql)
                    .bind(&self.account)
                    .bind(&service)
                    .fetch_one(&mut *self.conn)
                    .await
                    .map_err(self.error("reading services"))?;
                if count > 0 {
                    links.push(link(id, id, &service, REFERENCE));
                }
            }
        }
        Ok(links)
    }

    // ------------------------------------------------------------------------ rows --

    /// For each id, the keys linked to it.
    async fn neighbours(
        &mut self,
        ids: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>, ApplyError> {
        let mut result: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(result);
        }
        let list = vec!["?"; ids.len()].join(", ");
        let sql = self.sql(&format!(
            "SELECT a_id, b_id FROM outpost_links WHERE account = ? AND a_id IN ({list}) UNION ALL SELECT a_id, b_id FROM outpost_links WHERE account = ? AND b_id IN ({list})"
        ));
        let mut query = sqlx::query(&sql).bind(&self.account);
        for id in ids {
            query = query.bind(id);
        }
        query = query.bind(&self.account);
        for id in ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&mut *self.conn).await.map_err(|e| {
            self.database
                .query_error(format!("cluster {}: reading links", self.cluster), e)
        })?;
        let wanted: BTreeSet<&String> = ids.iter().collect();
        for row in rows {
            let a: String = text(&row, "a_id").map_err(self.error("reading links"))?;
            let b: String = text(&row, "b_id").map_err(self.error("reading links"))?;
            if a == b {
                continue;
            }
            if wanted.contains(&a) {
                result.entry(a.clone()).or_default().insert(b.clone());
            }
            if wanted.contains(&b) {
                result.entry(b).or_default().insert(a);
            }
        }
        Ok(result)
    }

    /// Recomputes the rows of `ids`: written where the body changed, deleted where the object
    /// (or every link of a logical row) is gone.
    async fn recompute(&mut self, ids: Vec<String>) -> Result<(), ApplyError> {
        let neighbours = self.neighbours(&ids).await?;
        // The objects among them.
        let list = vec!["?"; ids.len()].join(", ");
        let sql = self.sql(&format!(
            "SELECT cache_id, object FROM outpost_resources WHERE account = ? AND cached = 1 AND cache_id IN ({list})"
        ));
        let mut query = sqlx::query(&sql).bind(&self.account);
        for id in &ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&mut *self.conn).await.map_err(|e| {
            self.database
                .query_error(format!("cluster {}: reading objects", self.cluster), e)
        })?;
        let mut objects: BTreeMap<String, String> = BTreeMap::new();
        for row in rows {
            let id: String = text(&row, "cache_id").map_err(self.error("reading objects"))?;
            let object: String = text(&row, "object").map_err(self.error("reading objects"))?;
            objects.insert(id, object);
        }
        // Desired rows per type; `None`: the row must not exist.
        let mut desired: BTreeMap<String, BTreeMap<String, Option<CacheData>>> = BTreeMap::new();
        let empty = BTreeSet::new();
        for id in &ids {
            let Some(key) = CacheKey::parse(id) else {
                continue;
            };
            let related: Vec<CacheKey> = neighbours
                .get(id)
                .unwrap_or(&empty)
                .iter()
                .filter_map(|k| CacheKey::parse(k))
                .collect();
            let data = if key.is_logical() {
                (!related.is_empty()).then(|| CacheData::logical(&key, related.iter(), self.now_ms))
            } else {
                match objects.get(id) {
                    Some(object) => {
                        let value: Value =
                            serde_json::from_str(object).map_err(|source| ApplyError::Json {
                                cluster: self.cluster.clone(),
                                object: id.clone(),
                                source,
                            })?;
                        let resource =
                            Resource::parse(value).map_err(|source| ApplyError::Manifest {
                                cluster: self.cluster.clone(),
                                object: id.clone(),
                                source,
                            })?;
                        Some(CacheData::infrastructure(
                            &resource,
                            &self.account,
                            related.iter(),
                        ))
                    }
                    None => None,
                }
            };
            desired
                .entry(key.group().to_string())
                .or_default()
                .insert(id.clone(), data);
        }
        for (type_name, rows) in desired {
            self.write_rows(&type_name, rows).await?;
        }
        Ok(())
    }

    /// Writes one type's desired rows: compares with the stored hashes and bodies.
    async fn write_rows(
        &mut self,
        type_name: &str,
        rows: BTreeMap<String, Option<CacheData>>,
    ) -> Result<(), ApplyError> {
        let tables = self.database.cache_tables(type_name)?;
        let ids: Vec<&String> = rows.keys().collect();
        let list = vec!["?"; ids.len()].join(", ");
        let sql = self.sql(&format!(
            "SELECT id, body_hash, body FROM {} WHERE agent = ? AND id IN ({list})",
            tables.resource
        ));
        let mut query = sqlx::query(&sql).bind(&self.agent);
        for id in &ids {
            query = query.bind(*id);
        }
        let stored_rows = query
            .fetch_all(&mut *self.conn)
            .await
            .map_err(self.error(format!("reading {}", tables.resource)))?;
        let mut stored: BTreeMap<String, (String, String)> = BTreeMap::new();
        for row in stored_rows {
            let id: String = text(&row, "id").map_err(self.error("reading cache rows"))?;
            let hash: String = text(&row, "body_hash").map_err(self.error("reading cache rows"))?;
            let body: String = text(&row, "body").map_err(self.error("reading cache rows"))?;
            stored.insert(id, (hash, body));
        }
        let mut upserts: Vec<(String, String, String)> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        for (id, data) in rows {
            let Some(data) = data else {
                if stored.contains_key(&id) {
                    deletes.push(id);
                }
                continue;
            };
            if let Some(limit) = self.database.dialect().max_id_length()
                && id.len() > limit
            {
                // Clouddriver drops such items too (contract §3.1).
                tracing::warn!(cluster = %self.cluster, id = %id, limit, "cache id too long for this database: row skipped, as Clouddriver does");
                continue;
            }
            if let Some(kept) = self.kept.as_mut() {
                kept.entry(type_name.to_string())
                    .or_default()
                    .insert(id.clone());
            }
            let body = data.body();
            let hash = cache::body_hash(&body);
            let unchanged = stored.get(&id).is_some_and(|(stored_hash, stored_body)| {
                *stored_hash == hash
                    // An application or cluster row carries its write time (cacheExpiry): it is
                    // unchanged when it equals the stored one but for that.
                    || same_but_expiry(&data, stored_body).is_some_and(|h| h == *stored_hash)
            });
            if unchanged {
                self.stats.rows_unchanged += 1;
            } else {
                upserts.push((id, hash, body));
            }
        }
        let resource_table = tables.resource.clone();
        self.delete_rows(&resource_table, &deletes).await?;
        for chunk in upserts.chunks(BATCH / 4) {
            let values = vec!["(?, ?, NULL, ?, ?, ?)"; chunk.len()].join(", ");
            let upsert = match self.database.dialect() {
                Dialect::MySql => {
                    "ON DUPLICATE KEY UPDATE application = VALUES(application), body_hash = VALUES(body_hash), body = VALUES(body), last_updated = VALUES(last_updated)"
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

    async fn insert_links(&mut self, links: &[Link]) -> Result<(), ApplyError> {
        for chunk in links.chunks(BATCH) {
            let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = self.sql(&format!(
                "INSERT INTO outpost_links (account, declarer_id, a_id, b_id, origin) VALUES {values}"
            ));
            let mut query = sqlx::query(&sql);
            for link in chunk {
                query = query
                    .bind(&self.account)
                    .bind(&link.declarer)
                    .bind(&link.a)
                    .bind(&link.b)
                    .bind(link.origin);
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
        self.begin_snapshot().await?;
        for type_name in &types {
            let tables = self.database.cache_tables(type_name)?;
            let sql = self.sql(&format!("DELETE FROM {} WHERE agent = ?", tables.resource));
            let result = sqlx::query(&sql)
                .bind(&self.agent)
                .execute(&mut *self.conn)
                .await
                .map_err(self.error(format!("evicting from {}", tables.resource)))?;
            self.stats.rows_deleted += result.rows_affected();
        }
        Ok(())
    }
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
