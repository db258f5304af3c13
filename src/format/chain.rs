//! Verification of a cluster's chain: `head.json` against the segments it names, and each
//! segment against the one before it (sizes, sha256, `prev_sha256`, header vs key).

use super::Error;
use super::codec::{SegmentSummary, is_sha256_hex};
use super::documents::Head;
use super::segment::SegmentType;

/// Checks what can be checked of a head without reading segments: the seqs of the snapshot and
/// the diffs are consecutive and end at `head.seq`, every key is the one the layout gives for
/// that seq (`key_of(type, seq)`), and every hash is well-formed.
pub fn verify_head(
    object: &str,
    head: &Head,
    key_of: impl Fn(SegmentType, u64) -> String,
) -> Result<(), Error> {
    let broken = |reason: String| Error::BrokenChain {
        object: object.to_string(),
        reason,
    };
    let mut expected_seq = head.snapshot.seq;
    if expected_seq == 0 {
        return Err(broken("the snapshot's seq must be at least 1".into()));
    }
    for (index, segment) in head.segments().enumerate() {
        let segment_type = if index == 0 {
            SegmentType::Snapshot
        } else {
            SegmentType::Diff
        };
        if segment.seq != expected_seq {
            return Err(broken(format!(
                "{} #{index} has seq {} where {expected_seq} was expected (a gap or reordering)",
                segment_type.as_str(),
                segment.seq
            )));
        }
        let expected_key = key_of(segment_type, segment.seq);
        if segment.key != expected_key {
            return Err(broken(format!(
                "seq {} names key {:?} but the layout puts it at {expected_key:?}",
                segment.seq, segment.key
            )));
        }
        if !is_sha256_hex(&segment.sha256) {
            return Err(broken(format!(
                "seq {} has a malformed sha256 {:?}",
                segment.seq, segment.sha256
            )));
        }
        expected_seq = expected_seq.saturating_add(1);
    }
    if head.tip().seq != head.seq {
        return Err(broken(format!(
            "head.seq is {} but the chain ends at seq {}",
            head.seq,
            head.tip().seq
        )));
    }
    Ok(())
}

/// Checks the `index`-th segment of `head`'s chain (0 is the snapshot) once it has been read
/// completely: its stored size and sha256 match the head, its header names the same cluster,
/// epoch, seq and type as the head, and its `prev_sha256` is the previous segment's sha256.
pub fn verify_segment(head: &Head, index: usize, summary: &SegmentSummary) -> Result<(), Error> {
    let Some(expected) = head.segments().nth(index) else {
        return Err(Error::BrokenChain {
            object: format!("{}/head.json", head.cluster),
            reason: format!("the chain has no segment #{index}"),
        });
    };
    let broken = |reason: String| Error::BrokenChain {
        object: expected.key.clone(),
        reason,
    };
    if summary.bytes != expected.bytes {
        return Err(broken(format!(
            "is {} bytes long but head.json says {}",
            summary.bytes, expected.bytes
        )));
    }
    if summary.sha256 != expected.sha256 {
        return Err(broken(format!(
            "has sha256 {} but head.json says {}",
            summary.sha256, expected.sha256
        )));
    }
    let header = &summary.header;
    let expected_type = if index == 0 {
        SegmentType::Snapshot
    } else {
        SegmentType::Diff
    };
    if header.cluster != head.cluster || header.epoch != head.epoch || header.seq != expected.seq {
        return Err(broken(format!(
            "its header says cluster {} epoch {} seq {}, but it is listed as cluster {} epoch {} seq {}",
            header.cluster, header.epoch, header.seq, head.cluster, head.epoch, expected.seq
        )));
    }
    if header.segment_type != expected_type {
        return Err(broken(format!(
            "its header says {} but it is listed as a {}",
            header.segment_type.as_str(),
            expected_type.as_str()
        )));
    }
    if index > 0 {
        let previous = head.segments().nth(index - 1).map(|p| p.sha256.as_str());
        if header.prev_sha256.as_deref() != previous {
            return Err(broken(format!(
                "its prev_sha256 is {} but the previous segment's sha256 is {}",
                header.prev_sha256.as_deref().unwrap_or("null"),
                previous.unwrap_or("missing")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::*;
    use crate::format::codec::{EncodeOptions, encode_all};
    use crate::format::documents::SegmentRef;
    use crate::format::names::{ClusterName, Epoch};
    use crate::format::segment::{Counts, SegmentHeader, Window};

    fn key_of(t: SegmentType, seq: u64) -> String {
        format!("k/{seq}.{}", t.as_str())
    }

    /// A head with a snapshot and `diffs` empty diffs, and the summaries of its segments.
    fn chain(diffs: u64) -> (Head, Vec<SegmentSummary>) {
        let cluster = ClusterName::new("c").unwrap();
        let epoch = Epoch::from_parts(1_700_000_000_000, 7).unwrap();
        let now = Utc::now();
        let mut refs = Vec::new();
        let mut summaries = Vec::new();
        let mut prev = None;
        for seq in 1..=diffs + 1 {
            let t = if seq == 1 {
                SegmentType::Snapshot
            } else {
                SegmentType::Diff
            };
            let header = SegmentHeader::new(
                t,
                cluster.clone(),
                epoch.clone(),
                seq,
                prev.clone(),
                now,
                Window { from: now, to: now },
                Counts::default(),
                vec![],
            );
            let (_, summary) = encode_all("x", &header, &[], &EncodeOptions::default()).unwrap();
            prev = Some(summary.sha256.clone());
            refs.push(SegmentRef {
                seq,
                key: key_of(t, seq),
                sha256: summary.sha256.clone(),
                bytes: summary.bytes,
            });
            summaries.push(summary);
        }
        let mut head = Head::new(cluster, epoch, refs.remove(0), now, 0, BTreeMap::new());
        head.seq = diffs + 1;
        head.diffs = refs;
        (head, summaries)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (head, summaries) = chain(3);
        verify_head("h", &head, key_of).unwrap();
        for (i, s) in summaries.iter().enumerate() {
            verify_segment(&head, i, s).unwrap();
        }
    }

    #[test]
    fn a_missing_diff_is_a_gap() {
        let (mut head, _) = chain(3);
        head.diffs.remove(1);
        let err = verify_head("h", &head, key_of).unwrap_err().to_string();
        assert!(err.contains("gap"), "{err}");
    }

    #[test]
    fn a_key_outside_the_layout_is_refused() {
        let (mut head, _) = chain(1);
        head.diffs[0].key = "../../elsewhere".into();
        let err = verify_head("h", &head, key_of).unwrap_err().to_string();
        assert!(err.contains("layout"), "{err}");
    }

    #[test]
    fn a_wrong_head_seq_is_refused() {
        let (mut head, _) = chain(1);
        head.seq = 5;
        assert!(verify_head("h", &head, key_of).is_err());
    }

    #[test]
    fn a_wrong_hash_size_or_link_names_the_segment() {
        let (head, summaries) = chain(2);
        let mut wrong_hash = summaries[1].clone();
        wrong_hash.sha256 = "0".repeat(64);
        let err = verify_segment(&head, 1, &wrong_hash)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&head.diffs[0].key) && err.contains("sha256"),
            "{err}"
        );

        let mut wrong_size = summaries[1].clone();
        wrong_size.bytes += 1;
        assert!(verify_segment(&head, 1, &wrong_size).is_err());

        let mut head_with_bad_link = head.clone();
        // Pretend diff 2's stored hash is what head says, but its prev_sha256 is not diff 1's.
        let mut relinked = summaries[2].clone();
        relinked.header.prev_sha256 = Some("f".repeat(64));
        let err = verify_segment(&head_with_bad_link, 2, &relinked)
            .unwrap_err()
            .to_string();
        assert!(err.contains("prev_sha256"), "{err}");

        head_with_bad_link.diffs[0].sha256 = "e".repeat(64);
        assert!(verify_segment(&head_with_bad_link, 2, &summaries[2]).is_err());
    }

    #[test]
    fn a_segment_of_another_epoch_or_type_is_refused() {
        let (head, summaries) = chain(1);
        let mut other = summaries[1].clone();
        other.header.epoch = Epoch::from_parts(1_800_000_000_000, 7).unwrap();
        assert!(verify_segment(&head, 1, &other).is_err());
        let mut typed = summaries[1].clone();
        typed.header.segment_type = SegmentType::Snapshot;
        assert!(verify_segment(&head, 1, &typed).is_err());
        assert!(verify_segment(&head, 9, &summaries[0]).is_err());
    }
}
