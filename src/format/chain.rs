//! A cluster's chain as a reader sees it: which segments to read from a checkpoint (FORMAT
//! §8.2), `head.json` checked against the layout, and each listed segment checked against its
//! listing while its bytes stream (size, sha256, header, `prev_sha256`).

use std::io::Read;

use sha2::Digest;

use super::Error;
use super::codec::{DecodeLimits, SegmentReader, SegmentSummary, is_sha256_hex};
use super::documents::{Head, ListedSegment};
use super::names::Epoch;
use super::segment::{Record, SegmentHeader, SegmentType};

/// What a reader last applied of a cluster's chain: one value, so that it is set whole or not
/// at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub epoch: Epoch,
    pub seq: u64,
    /// The sha256 of the stored bytes of segment `seq`. `None` only for a checkpoint recorded
    /// before readers kept it: it is trusted as it is, once, since the run that follows records
    /// the sha256 of what it applied.
    pub sha256: Option<String>,
}

/// Whether the rows of the checkpoint are in the account the cluster gets now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    Same,
    /// The rows are elsewhere: the state must be loaded anew whatever the chain says.
    Changed,
}

/// Why the state is replaced from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    NoCheckpoint,
    OtherEpoch,
    /// The checkpoint is older than the listed snapshot.
    BeforeSnapshot,
    AccountChanged,
    /// A fault: the head lists another segment at the checkpoint's seq than the one applied.
    Rewritten {
        seq: u64,
        applied: String,
        listed: String,
    },
}

/// The segments to read for a head, given the checkpoint (FORMAT §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: the checkpoint is the head's tip.
    UpToDate,
    /// The listed segments from position `from` (≥ 1, a diff) on, onto the current state.
    Resume { from: usize },
    /// Every listed segment from the snapshot on, replacing the state.
    Reload(Reload),
    /// A fault: the head is behind the checkpoint; nothing is applied.
    Rewound { applied: u64, listed: u64 },
}

impl Plan {
    /// The position in `head.segments()` of the first segment to read, if any.
    pub fn first(&self) -> Option<usize> {
        match self {
            Plan::Resume { from } => Some(*from),
            Plan::Reload(_) => Some(0),
            Plan::UpToDate | Plan::Rewound { .. } => None,
        }
    }

    /// The chain fault this plan found, if any, in words.
    pub fn fault(&self) -> Option<String> {
        match self {
            Plan::Reload(Reload::Rewritten {
                seq,
                applied,
                listed,
            }) => Some(format!(
                "rewritten chain: seq {seq} was applied with sha256 {applied} but head.json now lists sha256 {listed}; reloaded from the snapshot"
            )),
            Plan::Rewound { applied, listed } => Some(format!(
                "the head went backwards: seq {applied} of its epoch was applied but head.json ends at seq {listed}; nothing applied"
            )),
            _ => None,
        }
    }
}

/// Chooses what to read of a verified `head` ([`verify_head`]) after `checkpoint`: the table of
/// FORMAT §8.2. A resume needs the listed sha256 of the checkpoint's seq to be the one applied
/// (which, by check 16, is the first read diff's `prev_sha256`); a rewritten chain is reloaded.
pub fn plan(head: &Head, checkpoint: Option<&Checkpoint>, account: Account) -> Plan {
    let Some(checkpoint) = checkpoint else {
        return Plan::Reload(Reload::NoCheckpoint);
    };
    if checkpoint.epoch != head.epoch {
        return Plan::Reload(Reload::OtherEpoch);
    }
    if checkpoint.seq > head.seq {
        return Plan::Rewound {
            applied: checkpoint.seq,
            listed: head.seq,
        };
    }
    let Some(position) = head.segments().position(|s| s.seq == checkpoint.seq) else {
        return Plan::Reload(Reload::BeforeSnapshot);
    };
    let listed = head.segments().nth(position).map(|s| s.sha256);
    if let (Some(applied), Some(listed)) = (checkpoint.sha256.as_deref(), listed)
        && applied != listed
    {
        return Plan::Reload(Reload::Rewritten {
            seq: checkpoint.seq,
            applied: applied.to_string(),
            listed: listed.to_string(),
        });
    }
    if account == Account::Changed {
        return Plan::Reload(Reload::AccountChanged);
    }
    if position + 1 >= head.segments().count() {
        Plan::UpToDate
    } else {
        Plan::Resume { from: position + 1 }
    }
}

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
    for segment in head.segments() {
        if segment.seq != expected_seq {
            return Err(broken(format!(
                "{} #{} has seq {} where {expected_seq} was expected (a gap or reordering)",
                segment.segment_type.as_str(),
                segment.index,
                segment.seq
            )));
        }
        let expected_key = key_of(segment.segment_type, segment.seq);
        if segment.key != expected_key {
            return Err(broken(format!(
                "seq {} names key {:?} but the layout puts it at {expected_key:?}",
                segment.seq, segment.key
            )));
        }
        if !is_sha256_hex(segment.sha256) {
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
/// completely: its stored size and sha256 match the head ([`Expected::check_read`]), and its
/// header matches the listing ([`check_header`]).
pub fn verify_segment(head: &Head, index: usize, summary: &SegmentSummary) -> Result<(), Error> {
    let Some(listed) = head.segments().nth(index) else {
        return Err(Error::BrokenChain {
            object: format!("{}/head.json", head.cluster),
            reason: format!("the chain has no segment #{index}"),
        });
    };
    Expected::of(listed.key, &listed).check_read(summary.bytes, &summary.sha256)?;
    check_header(listed.key, head, &listed, &summary.header)
}

/// Checks a segment's header (read from `object`) against its listing in `head`: the same
/// cluster, epoch, seq and type, and a `prev_sha256` that is the previous segment's sha256.
pub fn check_header(
    object: &str,
    head: &Head,
    listed: &ListedSegment<'_>,
    header: &SegmentHeader,
) -> Result<(), Error> {
    let broken = |reason: String| Error::BrokenChain {
        object: object.to_string(),
        reason,
    };
    if header.cluster != head.cluster || header.epoch != head.epoch || header.seq != listed.seq {
        return Err(broken(format!(
            "its header says cluster {} epoch {} seq {}, but it is listed as cluster {} epoch {} seq {}",
            header.cluster, header.epoch, header.seq, head.cluster, head.epoch, listed.seq
        )));
    }
    if header.segment_type != listed.segment_type {
        return Err(broken(format!(
            "its header says {} but it is listed as a {}",
            header.segment_type.as_str(),
            listed.segment_type.as_str()
        )));
    }
    if let Some(previous) = listed.prev_sha256
        && header.prev_sha256.as_deref() != Some(previous)
    {
        return Err(broken(format!(
            "its prev_sha256 is {} but the previous segment's sha256 is {previous}",
            header.prev_sha256.as_deref().unwrap_or("null"),
        )));
    }
    Ok(())
}

/// What the stored bytes of a listed segment must be, owned, so that a check can run on
/// another thread than the one holding the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The label of the object in errors (its key).
    pub object: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Expected {
    /// What `listed` promises, read from `object`.
    pub fn of(object: &str, listed: &ListedSegment<'_>) -> Self {
        Self {
            object: object.to_string(),
            bytes: listed.bytes,
            sha256: listed.sha256.to_string(),
        }
    }

    /// Checks 14 on the size a store reports before any byte is read.
    pub fn check_reported_size(&self, size: u64) -> Result<(), Error> {
        if size == self.bytes {
            Ok(())
        } else {
            Err(self.mismatch(size, None))
        }
    }

    /// Checks 14 and 15 on what a decoder read: the stored size and sha256 are the listed ones.
    pub fn check_read(&self, bytes: u64, sha256: &str) -> Result<(), Error> {
        let broken = |reason: String| Error::BrokenChain {
            object: self.object.clone(),
            reason,
        };
        if bytes != self.bytes {
            return Err(broken(format!(
                "is {bytes} bytes long but head.json says {}",
                self.bytes
            )));
        }
        if sha256 != self.sha256 {
            return Err(broken(format!(
                "has sha256 {sha256} but head.json says {}",
                self.sha256
            )));
        }
        Ok(())
    }

    fn mismatch(&self, length: u64, sha256: Option<&str>) -> Error {
        Error::BrokenChain {
            object: self.object.clone(),
            reason: format!(
                "its stored bytes are {length} bytes with sha256 {}, but head.json lists {} bytes with sha256 {} (not decoded)",
                sha256.unwrap_or("(not read)"),
                self.bytes,
                self.sha256
            ),
        }
    }
}

/// The stored bytes of a listed segment as they stream, hashed and counted, and never more than
/// one byte past the listed size (enough to tell that the object is longer). Reading them all
/// and then [`StoredBytes::finish`] checks 14 and 15 before anything is decoded: hashing costs
/// one pass over them, where decoding a frame that is not the listed one could cost up to the
/// expansion limit.
pub struct StoredBytes<R> {
    expected: Expected,
    inner: std::io::Take<R>,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<R: Read> StoredBytes<R> {
    pub fn new(expected: Expected, inner: R) -> Self {
        let inner = inner.take(expected.bytes.saturating_add(1));
        Self {
            expected,
            inner,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    /// Checks that the bytes read were the listed ones, in size and sha256.
    pub fn finish(self) -> Result<(), Error> {
        let sha256 = hex::encode(self.hasher.finalize());
        if self.bytes == self.expected.bytes && sha256 == self.expected.sha256 {
            Ok(())
        } else {
            Err(self.expected.mismatch(self.bytes, Some(&sha256)))
        }
    }
}

impl<R: Read> Read for StoredBytes<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Decodes a listed segment from its stored bytes and checks it against the listing as it
/// streams: the header before any record is returned, then, once the last record is read, the
/// counts, the size and the sha256. At most one byte past the listed size is read, so a segment
/// may be of any size the format's limits allow and is never held whole.
pub struct ListedSegmentReader<R: Read> {
    reader: SegmentReader<std::io::Take<R>>,
    expected: Expected,
    listed_type: SegmentType,
}

impl<R: Read> ListedSegmentReader<R> {
    /// Starts decoding the `listed` segment of `head` from `stored`, read from `object`, and
    /// checks its header.
    pub fn new(
        object: &str,
        head: &Head,
        listed: &ListedSegment<'_>,
        stored: R,
        limits: &DecodeLimits,
    ) -> Result<Self, Error> {
        let stored = stored.take(listed.bytes.saturating_add(1));
        let reader = SegmentReader::new(object, stored, limits)?;
        check_header(object, head, listed, reader.header())?;
        Ok(Self {
            reader,
            expected: Expected::of(object, listed),
            listed_type: listed.segment_type,
        })
    }

    /// The segment's header, checked against the listing.
    pub fn header(&self) -> &SegmentHeader {
        self.reader.header()
    }

    /// Whether the head lists it as the snapshot or as a diff.
    pub fn segment_type(&self) -> SegmentType {
        self.listed_type
    }

    /// The next record, or `None` once the segment has been read completely and checked
    /// (call [`finish`](Self::finish) for its summary).
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        self.reader.next_record()
    }

    /// Reads whatever records remain and checks the stored size and sha256 against the listing.
    pub fn finish(self) -> Result<SegmentSummary, Error> {
        let summary = self.reader.finish()?;
        self.expected.check_read(summary.bytes, &summary.sha256)?;
        Ok(summary)
    }
}

impl<R: Read> Iterator for ListedSegmentReader<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod plan_tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use proptest::prelude::*;

    use super::*;
    use crate::format::documents::SegmentRef;
    use crate::format::names::ClusterName;

    fn sha(n: u8) -> String {
        format!("{n:x}").repeat(64)[..64].to_string()
    }

    /// A head of epoch 1 from `snapshot_seq` with `diffs` diffs; the segment at seq `s` has
    /// sha256 `sha(shas(s))`.
    fn head(snapshot_seq: u64, diffs: u64, shas: impl Fn(u64) -> u8) -> Head {
        let at = |seq: u64| SegmentRef {
            seq,
            key: format!("k/{seq}"),
            sha256: sha(shas(seq)),
            bytes: 1,
        };
        let mut head = Head::new(
            ClusterName::new("c").unwrap(),
            epoch(1),
            at(snapshot_seq),
            Utc::now(),
            0,
            BTreeMap::new(),
        );
        head.diffs = (1..=diffs).map(|i| at(snapshot_seq + i)).collect();
        head.seq = snapshot_seq + diffs;
        head
    }

    fn epoch(n: u32) -> Epoch {
        Epoch::from_parts(1_700_000_000_000, n).unwrap()
    }

    /// The table of FORMAT §8.2 read row by row, as the seqs the reader reads and whether it
    /// replaces the state, or `Err` for a fault.
    fn reference(
        head: &Head,
        checkpoint: Option<&Checkpoint>,
        account: Account,
    ) -> Result<(bool, Vec<u64>), ()> {
        let all: Vec<u64> = head.segments().map(|s| s.seq).collect();
        let Some(c) = checkpoint else {
            return Ok((true, all));
        };
        if c.epoch != head.epoch || c.seq < head.snapshot.seq {
            return Ok((true, all));
        }
        if c.seq > head.seq {
            return Err(());
        }
        let listed = &head.segments().find(|s| s.seq == c.seq).unwrap().sha256;
        if c.sha256.as_ref().is_some_and(|applied| applied != listed) || account == Account::Changed
        {
            return Ok((true, all));
        }
        Ok((false, all.into_iter().filter(|s| *s > c.seq).collect()))
    }

    fn chosen(head: &Head, plan: &Plan) -> Result<(bool, Vec<u64>), ()> {
        match plan {
            Plan::Rewound { .. } => Err(()),
            _ => Ok((
                matches!(plan, Plan::Reload(_)),
                plan.first()
                    .map(|first| head.segments().skip(first).map(|s| s.seq).collect())
                    .unwrap_or_default(),
            )),
        }
    }

    fn check(head: &Head, checkpoint: Option<&Checkpoint>, account: Account) {
        let plan = plan(head, checkpoint, account);
        assert_eq!(
            chosen(head, &plan),
            reference(head, checkpoint, account),
            "{checkpoint:?} {account:?} {plan:?}"
        );
        if let Plan::Resume { from } = plan {
            assert!(from >= 1, "a resume reads no snapshot");
        }
        let rewritten = matches!(plan, Plan::Reload(Reload::Rewritten { .. }));
        assert_eq!(
            plan.fault().is_some(),
            rewritten || matches!(plan, Plan::Rewound { .. })
        );
    }

    #[test]
    fn every_small_case_follows_the_table() {
        for snapshot_seq in 1..4 {
            for diffs in 0..4 {
                // 0: the segments as applied; 1: a chain rewritten from seq 3 on.
                for rewritten in [false, true] {
                    let head = head(snapshot_seq, diffs, |s| u8::from(rewritten && s >= 3));
                    for account in [Account::Same, Account::Changed] {
                        check(&head, None, account);
                        for seq in 0..9 {
                            for epoch_n in [1, 2] {
                                for sha256 in [None, Some(sha(0))] {
                                    let checkpoint = Checkpoint {
                                        epoch: epoch(epoch_n),
                                        seq,
                                        sha256,
                                    };
                                    check(&head, Some(&checkpoint), account);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_cases_of_the_table_are_named() {
        let h = head(2, 2, |_| 0);
        let at = |seq, sha256| Checkpoint {
            epoch: epoch(1),
            seq,
            sha256,
        };
        assert_eq!(
            plan(&h, Some(&at(3, Some(sha(0)))), Account::Same),
            Plan::Resume { from: 2 }
        );
        assert_eq!(
            plan(&h, Some(&at(4, Some(sha(0)))), Account::Same),
            Plan::UpToDate
        );
        assert_eq!(
            plan(&h, Some(&at(4, Some(sha(7)))), Account::Same),
            Plan::Reload(Reload::Rewritten {
                seq: 4,
                applied: sha(7),
                listed: sha(0)
            })
        );
        assert_eq!(
            plan(&h, Some(&at(3, None)), Account::Same),
            Plan::Resume { from: 2 },
            "a checkpoint recorded without its sha256 is trusted"
        );
        assert_eq!(
            plan(&h, Some(&at(1, Some(sha(0)))), Account::Same),
            Plan::Reload(Reload::BeforeSnapshot)
        );
        let rewound = plan(&h, Some(&at(9, Some(sha(0)))), Account::Same);
        assert_eq!(
            rewound,
            Plan::Rewound {
                applied: 9,
                listed: 4
            }
        );
        assert!(rewound.fault().unwrap().contains("went backwards"));
        assert_eq!(
            plan(&h, Some(&at(3, Some(sha(0)))), Account::Changed),
            Plan::Reload(Reload::AccountChanged)
        );
    }

    proptest! {
        #[test]
        fn any_checkpoint_follows_the_table(
            snapshot_seq in prop_oneof![1u64..6, (u64::MAX - 40)..(u64::MAX - 20)],
            diffs in 0u64..12,
            changed_from in any::<u64>(),
            offset in any::<u64>(),
            near in 0u64..20,
            far in any::<bool>(),
            same_epoch in any::<bool>(),
            recorded in prop::option::of(0u8..2),
            changed in any::<bool>(),
        ) {
            let head = head(snapshot_seq, diffs, |s| u8::from(s >= changed_from));
            let seq = if far { offset } else { snapshot_seq.saturating_sub(2).saturating_add(near) };
            let checkpoint = Checkpoint {
                epoch: epoch(if same_epoch { 1 } else { 2 }),
                seq,
                sha256: recorded.map(sha),
            };
            let account = if changed { Account::Changed } else { Account::Same };
            check(&head, Some(&checkpoint), account);
        }
    }
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
        let (head, segments) = chain_with_bytes(diffs);
        (head, segments.into_iter().map(|(_, s)| s).collect())
    }

    /// [`chain`] with each segment's stored bytes.
    fn chain_with_bytes(diffs: u64) -> (Head, Vec<(Vec<u8>, SegmentSummary)>) {
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
            let (bytes, summary) =
                encode_all("x", &header, &[], &EncodeOptions::default()).unwrap();
            prev = Some(summary.sha256.clone());
            refs.push(SegmentRef {
                seq,
                key: key_of(t, seq),
                sha256: summary.sha256.clone(),
                bytes: summary.bytes,
            });
            summaries.push((bytes, summary));
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

    #[test]
    fn entry_zero_is_the_snapshot_and_each_diff_names_the_one_before() {
        let (head, _) = chain(2);
        let listed: Vec<ListedSegment<'_>> = head.segments().collect();
        assert_eq!(
            listed.iter().map(|s| s.segment_type).collect::<Vec<_>>(),
            [SegmentType::Snapshot, SegmentType::Diff, SegmentType::Diff]
        );
        assert_eq!(
            listed.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(listed[0].prev_sha256, None);
        assert_eq!(listed[1].prev_sha256, Some(head.snapshot.sha256.as_str()));
        assert_eq!(listed[2].prev_sha256, Some(head.diffs[0].sha256.as_str()));
        assert_eq!(listed[2].key, head.diffs[1].key);
        assert_eq!(listed[2].bytes, head.diffs[1].bytes);
    }

    #[test]
    fn a_listed_segment_reads_whole_and_verified() {
        let (head, segments) = chain_with_bytes(2);
        for (listed, (bytes, summary)) in head.segments().zip(&segments) {
            let reader = ListedSegmentReader::new(
                listed.key,
                &head,
                &listed,
                bytes.as_slice(),
                &DecodeLimits::default(),
            )
            .unwrap();
            assert_eq!(reader.segment_type(), listed.segment_type);
            assert_eq!(&reader.finish().unwrap(), summary);
        }
    }

    #[test]
    fn a_listed_segment_of_another_place_in_the_chain_fails_at_its_header() {
        let (head, segments) = chain_with_bytes(2);
        let second = head.segments().nth(2).unwrap();
        // Diff 1's bytes where diff 2 is listed: its seq and link are not diff 2's.
        let err = ListedSegmentReader::new(
            second.key,
            &head,
            &second,
            segments[1].0.as_slice(),
            &DecodeLimits::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains(second.key) && err.contains("header"), "{err}");
    }

    #[test]
    fn a_listed_segment_with_other_bytes_fails_when_it_ends() {
        let (mut head, segments) = chain_with_bytes(1);
        head.diffs[0].sha256 = "0".repeat(64);
        let listed = head.segments().nth(1).unwrap();
        let reader = ListedSegmentReader::new(
            listed.key,
            &head,
            &listed,
            segments[1].0.as_slice(),
            &DecodeLimits::default(),
        )
        .unwrap();
        let err = reader.finish().unwrap_err().to_string();
        assert!(err.contains("sha256") && err.contains(listed.key), "{err}");
    }

    #[test]
    fn stored_bytes_pass_only_as_listed_and_are_read_one_byte_past_the_listing_at_most() {
        let (head, segments) = chain_with_bytes(0);
        let listed = head.segments().next().unwrap();
        let bytes = &segments[0].0;
        let read = |stored: Vec<u8>| {
            let mut stored = StoredBytes::new(Expected::of("k", &listed), stored.as_slice());
            let mut copy = Vec::new();
            std::io::copy(&mut stored, &mut copy).unwrap();
            (copy.len(), stored.finish())
        };
        let (length, verdict) = read(bytes.clone());
        assert_eq!(length, bytes.len());
        verdict.unwrap();

        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 4096]);
        let (length, verdict) = read(longer);
        assert_eq!(
            length,
            bytes.len() + 1,
            "one byte past the listing tells it is longer"
        );
        let err = verdict.unwrap_err().to_string();
        assert!(err.contains("not decoded"), "{err}");

        let mut changed = bytes.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(read(changed).1.is_err());

        let expected = Expected::of("k", &listed);
        expected.check_reported_size(listed.bytes).unwrap();
        let err = expected
            .check_reported_size(listed.bytes + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("(not read)"), "{err}");
    }
}
