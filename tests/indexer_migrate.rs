//! Indexers starting at once on a fresh database: every one's migration (the `outpost_*` tables
//! and indexes, the cache tables every run needs) succeeds, on PostgreSQL and MariaDB.

use outpost::indexer::Database;

mod common;

/// A fresh, empty database on the server at `var`'s URL, or `None` when it is not set.
async fn fresh_database(var: &str) -> Option<(String, String)> {
    let base = common::server_url(var)?;
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.unwrap();
    let name = format!("outpost_migrate_{:08x}", rand::random::<u32>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    Some((url.to_string(), base))
}

async fn drop_database(base: &str, url: &str) {
    let name = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = sqlx::AnyPool::connect(base).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE {name}"))
        .execute(&admin)
        .await;
    admin.close().await;
}

/// Several rounds (the race is won or lost by timing) of eight connects at once.
async fn connects_at_once_all_succeed(var: &str) {
    for _round in 0..5 {
        let Some((url, base)) = fresh_database(var).await else {
            return;
        };
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
        drop_database(&base, &url).await;
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
