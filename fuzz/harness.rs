//! What the fuzzers check, shared by the bounded property tests (`tests/fuzz_format.rs`) and the
//! cargo-fuzz targets (`fuzz/fuzz_targets/`): whatever bytes a bucket holds, decoding a
//! segment, parsing and verifying a head and choosing the segments to apply return a value or an
//! error, never a panic.

// Each driver (a fuzz target, the property tests) uses part of it.
#![allow(dead_code)]

use std::io::Read;

use outpost::format::chain::Account;
use outpost::format::{
    DecodeLimits, Epoch, Head, Plan, SegmentReader, SegmentSummary, plan, verify_segment,
};
use outpost::store::Layout;

/// Limits small enough that one input decodes quickly, as a reader's limits bound it.
fn limits() -> DecodeLimits {
    DecodeLimits {
        max_line_bytes: 1 << 20,
        max_decompressed_bytes: 16 << 20,
        max_expansion_ratio: 1000,
    }
}

/// Decodes `bytes` as a stored segment (zstd), record by record, to its summary; whether it
/// decoded whole.
pub fn segment(bytes: &[u8]) -> bool {
    let Ok(mut reader) = SegmentReader::new("fuzz.snap.ndjson.zst", bytes, &limits()) else {
        return false;
    };
    loop {
        match reader.next_record() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    reader.finish().is_ok()
}

/// Compresses `text` as a segment's NDJSON and decodes it: mutations of the text reach the
/// record parser, which mutations of compressed bytes mostly do not.
pub fn segment_text(text: &[u8]) -> bool {
    let mut compressed = Vec::new();
    let written = zstd::Encoder::new(&mut compressed, 1).and_then(|mut encoder| {
        // A segment's frame carries a content checksum; the reader refuses one without.
        encoder.include_checksum(true)?;
        std::io::Write::write_all(&mut encoder, text)?;
        encoder.finish().map(|_| ())
    });
    written.is_ok() && segment(&compressed)
}

/// The decompressed text of a stored segment (for seeds).
pub fn decompressed(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    if let Ok(mut decoder) = zstd::Decoder::new(bytes) {
        let _ = decoder.read_to_end(&mut text);
    }
    text
}

/// Where the indexer's checkpoint stands for [`head`]: in the head's epoch or another, its seq,
/// whether its sha256 is the one the head lists at that seq (or was not recorded), and whether
/// its account still matches.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    pub same_epoch: bool,
    pub seq: u64,
    pub same_sha256: Option<bool>,
    pub same_account: bool,
}

/// Parses `bytes` as `head.json`, verifies it as the indexer does, checks that it survives a
/// round trip, and chooses the segments to apply from `checkpoint` as the indexer does
/// (`outpost::format::plan`, which `Indexer::index_cluster` calls), checking the choice against the chain
/// and every segment's verification against arbitrary summaries. Says how far it got.
pub fn head(bytes: &[u8], checkpoint: Option<Checkpoint>) -> Reached {
    let checkpoint_account = checkpoint.is_none_or(|c| c.same_account);
    let Ok(head) = Head::from_json("head.json", bytes) else {
        return Reached::Unparsed;
    };
    let written = head.to_json().expect("a parsed head serializes");
    let again = Head::from_json("head.json", &written).expect("a written head parses");
    assert_eq!(again, head, "head.json does not survive a round trip");
    let Ok(layout) = Layout::new("") else {
        return Reached::Unverified;
    };
    if layout.verify_head(&head.cluster, &head).is_err() {
        return Reached::Unverified;
    }

    // The choice, by the indexer's own function: whatever it is, it reads a suffix of the
    // chain, from the snapshot when it reloads and from a diff when it resumes.
    let other = Epoch::from_parts(0, 0).expect("an epoch");
    let checkpoint = checkpoint.map(|c| outpost::format::Checkpoint {
        epoch: if c.same_epoch {
            head.epoch.clone()
        } else {
            other.clone()
        },
        seq: c.seq,
        sha256: c.same_sha256.map(|same| {
            let listed = head.segments().find(|s| s.seq == c.seq);
            match (same, listed) {
                (true, Some(listed)) => listed.sha256.to_string(),
                _ => "0".repeat(64),
            }
        }),
    });
    let account = if checkpoint_account {
        Account::Same
    } else {
        Account::Changed
    };
    let plan = plan(&head, checkpoint.as_ref(), account);
    let wanted: Vec<(usize, u64)> = match plan.first() {
        Some(first) => head
            .segments()
            .skip(first)
            .map(|s| (s.index, s.seq))
            .collect(),
        None => Vec::new(),
    };
    match &plan {
        Plan::Reload(_) => assert_eq!(
            wanted.first().map(|w| w.0),
            Some(0),
            "a reload starts at the snapshot"
        ),
        Plan::Resume { from } => {
            assert!(*from > 0 && !wanted.is_empty(), "a resume reads diffs only");
            let c = checkpoint.as_ref().expect("a resume has a checkpoint");
            assert_eq!(
                wanted.len() as u64,
                head.seq - c.seq,
                "every diff after the checkpoint"
            );
        }
        Plan::UpToDate | Plan::Rewound { .. } => assert!(wanted.is_empty()),
    }
    for (expected, (_, seq)) in (wanted.first().map_or(0, |w| w.1)..).zip(&wanted) {
        assert_eq!(*seq, expected, "the chosen segments are consecutive");
    }

    // Each chosen segment checked against its own summary passes; against another's, it fails.
    for (index, _) in &wanted {
        let Some(segment) = head.segments().nth(*index) else {
            continue;
        };
        let Some(summary) = summary_of(&head, *index) else {
            continue;
        };
        let _ = verify_segment(&head, *index, &summary);
        let mut wrong = summary;
        wrong.bytes = segment.bytes.wrapping_add(1);
        assert!(
            verify_segment(&head, *index, &wrong).is_err(),
            "a wrong size passes"
        );
    }
    let _ = verify_segment(
        &head,
        usize::MAX,
        &summary_of(&head, 0).expect("a snapshot"),
    );
    Reached::Planned
}

/// How far [`head`] got with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    Unparsed,
    Unverified,
    Planned,
}

/// The summary a faithful segment `index` of `head` would have.
fn summary_of(head: &Head, index: usize) -> Option<SegmentSummary> {
    let segment = head.segments().nth(index)?;
    let window = outpost::format::segment::Window {
        from: head.updated_at,
        to: head.updated_at,
    };
    let header = outpost::format::SegmentHeader::new(
        segment.segment_type,
        head.cluster.clone(),
        head.epoch.clone(),
        segment.seq,
        segment.prev_sha256.map(str::to_string),
        head.updated_at,
        window,
        outpost::format::segment::Counts::default(),
        Vec::new(),
    );
    Some(SegmentSummary {
        header,
        sha256: segment.sha256.to_string(),
        bytes: segment.bytes,
        decompressed_bytes: 0,
    })
}
