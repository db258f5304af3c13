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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;
use sqlx::AnyConnection;

use crate::cache::{
    self, CacheData, CacheKey, CacheOptions, Dialect, KubernetesKind, Resource, selector_matches,
};
use crate::format::Record;
use crate::format::segment::ObjectRef;

use super::db::{Database, Error, opt_text, text};
use super::graph::{AccountGraph, GraphBuilder, LinkRow, Origin};

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
    #[error("cluster {cluster}: snapshot load out of order: {reason}")]
    Sequence {
        cluster: String,
        reason: &'static str,
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
    /// While a snapshot loads.
    snapshot: Option<SnapshotLoad>,
}

/// A snapshot load in progress.
#[derive(Debug)]
struct SnapshotLoad {
    graph: Graph,
    /// This agent's stored rows not (yet) produced by the snapshot, per type: `id →
    /// (body_hash, body)` (see [`AccountWriter::stored_rows`]); what remains at the end is deleted.
    stored: BTreeMap<String, HashMap<String, (String, Option<String>)>>,
    /// Rows of keys several objects share, until every object was seen: `id → (rank, type,
    /// row)`.
    shared: BTreeMap<String, (String, String, CacheData)>,
    /// The first object seen of each key as the database compares it
    /// ([`Database::collation_key`]): `collation key → (id, name)`.
    claimed: HashMap<String, (String, String)>,
    /// See [`RowMaker::losers`].
    losers: Arc<HashMap<String, String>>,
    /// The type holding each table among the snapshot's objects: `table → type`.
    table_types: HashMap<String, String>,
    /// See [`RowMaker::shadowed`].
    shadowed: Arc<BTreeSet<String>>,
}

/// The snapshot's relationship graph: collected in the first pass, complete in the second.
#[derive(Debug)]
enum Graph {
    Building(Box<GraphBuilder>),
    Built(Arc<AccountGraph>),
    /// Only while the links are written.
    Taken,
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

/// The CPU side of applying records — parsing objects, computing rows and bodies — owned and
/// `Send`, so that a snapshot's next batch is prepared on another thread while the database
/// writes the previous one (see [`AccountWriter::begin_snapshot`]).
#[derive(Debug, Clone)]
pub struct RowMaker {
    cluster: String,
    account: String,
    options: CacheOptions,
    /// The database's longest cache id.
    max_id: Option<usize>,
    /// The snapshot's graph, for its second pass.
    graph: Option<Arc<AccountGraph>>,
    /// Keys of the objects the first pass left out for a collision, with the name of the object
    /// that kept the key: an object of such a key and another name gets no row.
    losers: Arc<HashMap<String, String>>,
    /// Cache types whose table another type of the account holds: their objects get no row.
    shadowed: Arc<BTreeSet<String>>,
}

/// A batch of a snapshot's first pass, ready to store: [`RowMaker::objects`].
#[derive(Debug)]
pub struct ObjectBatch {
    records: u64,
    /// Objects left out for their cache id's length.
    ids_too_long: u64,
    /// Each object's row and resource, in the segment's order.
    objects: Vec<(ResourceRow, Resource)>,
}

/// A batch of a snapshot's second pass, ready to write: [`RowMaker::rows`].
#[derive(Debug)]
pub struct RowBatch {
    /// Rows by type.
    rows: BTreeMap<String, Vec<MadeRow>>,
    /// Rows of keys several objects share: `(id, rank, type, row)`.
    shared: Vec<(String, String, String, CacheData)>,
}

/// A computed cache row.
#[derive(Debug)]
struct MadeRow {
    id: String,
    hash: String,
    body: String,
    /// A logical row's data, compared with the stored body but for its expiry.
    logical: Option<CacheData>,
}

impl MadeRow {
    fn new(data: CacheData) -> Self {
        let body = data.body();
        let logical = matches!(data.attributes, cache::Attributes::Logical { .. });
        Self {
            hash: cache::body_hash(&body),
            body,
            logical: logical.then(|| data.clone()),
            id: data.id,
        }
    }
}

/// Parses objects into rows for one account: what the snapshot's [`RowMaker`] and the diff path
/// share, borrowed from either.
struct Parser<'a> {
    cluster: &'a str,
    account: &'a str,
    options: &'a CacheOptions,
    max_id: Option<usize>,
}

/// Whether `id` is longer than the database stores (`max_id`): such an object is left out of
/// every table and every other row's relationships, in the snapshot and the diff paths alike.
fn too_long(id: &str, max_id: Option<usize>) -> bool {
    max_id.is_some_and(|limit| id.len() > limit)
}

impl Parser<'_> {
    /// Whether the object of `row` is left out for its id's length (logged once, here).
    fn skips_long_id(&self, row: &ResourceRow) -> bool {
        let skip = too_long(&row.cache_id, self.max_id);
        if skip {
            tracing::warn!(cluster = %self.cluster, id = %row.cache_id, limit = ?self.max_id, "cache id too long for this database: object left out of every table, as Clouddriver drops it");
        }
        skip
    }

    /// The resource of `target` from its parsed JSON (`parsed`), or the error naming it.
    fn resource_from(
        &self,
        target: &ObjectRef,
        parsed: Result<Value, serde_json::Error>,
    ) -> Result<Resource, ApplyError> {
        let value = parsed.map_err(|source| ApplyError::Json {
            cluster: self.cluster.to_string(),
            object: object_label(target),
            source,
        })?;
        Resource::parse(value).map_err(|source| ApplyError::Manifest {
            cluster: self.cluster.to_string(),
            object: object_label(target),
            source,
        })
    }

    /// The whole resource, manifest included (for its row).
    fn resource_of(&self, target: &ObjectRef, object: &str) -> Result<Resource, ApplyError> {
        self.resource_from(target, serde_json::from_str(object))
    }

    /// An object's `outpost_resources` row and its parsed fields for keys and links; the
    /// resource's manifest is left out ([`cache::resource::manifest_outline`]): rows are made
    /// with [`Parser::resource_of`].
    fn row_of(
        &self,
        target: &ObjectRef,
        resource_version: &str,
        object: &str,
    ) -> Result<(ResourceRow, Resource), ApplyError> {
        let mut resource = self.resource_from(target, cache::resource::manifest_outline(object))?;
        resource.take_manifest();
        let key = resource.key(self.account);
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
}

impl RowMaker {
    fn parser(&self) -> Parser<'_> {
        Parser {
            cluster: &self.cluster,
            account: &self.account,
            options: &self.options,
            max_id: self.max_id,
        }
    }

    /// Parses a first-pass batch: the objects' rows and what the graph needs.
    pub fn objects(&self, records: Vec<Record>) -> Result<ObjectBatch, ApplyError> {
        let mut objects = Vec::with_capacity(records.len());
        let count = records.len() as u64;
        let mut ids_too_long = 0;
        for record in records {
            if let Record::Put {
                target,
                resource_version,
                object,
            } = record
            {
                let (row, resource) =
                    self.parser()
                        .row_of(&target, &resource_version, object.get())?;
                if self.parser().skips_long_id(&row) {
                    ids_too_long += 1;
                    continue;
                }
                objects.push((row, resource));
            }
        }
        Ok(ObjectBatch {
            records: count,
            ids_too_long,
            objects,
        })
    }

    /// Computes a second-pass batch: the cached objects' rows, from the snapshot's graph.
    pub fn rows(&self, records: Vec<Record>) -> Result<RowBatch, ApplyError> {
        let Some(graph) = &self.graph else {
            return Err(ApplyError::Sequence {
                cluster: self.cluster.clone(),
                reason: "rows computed before the links",
            });
        };
        let mut batch = RowBatch {
            rows: BTreeMap::new(),
            shared: Vec::new(),
        };
        for record in records {
            let Record::Put { target, object, .. } = record else {
                continue;
            };
            let resource = self.parser().resource_of(&target, object.get())?;
            if !self.options.caches(&resource) {
                continue;
            }
            let key = resource.key(&self.account);
            let id = key.to_string();
            if too_long(&id, self.max_id)
                || self.shadowed.contains(key.group())
                || self
                    .losers
                    .get(&id)
                    .is_some_and(|winner| *winner != target.name)
            {
                continue;
            }
            let related = graph.related(&id);
            let type_name = key.group().to_string();
            if graph.is_shared(&id) {
                // Several objects with one key (one Ingress under two API versions): the row
                // takes the attributes of the greatest (apiVersion, manifest), as the reference
                // builder does, once every object was seen.
                let rank = format!(
                    "{}\n{}",
                    resource.api_version(),
                    cache::canonical_json(resource.manifest())
                );
                let data = CacheData::from_resource(resource, &self.account, related.iter());
                batch.shared.push((id, rank, type_name, data));
                continue;
            }
            let data = CacheData::from_resource(resource, &self.account, related.iter());
            batch
                .rows
                .entry(type_name)
                .or_default()
                .push(MadeRow::new(data));
        }
        Ok(batch)
    }
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
            snapshot: None,
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

    /// The CPU side of this writer (see [`RowMaker`]), with the snapshot's graph once built.
    pub fn row_maker(&self) -> RowMaker {
        let graph = match self.snapshot.as_ref().map(|load| &load.graph) {
            Some(Graph::Built(graph)) => Some(Arc::clone(graph)),
            _ => None,
        };
        let losers = self
            .snapshot
            .as_ref()
            .map(|load| Arc::clone(&load.losers))
            .unwrap_or_default();
        let shadowed = self
            .snapshot
            .as_ref()
            .map(|load| Arc::clone(&load.shadowed))
            .unwrap_or_default();
        RowMaker {
            cluster: self.cluster.clone(),
            account: self.account.clone(),
            options: self.options.clone(),
            max_id: self.database.dialect().max_id_length(),
            graph,
            losers,
            shadowed,
        }
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
        let max_id = self.database.dialect().max_id_length();
        links.retain(|link| !too_long(&link.a, max_id) && !too_long(&link.b, max_id));
        links
    }

    // ------------------------------------------------------------------ snapshot (bulk) --

    /// Starts a snapshot load: forgets the account's objects and links (its cache rows stay
    /// until the snapshot rewrites or deletes them). Then: every record through
    /// [`load_batch`](Self::load_batch), [`link_snapshot`](Self::link_snapshot), every record
    /// again through [`write_batch`](Self::write_batch), and
    /// [`finish_snapshot`](Self::finish_snapshot).
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
        self.snapshot = Some(SnapshotLoad {
            graph: Graph::Building(Box::new(
                GraphBuilder::new(&self.account, &self.options)
                    .max_id_length(self.database.dialect().max_id_length()),
            )),
            stored: BTreeMap::new(),
            shared: BTreeMap::new(),
            claimed: HashMap::new(),
            losers: Arc::new(HashMap::new()),
            table_types: HashMap::new(),
            shadowed: Arc::new(BTreeSet::new()),
        });
        Ok(())
    }

    fn snapshot_load(&mut self) -> Result<&mut SnapshotLoad, ApplyError> {
        let cluster = self.cluster.clone();
        self.snapshot.as_mut().ok_or(ApplyError::Sequence {
            cluster,
            reason: "no snapshot load was begun",
        })
    }

    /// The first pass over a snapshot: stores the objects in `outpost_resources` and collects
    /// what their links need (puts only).
    pub async fn load_batch(&mut self, records: Vec<Record>) -> Result<(), ApplyError> {
        let batch = self.row_maker().objects(records)?;
        self.store_objects(batch).await
    }

    /// [`load_batch`](Self::load_batch) for a batch prepared by [`RowMaker::objects`].
    pub async fn store_objects(&mut self, batch: ObjectBatch) -> Result<(), ApplyError> {
        self.stats.records += batch.records;
        self.stats.objects_id_too_long += batch.ids_too_long;
        let cluster = self.cluster.clone();
        let database = self.database.clone();
        let mut tables = HashMap::new();
        for (row, _) in &batch.objects {
            if !tables.contains_key(&row.cache_type) {
                let table = database.cache_tables(&row.cache_type)?.resource;
                tables.insert(row.cache_type.clone(), table);
            }
        }
        let SnapshotLoad {
            graph,
            claimed,
            losers,
            table_types,
            shadowed,
            ..
        } = self.snapshot_load()?;
        let Graph::Building(builder) = graph else {
            return Err(ApplyError::Sequence {
                cluster,
                reason: "objects added after the links were computed",
            });
        };
        // One row per key in a statement (an object under two API versions is one key).
        let mut rows: BTreeMap<String, ResourceRow> = BTreeMap::new();
        let mut collisions = 0;
        let mut table_collisions = 0;
        for (row, resource) in batch.objects {
            if let Some(table) = tables.get(&row.cache_type) {
                let holder = table_types
                    .entry(table.clone())
                    .or_insert_with(|| row.cache_type.clone());
                if *holder != row.cache_type {
                    if Arc::make_mut(shadowed).insert(row.cache_type.clone()) {
                        warn_table_collision(&cluster, table, holder, &row.cache_type);
                    }
                    table_collisions += 1;
                    continue;
                }
            }
            match claimed.get(&database.collation_key(&row.cache_id)) {
                Some((id, name)) if *id != row.cache_id || *name != row.name => {
                    warn_collision(&cluster, id, name, &row);
                    Arc::make_mut(losers).insert(row.cache_id.clone(), name.clone());
                    collisions += 1;
                    continue;
                }
                Some(_) => {}
                None => {
                    claimed.insert(
                        database.collation_key(&row.cache_id),
                        (row.cache_id.clone(), row.name.clone()),
                    );
                }
            }
            builder.add(&resource);
            rows.insert(row.cache_id.clone(), row);
        }
        self.stats.objects_key_collision += collisions;
        self.stats.objects_table_collision += table_collisions;
        let rows: Vec<ResourceRow> = rows.into_values().collect();
        self.insert_resources(&rows).await
    }

    /// Between the two passes: matches the partners in memory and stores every link.
    pub async fn link_snapshot(&mut self) -> Result<(), ApplyError> {
        let load = self.snapshot_load()?;
        let graph = match std::mem::replace(&mut load.graph, Graph::Taken) {
            Graph::Building(builder) => Arc::new(builder.finish()),
            Graph::Built(graph) => graph,
            Graph::Taken => {
                return Err(ApplyError::Sequence {
                    cluster: self.cluster.clone(),
                    reason: "the snapshot's links were lost",
                });
            }
        };
        for (service, cut) in graph.cut_links() {
            self.note_cut(service, cut);
        }
        let links: Vec<LinkRow<'_>> = graph.links().collect();
        let result = self.insert_links(&links).await;
        drop(links);
        self.snapshot_load()?.graph = Graph::Built(graph);
        result
    }

    /// The second pass over a snapshot: computes the rows of the cached objects among `records`
    /// and writes those whose body differs from the stored one.
    pub async fn write_batch(&mut self, records: Vec<Record>) -> Result<(), ApplyError> {
        let batch = self.row_maker().rows(records)?;
        self.store_rows(batch).await
    }

    /// [`write_batch`](Self::write_batch) for a batch prepared by [`RowMaker::rows`].
    pub async fn store_rows(&mut self, batch: RowBatch) -> Result<(), ApplyError> {
        let load = self.snapshot_load()?;
        for (id, rank, type_name, data) in batch.shared {
            match load.shared.get(&id) {
                Some((best, _, _)) if *best >= rank => {}
                _ => {
                    load.shared.insert(id, (rank, type_name, data));
                }
            }
        }
        for (type_name, rows) in batch.rows {
            self.write_snapshot_rows(&type_name, rows).await?;
        }
        Ok(())
    }

    /// Ends a snapshot load: writes the rows of shared keys and the logical rows, then deletes
    /// this agent's rows that the snapshot did not produce, in its types and in
    /// `previous_types` (the types the account had before).
    pub async fn finish_snapshot(
        &mut self,
        previous_types: &BTreeSet<String>,
    ) -> Result<(), ApplyError> {
        let now_ms = self.now_ms;
        let load = self.snapshot_load()?;
        let shared = std::mem::take(&mut load.shared);
        let Graph::Built(graph) = &load.graph else {
            return Err(ApplyError::Sequence {
                cluster: self.cluster.clone(),
                reason: "the snapshot ended before its links were computed",
            });
        };
        let mut desired: BTreeMap<String, Vec<MadeRow>> = BTreeMap::new();
        for (_, (_, type_name, data)) in shared {
            desired
                .entry(type_name)
                .or_default()
                .push(MadeRow::new(data));
        }
        for key in graph.logical_keys() {
            let related = graph.related(&key.to_string());
            desired
                .entry(key.group().to_string())
                .or_default()
                .push(MadeRow::new(CacheData::logical(
                    &key,
                    related.iter(),
                    now_ms,
                )));
        }
        for (type_name, rows) in desired {
            self.write_snapshot_rows(&type_name, rows).await?;
        }
        let mut types = previous_types.clone();
        types.insert("applications".into());
        types.insert("clusters".into());
        // Each table once: a type whose table another type holds would read that type's rows
        // as its own leftovers.
        let mut read: BTreeSet<String> = BTreeSet::new();
        if let Some(load) = &self.snapshot {
            for type_name in load.stored.keys() {
                read.insert(self.database.cache_tables(type_name)?.resource);
            }
        }
        for type_name in &types {
            let table = self.database.cache_tables(type_name)?.resource;
            let first = read.insert(table);
            let loaded = self
                .snapshot
                .as_ref()
                .is_some_and(|load| load.stored.contains_key(type_name));
            if first || loaded {
                self.stored_rows(type_name).await?;
            }
        }
        let stored = self
            .snapshot
            .take()
            .map(|load| load.stored)
            .unwrap_or_default();
        for (type_name, gone) in stored {
            let tables = self.database.cache_tables(&type_name)?;
            let gone: Vec<String> = gone.into_keys().collect();
            for chunk in gone.chunks(BATCH) {
                self.delete_rows(&tables.resource, chunk).await?;
            }
        }
        Ok(())
    }

    /// This agent's stored rows of `type_name` not yet matched by the snapshot (read once per
    /// type: `id → (body_hash, body)`, the body only for logical rows, whose comparison needs
    /// it).
    async fn stored_rows(
        &mut self,
        type_name: &str,
    ) -> Result<&mut HashMap<String, (String, Option<String>)>, ApplyError> {
        let loaded = self
            .snapshot
            .as_ref()
            .is_some_and(|load| load.stored.contains_key(type_name));
        if !loaded {
            let tables = self.database.cache_tables(type_name)?;
            let logical = matches!(type_name, "applications" | "clusters");
            let body = if logical { "body" } else { "NULL AS body" };
            let sql = self.sql(&format!(
                "SELECT id, body_hash, {body} FROM {} WHERE {}",
                tables.resource,
                self.database.exact_in("agent", 1)
            ));
            let mut query = sqlx::query(&sql);
            query = self.database.bind_exact(query, &[self.agent.as_str()]);
            let rows = query
                .fetch_all(&mut *self.conn)
                .await
                .map_err(self.error(format!("reading {}", tables.resource)))?;
            let mut stored = HashMap::with_capacity(rows.len());
            for row in rows {
                let id = text(&row, "id").map_err(self.error("reading cache rows"))?;
                let hash = text(&row, "body_hash").map_err(self.error("reading cache rows"))?;
                let body = if logical {
                    Some(text(&row, "body").map_err(self.error("reading cache rows"))?)
                } else {
                    None
                };
                stored.insert(id, (hash, body));
            }
            self.snapshot_load()?
                .stored
                .insert(type_name.to_string(), stored);
        }
        let cluster = self.cluster.clone();
        self.snapshot_load()?
            .stored
            .get_mut(type_name)
            .ok_or(ApplyError::Sequence {
                cluster,
                reason: "stored rows vanished",
            })
    }

    /// Writes a snapshot's rows of one type where their body differs from the stored one.
    async fn write_snapshot_rows(
        &mut self,
        type_name: &str,
        rows: Vec<MadeRow>,
    ) -> Result<(), ApplyError> {
        let limit = self.database.dialect().max_id_length();
        let cluster = self.cluster.clone();
        let stored = self.stored_rows(type_name).await?;
        let mut upserts: Vec<(String, String, String)> = Vec::new();
        let mut unchanged = 0;
        for row in rows {
            if let Some(limit) = limit
                && row.id.len() > limit
            {
                // Clouddriver drops such items too (contract §3.1).
                tracing::warn!(cluster = %cluster, id = %row.id, limit, "cache id too long for this database: row skipped, as Clouddriver does");
                continue;
            }
            let same = stored
                .remove(&row.id)
                .is_some_and(|(stored_hash, stored_body)| {
                    stored_hash == row.hash
                        || row.logical.as_ref().zip(stored_body).is_some_and(
                            |(data, stored_body)| {
                                same_but_expiry(data, &stored_body)
                                    .is_some_and(|h| h == stored_hash)
                            },
                        )
                });
            if same {
                unchanged += 1;
            } else {
                upserts.push((row.id, row.hash, row.body));
            }
        }
        self.stats.rows_unchanged += unchanged;
        self.upsert_rows(type_name, &upserts).await
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
                let parser = Parser {
                    cluster: &self.cluster,
                    account: &self.account,
                    options: &self.options,
                    max_id: self.database.dialect().max_id_length(),
                };
                let (row, resource) = parser.row_of(&target, &resource_version, object.get())?;
                if parser.skips_long_id(&row) {
                    self.stats.objects_id_too_long += 1;
                    return Ok(());
                }
                if let Some(holder) = self.table_holder(&row.cache_type).await? {
                    let table = self.database.cache_tables(&row.cache_type)?.resource;
                    warn_table_collision(&self.cluster, &table, &holder, &row.cache_type);
                    self.stats.objects_table_collision += 1;
                    return Ok(());
                }
                if let Some((id, name)) = self.key_holder(&row).await? {
                    warn_collision(&self.cluster, &id, &name, &row);
                    self.stats.objects_key_collision += 1;
                    return Ok(());
                }
                let id = row.cache_id.clone();
                self.touch_neighbours(&id).await?;
                self.forget_links_of(&id).await?;
                self.insert_resources(std::slice::from_ref(&row)).await?;
                let mut links = self.direct_links(&row, &resource);
                links.extend(self.partner_links(&row).await?);
                let rows: Vec<LinkRow<'_>> = links.iter().map(Link::row).collect();
                self.insert_links(&rows).await?;
                self.touch_neighbours(&id).await?;
                self.dirty.insert(id);
            }
            Record::Delete { target } => {
                let id = key_of(&target, &self.account);
                if self
                    .stored_name(&id)
                    .await?
                    .is_some_and(|name| name != target.name)
                {
                    // The key is another object's: this one was left out for the collision.
                    return Ok(());
                }
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

    /// The `(id, name)` of another stored object holding `row`'s key as the database compares
    /// it (see [`ApplyStats::objects_key_collision`]), if any.
    async fn key_holder(
        &mut self,
        row: &ResourceRow,
    ) -> Result<Option<(String, String)>, ApplyError> {
        // outpost_resources compares exactly (utf8mb4_bin on MySQL): MySQL's case-insensitive
        // match of the cats tables is spelled out.
        let id_condition = match self.database.dialect() {
            Dialect::MySql => "LOWER(cache_id) = ?",
            Dialect::Postgres | Dialect::Sqlite => "cache_id = ?",
        };
        let sql = self.sql(&format!(
            "SELECT cache_id, name FROM outpost_resources WHERE account = ? AND namespace = ? AND cache_type = ? AND {id_condition}"
        ));
        let rows = sqlx::query(&sql)
            .bind(&self.account)
            .bind(&row.namespace)
            .bind(&row.cache_type)
            .bind(self.database.collation_key(&row.cache_id))
            .fetch_all(&mut *self.conn)
            .await
            .map_err(self.error("reading objects of one key"))?;
        for found in rows {
            let id: String = text(&found, "cache_id").map_err(self.error("reading objects"))?;
            let name: String = text(&found, "name").map_err(self.error("reading objects"))?;
            if id != row.cache_id || name != row.name {
                return Ok(Some((id, name)));
            }
        }
        Ok(None)
    }

    /// Another cache type of the account holding `type_name`'s table, if any (the diff path's
    /// side of [`ApplyStats::objects_table_collision`]); else `type_name` now holds it.
    async fn table_holder(&mut self, type_name: &str) -> Result<Option<String>, ApplyError> {
        if self.table_types.is_none() {
            let mut holders = HashMap::new();
            for stored in self.all_types().await? {
                let table = self.database.cache_tables(&stored)?.resource;
                // Sorted, as the stored types have no order of arrival: the first keeps it.
                holders.entry(table).or_insert(stored);
            }
            self.table_types = Some(holders);
        }
        let table = self.database.cache_tables(type_name)?.resource;
        let holders = self.table_types.get_or_insert_with(HashMap::new);
        let holder = holders
            .entry(table)
            .or_insert_with(|| type_name.to_string());
        Ok((holder != type_name).then(|| holder.clone()))
    }

    /// The cache types of every object of the account, sorted.
    async fn all_types(&mut self) -> Result<BTreeSet<String>, ApplyError> {
        let sql =
            self.sql("SELECT DISTINCT cache_type AS v FROM outpost_resources WHERE account = ?");
        let rows = sqlx::query(&sql)
            .bind(&self.account)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(self.error("listing cache types"))?;
        rows.iter()
            .map(|row| text(row, "v"))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                ApplyError::Database(
                    self.database
                        .query_error(format!("cluster {}: listing cache types", self.cluster), e),
                )
            })
    }

    /// The name of the stored object with cache id `id`, if any.
    async fn stored_name(&mut self, id: &str) -> Result<Option<String>, ApplyError> {
        let sql = self
            .sql("SELECT name FROM outpost_resources WHERE account = ? AND cache_id = ? LIMIT 1");
        let row = sqlx::query(&sql)
            .bind(&self.account)
            .bind(id)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(self.error("reading an object"))?;
        row.map(|row| text(&row, "name")).transpose().map_err(|e| {
            ApplyError::Database(
                self.database
                    .query_error(format!("cluster {}: reading an object", self.cluster), e),
            )
        })
    }

    fn bound(&self) -> i64 {
        i64::try_from(self.options.max_selector_links.0).unwrap_or(i64::MAX)
    }

    /// Counts selector links cut for `service` (and logs them).
    fn note_cut(&mut self, service: &str, cut: usize) {
        tracing::warn!(cluster = %self.cluster, service = %service, cut, bound = self.options.max_selector_links.0, "the service's selector matches more replica sets than the bound: links to the last ones by key are not stored");
        self.stats.selector_links_cut += cut as u64;
    }

    /// How many selector links each of `services` has (absent: none).
    async fn selector_links_of(
        &mut self,
        services: &[String],
    ) -> Result<HashMap<String, i64>, ApplyError> {
        let mut counts = HashMap::new();
        for chunk in services.chunks(BATCH) {
            let list = vec!["?"; chunk.len()].join(", ");
            let sql = self.sql(&format!("SELECT declarer_id, COUNT(*) AS n FROM outpost_links WHERE account = ? AND origin = 'selector' AND declarer_id IN ({list}) GROUP BY declarer_id"));
            let mut query = sqlx::query(&sql).bind(&self.account);
            for service in chunk {
                query = query.bind(service);
            }
            let rows = query
                .fetch_all(&mut *self.conn)
                .await
                .map_err(self.error("counting selector links"))?;
            for row in rows {
                let service: String =
                    text(&row, "declarer_id").map_err(self.error("counting selector links"))?;
                let n: i64 =
                    sqlx::Row::try_get(&row, "n").map_err(self.error("counting selector links"))?;
                counts.insert(service, n);
            }
        }
        Ok(counts)
    }

    /// The listed ReplicaSets of `namespace` that `selector` (of `service`) links: those it
    /// matches, sorted by key, the first [`CacheOptions::max_selector_links`] (the cut counted).
    async fn selected_by(
        &mut self,
        service: &str,
        namespace: &str,
        selector: &Labels,
    ) -> Result<Vec<String>, ApplyError> {
        let replica_sets: Vec<(String, Labels)> = self
            .in_namespace(
                namespace,
                "template_labels",
                "listed = 1",
                "reading replica sets",
            )
            .await?;
        let mut matched: Vec<String> = replica_sets
            .into_iter()
            .filter(|(_, labels)| selector_matches(selector, labels))
            .map(|(rs, _)| rs)
            .collect();
        matched.sort_unstable();
        matched.dedup();
        let bound = self.options.max_selector_links.0;
        if matched.len() > bound {
            self.note_cut(service, matched.len() - bound);
            matched.truncate(bound);
        }
        Ok(matched)
    }

    /// Matches anew the selector links of the Services in `relink` (see there), marking the
    /// rows of the ReplicaSets they gain or lose.
    async fn relink_services(&mut self) -> Result<(), ApplyError> {
        for service in std::mem::take(&mut self.relink) {
            let sql = self.sql("SELECT namespace, selector FROM outpost_resources WHERE account = ? AND cache_id = ? AND cached = 1 AND listed = 1");
            let row = sqlx::query(&sql)
                .bind(&self.account)
                .bind(&service)
                .fetch_optional(&mut *self.conn)
                .await
                .map_err(self.error("reading a service"))?;
            let Some(row) = row else { continue };
            let namespace = text(&row, "namespace").map_err(self.error("reading a service"))?;
            let selector = opt_text(&row, "selector")
                .map_err(self.error("reading a service"))?
                .and_then(|s| serde_json::from_str::<Labels>(&s).ok());
            let sql = self.sql("SELECT b_id FROM outpost_links WHERE account = ? AND declarer_id = ? AND origin = 'selector'");
            let before: Vec<String> = sqlx::query_scalar(&sql)
                .bind(&self.account)
                .bind(&service)
                .fetch_all(&mut *self.conn)
                .await
                .map_err(self.error("reading selector links"))?;
            let sql = self.sql("DELETE FROM outpost_links WHERE account = ? AND declarer_id = ? AND origin = 'selector'");
            sqlx::query(&sql)
                .bind(&self.account)
                .bind(&service)
                .execute(&mut *self.conn)
                .await
                .map_err(self.error("unlinking a service"))?;
            let after = match &selector {
                Some(selector) => self.selected_by(&service, &namespace, selector).await?,
                None => Vec::new(),
            };
            let links: Vec<Link> = after
                .iter()
                .map(|rs| Link {
                    declarer: service.clone(),
                    a: service.clone(),
                    b: rs.clone(),
                    origin: SELECTOR,
                })
                .collect();
            let rows: Vec<LinkRow<'_>> = links.iter().map(Link::row).collect();
            self.insert_links(&rows).await?;
            self.dirty.extend(before);
            self.dirty.extend(after);
            self.dirty.insert(service);
        }
        Ok(())
    }

    /// Recomputes every row a diff touched.
    pub async fn finish_diff(&mut self) -> Result<(), ApplyError> {
        self.relink_services().await?;
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
        // A Service at the bound that loses this ReplicaSet may have another to take its place.
        let sql = self.sql("SELECT declarer_id FROM outpost_links WHERE account = ? AND b_id = ? AND origin = 'selector'");
        let services: Vec<String> = sqlx::query_scalar(&sql)
            .bind(&self.account)
            .bind(id)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(self.error("reading selector links"))?;
        let services: Vec<String> = services.into_iter().filter(|s| s != id).collect();
        let counts = self.selector_links_of(&services).await?;
        for service in services {
            if counts.get(&service).copied().unwrap_or(0) >= self.bound() {
                self.relink.insert(service);
            }
        }
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
                for rs in self.selected_by(id, &row.namespace, &selector).await? {
                    links.push(link(id, id, &rs, SELECTOR));
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
            let matching: Vec<String> = services
                .into_iter()
                .filter(|(service, selector)| service != id && selector_matches(selector, &labels))
                .map(|(service, _)| service)
                .collect();
            let counts = self.selector_links_of(&matching).await?;
            for service in matching {
                // Below the bound the Service links every ReplicaSet it matches; at the bound,
                // whether this one is among the first is decided by matching anew.
                if counts.get(&service).copied().unwrap_or(0) < self.bound() {
                    links.push(link(&service, &service, id, SELECTOR));
                } else {
                    self.relink.insert(service);
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
        if !self
            .database
            .cache_tables_exist(self.conn, type_name)
            .await?
        {
            // A type no object here ever had (the owner kind of a Pod, not cached): it holds
            // none of our rows, so there is nothing to delete. A row to write needs its table,
            // which the run creates before the transaction for every type its records have.
            return match rows.into_iter().find(|(_, data)| data.is_some()) {
                Some((id, _)) => Err(ApplyError::MissingTable {
                    cluster: self.cluster.clone(),
                    table: tables.resource,
                    id,
                }),
                None => Ok(()),
            };
        }
        let ids: Vec<&str> = rows.keys().map(String::as_str).collect();
        let sql = self.sql(&format!(
            "SELECT id, body_hash, body FROM {} WHERE {} AND {}",
            tables.resource,
            self.database.exact_in("agent", 1),
            self.database.exact_in("id", ids.len())
        ));
        let mut query = sqlx::query(&sql);
        query = self.database.bind_exact(query, &[self.agent.as_str()]);
        query = self.database.bind_exact(query, &ids);
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
        self.delete_rows(&tables.resource, &deletes).await?;
        self.upsert_rows(type_name, &upserts).await
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
        self.begin_snapshot().await?;
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
