//! Indexers starting at once on a fresh database: every one's migration (the `outpost_*` tables
//! and indexes, the cache tables every run needs) succeeds, on PostgreSQL and MariaDB.

use outpost::indexer::Database;
use outpost::test_support::db::server_database;

mod common;

/// Several rounds (the race is won or lost by timing) of eight connects at once.
async fn connects_at_once_all_succeed(var: &str) {
    for _round in 0..5 {
        let Some(base) = common::server_url(var) else {
            return;
        };
        let db = server_database(&base, "outpost_migrate").await;
        let url = db.url.clone();
        let connects = (0..8).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Database::connect(&url, None).await })
        });
        for result in futures::future::join_all(connects).await {
            match result.unwrap() {
                Ok(database) => database.close().await,
                Err(e) => panic!("a concurrent connect failed: {}", outpost::error_chain(&e)),
            }
        }
        db.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connects_at_once_all_succeed() {
    connects_at_once_all_succeed("OUTPOST_TEST_POSTGRES_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_connects_at_once_all_succeed() {
    connects_at_once_all_succeed("OUTPOST_TEST_MYSQL_URL").await;
}
