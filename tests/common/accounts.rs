//! Clouddriver's account storage in tests: its tables as its Liquibase migration leaves them,
//! and the rows the indexer wrote there, read back as the credentials poller reads them.

use outpost::cache::Dialect;
use outpost::indexer::Database;
use outpost::indexer::db::{opt_text, text};
use serde_json::Value;

/// Creates `accounts` and `accounts_history` as Clouddriver's migration does (PostgreSQL
/// `jsonb`, MySQL/MariaDB `JSON`); SQLite's are the indexer's own, made on first use.
pub async fn clouddriver_tables(database: &Database) {
    let (json, engine) = match database.dialect() {
        Dialect::Postgres => ("JSONB", ""),
        Dialect::MySql => (
            "JSON",
            " ENGINE innodb DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci",
        ),
        Dialect::Sqlite => return,
    };
    for sql in [
        format!(
            "CREATE TABLE accounts (id VARCHAR(255) NOT NULL PRIMARY KEY, type VARCHAR(50) NOT NULL, body {json} NOT NULL, created_at BIGINT NOT NULL, last_modified_at BIGINT NOT NULL, last_modified_by VARCHAR(255) NOT NULL){engine}"
        ),
        format!(
            "CREATE TABLE accounts_history (id VARCHAR(255) NOT NULL, type VARCHAR(50) NULL, body {json} NULL, last_modified_at BIGINT NOT NULL, version INT NOT NULL, is_deleted BOOLEAN NOT NULL DEFAULT FALSE, PRIMARY KEY (id, version)){engine}"
        ),
    ] {
        sqlx::query(&sql)
            .execute(database.pool())
            .await
            .expect("Clouddriver's account tables");
    }
}

/// The body column as text, in `database`'s dialect.
fn body_text(database: &Database) -> &'static str {
    match database.dialect() {
        Dialect::Postgres => "CAST(body AS TEXT)",
        Dialect::MySql => "CAST(body AS CHAR)",
        Dialect::Sqlite => "body",
    }
}

/// Whether `table` exists yet (SQLite's account tables are made on the first registration).
async fn exists(database: &Database, table: &str) -> bool {
    let mut conn = database.connection("test").await.expect("a connection");
    database
        .table_exists(&mut conn, table)
        .await
        .expect("looking for a table")
}

/// The `accounts` row of `id`: (parsed body, last_modified_by), if there is one.
pub async fn account(database: &Database, id: &str) -> Option<(Value, String)> {
    if !exists(database, "accounts").await {
        return None;
    }
    let sql = database.sql(&format!(
        "SELECT {} AS body, last_modified_by FROM accounts WHERE id = ?",
        body_text(database)
    ));
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(database.pool())
        .await
        .expect("reading accounts")?;
    let body = text(&row, "body").expect("a body");
    Some((
        serde_json::from_str(&body).expect("a JSON body"),
        text(&row, "last_modified_by").expect("last_modified_by"),
    ))
}

/// `id`'s history: (version, is deleted, body) in version order.
pub async fn history(database: &Database, id: &str) -> Vec<(i64, bool, Option<Value>)> {
    if !exists(database, "accounts_history").await {
        return Vec::new();
    }
    let sql = database.sql(&format!(
        "SELECT CAST(version AS BIGINT) AS version, CASE WHEN is_deleted THEN 1 ELSE 0 END AS deleted, {} AS body FROM accounts_history WHERE id = ? ORDER BY version",
        body_text(database)
    ));
    // MySQL spells the cast SIGNED.
    let sql = if database.dialect() == Dialect::MySql {
        sql.replace("AS BIGINT", "AS SIGNED")
    } else {
        sql
    };
    sqlx::query(&sql)
        .bind(id)
        .fetch_all(database.pool())
        .await
        .expect("reading accounts_history")
        .iter()
        .map(|row| {
            let version: i64 = sqlx::Row::try_get(row, "version").expect("version");
            let deleted: i64 = sqlx::Row::try_get(row, "deleted").expect("is_deleted");
            let body = opt_text(row, "body")
                .expect("body")
                .map(|b| serde_json::from_str(&b).expect("a JSON body"));
            (version, deleted == 1, body)
        })
        .collect()
}
