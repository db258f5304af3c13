//! `outpost inspect`: list a bucket's clusters and verify every segment their heads name, or
//! print one segment's records.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use crate::format::{
    self, ClusterName, DecodeLimits, Decommissioned, Head, Identity, ListedSegment, SegmentSummary,
};
use crate::store::{self, Fetched, Store};

use super::EXIT_FAULT;

#[derive(Debug, Args)]
#[command(
    about = "List clusters and verify their chains, or print a segment's records",
    long_about = "Lists the clusters in a bucket and verifies every segment each head.json names: it exists, its size and sha256 match the head, its prev_sha256 links to the previous segment, its header matches its key, and it decodes completely. With --segment, prints that segment's records as JSON lines.\n\nExits 1 if any fault is found, naming the object and the reason.",
    after_help = "Examples:\n  outpost inspect file:///var/tmp/outpost-demo\n  outpost inspect s3://fleet-bucket/prod --cluster eu-1\n  outpost inspect gs://fleet --segment outpost/v1/clusters/eu-1/epochs/1763899200000-0a1b2c3d/0000000000000001.snap.ndjson.zst | jq .name"
)]
pub struct InspectArgs {
    /// The bucket URL (file://, memory://, s3://, gs://, az://).
    bucket: String,
    /// Only this cluster, with one line per segment.
    #[arg(long)]
    cluster: Option<String>,
    /// Print this segment's records as JSON lines (its key relative to the bucket prefix).
    #[arg(long, conflicts_with = "cluster")]
    segment: Option<String>,
    /// Print a JSON report instead of a table.
    #[arg(long)]
    json: bool,
}

/// What inspect found for one cluster.
#[derive(Debug, Serialize)]
struct ClusterReport {
    cluster: String,
    /// `ok`, `fault`, `no-head` or `decommissioned`.
    state: &'static str,
    epoch: Option<String>,
    seq: Option<u64>,
    snapshot_seq: Option<u64>,
    diffs: usize,
    objects: Option<u64>,
    bytes: u64,
    records: u64,
    heartbeat_at: Option<DateTime<Utc>>,
    identity: Option<Identity>,
    decommissioned: Option<Decommissioned>,
    faults: Vec<String>,
    segments: Vec<SegmentReport>,
}

/// What inspect found for one segment.
#[derive(Debug, Serialize)]
struct SegmentReport {
    seq: u64,
    #[serde(rename = "type")]
    segment_type: &'static str,
    key: String,
    bytes: u64,
    records: u64,
    fault: Option<String>,
}

pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(&args.bucket).await?;
    if let Some(segment) = &args.segment {
        return print_segment(&store, segment).await;
    }
    let clusters = match &args.cluster {
        Some(name) => vec![ClusterName::new(name)?],
        None => store
            .list_clusters()
            .await
            .with_context(|| format!("could not list the clusters of {}", store.url()))?,
    };
    let mut reports = Vec::new();
    for cluster in &clusters {
        reports.push(inspect_cluster(&store, cluster).await?);
    }
    let faulty = reports.iter().any(|r| r.state == "fault");
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &reports, args.cluster.is_some())?;
    }
    if faulty {
        for report in reports.iter().filter(|r| r.state == "fault") {
            for fault in &report.faults {
                eprintln!("fault: {fault}");
            }
        }
        return Ok(ExitCode::from(EXIT_FAULT));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a cluster's documents and verifies every segment its head names.
async fn inspect_cluster(store: &Store, cluster: &ClusterName) -> anyhow::Result<ClusterReport> {
    let layout = store.layout();
    let mut report = ClusterReport {
        cluster: cluster.to_string(),
        state: "ok",
        epoch: None,
        seq: None,
        snapshot_seq: None,
        diffs: 0,
        objects: None,
        bytes: 0,
        records: 0,
        heartbeat_at: None,
        identity: None,
        decommissioned: None,
        faults: Vec::new(),
        segments: Vec::new(),
    };
    let identity_key = layout.identity(cluster);
    if let Some(bytes) = read_document(store, &identity_key).await? {
        match Identity::from_json(&identity_key.to_string(), &bytes) {
            Ok(identity) => report.identity = Some(identity),
            Err(e) => report.faults.push(e.to_string()),
        }
    }
    let decommissioned_key = layout.decommissioned(cluster);
    if let Some(bytes) = read_document(store, &decommissioned_key).await? {
        match Decommissioned::from_json(&decommissioned_key.to_string(), &bytes) {
            Ok(d) => report.decommissioned = Some(d),
            Err(e) => report.faults.push(e.to_string()),
        }
    }
    let head_key = layout.head(cluster);
    let Some(bytes) = read_document(store, &head_key).await? else {
        report.state = if report.decommissioned.is_some() {
            "decommissioned"
        } else {
            "no-head"
        };
        return Ok(finish(report));
    };
    let head = match Head::from_json(&head_key.to_string(), &bytes) {
        Ok(head) => head,
        Err(e) => {
            report.faults.push(e.to_string());
            return Ok(finish(report));
        }
    };
    report.epoch = Some(head.epoch.to_string());
    report.seq = Some(head.seq);
    report.snapshot_seq = Some(head.snapshot.seq);
    report.diffs = head.diffs.len();
    report.objects = Some(head.objects);
    report.heartbeat_at = Some(head.heartbeat_at);
    if head.cluster != *cluster {
        report.faults.push(format!(
            "{head_key}: names cluster {} but lives under cluster {cluster}",
            head.cluster
        ));
    }
    if let Err(e) = layout.verify_head(cluster, &head) {
        report.faults.push(e.to_string());
        return Ok(finish(report));
    }
    for listed in head.segments() {
        let key = layout.listed(cluster, &head, &listed);
        let mut line = SegmentReport {
            seq: listed.seq,
            segment_type: listed.segment_type.as_str(),
            key: key.to_string(),
            bytes: listed.bytes,
            records: 0,
            fault: None,
        };
        match read_and_check(store, cluster, &head, &listed).await {
            Ok((summary, records)) => {
                line.records = records;
                report.bytes += summary.bytes;
                report.records += records;
            }
            Err(fault) => {
                report.faults.push(fault.clone());
                line.fault = Some(fault);
            }
        }
        report.segments.push(line);
    }
    Ok(finish(report))
}

fn finish(mut report: ClusterReport) -> ClusterReport {
    if !report.faults.is_empty() {
        report.state = "fault";
    } else if report.decommissioned.is_some() {
        report.state = "decommissioned";
    }
    report
}

/// Decodes a whole listed segment, checking it against the head; the error is the fault's text.
async fn read_and_check(
    store: &Store,
    cluster: &ClusterName,
    head: &Head,
    listed: &ListedSegment<'_>,
) -> Result<(SegmentSummary, u64), String> {
    let mut stream = store
        .read_listed(cluster, head, listed, &DecodeLimits::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut records = 0;
    while let Some(record) = stream.next().await {
        record.map_err(|e| e.to_string())?;
        records += 1;
    }
    let summary = stream.finish().await.map_err(|e| e.to_string())?;
    Ok((summary, records))
}

/// A small document's bytes, `None` if it does not exist. Other failures are errors.
async fn read_document(store: &Store, key: &store::Key) -> anyhow::Result<Option<bytes::Bytes>> {
    match store.get_if_changed(key, None).await? {
        Fetched::Changed(bytes, _) => Ok(Some(bytes)),
        Fetched::Missing | Fetched::Unchanged => Ok(None),
    }
}

/// Prints a segment's header and records as JSON lines on stdout.
async fn print_segment(store: &Store, segment: &str) -> anyhow::Result<ExitCode> {
    let (cluster, epoch, seq, segment_type) = store.layout().parse_segment(segment)?;
    let key = store.layout().segment(&cluster, &epoch, seq, segment_type);
    let mut stream = store.read_segment(&key, &DecodeLimits::default()).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, stream.header())?;
    writeln!(out)?;
    while let Some(record) = stream.next().await {
        let record = record?;
        format::segment::write_record_json(&mut out, &record)?;
        writeln!(out)?;
    }
    out.flush()?;
    let summary = stream.finish().await?;
    eprintln!(
        "{key}: {} bytes, sha256 {}, {} puts, {} deletes: decoded completely",
        summary.bytes, summary.sha256, summary.header.counts.put, summary.header.counts.delete
    );
    Ok(ExitCode::SUCCESS)
}

fn print_table(
    out: &mut impl Write,
    reports: &[ClusterReport],
    detail: bool,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:<15} {:<24} {:>6} {:>6} {:>9} {:>12} {:<20}",
        "CLUSTER", "STATE", "EPOCH", "SEQ", "DIFFS", "OBJECTS", "BYTES", "HEARTBEAT"
    )?;
    for r in reports {
        writeln!(
            out,
            "{:<24} {:<15} {:<24} {:>6} {:>6} {:>9} {:>12} {:<20}",
            r.cluster,
            r.state,
            r.epoch.as_deref().unwrap_or("-"),
            r.seq.map_or("-".into(), |s| s.to_string()),
            r.diffs,
            r.objects.map_or("-".into(), |o| o.to_string()),
            r.bytes,
            r.heartbeat_at
                .map_or("-".into(), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        )?;
        if detail {
            for s in &r.segments {
                writeln!(
                    out,
                    "  {:>6} {:<8} {:>10} B {:>8} records  {}  {}",
                    s.seq,
                    s.segment_type,
                    s.bytes,
                    s.records,
                    s.key,
                    s.fault
                        .as_deref()
                        .map_or("ok".to_string(), |f| format!("FAULT: {f}"))
                )?;
            }
        }
    }
    Ok(())
}
