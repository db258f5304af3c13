//! The cache rows a database holds for an account, and the rows the reference builder computes
//! for a cluster's objects, in a form to compare.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cache::{self, CacheOptions, CacheRow, Dialect, Resource};
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

/// The agent name the indexer writes `account`'s cats rows under in `dialect`.
pub fn agent_of(account: &str, dialect: Dialect) -> String {
    cache::check_agent_name(&IndexOptions::default().agent_name(account), dialect)
        .unwrap_or_else(|e| panic!("the agent name of account {account}: {e}"))
}

/// The cache types with rows in `outpost_resources`, plus applications and clusters (a type
/// here may have no cats table: its objects are not cached).
pub async fn cache_types(database: &Database) -> BTreeSet<String> {
    types_of(
        database,
        "SELECT DISTINCT cache_type AS t FROM outpost_resources",
    )
    .await
}

/// The cache types with cached rows in `outpost_resources` (`cached = 1`), plus applications and
/// clusters: the types whose cats tables exist.
pub async fn cached_types(database: &Database) -> BTreeSet<String> {
    types_of(
        database,
        "SELECT DISTINCT cache_type AS t FROM outpost_resources WHERE cached = 1",
    )
    .await
}

/// Applications, clusters and the cache types `sql` selects (as column `t`).
async fn types_of(database: &Database, sql: &str) -> BTreeSet<String> {
    let mut types: BTreeSet<String> = ["applications", "clusters"]
        .iter()
        .map(|s| s.to_string())
        .collect();
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
    stored_rows_of(database, account, cache_types(database).await).await
}

/// The cats rows of `account`'s agent in the tables of `types`, as stored (`body_hash`
/// unchecked); a type without a table has no rows.
pub async fn stored_rows_of(
    database: &Database,
    account: &str,
    types: BTreeSet<String>,
) -> Vec<CacheRow> {
    let agent = agent_of(account, database.dialect());
    let mut rows = Vec::new();
    for type_name in types {
        let table = database
            .cache_tables(&type_name)
            .unwrap_or_else(|e| panic!("the tables of cache type {type_name}: {e}"))
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
                id: text(&row, "id").unwrap_or_else(|e| panic!("an id in {table}: {e}")),
                body_hash: text(&row, "body_hash")
                    .unwrap_or_else(|e| panic!("a body_hash in {table}: {e}")),
                body: text(&row, "body").unwrap_or_else(|e| panic!("a body in {table}: {e}")),
            });
        }
    }
    rows
}
