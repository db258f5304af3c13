//! The CPU side of applying records — parsing objects, computing rows and bodies — with no I/O,
//! what the snapshot's passes and the diff path share.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::cache::{self, CacheData, CacheOptions, Resource};
use crate::format::Record;
use crate::format::segment::ObjectRef;

use super::super::graph::AccountGraph;
use super::{ApplyError, ResourceRow, json_string, object_label};

/// What turning records into rows needs to know of the writer, owned and `Send`, so that a
/// snapshot's next batch is prepared on another thread while the database writes the previous one.
#[derive(Debug, Clone)]
pub(super) struct ParserParts {
    pub(super) cluster: String,
    pub(super) account: String,
    pub(super) options: CacheOptions,
    /// The database's longest cache id.
    pub(super) max_id: Option<usize>,
}

impl ParserParts {
    fn parser(&self) -> Parser<'_> {
        Parser {
            cluster: &self.cluster,
            account: &self.account,
            options: &self.options,
            max_id: self.max_id,
        }
    }
}

/// The CPU side of a snapshot's first pass: parsing objects into their rows
/// ([`SnapshotLoad::object_maker`](super::SnapshotLoad::object_maker)).
#[derive(Debug, Clone)]
pub struct ObjectMaker {
    parts: ParserParts,
}

/// The CPU side of a snapshot's second pass: computing rows and bodies from the snapshot's
/// graph ([`SnapshotRows::row_maker`](super::SnapshotRows::row_maker)).
#[derive(Debug, Clone)]
pub struct RowMaker {
    parts: ParserParts,
    graph: Arc<AccountGraph>,
    /// Keys of the objects the first pass left out for a collision, with the name of the object
    /// that kept the key: an object of such a key and another name gets no row.
    losers: Arc<HashMap<String, String>>,
    /// Cache types whose table another type of the account holds: their objects get no row.
    shadowed: Arc<BTreeSet<String>>,
}

/// A batch of a snapshot's first pass, ready to store: [`ObjectMaker::objects`].
#[derive(Debug)]
pub struct ObjectBatch {
    pub(super) records: u64,
    /// Objects left out for their cache id's length.
    pub(super) ids_too_long: u64,
    /// Each object's row and resource, in the segment's order.
    pub(super) objects: Vec<(ResourceRow, Resource)>,
}

/// A batch of a snapshot's second pass, ready to write: [`RowMaker::rows`].
#[derive(Debug)]
pub struct RowBatch {
    /// Rows by type.
    pub(super) rows: BTreeMap<String, Vec<MadeRow>>,
    /// Rows of keys several objects share: `(id, rank, type, row)`.
    pub(super) shared: Vec<(String, String, String, CacheData)>,
}

/// A computed cache row.
#[derive(Debug)]
pub(super) struct MadeRow {
    pub(super) id: String,
    pub(super) hash: String,
    pub(super) body: String,
    /// A logical row's data, compared with the stored body but for its expiry.
    pub(super) logical: Option<CacheData>,
}

impl MadeRow {
    pub(super) fn new(data: CacheData) -> Self {
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
pub(super) struct Parser<'a> {
    pub(super) cluster: &'a str,
    pub(super) account: &'a str,
    pub(super) options: &'a CacheOptions,
    pub(super) max_id: Option<usize>,
}

/// Whether `id` is longer than the database stores (`max_id`): such an object is left out of
/// every table and every other row's relationships, in the snapshot and the diff paths alike.
pub(super) fn too_long(id: &str, max_id: Option<usize>) -> bool {
    max_id.is_some_and(|limit| id.len() > limit)
}

impl Parser<'_> {
    /// Whether the object of `row` is left out for its id's length (logged once, here).
    pub(super) fn skips_long_id(&self, row: &ResourceRow) -> bool {
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
    pub(super) fn resource_of(
        &self,
        target: &ObjectRef,
        object: &str,
    ) -> Result<Resource, ApplyError> {
        self.resource_from(target, serde_json::from_str(object))
    }

    /// An object's `outpost_resources` row and its parsed fields for keys and links; the
    /// resource's manifest is left out ([`cache::resource::manifest_outline`]): rows are made
    /// with [`Parser::resource_of`].
    pub(super) fn row_of(
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

impl ObjectMaker {
    pub(super) fn new(parts: ParserParts) -> Self {
        Self { parts }
    }

    fn parser(&self) -> Parser<'_> {
        self.parts.parser()
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
}

impl RowMaker {
    pub(super) fn new(
        parts: ParserParts,
        graph: Arc<AccountGraph>,
        losers: Arc<HashMap<String, String>>,
        shadowed: Arc<BTreeSet<String>>,
    ) -> Self {
        Self {
            parts,
            graph,
            losers,
            shadowed,
        }
    }

    fn parser(&self) -> Parser<'_> {
        self.parts.parser()
    }

    /// Computes a second-pass batch: the cached objects' rows, from the snapshot's graph.
    pub fn rows(&self, records: Vec<Record>) -> Result<RowBatch, ApplyError> {
        let graph = &self.graph;
        let account = &self.parts.account;
        let mut batch = RowBatch {
            rows: BTreeMap::new(),
            shared: Vec::new(),
        };
        for record in records {
            let Record::Put { target, object, .. } = record else {
                continue;
            };
            let resource = self.parser().resource_of(&target, object.get())?;
            if !self.parts.options.caches(&resource) {
                continue;
            }
            let key = resource.key(account);
            let id = key.to_string();
            if too_long(&id, self.parts.max_id)
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
                let data = CacheData::from_resource(resource, account, related.iter());
                batch.shared.push((id, rank, type_name, data));
                continue;
            }
            let data = CacheData::from_resource(resource, account, related.iter());
            batch
                .rows
                .entry(type_name)
                .or_default()
                .push(MadeRow::new(data));
        }
        Ok(batch)
    }
}
