//! Which cluster holds each Spinnaker account (`outpost_accounts`): an account's rows are one
//! cluster's, and only that cluster's runs may write or delete them. Every function runs inside a
//! cluster's transaction after [`super::db::ClusterTransaction::lock_accounts`] took the
//! account's lock.

use sqlx::AnyConnection;

use super::db::{Database, Error, text};

/// The cluster holding `account`, if any. Before `outpost_accounts` existed, the holder was the
/// cluster whose row names the account and is neither evicted nor refused; that reading stays as
/// the fallback, so that a database indexed by an older indexer keeps its owners.
pub async fn holder(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
) -> Result<Option<String>, Error> {
    let what = format!("reading the holder of account {account}");
    for sql in [
        "SELECT cluster FROM outpost_accounts WHERE account = ?",
        "SELECT cluster FROM outpost_clusters WHERE account = ? AND state <> 'EVICTED' AND state <> 'REFUSED' ORDER BY cluster",
    ] {
        let row = sqlx::query(&database.sql(sql))
            .bind(account)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| database.query_error(what.clone(), e))?;
        if let Some(row) = row {
            return Ok(Some(
                text(&row, "cluster").map_err(|e| database.query_error(what.clone(), e))?,
            ));
        }
    }
    Ok(None)
}

/// Records that `cluster` holds `account` (which [`holder`] found free or already its own).
pub async fn claim(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
    cluster: &str,
    now_ms: i64,
) -> Result<(), Error> {
    let what = format!("cluster {cluster}: claiming account {account}");
    let held: Option<i64> = sqlx::query_scalar(
        &database.sql("SELECT COUNT(*) FROM outpost_accounts WHERE account = ? AND cluster = ?"),
    )
    .bind(account)
    .bind(cluster)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| database.query_error(what.clone(), e))?;
    if held.unwrap_or(0) > 0 {
        return Ok(());
    }
    // A primary-key violation here would mean another cluster holds it after all: the
    // transaction fails and nothing of the run is applied.
    sqlx::query(
        &database
            .sql("INSERT INTO outpost_accounts (account, cluster, claimed_at) VALUES (?, ?, ?)"),
    )
    .bind(account)
    .bind(cluster)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| database.query_error(what, e))?;
    Ok(())
}

/// Gives `account` up, if `cluster` holds it.
pub async fn release(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
    cluster: &str,
) -> Result<(), Error> {
    sqlx::query(&database.sql("DELETE FROM outpost_accounts WHERE account = ? AND cluster = ?"))
        .bind(account)
        .bind(cluster)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            database.query_error(format!("cluster {cluster}: releasing account {account}"), e)
        })?;
    Ok(())
}
