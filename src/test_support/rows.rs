//! The cache rows a database holds for an account, and the rows the reference builder computes
//! for a cluster's objects, in a form to compare.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cache::{self, CacheOptions, CacheRow, Resource};
use crate::indexer::db::text;
use crate::indexer::{Database, IndexOptions};

/// A row's body as compared: without `cacheExpiry`, which carries the time it was written.
pub fn comparable_body(body: &str) -> Value {
    let mut value: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("a row body is JSON: {e}: {body}"));
    if let Some(attributes) = value["attributes"].as_object_mut() {
        attributes.remove("cacheExpiry");
    }
    value
}

/// What the reference builder computes for `account` holding `objects`.
pub fn reference_rows(account: &str, objects: impl IntoIterator<Item = Value>) -> Vec<CacheRow> {
    let resources: Vec<Resource> = objects
        .into_iter()
        .map(|object| {
            Resource::parse(object).unwrap_or_else(|e| panic!("a resource the agent shipped: {e}"))
        })
        .collect();
    cache::build_account(account, &resources, &CacheOptions::default(), 0)
}

/// The cache types with rows in `outpost_resources`, plus applications and clusters.
pub async fn cache_types(database: &Database) -> BTreeSet<String> {
    let mut types: BTreeSet<String> = ["applications", "clusters"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sql = "SELECT DISTINCT cache_type AS t FROM outpost_resources";
    for row in sqlx::query(sql)
        .fetch_all(database.pool())
        .await
        .expect("reads outpost_resources")
    {
        types.insert(text(&row, "t").expect("a cache type"));
    }
    types
}

/// Every cats row of `account`'s agent, as stored (`body_hash` unchecked).
pub async fn stored_rows(database: &Database, account: &str) -> Vec<CacheRow> {
    let agent = cache::check_agent_name(
        &IndexOptions::default().agent_name(account),
        database.dialect(),
    )
    .expect("a valid agent name");
    let mut rows = Vec::new();
    for type_name in cache_types(database).await {
        let table = database
            .cache_tables(&type_name)
            .expect("a cache type's tables")
            .resource;
        let sql = database.sql(&format!(
            "SELECT id, body_hash, body FROM {table} WHERE agent = ?"
        ));
        let Ok(found) = sqlx::query(&sql)
            .bind(&agent)
            .fetch_all(database.pool())
            .await
        else {
            continue; // no table: no rows
        };
        for row in found {
            rows.push(CacheRow {
                type_name: type_name.clone(),
                id: text(&row, "id").expect("an id"),
                body_hash: text(&row, "body_hash").expect("a body_hash"),
                body: text(&row, "body").expect("a body"),
            });
        }
    }
    rows
}
