//! `outpost status`: one row per cluster the indexer knows — account, state, applied vs head
//! position, objects, lag, last heartbeat, account registration, forbidden kinds and the last
//! error.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use crate::format::documents::ForbiddenKind;
use crate::format::{ClusterName, Head};
use crate::indexer::db::count_from_i64;
use crate::indexer::registration::{self, Recorded};
use crate::indexer::{ClusterRecord, ClusterState, Database, checkpoint};
use crate::store::Store;

use super::EXIT_FAULT;

#[derive(Debug, Args)]
#[command(
    about = "Show every cluster the indexer knows: state, position, objects, lag",
    long_about = "Reads outpost_clusters from the database. With --bucket, also reads each cluster's head.json, to show how far the database is behind the bucket.\n\nExits 1 if any cluster is refused, failed its last run, or is behind a head it cannot apply.",
    after_help = "Examples:\n  outpost status --db sqlite:///var/tmp/outpost-demo/cache.db\n  outpost status --db postgres://clouddriver@db/clouddriver --bucket s3://fleet-bucket/prod --json"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub database: super::DatabaseArgs,
    /// Also read each cluster's head.json from this bucket.
    #[arg(long, env = "OUTPOST_BUCKET")]
    pub bucket: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One cluster's status.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub account: String,
    pub state: String,
    /// The position applied: `epoch/seq`.
    pub applied: Option<String>,
    /// The head's position, as last read (or read now with --bucket).
    pub head: Option<String>,
    /// 9223372036854775807 (`i64::MAX`) means at least that many: the database column saturates.
    pub objects: u64,
    /// Seconds from the head's last change to when it was applied.
    pub lag_seconds: Option<f64>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub forbidden_kinds: Vec<String>,
    pub error: Option<String>,
    /// The account's registration in Clouddriver's account storage: `registered`, `pending`,
    /// `conflict`, `refused` or `removed`; none when the indexer registers no accounts.
    pub registration: Option<String>,
    /// Why it is not registered, if it is not.
    pub registration_reason: Option<String>,
}

fn status_of(
    record: &ClusterRecord,
    head: Option<&Head>,
    registration: Option<&Recorded>,
) -> ClusterStatus {
    let forbidden: &[ForbiddenKind] = record.forbidden_kinds.as_deref().unwrap_or_default();
    ClusterStatus {
        cluster: record.cluster.clone(),
        account: record.account.clone(),
        state: record.state.to_string(),
        applied: record
            .checkpoint()
            .map(|applied| format!("{}/{}", applied.epoch, applied.seq)),
        head: match head {
            Some(head) => Some(format!("{}/{}", head.epoch, head.seq)),
            None => record
                .head
                .as_ref()
                .map(|seen| format!("{}/{}", seen.epoch, seen.seq)),
        },
        objects: count_from_i64(record.objects),
        lag_seconds: record.lag_ms.map(|ms| ms as f64 / 1000.0),
        last_heartbeat: head.map(|h| h.heartbeat_at).or_else(|| {
            record
                .heartbeat_at()
                .and_then(DateTime::from_timestamp_millis)
        }),
        forbidden_kinds: forbidden.iter().map(|f| f.kind.clone()).collect(),
        error: record.error.clone(),
        registration: registration.map(|r| r.2.clone()),
        registration_reason: registration.and_then(|r| r.3.clone()),
    }
}

/// Reads every cluster's status (and heads, when a store is given).
pub async fn collect(
    database: &Database,
    store: Option<&Store>,
) -> anyhow::Result<Vec<ClusterStatus>> {
    let records = checkpoint::load_all(database).await?;
    let registrations = registration::recorded(database).await?;
    let mut statuses = Vec::with_capacity(records.len());
    for record in &records {
        let head = match (store, ClusterName::new(&record.cluster)) {
            (Some(store), Ok(name)) => {
                let key = store.layout().head(&name);
                match store.get(&key).await {
                    Ok((bytes, _)) => Head::from_json(&key.to_string(), &bytes).ok(),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        // The cluster's registration of its current account, or else the last one it had.
        let registration = registrations
            .iter()
            .filter(|r| r.1 == record.cluster)
            .max_by_key(|r| r.0 == record.account);
        statuses.push(status_of(record, head.as_ref(), registration));
    }
    Ok(statuses)
}

fn age(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match at {
        None => "-".into(),
        Some(at) => {
            let seconds = (now - at).num_seconds().max(0);
            match seconds {
                0..60 => format!("{seconds}s ago"),
                60..3600 => format!("{}m ago", seconds / 60),
                3600..86400 => format!("{}h ago", seconds / 3600),
                _ => format!("{}d ago", seconds / 86400),
            }
        }
    }
}

/// Writes the status table.
pub fn print_table(out: &mut impl Write, statuses: &[ClusterStatus]) -> std::io::Result<()> {
    let now = Utc::now();
    let rows: Vec<[String; 10]> = statuses
        .iter()
        .map(|s| {
            [
                s.cluster.clone(),
                s.account.clone(),
                s.state.clone(),
                s.applied.clone().map_or("-".into(), short_position),
                s.head.clone().map_or("-".into(), short_position),
                count_text(s.objects),
                s.lag_seconds.map_or("-".into(), |l| format!("{l:.1}s")),
                age(s.last_heartbeat, now),
                s.registration.clone().unwrap_or_else(|| "-".into()),
                if s.forbidden_kinds.is_empty() {
                    "-".into()
                } else {
                    s.forbidden_kinds.join(",")
                },
            ]
        })
        .map(|row: [String; 10]| row.map(|cell| printable(&cell)))
        .collect();
    let header = [
        "CLUSTER",
        "ACCOUNT",
        "STATE",
        "APPLIED",
        "HEAD",
        "OBJECTS",
        "LAG",
        "HEARTBEAT",
        "REGISTRATION",
        "FORBIDDEN",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    for s in statuses.iter().filter(|s| s.error.is_some()) {
        writeln!(
            out,
            "{}: {}",
            printable(&s.cluster),
            printable(s.error.as_deref().unwrap_or_default())
        )?;
    }
    for s in statuses.iter() {
        if let (Some(state), Some(reason)) = (&s.registration, &s.registration_reason)
            && s.error.as_deref() != Some(reason.as_str())
        {
            writeln!(
                out,
                "{}: account {} {}: {}",
                printable(&s.cluster),
                printable(&s.account),
                state,
                printable(reason)
            )?;
        }
    }
    Ok(())
}

/// `text` safe to print on a terminal: names, kinds and errors come from buckets, so control
/// characters (escape sequences, carriage returns, new lines) and the invisible characters that
/// reorder or hide text (bidirectional overrides, zero-width marks) are shown escaped, as `\u{1b}`.
fn printable(text: &str) -> String {
    let hidden = |c: char| {
        matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
    };
    if !text.chars().any(|c| c.is_control() || hidden(c)) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() || hidden(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A count for the table; the database's saturated value says it is a lower bound.
fn count_text(count: u64) -> String {
    if count == i64::MAX.unsigned_abs() {
        format!("≥{count}")
    } else {
        count.to_string()
    }
}

/// `epoch/seq` with the epoch's random part dropped, for the table.
fn short_position(position: String) -> String {
    match position.split_once('/') {
        Some((epoch, seq)) => {
            let epoch = epoch.split('-').next().unwrap_or(epoch);
            format!("{epoch}/{seq}")
        }
        None => position,
    }
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let database = Database::connect(&args.database.url().await?, None).await?;
    let store = match &args.bucket {
        Some(bucket) => Some(Store::open(bucket).await?),
        None => None,
    };
    let statuses = collect(&database, store.as_ref()).await?;
    database.close().await;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &statuses)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &statuses)?;
    }
    let unhealthy = statuses.iter().any(|s| {
        s.error.is_some() && s.state != ClusterState::Evicted.as_str()
            || s.state == ClusterState::Refused.as_str()
    });
    Ok(if unhealthy {
        ExitCode::from(EXIT_FAULT)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(record: &ClusterRecord) -> String {
        let mut out = Vec::new();
        print_table(&mut out, &[status_of(record, None, None)]).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_and_errors_from_buckets_cannot_drive_the_terminal() {
        let mut record = ClusterRecord::new("eu-1\x1b]0;owned\x07", "acct\x1b[2J", 0);
        record.error = Some("bad head\x1b[31m\r\nfake: line\u{202e}".into());
        record.forbidden_kinds = Some(vec![ForbiddenKind {
            kind: "Secret\u{1b}[1m".into(),
            reason: "x".into(),
        }]);
        let out = table(&record);
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(!out.contains('\u{202e}'), "{out:?}");
        assert!(out.contains(r"eu-1\u{1b}]0;owned\u{7}"), "{out}");
        assert!(out.contains(r"acct\u{1b}[2J"), "{out}");
        assert!(out.contains(r"Secret\u{1b}[1m"), "{out}");
        assert!(
            out.contains(r"bad head\u{1b}[31m\r\nfake: line\u{202e}"),
            "{out}"
        );
        // One line per cluster and one per error: an error cannot add lines.
        assert_eq!(out.lines().count(), 3, "{out}");
    }

    #[test]
    fn counts_near_two_to_the_64_are_never_negative() {
        let mut record = ClusterRecord::new("eu-1", "eu-1", 0);
        // A u64 count stored as `as i64` reads back negative: it is the u64 it was.
        record.objects = u64::MAX as i64;
        let status = status_of(&record, None, None);
        assert_eq!(status.objects, u64::MAX);
        assert!(table(&record).contains(&u64::MAX.to_string()));
        // A count saturated on the way in says so.
        record.objects = crate::indexer::db::count_to_i64(u64::MAX);
        assert!(
            table(&record).contains("≥9223372036854775807"),
            "{}",
            table(&record)
        );
        record.objects = crate::indexer::db::count_to_i64(42);
        assert_eq!(status_of(&record, None, None).objects, 42);
        record.applied = Some(crate::indexer::checkpoint::Applied {
            checkpoint: crate::format::Checkpoint {
                epoch: crate::format::Epoch::new("1763899200000-0a1b2c3d").unwrap(),
                seq: count_from_i64(-1),
                sha256: None,
            },
            snapshot_seq: None,
        });
        assert_eq!(
            status_of(&record, None, None).applied.as_deref(),
            Some("1763899200000-0a1b2c3d/18446744073709551615")
        );
    }
}
