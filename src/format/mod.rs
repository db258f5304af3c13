//! The bucket format v1: the types of every object the agent writes and the indexer reads, the
//! streaming NDJSON+zstd segment codec, and the sha256 chain that links segments (pure, no I/O).
//!
//! `docs/FORMAT.md` is the specification; this module is its reference implementation.

pub mod chain;
pub mod codec;
pub mod documents;
pub mod names;
pub mod segment;

use serde::Deserialize;

pub use chain::{
    Checkpoint, Expected, ListedSegmentReader, Plan, StoredBytes, plan, verify_head, verify_segment,
};
pub use codec::{DecodeLimits, EncodeOptions, SegmentReader, SegmentSummary, SegmentWriter};
pub use documents::{Decommissioned, Head, Identity, ListedSegment, SegmentRef, ServedResource};
pub use names::{ClusterName, Epoch, check_account_name};
pub use segment::{ObjectKey, Record, SegmentHeader, SegmentType};

/// The major format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What went wrong while encoding, decoding or checking a format object. `object` is the key or
/// label of the object concerned, so every message names where the fault is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("{object}: not a valid {expected} document: {source}")]
    ParseDocument {
        object: String,
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{object}: has format {found:?} but a {expected} document was expected")]
    WrongDocument {
        object: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "{object}: format {found:?} is not supported by this version of outpost (it reads {expected}/v{FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        object: String,
        expected: &'static str,
        found: String,
    },
    #[error("{object}: the header line is missing (the segment is empty)")]
    MissingHeader { object: String },
    #[error("{object}: line {line}: not a valid record: {source}")]
    ParseRecord {
        object: String,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("{object}: line {line}: {reason}")]
    InvalidRecord {
        object: String,
        line: u64,
        reason: String,
    },
    #[error("{object}: line {line} is longer than the limit of {limit} bytes")]
    LineTooLong {
        object: String,
        line: u64,
        limit: u64,
    },
    #[error(
        "{object}: decompressed size passed the limit of {limit} bytes (refused as a possible zip bomb)"
    )]
    DecompressedTooLarge { object: String, limit: u64 },
    #[error(
        "{object}: decompresses to more than {limit} times its compressed size (refused as a possible zip bomb)"
    )]
    ExpansionTooLarge { object: String, limit: u64 },
    #[error("{object}: zstd decompression failed after {decompressed} bytes: {source}")]
    Decompress {
        object: String,
        decompressed: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{object}: the last line is not terminated by a newline (truncated?)")]
    UnterminatedLine { object: String },
    #[error(
        "{object}: the header announces {expected_put} puts and {expected_delete} deletes but the segment holds {put} and {delete}"
    )]
    CountMismatch {
        object: String,
        expected_put: u64,
        expected_delete: u64,
        put: u64,
        delete: u64,
    },
    #[error("{object}: bytes follow the end of the zstd frame")]
    TrailingData { object: String },
    #[error("{object}: compression failed: {source}")]
    Compress {
        object: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{object}: could not serialize: {source}")]
    Serialize {
        object: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{object}: {reason}")]
    InvalidSegment { object: String, reason: String },
    #[error("{object}: broken chain: {reason}")]
    BrokenChain { object: String, reason: String },
}

/// Checks a document's `format` string, e.g. `outpost.head/v1`, against the expected name.
///
/// The name must match exactly; the version must be `v1`. A newer version is refused so that an
/// old reader never misreads a document it does not understand.
pub fn check_format(object: &str, expected: &'static str, found: &str) -> Result<(), Error> {
    match found.rsplit_once("/v") {
        Some((name, version)) if name == expected => {
            if version == FORMAT_VERSION.to_string() {
                Ok(())
            } else {
                Err(Error::UnsupportedVersion {
                    object: object.to_string(),
                    expected,
                    found: found.to_string(),
                })
            }
        }
        _ => Err(Error::WrongDocument {
            object: object.to_string(),
            expected,
            found: found.to_string(),
        }),
    }
}

/// Parses a JSON document after checking its `format` field, so that a document of another kind
/// or version is refused by name rather than by a confusing missing-field error.
pub(crate) fn parse_versioned<T: for<'de> Deserialize<'de>>(
    object: &str,
    expected: &'static str,
    bytes: &[u8],
) -> Result<T, Error> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: String,
    }
    let parse_error = |source| Error::ParseDocument {
        object: object.to_string(),
        expected,
        source,
    };
    let only: FormatOnly = serde_json::from_slice(bytes).map_err(parse_error)?;
    check_format(object, expected, &only.format)?;
    serde_json::from_slice(bytes).map_err(parse_error)
}

/// The lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_strings_are_checked_by_name_and_version() {
        assert!(check_format("k", "outpost.head", "outpost.head/v1").is_ok());
        assert!(matches!(
            check_format("k", "outpost.head", "outpost.head/v2"),
            Err(Error::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            check_format("k", "outpost.head", "outpost.segment/v1"),
            Err(Error::WrongDocument { .. })
        ));
        assert!(matches!(
            check_format("k", "outpost.head", "outpost.head"),
            Err(Error::WrongDocument { .. })
        ));
        let msg = check_format("clusters/a/head.json", "outpost.head", "outpost.head/v7")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("clusters/a/head.json") && msg.contains("outpost.head/v7"),
            "{msg}"
        );
    }
}
