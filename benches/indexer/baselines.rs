//! What loading exactly the rows a snapshot load wrote takes without the indexer (`COPY ... FROM
//! STDIN` on PostgreSQL, multi-row `INSERT`s on MariaDB), and what that load wrote, in rows and
//! bytes.

use std::time::Instant;

use outpost::cache::Dialect;
use outpost::indexer::Database;
use outpost::test_support::rows;

use crate::Connected;
use crate::Targets;
use crate::report::progress;

/// The baselines: (rows, seconds) of loading the indexer's cats rows alone, and every row it
/// wrote (cats, `outpost_resources`, `outpost_links`).
#[derive(Clone, Copy)]
pub struct Baselines {
    /// COPY into PostgreSQL, the cats rows.
    pub copied: u64,
    pub copy_seconds: f64,
    /// COPY into PostgreSQL, every row.
    pub copied_all: u64,
    pub copy_all_seconds: f64,
    /// Multi-row INSERTs into MariaDB, the cats rows and every row (when MariaDB is measured).
    pub inserted: Option<((u64, f64), (u64, f64))>,
}

/// The baselines on exactly the rows the snapshot loads wrote.
pub async fn measure(targets: &Targets, dbs: &Connected, started: Instant) -> Baselines {
    progress(started, "reading back PostgreSQL's rows; COPY baselines");
    let pg_rows = read_all_rows(&dbs.pg).await;
    let cats_tables = pg_rows.len() - 2;
    let (copied, copy_seconds) =
        copy_baseline(&targets.pg.url, "bench_cats", &pg_rows[..cats_tables]).await;
    let (copied_all, copy_all_seconds) =
        copy_baseline(&targets.pg.url, "bench_all", &pg_rows).await;
    let pg_payload: u64 = pg_rows[..cats_tables].iter().map(TableRows::payload).sum();
    let pg_payload_all: u64 = pg_rows.iter().map(TableRows::payload).sum();
    drop(pg_rows);
    progress(
        started,
        &format!(
            "  COPY: {copied} cats rows ({:.1} MB) in {copy_seconds:.2} s; every row written, {copied_all} rows ({:.1} MB), in {copy_all_seconds:.2} s",
            pg_payload as f64 / 1e6,
            pg_payload_all as f64 / 1e6
        ),
    );
    let mut inserted = None;
    if let (Some(my), Some(my_db)) = (&targets.my, &dbs.my) {
        progress(started, "reading back MariaDB's rows; INSERT baselines");
        let my_rows = read_all_rows(my_db).await;
        let cats_tables = my_rows.len() - 2;
        let (rows, seconds) = insert_baseline(&my.url, "bench_cats", &my_rows[..cats_tables]).await;
        let (rows_all, seconds_all) = insert_baseline(&my.url, "bench_all", &my_rows).await;
        progress(
            started,
            &format!(
                "  multi-row INSERT: {rows} cats rows in {seconds:.2} s; every row written, {rows_all} rows, in {seconds_all:.2} s"
            ),
        );
        inserted = Some(((rows, seconds), (rows_all, seconds_all)));
    }
    Baselines {
        copied,
        copy_seconds,
        copied_all,
        copy_all_seconds,
        inserted,
    }
}

/// What a snapshot load wrote on one server: (rows, bytes) of the cats tables, of
/// `outpost_resources` and of `outpost_links`.
pub struct Written {
    pub cats: (u64, u64),
    pub resources: (u64, u64),
    pub links: (u64, u64),
}

/// What the snapshot loads wrote besides the cats rows, on PostgreSQL and then on MariaDB.
pub async fn written(dbs: &Connected) -> Vec<Written> {
    let mut sizes = Vec::new();
    for database in [Some(&dbs.pg), dbs.my.as_ref()] {
        let Some(database) = database else { continue };
        let mut cats = (0, 0);
        for type_name in rows::cached_types(database).await {
            let table = database.cache_tables(&type_name).expect("a name").resource;
            let (r, b) = table_size(database, &table).await;
            cats = (cats.0 + r, cats.1 + b);
        }
        let resources = table_size(database, "outpost_resources").await;
        let links = table_size(database, "outpost_links").await;
        sizes.push(Written {
            cats,
            resources,
            links,
        });
    }
    sizes
}

/// Rows and bytes of a table (bytes: on-disk size with indexes, as the server reports it).
async fn table_size(database: &Database, table: &str) -> (u64, u64) {
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(database.pool())
        .await
        .unwrap_or(0);
    let bytes: i64 = match database.dialect() {
        Dialect::Postgres => sqlx::query_scalar(&format!(
            "SELECT CAST(pg_total_relation_size('{table}') AS BIGINT)"
        ))
        .fetch_one(database.pool())
        .await
        .unwrap_or(0),
        Dialect::MySql => {
            let _ = sqlx::query(&format!("ANALYZE TABLE {table}"))
                .execute(database.pool())
                .await;
            sqlx::query_scalar(&format!(
                "SELECT CAST(data_length + index_length AS SIGNED) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ))
            .fetch_one(database.pool())
            .await
            .unwrap_or(0)
        }
        Dialect::Sqlite => 0,
    };
    (rows as u64, bytes as u64)
}

/// One table's rows as read back, every value as text (`None`: NULL).
struct TableRows {
    table: String,
    columns: Vec<&'static str>,
    rows: Vec<Vec<Option<String>>>,
}

impl TableRows {
    /// Bytes of values.
    fn payload(&self) -> u64 {
        self.rows
            .iter()
            .flatten()
            .map(|v| v.as_ref().map_or(0, |v| v.len() as u64))
            .sum()
    }
}

const CATS_COLUMNS: &[&str] = &[
    "id",
    "agent",
    "application",
    "body_hash",
    "body",
    "last_updated",
];
const RESOURCE_COLUMNS: &[&str] = &[
    "account",
    "cache_id",
    "cache_type",
    "cluster",
    "api_version",
    "kind",
    "namespace",
    "name",
    "uid",
    "resource_version",
    "listed",
    "cached",
    "selector",
    "template_labels",
    "service_refs",
    "object",
];
const LINK_COLUMNS: &[&str] = &["account", "declarer_id", "a_id", "b_id", "origin"];

/// Every row of `table`, read back with the Any pool.
async fn read_table(database: &Database, table: &str, columns: &[&'static str]) -> TableRows {
    let text_type = match database.dialect() {
        Dialect::MySql => "CHAR",
        _ => "TEXT",
    };
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({c} AS {text_type}) AS {c}"))
        .collect();
    let rows = sqlx::query(&format!("SELECT {} FROM {table}", select.join(", ")))
        .fetch_all(database.pool())
        .await
        .expect("reads the rows back");
    let rows = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| outpost::indexer::db::opt_text(row, c).expect("a text value"))
                .collect()
        })
        .collect();
    TableRows {
        table: table.to_string(),
        columns: columns.to_vec(),
        rows,
    }
}

/// The rows of every cats resource table (Clouddriver's rows).
async fn read_cats_rows(database: &Database) -> Vec<TableRows> {
    let mut tables = Vec::new();
    for type_name in rows::cached_types(database).await {
        let table = database.cache_tables(&type_name).expect("a name").resource;
        let rows = read_table(database, &table, CATS_COLUMNS).await;
        if !rows.rows.is_empty() {
            tables.push(rows);
        }
    }
    tables
}

/// Every row a snapshot load wrote: the cats rows, `outpost_resources` and `outpost_links`.
async fn read_all_rows(database: &Database) -> Vec<TableRows> {
    let mut tables = read_cats_rows(database).await;
    tables.push(read_table(database, "outpost_resources", RESOURCE_COLUMNS).await);
    tables.push(read_table(database, "outpost_links", LINK_COLUMNS).await);
    tables
}

/// `value` as a quoted CSV field.
fn csv_field(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for b in value.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Loads the rows into fresh `LIKE` copies of their tables (named `<prefix>_<table>`) with
/// `COPY ... FROM STDIN (FORMAT csv)`, in one transaction; returns (rows, seconds). The CSV is
/// encoded before the clock starts.
async fn copy_baseline(url: &str, prefix: &str, tables: &[TableRows]) -> (u64, f64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connects");
    let mut encoded = Vec::new();
    for table in tables {
        let copy = format!("{prefix}_{}", table.table);
        sqlx::query(&format!(
            "CREATE TABLE {copy} (LIKE {} INCLUDING ALL)",
            table.table
        ))
        .execute(&pool)
        .await
        .expect("creates the copy table");
        let mut csv = Vec::new();
        for row in &table.rows {
            for (index, value) in row.iter().enumerate() {
                if index > 0 {
                    csv.push(b',');
                }
                // Unquoted empty is NULL in CSV format.
                if let Some(value) = value {
                    csv_field(&mut csv, value);
                }
            }
            csv.push(b'\n');
        }
        encoded.push((copy, table.columns.join(", "), table.rows.len() as u64, csv));
    }
    let mut conn = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begins");
    let mut total = 0;
    for (copy, columns, rows, csv) in &encoded {
        let mut sink = conn
            .copy_in_raw(&format!(
                "COPY {copy} ({columns}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await
            .expect("COPY starts");
        for chunk in csv.chunks(1 << 20) {
            sink.send(chunk).await.expect("COPY data");
        }
        let copied = sink.finish().await.expect("COPY finishes");
        assert_eq!(copied, *rows, "{copy}: rows copied");
        total += copied;
    }
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .expect("commits");
    let seconds = started.elapsed().as_secs_f64();
    drop(conn);
    pool.close().await;
    (total, seconds)
}

/// Loads the rows into fresh `LIKE` copies of their tables (named `<prefix>_<table>`) with
/// multi-row `INSERT`s of up to 500 rows (and ~4 MB), in one transaction; returns (rows,
/// seconds).
async fn insert_baseline(url: &str, prefix: &str, tables: &[TableRows]) -> (u64, f64) {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connects");
    for table in tables {
        sqlx::query(&format!(
            "CREATE TABLE {prefix}_{} LIKE {}",
            table.table, table.table
        ))
        .execute(&pool)
        .await
        .expect("creates the copy table");
    }
    let mut conn = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begins");
    let mut total = 0;
    for table in tables {
        let rows = &table.rows;
        let one = format!("({})", vec!["?"; table.columns.len()].join(", "));
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < 500 && bytes < 4 << 20 {
                bytes += rows[end]
                    .iter()
                    .map(|v| v.as_ref().map_or(4, |v| v.len() + 4))
                    .sum::<usize>();
                end += 1;
            }
            let chunk = &rows[start..end];
            let values = vec![one.as_str(); chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO {prefix}_{} ({}) VALUES {values}",
                table.table,
                table.columns.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                for value in row {
                    query = query.bind(value);
                }
            }
            let done = query.execute(&mut *conn).await.expect("INSERT");
            total += done.rows_affected();
            start = end;
        }
    }
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .expect("commits");
    let seconds = started.elapsed().as_secs_f64();
    drop(conn);
    pool.close().await;
    (total, seconds)
}
