//! A snapshot loaded in bulk, in two passes whose order the types enforce: [`SnapshotLoad`]
//! stores the objects and builds the graph, [`SnapshotLoad::link`] stores its links and gives
//! [`SnapshotRows`], which writes the rows and, with [`SnapshotRows::finish`], deletes the rows
//! the snapshot did not produce.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::cache::CacheData;
use crate::format::Record;

use super::super::graph::{AccountGraph, GraphBuilder, LinkRow};
use super::rows::{MadeRow, ObjectBatch, ObjectMaker, RowBatch, RowMaker};
use super::{
    AccountWriter, ApplyError, BATCH, ResourceRow, same_but_expiry, text, warn_collision,
    warn_table_collision,
};

/// This agent's stored rows of one type not (yet) produced by the snapshot: `id → (body_hash,
/// body)`, the body only for logical rows, whose comparison needs it.
type StoredRows = HashMap<String, (String, Option<String>)>;

/// The first pass of a snapshot load: every record through
/// [`store_objects`](Self::store_objects) (or [`load_batch`](Self::load_batch)), then
/// [`link`](Self::link). Made by [`AccountWriter::begin_snapshot`].
pub struct SnapshotLoad<'w, 'c> {
    writer: &'w mut AccountWriter<'c>,
    graph: Box<GraphBuilder>,
    /// The first object seen of each key as the database compares it
    /// ([`Database::collation_key`](super::super::db::Database::collation_key)):
    /// `collation key → (id, name)`.
    claimed: HashMap<String, (String, String)>,
    /// See [`RowMaker`]'s `losers`.
    losers: HashMap<String, String>,
    /// The type holding each table among the snapshot's objects: `table → type`.
    table_types: HashMap<String, String>,
    /// See [`RowMaker`]'s `shadowed`.
    shadowed: BTreeSet<String>,
}

/// The second pass of a snapshot load: every record again through
/// [`store_rows`](Self::store_rows) (or [`write_batch`](Self::write_batch)), then
/// [`finish`](Self::finish).
pub struct SnapshotRows<'w, 'c> {
    writer: &'w mut AccountWriter<'c>,
    graph: Arc<AccountGraph>,
    losers: Arc<HashMap<String, String>>,
    shadowed: Arc<BTreeSet<String>>,
    /// This agent's stored rows not (yet) produced by the snapshot, per type (read once per
    /// type, see [`SnapshotRows::stored_rows`]); what remains at the end is deleted.
    stored: BTreeMap<String, StoredRows>,
    /// Rows of keys several objects share, until every object was seen: `id → (rank, type,
    /// row)`.
    shared: BTreeMap<String, (String, String, CacheData)>,
}

impl<'c> AccountWriter<'c> {
    /// Starts a snapshot load: forgets the account's objects and links (its cache rows stay
    /// until the snapshot rewrites or deletes them).
    pub async fn begin_snapshot(&mut self) -> Result<SnapshotLoad<'_, 'c>, ApplyError> {
        self.clear_objects().await?;
        let graph = Box::new(
            GraphBuilder::new(&self.account, &self.options)
                .max_id_length(self.database.dialect().max_id_length()),
        );
        Ok(SnapshotLoad {
            writer: self,
            graph,
            claimed: HashMap::new(),
            losers: HashMap::new(),
            table_types: HashMap::new(),
            shadowed: BTreeSet::new(),
        })
    }
}

impl<'w, 'c> SnapshotLoad<'w, 'c> {
    /// The CPU side of the first pass (see [`ObjectMaker`]).
    pub fn object_maker(&self) -> ObjectMaker {
        ObjectMaker::new(self.writer.parser_parts())
    }

    /// Stores the objects among `records` in `outpost_resources` and collects what their links
    /// need (puts only).
    pub async fn load_batch(&mut self, records: Vec<Record>) -> Result<(), ApplyError> {
        let batch = self.object_maker().objects(records)?;
        self.store_objects(batch).await
    }

    /// [`load_batch`](Self::load_batch) for a batch prepared by [`ObjectMaker::objects`].
    pub async fn store_objects(&mut self, batch: ObjectBatch) -> Result<(), ApplyError> {
        let writer = &mut *self.writer;
        writer.stats.records += batch.records;
        writer.stats.objects_id_too_long += batch.ids_too_long;
        let cluster = writer.cluster.clone();
        let database = writer.database.clone();
        let mut tables = HashMap::new();
        for (row, _) in &batch.objects {
            if !tables.contains_key(&row.cache_type) {
                let table = database.cache_tables(&row.cache_type)?.resource;
                tables.insert(row.cache_type.clone(), table);
            }
        }
        // One row per key in a statement (an object under two API versions is one key).
        let mut rows: BTreeMap<String, ResourceRow> = BTreeMap::new();
        let mut collisions = 0;
        let mut table_collisions = 0;
        for (row, resource) in batch.objects {
            if let Some(table) = tables.get(&row.cache_type) {
                let holder = self
                    .table_types
                    .entry(table.clone())
                    .or_insert_with(|| row.cache_type.clone());
                if *holder != row.cache_type {
                    if self.shadowed.insert(row.cache_type.clone()) {
                        warn_table_collision(&cluster, table, holder, &row.cache_type);
                    }
                    table_collisions += 1;
                    continue;
                }
            }
            match self.claimed.get(&database.collation_key(&row.cache_id)) {
                Some((id, name)) if *id != row.cache_id || *name != row.name => {
                    warn_collision(&cluster, id, name, &row);
                    self.losers.insert(row.cache_id.clone(), name.clone());
                    collisions += 1;
                    continue;
                }
                Some(_) => {}
                None => {
                    self.claimed.insert(
                        database.collation_key(&row.cache_id),
                        (row.cache_id.clone(), row.name.clone()),
                    );
                }
            }
            self.graph.add(&resource);
            rows.insert(row.cache_id.clone(), row);
        }
        let writer = &mut *self.writer;
        writer.stats.objects_key_collision += collisions;
        writer.stats.objects_table_collision += table_collisions;
        let rows: Vec<ResourceRow> = rows.into_values().collect();
        writer.insert_resources(&rows).await
    }

    /// Between the two passes: matches the partners in memory and stores every link.
    pub async fn link(self) -> Result<SnapshotRows<'w, 'c>, ApplyError> {
        let graph = Arc::new(self.graph.finish());
        let writer = self.writer;
        for (service, cut) in graph.cut_links() {
            writer.note_cut(service, cut);
        }
        let links: Vec<LinkRow<'_>> = graph.links().collect();
        writer.insert_links(&links).await?;
        drop(links);
        Ok(SnapshotRows {
            writer,
            graph,
            losers: Arc::new(self.losers),
            shadowed: Arc::new(self.shadowed),
            stored: BTreeMap::new(),
            shared: BTreeMap::new(),
        })
    }
}

impl SnapshotRows<'_, '_> {
    /// The CPU side of the second pass (see [`RowMaker`]), with the snapshot's graph.
    pub fn row_maker(&self) -> RowMaker {
        RowMaker::new(
            self.writer.parser_parts(),
            Arc::clone(&self.graph),
            Arc::clone(&self.losers),
            Arc::clone(&self.shadowed),
        )
    }

    /// Computes the rows of the cached objects among `records` and writes those whose body
    /// differs from the stored one.
    pub async fn write_batch(&mut self, records: Vec<Record>) -> Result<(), ApplyError> {
        let batch = self.row_maker().rows(records)?;
        self.store_rows(batch).await
    }

    /// [`write_batch`](Self::write_batch) for a batch prepared by [`RowMaker::rows`].
    pub async fn store_rows(&mut self, batch: RowBatch) -> Result<(), ApplyError> {
        for (id, rank, type_name, data) in batch.shared {
            match self.shared.get(&id) {
                Some((best, _, _)) if *best >= rank => {}
                _ => {
                    self.shared.insert(id, (rank, type_name, data));
                }
            }
        }
        for (type_name, rows) in batch.rows {
            self.write_snapshot_rows(&type_name, rows).await?;
        }
        Ok(())
    }

    /// Ends the load: writes the rows of shared keys and the logical rows, then deletes this
    /// agent's rows that the snapshot did not produce, in its types and in `previous_types`
    /// (the types the account had before).
    pub async fn finish(mut self, previous_types: &BTreeSet<String>) -> Result<(), ApplyError> {
        let now_ms = self.writer.now_ms;
        let shared = std::mem::take(&mut self.shared);
        let mut desired: BTreeMap<String, Vec<MadeRow>> = BTreeMap::new();
        for (_, (_, type_name, data)) in shared {
            desired
                .entry(type_name)
                .or_default()
                .push(MadeRow::new(data));
        }
        for key in self.graph.logical_keys() {
            let related = self.graph.related(&key.to_string());
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
        let database = self.writer.database.clone();
        // Each table once: a type whose table another type holds would read that type's rows
        // as its own leftovers.
        let mut read: BTreeSet<String> = BTreeSet::new();
        for type_name in self.stored.keys() {
            read.insert(database.cache_tables(type_name)?.resource);
        }
        for type_name in &types {
            let table = database.cache_tables(type_name)?.resource;
            let first = read.insert(table);
            if first || self.stored.contains_key(type_name) {
                self.stored_rows(type_name).await?;
            }
        }
        for (type_name, gone) in std::mem::take(&mut self.stored) {
            let tables = database.cache_tables(&type_name)?;
            let gone: Vec<String> = gone.into_keys().collect();
            for chunk in gone.chunks(BATCH) {
                self.writer.delete_rows(&tables.resource, chunk).await?;
            }
        }
        Ok(())
    }

    /// This agent's stored rows of `type_name` not yet matched by the snapshot, read on first
    /// use.
    async fn stored_rows(&mut self, type_name: &str) -> Result<&mut StoredRows, ApplyError> {
        if !self.stored.contains_key(type_name) {
            let rows = self.read_stored_rows(type_name).await?;
            self.stored.insert(type_name.to_string(), rows);
        }
        Ok(self.stored.entry(type_name.to_string()).or_default())
    }

    /// Reads this agent's rows of `type_name`.
    async fn read_stored_rows(&mut self, type_name: &str) -> Result<StoredRows, ApplyError> {
        let writer = &mut *self.writer;
        let tables = writer.database.cache_tables(type_name)?;
        let logical = matches!(type_name, "applications" | "clusters");
        let body = if logical { "body" } else { "NULL AS body" };
        let sql = writer.sql(&format!(
            "SELECT id, body_hash, {body} FROM {} WHERE {}",
            tables.resource,
            writer.database.exact_in("agent", 1)
        ));
        let mut query = sqlx::query(&sql);
        query = writer.database.bind_exact(query, &[writer.agent.as_str()]);
        let rows = query
            .fetch_all(&mut *writer.conn)
            .await
            .map_err(writer.error(format!("reading {}", tables.resource)))?;
        let mut stored = HashMap::with_capacity(rows.len());
        for row in rows {
            let id = text(&row, "id").map_err(writer.error("reading cache rows"))?;
            let hash = text(&row, "body_hash").map_err(writer.error("reading cache rows"))?;
            let body = if logical {
                Some(text(&row, "body").map_err(writer.error("reading cache rows"))?)
            } else {
                None
            };
            stored.insert(id, (hash, body));
        }
        Ok(stored)
    }

    /// Writes a snapshot's rows of one type where their body differs from the stored one.
    async fn write_snapshot_rows(
        &mut self,
        type_name: &str,
        rows: Vec<MadeRow>,
    ) -> Result<(), ApplyError> {
        let limit = self.writer.database.dialect().max_id_length();
        let cluster = self.writer.cluster.clone();
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
        self.writer.stats.rows_unchanged += unchanged;
        self.writer.upsert_rows(type_name, &upserts).await
    }
}
