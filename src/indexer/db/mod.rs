//! The indexer's database: one connection pool for PostgreSQL, MySQL/MariaDB or SQLite, its own
//! `outpost_*` tables, Clouddriver's per-type `cats_v1_*` tables, and the per-cluster lock under
//! which a cluster's rows and checkpoint commit in one transaction.

mod schema;
pub mod secret;
mod transaction;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::cache::{self, Dialect};

use schema::{ADDED_COLUMNS, cats_ddl, create_like, outpost_indexes, outpost_schema};
pub use transaction::ClusterTransaction;
use transaction::{MIGRATION_LOCK, lock_key, lock_name};

/// What went wrong talking to the database; every variant names the database (without password)
/// and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid database URL {url:?}: {reason}")]
    ParseUrl { url: String, reason: String },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{url}: {what}: {source}")]
    Query {
        url: String,
        what: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{url}: cannot name the cache table of type {type_name:?}: {source}")]
    TableName {
        url: String,
        type_name: String,
        #[source]
        source: cache::Error,
    },
    #[error("{url}: timed out after {seconds} s waiting for the lock of cluster {cluster}")]
    LockTimeout {
        url: String,
        cluster: String,
        seconds: u64,
    },
    #[error("{url}: timed out after {seconds} s waiting for another indexer's schema migration")]
    MigrationLockTimeout { url: String, seconds: u64 },
}

/// How long a run waits for another indexer's lock on the same cluster.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// The two tables of a Clouddriver cache type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTables {
    /// `cats_v1_<type>`: one row per (id, agent).
    pub resource: String,
    /// `cats_v1_<type>_rel`: always created (Clouddriver's reads UNION it), left empty.
    pub rel: String,
}

/// How long Clouddriver's account storage tables, found missing, are taken to be missing
/// before they are looked for again (the catalog queries cost milliseconds on MySQL).
pub const ACCOUNT_STORAGE_RECHECK: Duration = Duration::from_secs(60);

/// A connected database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    /// The URL without its password, for messages.
    display_url: String,
    /// `sql.table-namespace`, if Clouddriver is configured with one.
    table_namespace: Option<String>,
    /// Cache types whose tables are known to exist (created or checked in this process).
    created: Arc<Mutex<BTreeSet<String>>>,
    /// Whether Clouddriver's account storage tables were seen (they are never dropped while
    /// Clouddriver runs, so a process looks for them until it finds them, then no more).
    account_storage_seen: Arc<AtomicBool>,
    /// When they were last found missing: looked for again only after
    /// [`ACCOUNT_STORAGE_RECHECK`], not on every cluster's run.
    account_storage_missing: Arc<Mutex<Option<std::time::Instant>>>,
    /// MySQL: whether cluster transactions run READ COMMITTED (see
    /// [`Database::begin_cluster`]); not where statement-based binary logging forbids it.
    read_committed: bool,
}

/// MySQL/MariaDB: whether transactions may run READ COMMITTED, which InnoDB refuses to
/// write under statement-based binary logging (`log_bin` on with `binlog_format =
/// STATEMENT`). There, and if the settings cannot be read, the server's default isolation
/// stays (REPEATABLE READ: clusters indexed at once then deadlock more often, and are
/// retried).
async fn read_committed_allowed(pool: &AnyPool, dialect: Dialect) -> bool {
    if dialect != Dialect::MySql {
        return false;
    }
    let settings: Result<(i64, String), sqlx::Error> =
        sqlx::query_as("SELECT CAST(@@log_bin AS SIGNED), CAST(@@binlog_format AS CHAR)")
            .fetch_one(pool)
            .await;
    match settings {
        Ok((log_bin, format)) => log_bin == 0 || !format.eq_ignore_ascii_case("STATEMENT"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the binary log settings: cluster transactions keep the server's isolation level");
            false
        }
    }
}

/// A database URL's dialect and its text with any password masked.
pub fn parse_url(url: &str) -> Result<(Dialect, String), Error> {
    let parsed = url::Url::parse(url).map_err(|e| Error::ParseUrl {
        url: mask(url),
        reason: format!("{e} (expected e.g. postgres://user@host/db, mysql://user@host/db or sqlite:///path/cache.db)"),
    })?;
    let dialect = match parsed.scheme() {
        "postgres" | "postgresql" => Dialect::Postgres,
        "mysql" | "mariadb" => Dialect::MySql,
        "sqlite" => Dialect::Sqlite,
        other => {
            return Err(Error::ParseUrl {
                url: mask(url),
                reason: format!(
                    "unsupported scheme {other:?}: use postgres://, mysql:// (MySQL or MariaDB) or sqlite://"
                ),
            });
        }
    };
    Ok((dialect, mask(url)))
}

/// `url` with the password replaced by `***`.
fn mask(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

impl Database {
    /// Connects (SQLite: creating the file if missing) and creates the `outpost_*` tables.
    pub async fn connect(url: &str, table_namespace: Option<&str>) -> Result<Self, Error> {
        let database = Self::open(url, table_namespace, true).await?;
        database.migrate().await?;
        Ok(database)
    }

    /// Connects to a database the indexer made, to read it only: nothing is created (a
    /// reader's database user may have no other right than `SELECT`), and SQLite opens the file
    /// read-only.
    pub async fn connect_reader(url: &str) -> Result<Self, Error> {
        Self::open(url, None, false).await
    }

    async fn open(url: &str, table_namespace: Option<&str>, write: bool) -> Result<Self, Error> {
        let (dialect, display_url) = parse_url(url)?;
        sqlx::any::install_default_drivers();
        // SQLite: create the file if missing; `mariadb://` is spelled `mysql://` for the driver.
        let driver_url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let mode = if write { "rwc" } else { "ro" };
                if url.contains('?') {
                    format!("{url}&mode={mode}")
                } else {
                    format!("{url}?mode={mode}")
                }
            }
            Dialect::MySql if url.starts_with("mariadb:") => format!("mysql:{}", &url[8..]),
            _ => url.to_string(),
        };
        let options: AnyConnectOptions = driver_url.parse().map_err(|e| Error::ParseUrl {
            url: display_url.clone(),
            reason: format!("{e}"),
        })?;
        // One direct attempt first: an unreachable or misconfigured database fails at once
        // with its own error instead of after the pool's acquire timeout.
        {
            use sqlx::Connection;
            let probe = sqlx::AnyConnection::connect_with(&options)
                .await
                .map_err(|source| Error::Connect {
                    url: display_url.clone(),
                    source,
                })?;
            let _ = probe.close().await;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect {
                url: display_url.clone(),
                source,
            })?;
        if let Some(namespace) = table_namespace {
            // Validated here so that a bad namespace fails before anything is written.
            cache::resource_table("applications", dialect, Some(namespace)).map_err(|source| {
                Error::TableName {
                    url: display_url.clone(),
                    type_name: "applications".into(),
                    source,
                }
            })?;
        }
        let read_committed = read_committed_allowed(&pool, dialect).await;
        let database = Self {
            pool,
            dialect,
            display_url,
            table_namespace: table_namespace.map(str::to_string),
            created: Arc::default(),
            account_storage_seen: Arc::default(),
            account_storage_missing: Arc::default(),
            read_committed,
        };
        Ok(database)
    }

    /// The database's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// The pool (for reads outside a cluster's transaction).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A connection from the pool; `what` names the operation in the error.
    pub async fn connection(
        &self,
        what: impl Into<String>,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, Error> {
        self.pool
            .acquire()
            .await
            .map_err(|e| self.query_error(what, e))
    }

    /// `sql` with `?` placeholders numbered `$1, $2, ...` on PostgreSQL. Our statements have no
    /// `?` inside literals.
    pub fn sql(&self, sql: &str) -> String {
        placeholders(self.dialect, sql)
    }

    /// A condition that `column` (of a Clouddriver `cats_v1_*` table) is one of `n` values,
    /// compared exactly: those tables are `utf8mb4_unicode_ci` on MySQL, where `=` alone also
    /// matches ids and agents differing in case or accents. On MySQL the values are bound twice
    /// ([`Database::bind_exact`]): the collated `IN` keeps the index, the binary one decides.
    pub fn exact_in(&self, column: &str, n: usize) -> String {
        let list = vec!["?"; n].join(", ");
        match self.dialect {
            Dialect::MySql => {
                format!("{column} IN ({list}) AND CAST({column} AS BINARY) IN ({list})")
            }
            Dialect::Postgres | Dialect::Sqlite => format!("{column} IN ({list})"),
        }
    }

    /// Binds the values of an [`Database::exact_in`] condition, in its order, as many times as
    /// it names them.
    pub fn bind_exact<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        values: &[&'q str],
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let times = match self.dialect {
            Dialect::MySql => 2,
            Dialect::Postgres | Dialect::Sqlite => 1,
        };
        for _ in 0..times {
            for value in values {
                query = query.bind(*value);
            }
        }
        query
    }

    /// The form of a cache id that the `cats_v1_*` tables' `(id, agent)` key compares: on MySQL
    /// (`utf8mb4_unicode_ci`) ids differing only in case are one key — lower case stands for that
    /// collation here, which also folds accents (object names are ASCII in practice) — elsewhere
    /// the id itself.
    pub fn collation_key(&self, id: &str) -> String {
        match self.dialect {
            Dialect::MySql => id.to_lowercase(),
            Dialect::Postgres | Dialect::Sqlite => id.to_string(),
        }
    }

    /// An error of `what` on this database.
    pub fn query_error(&self, what: impl Into<String>, source: sqlx::Error) -> Error {
        Error::Query {
            url: self.display_url.clone(),
            what: what.into(),
            source,
        }
    }

    /// Creates what every run needs, under a database-wide lock: indexers starting at once on
    /// a fresh database would otherwise collide inside PostgreSQL's `CREATE ... IF NOT EXISTS`,
    /// which is not atomic (a duplicate in its catalog's unique index, SQLSTATE 23505).
    async fn migrate(&self) -> Result<(), Error> {
        const WHAT: &str = "locking the schema migration";
        if self.dialect == Dialect::Sqlite {
            // SQLite's write lock orders migrations between processes, and the pool's one
            // connection is needed by the migration itself.
            return self.migrate_locked().await;
        }
        let mut conn = self.connection(WHAT).await?;
        let timeout = LOCK_TIMEOUT.as_secs();
        let locked = match self.dialect {
            Dialect::Postgres => {
                let lock = format!("SELECT pg_advisory_lock({})", lock_key(MIGRATION_LOCK));
                match conn
                    .execute(format!("SET lock_timeout = '{timeout}s'").as_str())
                    .await
                {
                    Ok(_) => conn.execute(lock.as_str()).await.map(|_| ()),
                    Err(e) => Err(e),
                }
                .map_err(|e| self.query_error(WHAT, e))
            }
            Dialect::MySql => {
                let got: Result<Option<i64>, sqlx::Error> =
                    sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                        .bind(lock_name(MIGRATION_LOCK))
                        .bind(timeout as i64)
                        .fetch_one(&mut *conn)
                        .await;
                match got {
                    Ok(Some(1)) => Ok(()),
                    Ok(_) => Err(Error::MigrationLockTimeout {
                        url: self.display_url.clone(),
                        seconds: timeout,
                    }),
                    Err(e) => Err(self.query_error(WHAT, e)),
                }
            }
            Dialect::Sqlite => Ok(()),
        };
        if let Err(e) = locked {
            conn.close_on_drop();
            return Err(e);
        }
        let migrated = self.migrate_locked().await;
        let released = match self.dialect {
            Dialect::Postgres => conn
                .execute(
                    format!("SELECT pg_advisory_unlock({})", lock_key(MIGRATION_LOCK)).as_str(),
                )
                .await
                .map(|_| ()),
            Dialect::MySql => sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(lock_name(MIGRATION_LOCK))
                .execute(&mut *conn)
                .await
                .map(|_| ()),
            Dialect::Sqlite => Ok(()),
        };
        if released.is_err() {
            // The server releases the lock when the connection closes.
            conn.close_on_drop();
        }
        migrated
    }

    /// The migration's statements, run while [`migrate`](Self::migrate) holds its lock.
    async fn migrate_locked(&self) -> Result<(), Error> {
        for statement in outpost_schema(self.dialect) {
            self.pool
                .execute(statement.as_str())
                .await
                .map_err(|e| self.query_error("creating the outpost_* tables", e))?;
        }
        for (table, column, column_type) in ADDED_COLUMNS {
            self.add_column(table, column, column_type).await?;
        }
        if self.dialect == Dialect::Postgres {
            self.prefer_lz4_objects().await;
        }
        for statement in outpost_indexes(self.dialect) {
            // CREATE INDEX IF NOT EXISTS is not MySQL syntax: there an existing index is an error
            // (1061, duplicate key name) that means the index is already there.
            match self.pool.execute(statement.as_str()).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e))
                    if self.dialect == Dialect::MySql && e.code().as_deref() == Some("42000") =>
                {
                    if !e.message().contains("Duplicate key name") {
                        return Err(self.query_error(
                            "creating the outpost_* indexes",
                            sqlx::Error::Database(e),
                        ));
                    }
                }
                Err(e) => return Err(self.query_error("creating the outpost_* indexes", e)),
            }
        }
        // Clouddriver reads these whatever kinds exist; every eviction deletes from them.
        self.ensure_cache_tables("applications").await?;
        self.ensure_cache_tables("clusters").await?;
        Ok(())
    }

    /// Adds a nullable column to an `outpost_*` table that predates it, unless it is there.
    async fn add_column(&self, table: &str, column: &str, column_type: &str) -> Result<(), Error> {
        let probe = format!("SELECT {column} FROM {table} WHERE 1 = 0");
        if self.pool.execute(probe.as_str()).await.is_ok() {
            return Ok(());
        }
        let column_type = schema::column_type(self.dialect, column_type);
        let alter = format!("ALTER TABLE {table} ADD COLUMN {column} {column_type} NULL");
        match self.pool.execute(alter.as_str()).await {
            Ok(_) => Ok(()),
            // Another process added it meanwhile (SQLite takes no migration lock).
            Err(_) if self.pool.execute(probe.as_str()).await.is_ok() => Ok(()),
            Err(e) => Err(self.query_error(format!("adding column {table}.{column}"), e)),
        }
    }

    /// On PostgreSQL 14+ built with lz4, stores `outpost_resources.object` lz4-compressed
    /// rather than pglz (the default): the snapshot load's server CPU goes largely to compressing
    /// the objects. Altered once (the column's setting is checked first, so no lock is taken
    /// afterwards); where lz4 is not available the default stays, which is only slower.
    async fn prefer_lz4_objects(&self) {
        let current: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(
            "SELECT CAST(attcompression AS TEXT) FROM pg_attribute WHERE attrelid = CAST('outpost_resources' AS regclass) AND attname = 'object'",
        )
        .fetch_optional(&self.pool)
        .await;
        if let Ok(Some(setting)) = &current
            && setting == "l"
        {
            return;
        }
        if let Err(e) = self
            .pool
            .execute("ALTER TABLE outpost_resources ALTER COLUMN object SET COMPRESSION lz4")
            .await
        {
            tracing::debug!(error = %e, "outpost_resources.object keeps PostgreSQL's default compression");
        }
    }

    /// The table names of a cache type (no I/O).
    pub fn cache_tables(&self, type_name: &str) -> Result<CacheTables, Error> {
        let name_error = |source| Error::TableName {
            url: self.display_url.clone(),
            type_name: type_name.to_string(),
            source,
        };
        Ok(CacheTables {
            resource: cache::resource_table(
                type_name,
                self.dialect,
                self.table_namespace.as_deref(),
            )
            .map_err(name_error)?,
            rel: cache::rel_table(type_name, self.dialect, self.table_namespace.as_deref())
                .map_err(name_error)?,
        })
    }

    /// Makes sure a cache type's two tables exist: `LIKE` Clouddriver's template tables when
    /// Clouddriver has migrated this database, with equivalent DDL otherwise (the templates
    /// themselves are never created: Clouddriver's Liquibase would then fail). DDL runs outside
    /// any cluster transaction (MySQL commits implicitly on DDL).
    pub async fn ensure_cache_tables(&self, type_name: &str) -> Result<CacheTables, Error> {
        let tables = self.cache_tables(type_name)?;
        if self.known(type_name) {
            return Ok(tables);
        }
        let templates = self.has_templates().await?;
        for (table, rel) in [(&tables.resource, false), (&tables.rel, true)] {
            let statements = if templates {
                vec![create_like(self.dialect, table, rel)]
            } else {
                cats_ddl(self.dialect, table, rel)
            };
            for statement in statements {
                self.execute_ddl(&statement)
                    .await
                    .map_err(|e| self.query_error(format!("creating table {table}"), e))?;
            }
        }
        if let Ok(mut created) = self.created.lock() {
            created.insert(type_name.to_string());
        }
        Ok(tables)
    }

    /// Makes sure the tables exist of the cache types among `types` (those a cluster's segments
    /// name) whose objects can get rows: the kinds `options` lists, and the application and
    /// cluster rows. A type no object of which can be cached gets no table (a key can still
    /// name it: its rows are then looked for with [`Database::cache_tables_exist`]). At most
    /// `max_new` types whose tables do not exist yet are created, in sorted order; the others
    /// are returned (logged), and a row of theirs fails its cluster this run with
    /// [`super::apply::ApplyError::MissingTable`] — their tables come in later runs, so that no
    /// bucket makes one run issue unbounded DDL.
    pub async fn ensure_tables_for(
        &self,
        types: &BTreeSet<String>,
        options: &cache::CacheOptions,
        max_new: usize,
    ) -> Result<Vec<String>, Error> {
        let mut wanted: BTreeSet<&str> = types
            .iter()
            .filter(|t| options.lists_kind(&cache::KubernetesKind::from_qualified(t)))
            .map(String::as_str)
            .collect();
        wanted.insert(cache::keys::APPLICATIONS);
        wanted.insert(cache::keys::CLUSTERS);
        let mut created = 0;
        let mut deferred = Vec::new();
        for type_name in wanted {
            if !self.known(type_name) {
                let exists = {
                    let mut conn = self.connection("looking for a cache table").await?;
                    self.cache_tables_exist(&mut conn, type_name).await?
                };
                if !exists {
                    if created >= max_new {
                        deferred.push(type_name.to_string());
                        continue;
                    }
                    created += 1;
                }
            }
            self.ensure_cache_tables(type_name).await?;
        }
        if !deferred.is_empty() {
            tracing::warn!(created, deferred = deferred.len(), first = %deferred[0], max_new, "more new cache types than one run creates: the rest get their tables in later runs");
        }
        Ok(deferred)
    }

    /// Runs an idempotent DDL statement, tolerating another indexer running the same one at the
    /// same moment: PostgreSQL's `IF NOT EXISTS` is not atomic (two creators can collide on its
    /// catalog's unique index), so a failure is retried once, when the object then exists.
    async fn execute_ddl(&self, statement: &str) -> Result<(), sqlx::Error> {
        let mut attempt = 0;
        loop {
            match self.pool.execute(statement).await {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e))
                    if e.message().contains("already exists")
                        || e.message().contains("Duplicate key name") =>
                {
                    return Ok(());
                }
                Err(sqlx::Error::Database(e))
                    if attempt == 0 && e.code().as_deref() == Some("23505") =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn known(&self, type_name: &str) -> bool {
        self.created
            .lock()
            .map(|created| created.contains(type_name))
            .unwrap_or(false)
    }

    /// Whether Clouddriver's Liquibase created `cats_v1_resource_template` here.
    async fn has_templates(&self) -> Result<bool, Error> {
        let mut conn = self
            .connection("looking for Clouddriver's template tables")
            .await?;
        self.table_exists(&mut conn, "cats_v1_resource_template")
            .await
    }

    /// Whether Clouddriver's account storage tables (`accounts`, `accounts_history`) exist,
    /// asked on `conn` until they are first seen. SQLite's are asked every time: they are
    /// created inside a cluster's transaction, which may roll back.
    pub async fn account_storage_present(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<bool, Error> {
        if self.account_storage_seen.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let server = self.dialect != Dialect::Sqlite;
        if server
            && let Ok(missing) = self.account_storage_missing.lock()
            && missing.is_some_and(|at| at.elapsed() < ACCOUNT_STORAGE_RECHECK)
        {
            return Ok(false);
        }
        let present = self.table_exists(conn, "accounts").await?
            && self.table_exists(conn, "accounts_history").await?;
        if server {
            if present {
                self.account_storage_seen.store(true, Ordering::Relaxed);
            } else if let Ok(mut missing) = self.account_storage_missing.lock() {
                *missing = Some(std::time::Instant::now());
            }
        }
        Ok(present)
    }

    /// Whether `table` exists (in the current schema or database), asked on `conn`: inside a
    /// cluster's transaction that is its own connection (SQLite's pool has only that one).
    pub async fn table_exists(
        &self,
        conn: &mut sqlx::AnyConnection,
        table: &str,
    ) -> Result<bool, Error> {
        let sql = match self.dialect {
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
            Dialect::MySql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
            }
        };
        let count: i64 = sqlx::query_scalar(sql)
            .bind(table)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.query_error(format!("looking for table {table}"), e))?;
        Ok(count > 0)
    }

    /// Whether the tables of a cache type exist, without creating them: a key can name a type
    /// no object of this database ever had (the owner of a Pod, of a kind Outpost does not
    /// cache), whose table then holds none of our rows.
    pub async fn cache_tables_exist(
        &self,
        conn: &mut sqlx::AnyConnection,
        type_name: &str,
    ) -> Result<bool, Error> {
        if self.known(type_name) {
            return Ok(true);
        }
        let tables = self.cache_tables(type_name)?;
        let exists = self.table_exists(conn, &tables.resource).await?;
        if exists && let Ok(mut created) = self.created.lock() {
            created.insert(type_name.to_string());
        }
        Ok(exists)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A text column of `row`. MySQL reports columns of a binary collation (ours use `utf8mb4_bin`,
/// so that ids compare exactly) as BLOB, which sqlx's Any driver will not decode as a string:
/// those are read as bytes and checked to be UTF-8.
pub fn text(row: &sqlx::any::AnyRow, column: &str) -> Result<String, sqlx::Error> {
    opt_text(row, column)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: "unexpected NULL".into(),
    })
}

/// A nullable text column of `row` (see [`text`]).
pub fn opt_text(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    use sqlx::Row;
    match row.try_get::<Option<String>, _>(column) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnDecode { .. }) => {
            let bytes: Option<Vec<u8>> = row.try_get(column)?;
            bytes
                .map(|b| {
                    String::from_utf8(b).map_err(|e| sqlx::Error::ColumnDecode {
                        index: column.to_string(),
                        source: Box::new(e),
                    })
                })
                .transpose()
        }
        Err(e) => Err(e),
    }
}

/// A count or seq from a bucket (u64) as the BIGINT column holding it: saturated at `i64::MAX`,
/// which [`count_from_i64`] and `outpost status` read as "at least", never wrapped negative.
pub fn count_to_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A count read back from its BIGINT column. A negative value can only be a u64 stored with a
/// wrapping cast, so it is read as that u64.
pub fn count_from_i64(stored: i64) -> u64 {
    stored as u64
}

/// `?` → `$n` on PostgreSQL.
pub fn placeholders(dialect: Dialect, sql: &str) -> String {
    if dialect != Dialect::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_only() {
        assert_eq!(
            placeholders(Dialect::Postgres, "a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(placeholders(Dialect::MySql, "a = ?"), "a = ?");
    }

    #[test]
    fn urls_name_their_dialect_and_hide_the_password() {
        let (dialect, shown) = parse_url("postgres://u:secret@h:5432/db").unwrap();
        assert_eq!(dialect, Dialect::Postgres);
        assert!(
            !shown.contains("secret") && shown.contains("***"),
            "{shown}"
        );
        assert_eq!(parse_url("mariadb://root@h/db").unwrap().0, Dialect::MySql);
        assert_eq!(parse_url("sqlite:///tmp/x.db").unwrap().0, Dialect::Sqlite);
        let e = parse_url("oracle://h/db").unwrap_err().to_string();
        assert!(e.contains("unsupported scheme \"oracle\""), "{e}");
        let e = parse_url("not a url").unwrap_err().to_string();
        assert!(e.contains("invalid database URL"), "{e}");
    }
}
