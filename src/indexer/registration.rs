//! Clouddriver's account storage as Outpost writes it: the `accounts` row of each account a
//! cluster was granted, its `accounts_history` rows as Clouddriver itself writes them, and
//! Outpost's own record of the rows it owns (`outpost_registrations`), so that an account Outpost
//! did not create (a static account, one made through `/credentials`) is never overwritten or
//! deleted. Every function runs inside the cluster's transaction, after the account's lock.
//!
//! Clouddriver creates `accounts` and `accounts_history` with Liquibase; creating them here
//! would make its migration fail, so in PostgreSQL and MySQL they are only looked for
//! ([`storage_present`]). SQLite, which Clouddriver does not use, gets equivalent tables
//! ([`ensure_sqlite_storage`]) so that the demo shows registration too.

use serde_json::Value;
use sqlx::AnyConnection;

use super::db::{Database, Error, opt_text, text};
use crate::cache::Dialect;
use crate::cache::definition::{ACCOUNT_TYPE, Rewrite, rewrite};

/// `last_modified_by` of the rows Outpost writes.
pub const MODIFIED_BY: &str = "outpost";

/// What a registration did, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The row was written (created or changed).
    Registered,
    /// The stored definition is already this one: nothing written, nothing for Clouddriver to
    /// rebuild.
    Unchanged,
    /// An `accounts` row of that name exists that Outpost did not create: left alone.
    Conflict(String),
    /// Clouddriver's tables are not there (it has not started yet, or account storage is off).
    Pending(String),
    /// The row Outpost owned is gone.
    Removed,
    /// The cluster cannot be this account (the reason says why): nothing written.
    Refused(String),
}

impl Registration {
    /// The state as `outpost status` shows it.
    pub fn state(&self) -> &'static str {
        match self {
            Registration::Registered | Registration::Unchanged => "registered",
            Registration::Conflict(_) => "conflict",
            Registration::Pending(_) => "pending",
            Registration::Removed => "removed",
            Registration::Refused(_) => "refused",
        }
    }
}

/// Outpost's record of the accounts it registered, removed, or could not register (created by
/// the `outpost_*` migration). One row per account and cluster: at most one cluster's is
/// `registered` (the owner), since a cluster registers only an account it owns or nobody has.
pub fn schema(dialect: Dialect) -> String {
    let (short, long, engine) = match dialect {
        Dialect::MySql => (
            "VARCHAR(255)",
            "LONGTEXT",
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ),
        _ => ("TEXT", "TEXT", ""),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS outpost_registrations (
  account {short} NOT NULL,
  cluster {short} NOT NULL,
  state {short} NOT NULL,
  reason {long} NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (account, cluster)
){engine}"
    )
}

/// Whether Clouddriver's account storage tables exist.
pub async fn storage_present(database: &Database, conn: &mut AnyConnection) -> Result<bool, Error> {
    database.account_storage_present(conn).await
}

/// Creates SQLite equivalents of Clouddriver's tables (the demo's database).
pub async fn ensure_sqlite_storage(
    database: &Database,
    conn: &mut AnyConnection,
) -> Result<(), Error> {
    if database.dialect() != Dialect::Sqlite {
        return Ok(());
    }
    for sql in [
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT NOT NULL PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL, created_at BIGINT NOT NULL, last_modified_at BIGINT NOT NULL, last_modified_by TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS accounts_history (id TEXT NOT NULL, type TEXT NULL, body TEXT NULL, last_modified_at BIGINT NOT NULL, version INT NOT NULL, is_deleted BOOLEAN NOT NULL DEFAULT FALSE, PRIMARY KEY (id, version))",
    ] {
        sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| database.query_error("creating the demo's account storage tables", e))?;
    }
    Ok(())
}

/// The body column as text, and a bound text as the body column's type.
fn body_sql(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::Postgres => ("CAST(body AS TEXT)", "CAST(? AS JSONB)"),
        Dialect::MySql => ("CAST(body AS CHAR)", "?"),
        Dialect::Sqlite => ("body", "?"),
    }
}

/// Who holds `account` in Outpost's record: the cluster, or `None` when Outpost did not
/// register it.
async fn owner(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
) -> Result<Option<String>, Error> {
    let row = sqlx::query(&database.sql(
        "SELECT cluster FROM outpost_registrations WHERE account = ? AND state = 'registered'",
    ))
    .bind(account)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| database.query_error(format!("reading the registration of {account}"), e))?;
    row.map(|row| text(&row, "cluster"))
        .transpose()
        .map_err(|e| database.query_error(format!("reading the registration of {account}"), e))
}

/// The state and reason recorded for `cluster`'s registration of `account`, if any.
async fn recorded_state(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
    cluster: &str,
) -> Result<Option<(String, Option<String>)>, Error> {
    let what = format!("cluster {cluster}: reading the registration of {account}");
    let row =
        sqlx::query(&database.sql(
            "SELECT state, reason FROM outpost_registrations WHERE account = ? AND cluster = ?",
        ))
        .bind(account)
        .bind(cluster)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| database.query_error(what.clone(), e))?;
    row.map(|row| Ok((text(&row, "state")?, opt_text(&row, "reason")?)))
        .transpose()
        .map_err(|e: sqlx::Error| database.query_error(what, e))
}

/// Records what happened to `cluster`'s registration of `account`, unless that is what is
/// recorded already (a cluster pending for minutes writes nothing on each run), and logs the
/// change: the one place a registration's state moves.
pub async fn record(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
    cluster: &str,
    registration: &Registration,
    now_ms: i64,
) -> Result<(), Error> {
    let reason = match registration {
        Registration::Conflict(reason)
        | Registration::Pending(reason)
        | Registration::Refused(reason) => Some(reason.clone()),
        _ => None,
    };
    let recorded = recorded_state(database, conn, account, cluster).await?;
    let wanted = Some((registration.state().to_string(), reason.clone()));
    if recorded == wanted {
        return Ok(());
    }
    match registration {
        Registration::Registered | Registration::Unchanged | Registration::Removed => {
            tracing::info!(%cluster, %account, state = registration.state(), "account registration");
        }
        Registration::Conflict(reason)
        | Registration::Pending(reason)
        | Registration::Refused(reason) => {
            tracing::warn!(%cluster, %account, state = registration.state(), %reason, "account not registered");
        }
    }
    let what = format!("cluster {cluster}: recording the registration of {account}");
    sqlx::query(
        &database.sql("DELETE FROM outpost_registrations WHERE account = ? AND cluster = ?"),
    )
    .bind(account)
    .bind(cluster)
    .execute(&mut *conn)
    .await
    .map_err(|e| database.query_error(what.clone(), e))?;
    sqlx::query(&database.sql(
        "INSERT INTO outpost_registrations (account, cluster, state, reason, updated_at) VALUES (?, ?, ?, ?, ?)",
    ))
    .bind(account)
    .bind(cluster)
    .bind(registration.state())
    .bind(reason)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| database.query_error(what, e))?;
    Ok(())
}

/// Appends `account`'s next `accounts_history` row: its body, or a tombstone (`body` NULL).
async fn history(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
    body: Option<&str>,
    now_ms: i64,
) -> Result<(), Error> {
    let what = format!("writing the account history of {account}");
    let version: i64 = sqlx::query_scalar(
        &database.sql("SELECT COALESCE(MAX(version), 0) + 1 FROM accounts_history WHERE id = ?"),
    )
    .bind(account)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| database.query_error(what.clone(), e))?;
    let (_, bind_body) = body_sql(database.dialect());
    let sql = match body {
        Some(_) => format!(
            "INSERT INTO accounts_history (id, type, body, last_modified_at, version, is_deleted) VALUES (?, ?, {bind_body}, ?, ?, FALSE)"
        ),
        None => "INSERT INTO accounts_history (id, type, body, last_modified_at, version, is_deleted) VALUES (?, NULL, NULL, ?, ?, TRUE)".to_string(),
    };
    let sql = database.sql(&sql);
    let query = sqlx::query(&sql).bind(account);
    let query = match body {
        Some(body) => query.bind(ACCOUNT_TYPE).bind(body),
        None => query,
    };
    query
        .bind(now_ms)
        .bind(version as i32)
        .execute(&mut *conn)
        .await
        .map_err(|e| database.query_error(what, e))?;
    Ok(())
}

/// The most namespaces an account definition lists: every Clouddriver replica parses the body
/// on each reload, and a cluster must not make that body as large as it likes.
pub const MAX_NAMESPACES: usize = 10_000;

/// The namespaces `account`'s cluster reports: the names of its Namespace objects and the
/// namespaces its objects are in (a cluster whose agent does not watch Namespaces still has
/// them), sorted; at most [`MAX_NAMESPACES`] + 1, so that one too many is seen and refused.
/// The query walks the `(account, namespace, …)` index once per namespace rather than reading
/// every object: PostgreSQL and SQLite are led through it by a recursive query, MySQL by a
/// `GROUP BY` on the index's leading columns.
pub async fn reported_namespaces(
    database: &Database,
    conn: &mut AnyConnection,
    account: &str,
) -> Result<Vec<String>, Error> {
    let what = format!("reading the namespaces of account {account}");
    let limit = MAX_NAMESPACES + 1;
    let distinct = match database.dialect() {
        // MariaDB answers a DISTINCT from the primary key, row by row; a GROUP BY on the
        // index's leading columns it answers by walking the index ("Using index for group-by"),
        // 16 times faster at 20,000 objects (BENCHMARKS.md).
        Dialect::MySql => format!(
            "SELECT namespace FROM outpost_resources WHERE account = ? AND namespace > '' GROUP BY account, namespace LIMIT {limit}"
        ),
        Dialect::Postgres | Dialect::Sqlite => format!(
            "WITH RECURSIVE ns(namespace) AS (
  SELECT MIN(namespace) FROM outpost_resources WHERE account = ? AND namespace > ''
  UNION ALL
  SELECT (SELECT MIN(r.namespace) FROM outpost_resources r WHERE r.account = ? AND r.namespace > ns.namespace)
  FROM ns WHERE ns.namespace IS NOT NULL
)
SELECT namespace FROM ns WHERE namespace IS NOT NULL LIMIT {limit}"
        ),
    };
    let distinct = database.sql(&distinct);
    let mut query = sqlx::query_scalar::<_, String>(&distinct).bind(account);
    if database.dialect() != Dialect::MySql {
        query = query.bind(account);
    }
    let mut namespaces: std::collections::BTreeSet<String> = query
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| database.query_error(what.clone(), e))?
        .into_iter()
        .collect();
    let named: Vec<String> = sqlx::query_scalar(&database.sql(&format!(
        "SELECT name FROM outpost_resources WHERE account = ? AND namespace = '' AND cache_type = 'namespace' AND kind = 'Namespace' LIMIT {limit}"
    )))
    .bind(account)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| database.query_error(what, e))?;
    namespaces.extend(named);
    Ok(namespaces.into_iter().take(limit).collect())
}

/// An `accounts` row as `cluster` finds it.
enum Stored {
    /// No row of that name.
    Absent,
    /// The row Outpost registered for this cluster, as Outpost last wrote it.
    Ours {
        body: Option<String>,
        last_modified_ms: i64,
    },
    /// Somebody else's row (the reason says whose): never written or deleted by this cluster.
    Foreign(String),
}

/// Reads `account`'s row and decides whose it is. It is this cluster's only when Outpost's
/// record says it registered it for this cluster *and* Outpost was its last writer: a row a
/// person replaced through `/credentials` is theirs from then on.
async fn stored(
    database: &Database,
    conn: &mut AnyConnection,
    cluster: &str,
    account: &str,
) -> Result<Stored, Error> {
    let what = format!("cluster {cluster}: reading account {account}");
    let (read_body, _) = body_sql(database.dialect());
    let Some(row) = sqlx::query(&database.sql(&format!(
        "SELECT {read_body} AS body, last_modified_by, last_modified_at FROM accounts WHERE id = ?"
    )))
    .bind(account)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| database.query_error(what.clone(), e))?
    else {
        return Ok(Stored::Absent);
    };
    let read = |e| database.query_error(what.clone(), e);
    let by = opt_text(&row, "last_modified_by")
        .map_err(read)?
        .unwrap_or_default();
    let body = opt_text(&row, "body").map_err(read)?;
    let last_modified_ms: i64 = sqlx::Row::try_get(&row, "last_modified_at").map_err(read)?;
    Ok(match owner(database, conn, account).await? {
        Some(owner) if owner == cluster && by == MODIFIED_BY => Stored::Ours {
            body,
            last_modified_ms,
        },
        Some(owner) if owner == cluster => Stored::Foreign(format!(
            "account {account}, registered by Outpost, was since changed by {by:?} (through Clouddriver's /credentials): it is theirs now and left alone; remove it, or rename this cluster's account"
        )),
        Some(other) => Stored::Foreign(format!(
            "account {account} is registered for cluster {other}"
        )),
        None => Stored::Foreign(format!(
            "an account {account} that Outpost did not create exists in Clouddriver's accounts table (last modified by {by:?}): it and its cache rows are left alone; rename the account (the template's prefix, or the claim policy) or remove that one"
        )),
    })
}

/// Why `cluster` may not write account `account` at all, if it may not: an `accounts` row of
/// that name exists that is not Outpost's for this cluster ([`stored`]). Asked before any cache
/// row is written, since the rows of an account Outpost does not own are some other writer's.
pub async fn conflict(
    database: &Database,
    conn: &mut AnyConnection,
    cluster: &str,
    account: &str,
) -> Result<Option<String>, Error> {
    if !storage_present(database, conn).await? {
        return Ok(None);
    }
    Ok(match stored(database, conn, cluster, account).await? {
        Stored::Foreign(reason) => Some(reason),
        Stored::Absent | Stored::Ours { .. } => None,
    })
}

/// Writes `definition` (from [`crate::cache::definition::AccountTemplate::definition`]) as the
/// `accounts` row of its account, for `cluster`: created when there is none, changed only when
/// its parsed body differs ([`rewrite`]), never when the row there is not Outpost's.
pub async fn register(
    database: &Database,
    conn: &mut AnyConnection,
    cluster: &str,
    definition: &Value,
    now_ms: i64,
) -> Result<Registration, Error> {
    let Some(account) = definition["name"].as_str() else {
        return Ok(Registration::Conflict(
            "the definition has no name".to_string(),
        ));
    };
    let outcome = register_row(database, conn, cluster, account, definition, now_ms).await?;
    if outcome != Registration::Unchanged {
        record(database, conn, account, cluster, &outcome, now_ms).await?;
    }
    Ok(outcome)
}

async fn register_row(
    database: &Database,
    conn: &mut AnyConnection,
    cluster: &str,
    account: &str,
    definition: &Value,
    now_ms: i64,
) -> Result<Registration, Error> {
    if database.dialect() == Dialect::Sqlite {
        ensure_sqlite_storage(database, conn).await?;
    }
    if !storage_present(database, conn).await? {
        return Ok(Registration::Pending(
            "Clouddriver's accounts and accounts_history tables are missing: Clouddriver has not started on this database yet, or its account storage is off (account.storage.enabled and account.storage.kubernetes.enabled)".to_string(),
        ));
    }
    let what = format!("cluster {cluster}: registering account {account}");
    let (_, bind_body) = body_sql(database.dialect());
    let body = definition.to_string();
    match stored(database, conn, cluster, account).await? {
        Stored::Foreign(reason) => return Ok(Registration::Conflict(reason)),
        Stored::Ours {
            body: stored_body,
            last_modified_ms,
        } => {
            match stored_body.map(|stored| rewrite(&stored, definition, last_modified_ms, now_ms)) {
                Some(Rewrite::Same) => return Ok(Registration::Unchanged),
                Some(Rewrite::Deferred) => {
                    tracing::debug!(%cluster, %account, "namespaces changed: rewritten once they settle");
                    return Ok(Registration::Unchanged);
                }
                Some(Rewrite::Due) | None => {}
            }
            // Only while Outpost is still its last writer: a `/credentials` write between
            // the read and this statement is not overwritten.
            let updated = sqlx::query(&database.sql(&format!(
                "UPDATE accounts SET body = {bind_body}, last_modified_at = ?, last_modified_by = ? WHERE id = ? AND last_modified_by = ?"
            )))
            .bind(&body)
            .bind(now_ms)
            .bind(MODIFIED_BY)
            .bind(account)
            .bind(MODIFIED_BY)
            .execute(&mut *conn)
            .await
            .map_err(|e| database.query_error(what, e))?;
            if updated.rows_affected() == 0 {
                return Ok(Registration::Conflict(format!(
                    "account {account} was changed by someone else while Outpost rewrote it: left alone"
                )));
            }
            tracing::info!(%cluster, %account, "account definition changed: rewritten");
        }
        Stored::Absent => {
            sqlx::query(&database.sql(&format!(
                "INSERT INTO accounts (id, type, body, created_at, last_modified_at, last_modified_by) VALUES (?, ?, {bind_body}, ?, ?, ?)"
            )))
            .bind(account)
            .bind(ACCOUNT_TYPE)
            .bind(&body)
            .bind(now_ms)
            .bind(now_ms)
            .bind(MODIFIED_BY)
            .execute(&mut *conn)
            .await
            .map_err(|e| database.query_error(what, e))?;
        }
    }
    history(database, conn, account, Some(&body), now_ms).await?;
    Ok(Registration::Registered)
}

/// Deletes `account`'s row if Outpost registered it for `cluster` (after the account's cache
/// rows: an account without rows is harmless, rows without an account are listed but cannot be
/// opened), with a tombstone in its history. A row Outpost does not own stays.
pub async fn unregister(
    database: &Database,
    conn: &mut AnyConnection,
    cluster: &str,
    account: &str,
    now_ms: i64,
) -> Result<Registration, Error> {
    if owner(database, conn, account).await?.as_deref() != Some(cluster) {
        return Ok(Registration::Unchanged);
    }
    if storage_present(database, conn).await? {
        let what = format!("cluster {cluster}: removing account {account}");
        // Only a row Outpost still last wrote: one a person replaced through `/credentials` is
        // theirs.
        let deleted = sqlx::query(
            &database.sql("DELETE FROM accounts WHERE id = ? AND last_modified_by = ?"),
        )
        .bind(account)
        .bind(MODIFIED_BY)
        .execute(&mut *conn)
        .await
        .map_err(|e| database.query_error(what, e))?;
        if deleted.rows_affected() > 0 {
            history(database, conn, account, None, now_ms).await?;
        }
    }
    record(
        database,
        conn,
        account,
        cluster,
        &Registration::Removed,
        now_ms,
    )
    .await?;
    Ok(Registration::Removed)
}

/// One account's registration as recorded: (account, cluster, state, reason).
pub type Recorded = (String, String, String, Option<String>);

/// Every registration recorded, by account (for `outpost status`).
pub async fn recorded(database: &Database) -> Result<Vec<Recorded>, Error> {
    let what = "reading the account registrations";
    let mut conn = database.connection(what).await?;
    if !database
        .table_exists(&mut conn, "outpost_registrations")
        .await?
    {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT account, cluster, state, reason FROM outpost_registrations ORDER BY account",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| database.query_error(what, e))?;
    rows.iter()
        .map(|row| {
            Ok((
                text(row, "account")?,
                text(row, "cluster")?,
                text(row, "state")?,
                opt_text(row, "reason")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| database.query_error(what, e))
}
