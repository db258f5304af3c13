//! What the database sessions were doing while the indexer ran: the server's own view of its
//! sessions sampled every 100 ms, counted by statement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost::cache::Dialect;
use sqlx::Row;

/// Sampled statements with how many samples saw each, most frequent first.
pub type Samples = Vec<(String, u64)>;

/// The statement text with its placeholders and lists folded, shortened.
fn statement_label(sql: &str) -> String {
    let mut out = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('?');
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    // Lists of values (possibly cut off by track_activity_query_size) shown as "…".
    let mut folded = String::new();
    let mut rest = out.as_str();
    loop {
        let next = [("IN (", ")"), ("VALUES ", " ON ")]
            .iter()
            .filter_map(|(open, close)| rest.find(open).map(|i| (i, *open, *close)))
            .min_by_key(|(i, _, _)| *i);
        let Some((i, open, close)) = next else {
            folded.push_str(rest);
            break;
        };
        folded.push_str(&rest[..i + open.len()]);
        folded.push('…');
        let after = &rest[i + open.len()..];
        match after.find(close) {
            Some(j) => rest = &after[j..],
            None => break,
        }
    }
    let out = folded;
    let out = out.trim().to_string();
    if out.chars().count() > 110 {
        format!("{}…", out.chars().take(110).collect::<String>())
    } else {
        out
    }
}

/// Samples, every 100 ms, what the sessions on one database are doing: the statement each
/// active session runs, or that it sits idle inside a transaction (waiting for the indexer).
pub struct ActivitySampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeMap<String, u64>>,
}

impl ActivitySampler {
    /// Starts sampling the sessions on database `name` of the `dialect` server at `url`.
    pub async fn start(dialect: Dialect, url: &str, name: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let name = name.to_string();
        let task = match dialect {
            Dialect::Postgres => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connects");
                tokio::spawn(async move {
                    let counts = count_samples(&flag, || postgres_sessions(&pool, &name)).await;
                    pool.close().await;
                    counts
                })
            }
            _ => {
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connects");
                tokio::spawn(async move {
                    let counts = count_samples(&flag, || mysql_sessions(&pool, &name)).await;
                    pool.close().await;
                    counts
                })
            }
        };
        Self { stop, task }
    }

    /// The sampled labels with their share of the samples, most frequent first.
    pub async fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        let counts = self.task.await.unwrap_or_default();
        let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }
}

/// What a session waiting inside a transaction shows: the server waits for the indexer.
const IDLE_IN_TRANSACTION: &str = "(idle in transaction: the server waits for the indexer)";

/// Until `stop` is set, every 100 ms, what `sample` says the sessions are doing, counted.
async fn count_samples<F, Fut>(stop: &AtomicBool, mut sample: F) -> BTreeMap<String, u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    let mut counts = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        for label in sample().await {
            *counts.entry(label).or_insert(0) += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    counts
}

/// What each session on PostgreSQL database `name` is doing (but this one): its statement,
/// with what it waits for if that is IO or a lock, or that it is idle inside a transaction.
async fn postgres_sessions(pool: &sqlx::PgPool, name: &str) -> Vec<String> {
    let rows = sqlx::query("SELECT state, query, wait_event_type FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
        .bind(name)
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    rows.iter()
        .map(|row| {
            let state: String = row.try_get("state").unwrap_or_default();
            let query: String = row.try_get("query").unwrap_or_default();
            let wait: Option<String> = row.try_get("wait_event_type").ok().flatten();
            if state == "active" {
                match wait.as_deref() {
                    Some(w @ ("IO" | "Lock" | "LWLock")) => {
                        format!("{} [waiting: {w}]", statement_label(&query))
                    }
                    _ => statement_label(&query),
                }
            } else {
                IDLE_IN_TRANSACTION.into()
            }
        })
        .collect()
}

/// What each session on MariaDB database `name` is doing (but this one): the statement it runs,
/// or that it sleeps inside a transaction; sessions sleeping outside one are left out. Columns
/// of `information_schema` may come back as text or as bytes.
async fn mysql_sessions(pool: &sqlx::MySqlPool, name: &str) -> Vec<String> {
    let rows = sqlx::query("SELECT p.command AS command, p.info AS info, t.trx_id AS trx FROM information_schema.processlist p LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.id WHERE p.db = ? AND p.id <> CONNECTION_ID()")
        .bind(name)
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    rows.iter()
        .filter_map(|row| {
            let command: String = row
                .try_get::<String, _>("command")
                .or_else(|_| {
                    row.try_get::<Vec<u8>, _>("command")
                        .map(|b| String::from_utf8_lossy(&b).to_string())
                })
                .unwrap_or_default();
            let info: Option<String> = row
                .try_get::<Option<String>, _>("info")
                .or_else(|_| {
                    row.try_get::<Option<Vec<u8>>, _>("info")
                        .map(|b| b.map(|b| String::from_utf8_lossy(&b).to_string()))
                })
                .unwrap_or_default();
            let in_trx = row
                .try_get::<Option<String>, _>("trx")
                .map(|t| t.is_some())
                .or_else(|_| row.try_get::<Option<u64>, _>("trx").map(|t| t.is_some()))
                .unwrap_or(false);
            match (command.as_str(), info) {
                ("Query" | "Execute", Some(info)) => Some(statement_label(&info)),
                ("Sleep", _) if in_trx => Some(IDLE_IN_TRANSACTION.into()),
                _ => None,
            }
        })
        .collect()
}

/// The top `n` sampled statements as table rows (share of all samples, approx. seconds).
pub fn sample_rows(samples: &[(String, u64)], n: usize) -> Vec<String> {
    let total: u64 = samples.iter().map(|s| s.1).sum();
    let mut rows: Vec<String> = samples
        .iter()
        .take(n)
        .map(|(label, count)| {
            format!(
                "| `{}` | {:.0}% | {:.1} |",
                label.replace('|', "\\|").replace('`', "'"),
                *count as f64 * 100.0 / total.max(1) as f64,
                *count as f64 / 10.0
            )
        })
        .collect();
    let rest: u64 = samples.iter().skip(n).map(|s| s.1).sum();
    if rest > 0 {
        rows.push(format!(
            "| (everything else) | {:.0}% | {:.1} |",
            rest as f64 * 100.0 / total.max(1) as f64,
            rest as f64 / 10.0
        ));
    }
    rows
}
