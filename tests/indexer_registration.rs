//! Account registration in Clouddriver's account storage, against its tables as Clouddriver's
//! Liquibase migration creates them (PostgreSQL `jsonb`, MariaDB `JSON`) and the demo's SQLite
//! equivalents: created once, left alone when unchanged, never taken from another owner,
//! removed with a tombstone.

use outpost::cache::definition::AccountTemplate;
use outpost::indexer::Database;
use outpost::indexer::registration::{self, Registration};
use serde_json::Value;

#[macro_use]
mod common;

/// Clouddriver's `accounts` and `accounts_history`, as its migration leaves them.
async fn clouddriver_tables(database: &Database) {
    let (json, engine) = match database.dialect() {
        outpost::cache::Dialect::Postgres => ("JSONB", ""),
        _ => (
            "JSON",
            " ENGINE innodb DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_unicode_ci",
        ),
    };
    for sql in [
        format!(
            "CREATE TABLE accounts (id VARCHAR(255) NOT NULL PRIMARY KEY, type VARCHAR(50) NOT NULL, body {json} NOT NULL, created_at BIGINT NOT NULL, last_modified_at BIGINT NOT NULL, last_modified_by VARCHAR(255) NOT NULL){engine}"
        ),
        format!(
            "CREATE TABLE accounts_history (id VARCHAR(255) NOT NULL, type VARCHAR(50) NULL, body {json} NULL, last_modified_at BIGINT NOT NULL, version INT NOT NULL, is_deleted BOOLEAN NOT NULL DEFAULT FALSE, PRIMARY KEY (id, version)){engine}"
        ),
    ] {
        sqlx::query(&sql).execute(database.pool()).await.unwrap();
    }
}

async fn rows(database: &Database, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(database.pool())
        .await
        .unwrap()
}

async fn register(database: &Database, cluster: &str, body: &Value, now: i64) -> Registration {
    let mut tx = database.begin_cluster(cluster).await.unwrap();
    let outcome = registration::register(database, tx.conn(), cluster, body, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    outcome
}

async fn unregister(database: &Database, cluster: &str, account: &str) -> Registration {
    let mut tx = database.begin_cluster(cluster).await.unwrap();
    let outcome = registration::unregister(database, tx.conn(), cluster, account, 3_000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    outcome
}

async fn registers_once_and_respects_other_owners(kind: &str) {
    let Some(db) = common::db::fresh_database(kind).await else {
        return;
    };
    let database = Database::connect(&db.url, None).await.unwrap();
    let template = AccountTemplate {
        prefix: "outpost-".into(),
        ..AccountTemplate::default()
    };
    let body = template.definition("eu-1", &["shop".into()]).unwrap();

    if kind == "sqlite" {
        // The demo's database gets the tables; a server's are Clouddriver's to create.
        let mut conn = database.connection("test").await.unwrap();
        registration::ensure_sqlite_storage(&database, &mut conn)
            .await
            .unwrap();
    } else {
        let outcome = register(&database, "eu-1", &body, 1_000).await;
        assert!(
            matches!(&outcome, Registration::Pending(reason) if reason.contains("account.storage.enabled")),
            "{outcome:?}"
        );
        let mut conn = database.connection("test").await.unwrap();
        assert!(
            !registration::storage_present(&database, &mut conn)
                .await
                .unwrap()
        );
        drop(conn);
        clouddriver_tables(&database).await;
    }

    assert_eq!(
        register(&database, "eu-1", &body, 1_000).await,
        Registration::Registered
    );
    assert_eq!(
        register(&database, "eu-1", &body, 2_000).await,
        Registration::Unchanged
    );
    assert_eq!(
        rows(&database, "SELECT COUNT(*) FROM accounts_history").await,
        1
    );
    let row = sqlx::query(match database.dialect() {
        outpost::cache::Dialect::Postgres => "SELECT CAST(body AS TEXT) AS body FROM accounts",
        outpost::cache::Dialect::MySql => "SELECT CAST(body AS CHAR) AS body FROM accounts",
        outpost::cache::Dialect::Sqlite => "SELECT body FROM accounts",
    })
    .fetch_one(database.pool())
    .await
    .unwrap();
    let stored = outpost::indexer::db::text(&row, "body").unwrap();
    assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), body);

    // A changed definition is written once, with its history row.
    let changed = template
        .definition("eu-1", &["shop".into(), "pay".into()])
        .unwrap();
    assert_eq!(
        register(&database, "eu-1", &changed, 2_000).await,
        Registration::Registered
    );
    assert_eq!(
        rows(&database, "SELECT COUNT(*) FROM accounts_history").await,
        2
    );

    // Another cluster granted the same account, and an account Outpost did not create.
    let taken = register(&database, "eu-2", &changed, 2_500).await;
    assert!(
        matches!(&taken, Registration::Conflict(reason) if reason.contains("cluster eu-1")),
        "{taken:?}"
    );
    sqlx::query(&database.sql(
        "INSERT INTO accounts (id, type, body, created_at, last_modified_at, last_modified_by) VALUES ('outpost-static', 'kubernetes', '{\"type\":\"kubernetes\",\"name\":\"outpost-static\"}', 1, 1, 'admin')",
    ))
    .execute(database.pool())
    .await
    .unwrap();
    let statik = template.definition("static", &[]).unwrap();
    let conflict = register(&database, "static", &statik, 2_500).await;
    assert!(
        matches!(&conflict, Registration::Conflict(reason) if reason.contains("did not create") && reason.contains("admin")),
        "{conflict:?}"
    );
    assert_eq!(
        unregister(&database, "static", "outpost-static").await,
        Registration::Unchanged
    );
    assert_eq!(
        rows(
            &database,
            "SELECT COUNT(*) FROM accounts WHERE id = 'outpost-static' AND last_modified_by = 'admin'"
        )
        .await,
        1
    );
    let recorded = registration::recorded(&database).await.unwrap();
    let states: Vec<(&str, &str)> = recorded
        .iter()
        .map(|(account, _, state, _)| (account.as_str(), state.as_str()))
        .collect();
    assert!(
        states.contains(&("outpost-eu-1", "registered")),
        "{recorded:?}"
    );
    assert!(
        states.contains(&("outpost-static", "conflict")),
        "{recorded:?}"
    );
    assert!(
        recorded
            .iter()
            .any(|(a, c, _, _)| a == "outpost-eu-1" && c == "eu-1"),
        "{recorded:?}"
    );

    // Removal: only by the owner, with a tombstone.
    assert_eq!(
        unregister(&database, "eu-2", "outpost-eu-1").await,
        Registration::Unchanged
    );
    assert_eq!(
        unregister(&database, "eu-1", "outpost-eu-1").await,
        Registration::Removed
    );
    assert_eq!(
        rows(
            &database,
            "SELECT COUNT(*) FROM accounts WHERE id = 'outpost-eu-1'"
        )
        .await,
        0
    );
    assert_eq!(
        rows(
            &database,
            "SELECT COUNT(*) FROM accounts_history WHERE id = 'outpost-eu-1' AND is_deleted = TRUE AND body IS NULL AND version = 3"
        )
        .await,
        1
    );
    // Registered again later: a new row, the history goes on.
    assert_eq!(
        register(&database, "eu-1", &body, 4_000).await,
        Registration::Registered
    );
    assert_eq!(
        rows(
            &database,
            "SELECT MAX(version) FROM accounts_history WHERE id = 'outpost-eu-1'"
        )
        .await,
        4
    );
    database.close().await;
    db.drop_database().await;
}

on_each_database!(registers_once_and_respects_other_owners: sqlite, postgres, mariadb);
