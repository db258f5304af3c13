//! Agent benchmark: bytes written to the bucket per hour by the agent on a simulated cluster of
//! 10k objects changing once a second, against the bytes a Clouddriver-style re-list of the same
//! kinds in every namespace every 30 s would transfer, measured in the same run.
//!
//! `cargo bench --bench agent`. Under `cargo test` it runs a short window on a small cluster.

use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use outpost::agent::ship::Shipped;
use outpost::agent::simulated::SimAgent;
use outpost::format::ClusterName;
use outpost::sim::Churn;
use outpost::store::Store;
use serde_json::Value;

fn relist_bytes(objects: &[Value]) -> (u64, u64) {
    let mut text = Vec::new();
    for object in objects {
        serde_json::to_writer(&mut text, object).expect("serializes");
        text.push(b'\n');
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&text).expect("compresses");
    (
        text.len() as u64,
        gzip.finish().expect("compresses").len() as u64,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (objects, seconds) = if full { (10_000, 3600) } else { (500, 120) };
    let rate = 1.0;
    let interval = 15;

    let started = Instant::now();
    let churn = Churn::new(42, objects);
    let store = Store::open("memory://bench-agent").await.expect("opens");
    let cluster = ClusterName::new("bench").expect("valid");
    let t0: DateTime<Utc> = DateTime::from_timestamp(1_795_435_200, 0).expect("valid");

    let initial = churn.initial();
    let objects_at_start = initial.len();
    let (relist_start, relist_start_gz) = relist_bytes(&initial);
    drop(initial);
    // The agent's pipeline: redaction → state → shipper.
    let mut agent = SimAgent::new(&store, cluster.clone(), churn, &[7; 32]).expect("valid key");
    let head_bytes = |store: Store, cluster: ClusterName| async move {
        store
            .size(&store.layout().head(&cluster))
            .await
            .unwrap_or(0)
    };
    let first = agent.tick(t0).await.expect("ships");
    let Shipped::Snapshot {
        bytes: first_snapshot,
        ..
    } = first
    else {
        panic!("{first:?}")
    };
    let first_head = head_bytes(store.clone(), cluster.clone()).await;

    let (
        mut segment_bytes,
        mut head_put_bytes,
        mut puts,
        mut diffs,
        mut snapshots,
        mut heartbeats,
        mut events,
    ) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for second in 1..=seconds {
        events += agent.step(1.0, rate) as u64;
        if second % interval == 0 {
            let outcome = agent
                .tick(t0 + Duration::seconds(second as i64))
                .await
                .expect("ships");
            match outcome {
                Shipped::Diff { bytes, .. } => {
                    diffs += 1;
                    segment_bytes += bytes;
                    puts += 2;
                }
                Shipped::Snapshot { bytes, .. } => {
                    snapshots += 1;
                    segment_bytes += bytes;
                    puts += 2;
                }
                Shipped::Heartbeat => {
                    heartbeats += 1;
                    puts += 1;
                }
                _ => continue,
            }
            head_put_bytes += head_bytes(store.clone(), cluster.clone()).await;
        }
    }
    let (relist_end, relist_end_gz) = relist_bytes(&agent.churn().objects());
    let per_hour = 3600.0 / seconds as f64;
    let agent_hour = (segment_bytes + head_put_bytes) as f64 * per_hour;
    let relists_per_hour = 3600.0 / 30.0;
    let relist_hour = (relist_start + relist_end) as f64 / 2.0 * relists_per_hour;
    let relist_hour_gz = (relist_start_gz + relist_end_gz) as f64 / 2.0 * relists_per_hour;
    let mb = |b: f64| b / 1e6;
    println!(
        "Simulated cluster: {} objects at start, {} at end; {rate} change/s ({events} watch events in {seconds} s); ship interval {interval} s.",
        objects_at_start,
        agent.churn().len()
    );
    println!();
    println!("| | per hour |");
    println!("|---|---:|");
    println!(
        "| agent: segments written | {:.2} MB ({} diffs, {} snapshots, {} heartbeats) |",
        mb(segment_bytes as f64 * per_hour),
        diffs,
        snapshots,
        heartbeats
    );
    println!(
        "| agent: head.json writes | {:.2} MB |",
        mb(head_put_bytes as f64 * per_hour)
    );
    println!(
        "| **agent: total to the bucket** | **{:.2} MB** in {:.0} PUTs |",
        mb(agent_hour),
        puts as f64 * per_hour
    );
    println!(
        "| initial snapshot (once per agent start) | {:.2} MB + head {} B |",
        mb(first_snapshot as f64),
        first_head
    );
    println!(
        "| re-list of every kind every 30 s, JSON | {:.0} MB |",
        mb(relist_hour)
    );
    println!(
        "| re-list of every kind every 30 s, gzip'd responses | {:.0} MB |",
        mb(relist_hour_gz)
    );
    println!(
        "| **ratio re-list / agent** | **{:.0}×** (JSON), **{:.0}×** (gzip) |",
        relist_hour / agent_hour,
        relist_hour_gz / agent_hour
    );
    println!();
    println!("(bench ran in {:.1} s)", started.elapsed().as_secs_f64());
}
