//! The streaming segment codec: NDJSON records inside one zstd frame, hashed as they stream.
//!
//! Neither side ever holds a whole segment's decompressed bytes: the writer compresses line by
//! line into any `Write`, the reader decompresses into a line buffer capped by [`DecodeLimits`],
//! so a zip bomb or an endless line is refused with an error instead of exhausting memory.

use std::io::{self, BufRead, BufReader, Read, Write};

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::segment::{
    Counts, ObjectRef, Op, Record, RecordLine, SEGMENT_FORMAT, SegmentHeader, SegmentType,
};
use super::{Error, parse_versioned};

/// How to compress a segment.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// zstd level, 1 (fastest) to 19 (smallest). Default 3: see BENCHMARKS.md.
    pub level: i32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { level: 3 }
    }
}

/// Bounds a reader enforces while decoding a segment, whatever the segment claims.
#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// Longest accepted line (one record), default 16 MiB. Kubernetes caps an object near 1.5 MiB.
    pub max_line_bytes: u64,
    /// Largest accepted decompressed size of a segment, default 64 GiB.
    pub max_decompressed_bytes: u64,
    /// Largest accepted ratio of decompressed to compressed bytes, default 1000 (real segments
    /// compress 5–30×). Checked once more than 1 MiB has been decompressed.
    pub max_expansion_ratio: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 30,
            max_expansion_ratio: 1000,
        }
    }
}

/// What a segment turned out to be, once fully written or fully read.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSummary {
    pub header: SegmentHeader,
    /// Lower-case hex sha256 of the stored (compressed) bytes.
    pub sha256: String,
    /// Size of the stored bytes.
    pub bytes: u64,
    /// Size of the NDJSON text inside.
    pub decompressed_bytes: u64,
}

/// A `Write` that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Writes one segment: the header line, then records, into a zstd frame with a content checksum.
pub struct SegmentWriter<W: Write> {
    encoder: zstd::Encoder<'static, HashingWriter<W>>,
    header: SegmentHeader,
    object: String,
    counts: Counts,
    decompressed_bytes: u64,
    line: Vec<u8>,
}

impl<W: Write> SegmentWriter<W> {
    /// Starts a segment and writes its header. `object` names it in errors (usually its key).
    pub fn new(
        object: &str,
        inner: W,
        header: &SegmentHeader,
        options: &EncodeOptions,
    ) -> Result<Self, Error> {
        let compress = |source| Error::Compress {
            object: object.to_string(),
            source,
        };
        let sink = HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut encoder = zstd::Encoder::new(sink, options.level).map_err(compress)?;
        encoder.include_checksum(true).map_err(compress)?;
        let mut writer = Self {
            encoder,
            header: header.clone(),
            object: object.to_string(),
            counts: Counts::default(),
            decompressed_bytes: 0,
            line: Vec::with_capacity(16 << 10),
        };
        serde_json::to_writer(&mut writer.line, header).map_err(|source| Error::Serialize {
            object: object.to_string(),
            source,
        })?;
        writer.emit_line()?;
        Ok(writer)
    }

    /// Appends a record.
    pub fn write(&mut self, record: &Record) -> Result<(), Error> {
        self.write_line(RecordLine::of(record))
    }

    /// Appends a `put` without building a [`Record`] (the agent keeps objects as raw JSON).
    pub fn write_put(
        &mut self,
        target: &ObjectRef,
        resource_version: &str,
        object: &RawValue,
    ) -> Result<(), Error> {
        self.write_line(RecordLine {
            op: Op::Put,
            api_version: target.api_version.as_str().into(),
            kind: target.kind.as_str().into(),
            namespace: target.namespace.as_str().into(),
            name: target.name.as_str().into(),
            uid: target.uid.as_str().into(),
            resource_version: Some(resource_version.into()),
            object: Some(object),
        })
    }

    /// Appends a `delete`.
    pub fn write_delete(&mut self, target: &ObjectRef) -> Result<(), Error> {
        self.write_line(RecordLine {
            op: Op::Delete,
            api_version: target.api_version.as_str().into(),
            kind: target.kind.as_str().into(),
            namespace: target.namespace.as_str().into(),
            name: target.name.as_str().into(),
            uid: target.uid.as_str().into(),
            resource_version: None,
            object: None,
        })
    }

    fn write_line(&mut self, line: RecordLine<'_>) -> Result<(), Error> {
        match line.op {
            Op::Put => self.counts.put += 1,
            Op::Delete if self.header.segment_type == SegmentType::Snapshot => {
                return Err(Error::InvalidSegment {
                    object: self.object.clone(),
                    reason: "a snapshot cannot hold delete records".to_string(),
                });
            }
            Op::Delete => self.counts.delete += 1,
        }
        serde_json::to_writer(&mut self.line, &line).map_err(|source| Error::Serialize {
            object: self.object.clone(),
            source,
        })?;
        self.emit_line()
    }

    fn emit_line(&mut self) -> Result<(), Error> {
        // A raw line feed can only be insignificant whitespace in JSON (inside strings it must
        // be escaped), so dropping any keeps one record per line whatever the object's layout.
        if self.line.contains(&b'\n') {
            self.line.retain(|&b| b != b'\n');
        }
        self.line.push(b'\n');
        self.decompressed_bytes += self.line.len() as u64;
        let result = self.encoder.write_all(&self.line);
        self.line.clear();
        result.map_err(|source| Error::Compress {
            object: self.object.clone(),
            source,
        })
    }

    /// Ends the frame, checks the records against the header's counts, and returns the inner
    /// writer with the hash and size of everything written to it.
    pub fn finish(self) -> Result<(W, SegmentSummary), Error> {
        if self.counts != self.header.counts {
            return Err(Error::CountMismatch {
                object: self.object,
                expected_put: self.header.counts.put,
                expected_delete: self.header.counts.delete,
                put: self.counts.put,
                delete: self.counts.delete,
            });
        }
        let mut sink = self.encoder.finish().map_err(|source| Error::Compress {
            object: self.object.clone(),
            source,
        })?;
        sink.flush().map_err(|source| Error::Compress {
            object: self.object.clone(),
            source,
        })?;
        let summary = SegmentSummary {
            header: self.header,
            sha256: hex::encode(sink.hasher.finalize()),
            bytes: sink.bytes,
            decompressed_bytes: self.decompressed_bytes,
        };
        Ok((sink.inner, summary))
    }
}

/// Reads one segment as a stream of records, enforcing [`DecodeLimits`].
///
/// The header is read and checked by [`SegmentReader::new`]. [`SegmentReader::next_record`]
/// returns `Ok(None)` only after the whole object was read and found complete: the zstd frame
/// ended with a valid checksum, nothing follows it, and the record counts match the header.
pub struct SegmentReader<R: Read> {
    lines: LineReader<R>,
    header: SegmentHeader,
    counts: Counts,
    /// sha256 and size of the stored bytes, once the end was reached and checked.
    finished: Option<(String, u64)>,
}

impl<R: Read> SegmentReader<R> {
    /// Starts decoding and reads and checks the header. `object` names the segment in errors.
    pub fn new(object: &str, inner: R, limits: &DecodeLimits) -> Result<Self, Error> {
        let mut lines = LineReader::new(object, inner, limits)?;
        if !lines.read_line()? {
            return Err(Error::MissingHeader {
                object: object.to_string(),
            });
        }
        let header: SegmentHeader = parse_versioned(object, SEGMENT_FORMAT, &lines.line)?;
        check_header(object, &header)?;
        Ok(Self {
            lines,
            header,
            counts: Counts::default(),
            finished: None,
        })
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The next record, or `None` once the segment has been read completely and checked.
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        if self.finished.is_some() {
            return Ok(None);
        }
        if !self.lines.read_line()? {
            if self.counts != self.header.counts {
                return Err(self.count_mismatch());
            }
            self.finished = Some(self.lines.finish()?);
            return Ok(None);
        }
        let object = &self.lines.object;
        let line_no = self.lines.line_no;
        let parsed: RecordLine<'_> =
            serde_json::from_slice(&self.lines.line).map_err(|source| Error::ParseRecord {
                object: object.clone(),
                line: line_no,
                source,
            })?;
        let invalid = |reason: String| Error::InvalidRecord {
            object: object.clone(),
            line: line_no,
            reason,
        };
        match parsed.op {
            Op::Put => self.counts.put += 1,
            Op::Delete if self.header.segment_type == SegmentType::Snapshot => {
                return Err(invalid("a snapshot cannot hold delete records".to_string()));
            }
            Op::Delete => self.counts.delete += 1,
        }
        let record = parsed.into_record().map_err(invalid)?;
        if self.counts.put > self.header.counts.put
            || self.counts.delete > self.header.counts.delete
        {
            return Err(self.count_mismatch());
        }
        Ok(Some(record))
    }

    /// Reads whatever records remain and returns the segment's hash and sizes.
    pub fn finish(mut self) -> Result<SegmentSummary, Error> {
        while self.next_record()?.is_some() {}
        let (sha256, bytes) = self.finished.take().unwrap_or_default();
        Ok(SegmentSummary {
            header: self.header,
            sha256,
            bytes,
            decompressed_bytes: self.lines.decompressed_bytes,
        })
    }

    fn count_mismatch(&self) -> Error {
        Error::CountMismatch {
            object: self.lines.object.clone(),
            expected_put: self.header.counts.put,
            expected_delete: self.header.counts.delete,
            put: self.counts.put,
            delete: self.counts.delete,
        }
    }
}

/// The stored bytes: the already-checked frame start, then the rest, hashed as they are read.
type StoredBytes<R> = HashingReader<io::Chain<io::Cursor<Vec<u8>>, R>>;

/// Splits the decompressed text into lines, enforcing the size limits as it goes.
struct LineReader<R: Read> {
    lines: BufReader<zstd::Decoder<'static, BufReader<StoredBytes<R>>>>,
    object: String,
    limits: DecodeLimits,
    line: Vec<u8>,
    line_no: u64,
    decompressed_bytes: u64,
}

impl<R: Read> LineReader<R> {
    fn new(object: &str, mut inner: R, limits: &DecodeLimits) -> Result<Self, Error> {
        let decompress = |source| Error::Decompress {
            object: object.to_string(),
            decompressed: 0,
            source,
        };
        let frame_start = read_frame_start(object, &mut inner)?;
        let source = HashingReader {
            inner: io::Cursor::new(frame_start).chain(inner),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut decoder = zstd::Decoder::new(source)
            .map_err(decompress)?
            .single_frame();
        // Refuse frames that ask for a window above 128 MiB (zstd's own default, made explicit).
        decoder.window_log_max(27).map_err(decompress)?;
        Ok(Self {
            lines: BufReader::with_capacity(64 << 10, decoder),
            object: object.to_string(),
            limits: limits.clone(),
            line: Vec::new(),
            line_no: 0,
            decompressed_bytes: 0,
        })
    }

    /// Fills `self.line` with the next line (without its newline). `false` at a clean end.
    fn read_line(&mut self) -> Result<bool, Error> {
        self.line.clear();
        loop {
            let decompressed = self.decompressed_bytes;
            let available = self.lines.fill_buf().map_err(|source| Error::Decompress {
                object: self.object.clone(),
                decompressed,
                source,
            })?;
            if available.is_empty() {
                if self.line.is_empty() {
                    return Ok(false);
                }
                return Err(Error::UnterminatedLine {
                    object: self.object.clone(),
                });
            }
            let (take, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            let content = if complete { take - 1 } else { take };
            if (self.line.len() + content) as u64 > self.limits.max_line_bytes {
                return Err(Error::LineTooLong {
                    object: self.object.clone(),
                    line: self.line_no + 1,
                    limit: self.limits.max_line_bytes,
                });
            }
            self.line.extend_from_slice(&available[..content]);
            self.lines.consume(take);
            self.decompressed_bytes += take as u64;
            self.check_size()?;
            if complete {
                self.line_no += 1;
                return Ok(true);
            }
        }
    }

    fn check_size(&self) -> Result<(), Error> {
        if self.decompressed_bytes > self.limits.max_decompressed_bytes {
            return Err(Error::DecompressedTooLarge {
                object: self.object.clone(),
                limit: self.limits.max_decompressed_bytes,
            });
        }
        let compressed = self.lines.get_ref().get_ref().get_ref().bytes.max(1);
        if self.decompressed_bytes > 1 << 20
            && self.decompressed_bytes / compressed > self.limits.max_expansion_ratio
        {
            return Err(Error::ExpansionTooLarge {
                object: self.object.clone(),
                limit: self.limits.max_expansion_ratio,
            });
        }
        Ok(())
    }

    /// At the end of the text: checks that nothing follows the zstd frame and returns the hash
    /// and size of every stored byte.
    fn finish(&mut self) -> Result<(String, u64), Error> {
        let source = self.lines.get_mut().get_mut();
        let trailing = source.fill_buf().map_err(|source| Error::Decompress {
            object: self.object.clone(),
            decompressed: self.decompressed_bytes,
            source,
        })?;
        if !trailing.is_empty() {
            return Err(Error::TrailingData {
                object: self.object.clone(),
            });
        }
        let hashing = source.get_mut();
        let hash = std::mem::take(&mut hashing.hasher).finalize();
        Ok((hex::encode(hash), hashing.bytes))
    }
}

impl<R: Read> Iterator for SegmentReader<R> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Decodes a whole segment held in memory: its summary and all its records.
pub fn decode_all(
    object: &str,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<(SegmentSummary, Vec<Record>), Error> {
    let mut reader = SegmentReader::new(object, bytes, limits)?;
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    Ok((reader.finish()?, records))
}

/// Encodes a whole segment into memory.
pub fn encode_all(
    object: &str,
    header: &SegmentHeader,
    records: &[Record],
    options: &EncodeOptions,
) -> Result<(Vec<u8>, SegmentSummary), Error> {
    let mut writer = SegmentWriter::new(object, Vec::new(), header, options)?;
    for record in records {
        writer.write(record)?;
    }
    writer.finish()
}

fn check_header(object: &str, header: &SegmentHeader) -> Result<(), Error> {
    let invalid = |reason: &str| Error::InvalidSegment {
        object: object.to_string(),
        reason: format!("header: {reason}"),
    };
    if header.seq == 0 {
        return Err(invalid("seq must be at least 1"));
    }
    match (&header.prev_sha256, header.seq) {
        (Some(_), 1) => return Err(invalid("the first segment of an epoch has no prev_sha256")),
        (None, seq) if seq > 1 => return Err(invalid("prev_sha256 is missing")),
        (Some(sha), _) if !is_sha256_hex(sha) => {
            return Err(invalid("prev_sha256 is not 64 lower-case hex digits"));
        }
        _ => {}
    }
    if header.segment_type == SegmentType::Snapshot && header.counts.delete != 0 {
        return Err(invalid("a snapshot cannot count deletes"));
    }
    if header.window.from > header.window.to {
        return Err(invalid("window.from is after window.to"));
    }
    Ok(())
}

/// The zstd frame magic number, as stored (little-endian).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Reads the first five bytes of a segment (magic number and frame header descriptor) and
/// checks that they start a zstd frame that carries a content checksum, which every segment
/// must: without it, damage inside the compressed data could go unseen by zstd.
fn read_frame_start(object: &str, inner: &mut impl Read) -> Result<Vec<u8>, Error> {
    let mut start = Vec::with_capacity(5);
    inner
        .take(5)
        .read_to_end(&mut start)
        .map_err(|source| Error::Decompress {
            object: object.to_string(),
            decompressed: 0,
            source,
        })?;
    if start.is_empty() {
        return Err(Error::MissingHeader {
            object: object.to_string(),
        });
    }
    let invalid = |reason: &str| Error::InvalidSegment {
        object: object.to_string(),
        reason: reason.to_string(),
    };
    if start.len() < 5 || start[..4] != ZSTD_MAGIC {
        return Err(invalid("not a zstd frame (bad magic number)"));
    }
    const CONTENT_CHECKSUM_FLAG: u8 = 1 << 2;
    if start[4] & CONTENT_CHECKSUM_FLAG == 0 {
        return Err(invalid("the zstd frame has no content checksum"));
    }
    Ok(start)
}

/// Whether `text` is a sha256 in lower-case hex.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::format::names::{ClusterName, Epoch};
    use crate::format::segment::Window;

    fn header(t: SegmentType, seq: u64, counts: Counts) -> SegmentHeader {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        SegmentHeader::new(
            t,
            ClusterName::new("prod-1").unwrap(),
            Epoch::from_parts(1_763_899_200_000, 0xabcdef01).unwrap(),
            seq,
            (seq > 1).then(|| "a".repeat(64)),
            at,
            Window { from: at, to: at },
            counts,
            vec!["managed-fields".into()],
        )
    }

    fn counts_of(records: &[Record]) -> Counts {
        let put = records
            .iter()
            .filter(|r| matches!(r, Record::Put { .. }))
            .count() as u64;
        Counts {
            put,
            delete: records.len() as u64 - put,
        }
    }

    fn put(name: &str, object: serde_json::Value) -> Record {
        Record::Put {
            target: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "default".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            resource_version: "42".into(),
            object: RawValue::from_string(object.to_string()).unwrap(),
        }
    }

    fn sample() -> (Vec<u8>, Vec<Record>) {
        let records: Vec<Record> = (0..50)
            .map(|i| {
                put(
                    &format!("app-{i}"),
                    serde_json::json!({"kind": "Deployment", "i": i, "pad": "x".repeat(i * 10)}),
                )
            })
            .collect();
        let h = header(SegmentType::Diff, 2, counts_of(&records));
        let (bytes, _) = encode_all("seg", &h, &records, &EncodeOptions::default()).unwrap();
        (bytes, records)
    }

    /// Compresses arbitrary text the way segments are (one frame with a content checksum).
    fn compress(text: &[u8]) -> Vec<u8> {
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        std::io::Write::write_all(&mut encoder, text).unwrap();
        encoder.finish().unwrap()
    }

    fn decode(bytes: &[u8]) -> Result<(SegmentSummary, Vec<Record>), Error> {
        decode_all("seg", bytes, &DecodeLimits::default())
    }

    #[test]
    fn a_segment_round_trips_with_its_hash() {
        let (bytes, records) = sample();
        let (summary, decoded) = decode(&bytes).unwrap();
        assert_eq!(decoded, records);
        assert_eq!(summary.sha256, crate::format::sha256_hex(&bytes));
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(summary.header.seq, 2);
    }

    #[test]
    fn writer_summary_matches_reader_summary() {
        let records = vec![put("a", serde_json::json!({"a": 1}))];
        let h = header(SegmentType::Snapshot, 1, counts_of(&records));
        let (bytes, written) =
            encode_all("seg", &h, &records, &EncodeOptions { level: 19 }).unwrap();
        let (read, _) = decode(&bytes).unwrap();
        assert_eq!(written, read);
    }

    #[test]
    fn an_empty_object_is_refused() {
        let err = decode(b"").unwrap_err();
        assert!(
            matches!(err, Error::MissingHeader { .. } | Error::Decompress { .. }),
            "{err}"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (bytes, _) = sample();
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len]).expect_err(&format!("truncated to {len} decoded"));
            assert!(err.to_string().starts_with("seg"), "{err}");
        }
    }

    #[test]
    fn no_single_bit_flip_changes_the_records_silently() {
        let (bytes, records) = sample();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut copy = bytes.clone();
                copy[i] ^= 1 << bit;
                // Either decoding fails, or the flip hit a bit zstd does not use for the
                // content (e.g. the frame's window size): then the records are intact and
                // only the sha256 differs, which the chain check against head.json refuses.
                if let Ok((summary, decoded)) = decode(&copy) {
                    assert_eq!(
                        decoded, records,
                        "a flip at byte {i} bit {bit} changed records"
                    );
                    assert_ne!(summary.sha256, crate::format::sha256_hex(&bytes));
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let (mut bytes, _) = sample();
        bytes.extend_from_slice(b"junk");
        assert!(matches!(decode(&bytes), Err(Error::TrailingData { .. })));
        let (mut twice, _) = sample();
        twice.extend_from_slice(&sample().0);
        assert!(matches!(decode(&twice), Err(Error::TrailingData { .. })));
    }

    #[test]
    fn a_newer_version_is_refused_by_name() {
        let mut h = header(SegmentType::Snapshot, 1, Counts::default());
        h.format = "outpost.segment/v2".into();
        let (bytes, _) = encode_all("seg", &h, &[], &EncodeOptions::default()).unwrap();
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err}");
        assert!(err.to_string().contains("outpost.segment/v2"));
    }

    #[test]
    fn an_over_long_line_is_refused_without_reading_it_whole() {
        let records = vec![put("big", serde_json::json!({"pad": "y".repeat(200_000)}))];
        let h = header(SegmentType::Snapshot, 1, counts_of(&records));
        let (bytes, _) = encode_all("seg", &h, &records, &EncodeOptions::default()).unwrap();
        let limits = DecodeLimits {
            max_line_bytes: 100_000,
            ..DecodeLimits::default()
        };
        let err = decode_all("seg", &bytes, &limits).unwrap_err();
        assert!(matches!(err, Error::LineTooLong { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_zip_bomb_is_refused() {
        // 64 MiB of one repeated record compresses to a few KiB.
        let record = put("same", serde_json::json!({"pad": "z".repeat(60_000)}));
        let records = vec![record; 1100];
        let h = header(SegmentType::Snapshot, 1, counts_of(&records));
        let (bytes, _) = encode_all("seg", &h, &records, &EncodeOptions::default()).unwrap();
        assert!(bytes.len() < 200_000, "{}", bytes.len());
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::ExpansionTooLarge { .. }), "{err}");
        let limits = DecodeLimits {
            max_decompressed_bytes: 1 << 20,
            max_expansion_ratio: u64::MAX,
            ..DecodeLimits::default()
        };
        let err = decode_all("seg", &bytes, &limits).unwrap_err();
        assert!(matches!(err, Error::DecompressedTooLarge { .. }), "{err}");
    }

    #[test]
    fn counts_must_match_the_header() {
        let records = vec![put("a", serde_json::json!({}))];
        let h = header(SegmentType::Diff, 2, Counts { put: 2, delete: 0 });
        let err = encode_all("seg", &h, &records, &EncodeOptions::default()).unwrap_err();
        assert!(matches!(err, Error::CountMismatch { .. }));
        // A segment whose header over-counts is refused by the reader too.
        let mut writer =
            SegmentWriter::new("seg", Vec::new(), &h, &EncodeOptions::default()).unwrap();
        writer.write(&records[0]).unwrap();
        writer.counts.put = 2; // bypass the writer's own check to produce a lying segment
        let (bytes, _) = writer.finish().unwrap();
        assert!(matches!(
            decode(&bytes),
            Err(Error::CountMismatch { put: 1, .. })
        ));
    }

    #[test]
    fn snapshots_cannot_hold_deletes() {
        let target = put("a", serde_json::json!({})).target().clone();
        let h = header(SegmentType::Snapshot, 1, Counts::default());
        let mut writer =
            SegmentWriter::new("seg", Vec::new(), &h, &EncodeOptions::default()).unwrap();
        assert!(writer.write_delete(&target).is_err());
    }

    #[test]
    fn malformed_record_lines_name_their_line() {
        let h = header(SegmentType::Diff, 2, Counts { put: 1, delete: 0 });
        let mut raw = serde_json::to_vec(&h).unwrap();
        raw.extend_from_slice(b"\n{\"op\":\"put\",\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"namespace\":\"\",\"name\":\"p\",\"uid\":\"u\",\"resourceVersion\":\"1\",\"object\":[1]}\n");
        let bytes = compress(&raw);
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::InvalidRecord { line: 2, .. }), "{err}");
        let mut raw = serde_json::to_vec(&h).unwrap();
        raw.extend_from_slice(b"\n{\"op\":\"upsert\"}\n");
        let bytes = compress(&raw);
        assert!(matches!(
            decode(&bytes),
            Err(Error::ParseRecord { line: 2, .. })
        ));
    }

    #[test]
    fn headers_are_checked() {
        for (seq, prev) in [
            (0, None),
            (1, Some("a".repeat(64))),
            (2, None),
            (2, Some("XYZ".into())),
        ] {
            let mut h = header(SegmentType::Diff, 2, Counts::default());
            h.seq = seq;
            h.prev_sha256 = prev;
            let (bytes, _) = encode_all("seg", &h, &[], &EncodeOptions::default()).unwrap();
            assert!(
                matches!(decode(&bytes), Err(Error::InvalidSegment { .. })),
                "seq {seq}"
            );
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let target = (
            "[a-z0-9./]{1,20}",
            "\\PC{1,12}",
            "\\PC{0,12}",
            "\\PC{1,30}",
            "\\PC{0,36}",
        )
            .prop_map(|(api_version, kind, namespace, name, uid)| ObjectRef {
                api_version,
                kind,
                namespace,
                name,
                uid,
            });
        let body = prop::collection::btree_map("\\PC{0,8}", arb_json(), 0..5)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()));
        (target, any::<bool>(), "\\PC{0,10}", body).prop_map(|(target, is_put, rv, body)| {
            if is_put {
                Record::Put {
                    target,
                    resource_version: rv,
                    object: RawValue::from_string(body.to_string()).unwrap(),
                }
            } else {
                Record::Delete { target }
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_records_round_trip(records in prop::collection::vec(arb_record(), 0..40), level in 1i32..6) {
            let h = header(SegmentType::Diff, 3, counts_of(&records));
            let (bytes, written) = encode_all("seg", &h, &records, &EncodeOptions { level }).unwrap();
            let (read, decoded) = decode(&bytes).unwrap();
            prop_assert_eq!(decoded, records);
            prop_assert_eq!(read, written);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn damaged_segments_are_errors(
            records in prop::collection::vec(arb_record(), 1..20),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let h = header(SegmentType::Diff, 3, counts_of(&records));
            let (bytes, summary) = encode_all("seg", &h, &records, &EncodeOptions::default()).unwrap();
            let len = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..len]).is_err());
            let mut flipped = bytes.clone();
            flipped[flip.index(bytes.len())] ^= 1 << bit;
            match decode(&flipped) {
                Err(_) => {}
                Ok((s, _)) => prop_assert_ne!(s.sha256, summary.sha256),
            }
        }

        #[test]
        fn damaged_plain_text_inside_a_valid_frame_is_an_error_or_a_valid_segment(
            records in prop::collection::vec(arb_record(), 1..10),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            // Damage the NDJSON itself and recompress: zstd's checksum cannot see this, the
            // parser must, and it must never panic.
            let h = header(SegmentType::Diff, 3, counts_of(&records));
            let (bytes, _) = encode_all("seg", &h, &records, &EncodeOptions::default()).unwrap();
            let mut text = zstd::decode_all(&bytes[..]).unwrap();
            let i = at.index(text.len());
            text[i] = byte;
            let _ = decode(&compress(&text));
        }
    }
}
