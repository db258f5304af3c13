//! A diff applied incrementally: each record rewrites its object and the links that depend on
//! it, marking the rows whose bodies may change; [`DiffApply::finish`] recomputes those rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::cache::{self, CacheData, CacheKey, Dialect, Resource, selector_matches};
use crate::format::Record;

use super::super::graph::LinkRow;
use super::rows::{Parser, too_long};
use super::{
    AccountWriter, ApplyError, BATCH, LOGICAL, Labels, Link, OWNER, REFERENCE, ResourceRow,
    SELECTOR, key_of, opt_text, same_but_expiry, text, warn_collision, warn_table_collision,
};

/// A diff being applied onto the account's current rows: its records through
/// [`apply`](Self::apply), then [`finish`](Self::finish). Made by [`AccountWriter::diff`].
pub struct DiffApply<'w, 'c> {
    writer: &'w mut AccountWriter<'c>,
}

impl<'c> AccountWriter<'c> {
    /// Starts applying a diff.
    pub fn diff(&mut self) -> DiffApply<'_, 'c> {
        DiffApply { writer: self }
    }
}

impl DiffApply<'_, '_> {
    /// Applies one record of the diff.
    pub async fn apply(&mut self, record: Record) -> Result<(), ApplyError> {
        self.writer.apply_record(record).await
    }

    /// Recomputes every row the diff touched.
    pub async fn finish(self) -> Result<(), ApplyError> {
        self.writer.finish_diff().await
    }
}

impl AccountWriter<'_> {
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

    /// Applies one record of a diff.
    async fn apply_record(&mut self, record: Record) -> Result<(), ApplyError> {
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
    async fn finish_diff(&mut self) -> Result<(), ApplyError> {
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
        // The links it declares, and the selector and reference links to it.
        for sql in [
            "DELETE FROM outpost_links WHERE account = ? AND declarer_id = ?",
            "DELETE FROM outpost_links WHERE account = ? AND b_id = ? AND origin IN ('selector', 'reference')",
        ] {
            let sql = self.sql(sql);
            sqlx::query(&sql)
                .bind(&self.account)
                .bind(id)
                .execute(&mut *self.conn)
                .await
                .map_err(|e| {
                    self.database
                        .query_error(format!("cluster {}: unlinking {id}", self.cluster), e)
                })?;
        }
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
}
