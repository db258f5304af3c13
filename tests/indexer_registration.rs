//! Account registration in Clouddriver's account storage, against its tables as Clouddriver's
//! Liquibase migration creates them (PostgreSQL `jsonb`, MariaDB `JSON`) and the demo's SQLite
//! equivalents: created once, left alone when unchanged, never taken from another owner,
//! removed with a tombstone.

use outpost::cache::definition::{AccountTemplate, NAMESPACES_SETTLE_MS};
use outpost::indexer::Database;
use outpost::indexer::registration::{self, Registration};
use serde_json::Value;

#[macro_use]
mod common;

use common::accounts::clouddriver_tables;

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
    let mut database = Database::connect(&db.url, None).await.unwrap();
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
        // Found missing, they are looked for again only after a while, or by the next process.
        let mut conn = database.connection("test").await.unwrap();
        assert!(
            !registration::storage_present(&database, &mut conn)
                .await
                .unwrap(),
            "not looked for again at once"
        );
        drop(conn);
        database = Database::connect(&db.url, None).await.unwrap();
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

    // A definition whose namespaces alone changed waits for them to settle, then is written
    // once, with its history row.
    let changed = template
        .definition("eu-1", &["shop".into(), "pay".into()])
        .unwrap();
    assert_eq!(
        register(&database, "eu-1", &changed, 2_000).await,
        Registration::Unchanged
    );
    assert_eq!(
        rows(&database, "SELECT COUNT(*) FROM accounts_history").await,
        1
    );
    assert_eq!(
        register(&database, "eu-1", &changed, 1_000 + NAMESPACES_SETTLE_MS).await,
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

    // A person replaces it through Clouddriver's `/credentials`: theirs from then on, neither
    // rewritten nor removed.
    sqlx::query("UPDATE accounts SET last_modified_by = 'alice' WHERE id = 'outpost-eu-1'")
        .execute(database.pool())
        .await
        .unwrap();
    let taken = register(&database, "eu-1", &changed, 10_000_000).await;
    assert!(
        matches!(&taken, Registration::Conflict(reason) if reason.contains("alice")),
        "{taken:?}"
    );
    unregister(&database, "eu-1", "outpost-eu-1").await;
    assert_eq!(
        rows(
            &database,
            "SELECT COUNT(*) FROM accounts WHERE id = 'outpost-eu-1' AND last_modified_by = 'alice'"
        )
        .await,
        1
    );
    database.close().await;
    db.drop_database().await;
}

on_each_database!(registers_once_and_respects_other_owners: sqlite, postgres, mariadb);

/// The namespaces an account's cluster reports: those its objects are in and its Namespace
/// objects, each once, sorted, and never more than one past the most a definition lists.
async fn namespaces_are_read_once_each_and_bounded(kind: &str) {
    let Some(db) = common::db::fresh_database(kind).await else {
        return;
    };
    let database = Database::connect(&db.url, None).await.unwrap();
    let insert = |account: &'static str, rows: Vec<(String, String, String)>| {
        let database = database.clone();
        async move {
            for chunk in rows.chunks(200) {
                let values =
                    vec!["(?, ?, 'x', 'c', 'v1', ?, ?, ?, 'u', '1', 1, 1, '{}')"; chunk.len()]
                        .join(", ");
                let sql = database.sql(&format!(
                    "INSERT INTO outpost_resources (account, cache_id, cache_type, cluster, api_version, kind, namespace, name, uid, resource_version, listed, cached, object) VALUES {values}"
                ));
                let mut query = sqlx::query(&sql);
                for (kind, namespace, name) in chunk {
                    query = query
                        .bind(account)
                        .bind(format!("{kind}:{namespace}:{name}"))
                        .bind(kind.clone())
                        .bind(namespace.clone())
                        .bind(name.clone());
                }
                query.execute(database.pool()).await.unwrap();
            }
        }
    };
    let object = |kind: &str, namespace: &str, name: &str| {
        (kind.to_string(), namespace.to_string(), name.to_string())
    };
    insert(
        "small",
        vec![
            object("Pod", "shop", "a"),
            object("Pod", "shop", "b"),
            object("Service", "pay", "c"),
            object("Namespace", "", "empty"),
            object("Namespace", "", "shop"),
            object("ClusterRole", "", "admin"),
        ],
    )
    .await;
    insert("other", vec![object("Pod", "elsewhere", "a")]).await;
    let mut conn = database.connection("test").await.unwrap();
    // The Namespace rows' cache_type is what the indexer writes for them.
    sqlx::query("UPDATE outpost_resources SET cache_type = 'namespace' WHERE kind = 'Namespace'")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        registration::reported_namespaces(&database, &mut conn, "small")
            .await
            .unwrap(),
        ["empty", "pay", "shop"]
    );
    drop(conn);

    let many = registration::MAX_NAMESPACES + 5;
    insert(
        "big",
        (0..many)
            .map(|i| object("ConfigMap", &format!("ns-{i:05}"), "c"))
            .collect(),
    )
    .await;
    let mut conn = database.connection("test").await.unwrap();
    let namespaces = registration::reported_namespaces(&database, &mut conn, "big")
        .await
        .unwrap();
    assert_eq!(namespaces.len(), registration::MAX_NAMESPACES + 1);
    assert_eq!(namespaces[0], "ns-00000");
    drop(conn);
    database.close().await;
    db.drop_database().await;
}

on_each_database!(namespaces_are_read_once_each_and_bounded: sqlite, postgres, mariadb);
