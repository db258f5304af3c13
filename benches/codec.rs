//! Codec benchmark: encode/decode MB/s per core and compression ratio of segments built from
//! realistic simulated Kubernetes objects, at zstd levels 1, 3, 9, 19 and with a trained
//! dictionary, against gzip on the same bytes in the same run.
//!
//! `cargo bench --bench codec` prints a Markdown table (copied into BENCHMARKS.md). Under
//! `cargo test` (no `--bench` argument) it runs once on a tiny input as a smoke test.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chrono::Utc;
use outpost::agent::redact::Redactor;
use outpost::format::codec::decode_all;
use outpost::format::segment::{Counts, Window};
use outpost::format::{
    ClusterName, DecodeLimits, EncodeOptions, Epoch, Record, SegmentHeader, SegmentType,
    SegmentWriter,
};
use outpost::sim::{ClusterShape, ObjectFactory};
use serde_json::Value;

struct Config {
    snapshot_objects: usize,
    diffs: usize,
    min_time: Duration,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let config = if full {
        Config {
            snapshot_objects: 10_000,
            diffs: 300,
            min_time: Duration::from_millis(1500),
        }
    } else {
        Config {
            snapshot_objects: 300,
            diffs: 10,
            min_time: Duration::ZERO,
        }
    };
    let mut report = String::new();
    let line = |report: &mut String, text: String| {
        println!("{text}");
        report.push_str(&text);
        report.push('\n');
    };

    let mut factory = ObjectFactory::new(42);
    let objects = factory.cluster(&ClusterShape::with_approx_objects(
        42,
        config.snapshot_objects,
    ));
    let redactor = Redactor::new(&[0x5a; 32], vec![]).expect("a valid constant key");
    let redacted: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            redactor.redact(&kind, &mut o);
            o
        })
        .collect();

    line(
        &mut report,
        format!(
            "Input: {} simulated objects (seed 42); single thread; MB = 10^6 bytes of NDJSON text.\n",
            objects.len()
        ),
    );
    line(&mut report, "| input | codec | text MB | stored MB | ratio | encode MB/s | decode MB/s | full segment decode MB/s |".into());
    line(
        &mut report,
        "|---|---|---:|---:|---:|---:|---:|---:|".into(),
    );
    for (name, set) in [
        ("snapshot, as the API server returns it", &objects),
        ("snapshot, redacted as shipped", &redacted),
    ] {
        let records = to_records(set);
        let text = ndjson(&records);
        for level in [1, 3, 9, 19] {
            let (stored, encode) = measure(&config, || encode_segment(&records, level));
            let (_, decode) = measure(&config, || zstd::decode_all(&stored[..]).expect("decodes"));
            let (_, full) = measure(&config, || {
                decode_all("bench", &stored, &DecodeLimits::default()).expect("decodes")
            });
            line(
                &mut report,
                row(
                    name,
                    &format!("zstd {level}"),
                    text.len(),
                    stored.len(),
                    encode,
                    decode,
                    Some(full),
                ),
            );
        }
        for level in [1, 6, 9] {
            let (stored, encode) = measure(&config, || gzip(&text, level));
            let (_, decode) = measure(&config, || gunzip(&stored));
            line(
                &mut report,
                row(
                    name,
                    &format!("gzip {level}"),
                    text.len(),
                    stored.len(),
                    encode,
                    decode,
                    None,
                ),
            );
        }
    }

    // Small diffs: a few changed objects each, compressed alone, with and without a dictionary
    // trained on objects of another simulated cluster (seed 7).
    let mut other = ObjectFactory::new(7);
    let training_objects = other.cluster(&ClusterShape::with_approx_objects(
        7,
        config.snapshot_objects.max(2000),
    ));
    let training: Vec<Vec<u8>> = to_records(&redact_all(&redactor, &training_objects))
        .iter()
        .map(|r| ndjson(std::slice::from_ref(r)))
        .collect();
    let dictionary = zstd::dict::from_samples(&training, 112 << 10).expect("dictionary trains");
    let diffs: Vec<Vec<Record>> = redacted
        .chunks(redacted.len().div_ceil(config.diffs).max(1))
        .map(|chunk| to_records(&chunk[..chunk.len().min(1 + chunk.len() % 8)]))
        .take(config.diffs)
        .collect();
    let diff_text: usize = diffs.iter().map(|d| ndjson(d).len()).sum();
    line(
        &mut report,
        format!(
            "\nSmall diffs: {} diffs of 1–8 redacted objects, {:.1} KB of text on average; dictionary {} KB trained on {} objects of another cluster.\n",
            diffs.len(),
            diff_text as f64 / diffs.len() as f64 / 1000.0,
            dictionary.len() / 1024,
            training.len()
        ),
    );
    line(
        &mut report,
        "| codec | avg stored bytes per diff | ratio | encode MB/s | decode MB/s |".into(),
    );
    line(&mut report, "|---|---:|---:|---:|---:|".into());
    for level in [1, 3, 9, 19] {
        let (stored, encode) = measure(&config, || {
            diffs
                .iter()
                .map(|d| encode_segment(d, level))
                .collect::<Vec<_>>()
        });
        let (_, decode) = measure(&config, || {
            stored
                .iter()
                .map(|s| zstd::decode_all(&s[..]).expect("decodes"))
                .collect::<Vec<_>>()
        });
        line(
            &mut report,
            small_row(
                &format!("zstd {level}"),
                &diffs,
                &stored,
                diff_text,
                encode,
                decode,
            ),
        );
        let encoder_dict = zstd::dict::EncoderDictionary::copy(&dictionary, level);
        let decoder_dict = zstd::dict::DecoderDictionary::copy(&dictionary);
        let (stored, encode) = measure(&config, || {
            diffs
                .iter()
                .map(|d| {
                    let mut out = Vec::new();
                    let mut enc = zstd::Encoder::with_prepared_dictionary(&mut out, &encoder_dict)
                        .expect("encoder");
                    enc.include_checksum(true).expect("checksum flag");
                    enc.write_all(&ndjson(d)).expect("writes");
                    enc.finish().expect("finishes");
                    out
                })
                .collect::<Vec<_>>()
        });
        let (_, decode) = measure(&config, || {
            stored
                .iter()
                .map(|s| {
                    let mut text = Vec::new();
                    zstd::Decoder::with_prepared_dictionary(&s[..], &decoder_dict)
                        .expect("decoder")
                        .read_to_end(&mut text)
                        .expect("decodes");
                    text
                })
                .collect::<Vec<_>>()
        });
        line(
            &mut report,
            small_row(
                &format!("zstd {level} + dictionary"),
                &diffs,
                &stored,
                diff_text,
                encode,
                decode,
            ),
        );
    }
    let (stored, encode) = measure(&config, || {
        diffs
            .iter()
            .map(|d| gzip(&ndjson(d), 6))
            .collect::<Vec<_>>()
    });
    let (_, decode) = measure(&config, || {
        stored.iter().map(|s| gunzip(s)).collect::<Vec<_>>()
    });
    line(
        &mut report,
        small_row("gzip 6", &diffs, &stored, diff_text, encode, decode),
    );

    if full {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-codec.md");
        if std::fs::write(&path, &report).is_ok() {
            println!("\n(written to {})", path.display());
        }
    }
}

fn redact_all(redactor: &Redactor, objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            redactor.redact(&kind, &mut o);
            o
        })
        .collect()
}

fn to_records(objects: &[Value]) -> Vec<Record> {
    objects
        .iter()
        .map(|o| Record::put_object(o).expect("simulated objects are complete"))
        .collect()
}

fn header(records: &[Record], seq: u64) -> SegmentHeader {
    let now = Utc::now();
    SegmentHeader::new(
        if seq == 1 {
            SegmentType::Snapshot
        } else {
            SegmentType::Diff
        },
        ClusterName::new("bench").expect("valid"),
        Epoch::from_parts(1_763_899_200_000, 1).expect("valid"),
        seq,
        (seq > 1).then(|| "0".repeat(64)),
        now,
        Window { from: now, to: now },
        Counts {
            put: records.len() as u64,
            delete: 0,
        },
        vec!["managed-fields".into()],
    )
}

fn encode_segment(records: &[Record], level: i32) -> Vec<u8> {
    let h = header(records, 1);
    let mut writer =
        SegmentWriter::new("bench", Vec::new(), &h, &EncodeOptions { level }).expect("starts");
    for r in records {
        writer.write(r).expect("writes");
    }
    writer.finish().expect("finishes").0
}

/// The NDJSON text a segment holds (header + records), as compressed by every codec here.
fn ndjson(records: &[Record]) -> Vec<u8> {
    let h = header(records, 1);
    let mut text = serde_json::to_vec(&h).expect("serializes");
    text.push(b'\n');
    for r in records {
        outpost::format::segment::write_record_json(&mut text, r).expect("serializes");
        text.push(b'\n');
    }
    text
}

fn gzip(text: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(text).expect("writes");
    e.finish().expect("finishes")
}

fn gunzip(stored: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(stored)
        .read_to_end(&mut text)
        .expect("decodes");
    text
}

/// Runs `work` at least once and until `min_time` has passed; returns its output and the best
/// (shortest) time of one run.
fn measure<T>(config: &Config, mut work: impl FnMut() -> T) -> (T, Duration) {
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut output;
    loop {
        let t = Instant::now();
        output = black_box(work());
        best = best.min(t.elapsed());
        if start.elapsed() >= config.min_time {
            return (output, best);
        }
    }
}

fn mbps(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn row(
    input: &str,
    codec: &str,
    text: usize,
    stored: usize,
    encode: Duration,
    decode: Duration,
    full: Option<Duration>,
) -> String {
    format!(
        "| {input} | {codec} | {:.1} | {:.2} | {:.1}× | {:.0} | {:.0} | {} |",
        text as f64 / 1e6,
        stored as f64 / 1e6,
        text as f64 / stored as f64,
        mbps(text, encode),
        mbps(text, decode),
        full.map_or("–".to_string(), |f| format!("{:.0}", mbps(text, f)))
    )
}

fn small_row(
    codec: &str,
    diffs: &[Vec<Record>],
    stored: &[Vec<u8>],
    text: usize,
    encode: Duration,
    decode: Duration,
) -> String {
    let total: usize = stored.iter().map(Vec::len).sum();
    format!(
        "| {codec} | {:.0} | {:.1}× | {:.0} | {:.0} |",
        total as f64 / diffs.len() as f64,
        text as f64 / total as f64,
        mbps(text, encode),
        mbps(text, decode)
    )
}
