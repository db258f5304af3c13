//! An object's redacted JSON as the agent holds it in memory: one zstd frame per object, with a
//! dictionary of what Kubernetes objects share, decompressed only while a segment is written.
//!
//! Alone, a 3 KB object compresses only about 2.4×: most of it is field names and values every
//! object repeats (`metadata`, `kubernetes.io/…`, `terminationMessagePath`, …). The dictionary
//! `objects.dict` holds those; with it the objects of the agent_kube bench compress 6.8× (13.4 MB
//! without, 4.7 MB with, for 31.7 MB of JSON). It only shapes memory, never what is shipped:
//! segments are plain zstd (FORMAT.md), so it can be retrained at any time. It was trained on a
//! simulated cluster other than the bench's (`outpost demo --clusters 1 --objects 6000`, the
//! objects of demo-1's first snapshot one per file, then
//! `zstd --train --maxdict=65536 -o src/agent/objects.dict FILES`).

use std::cell::RefCell;
use std::fmt;

use serde_json::value::RawValue;

/// zstd level of the objects held in memory: level 3 is zstd's default, fast enough for every
/// watch event (BENCHMARKS.md).
const LEVEL: i32 = 3;

/// What Kubernetes objects have in common (see the module documentation).
const DICTIONARY: &[u8] = include_bytes!("objects.dict");

/// What went wrong while compressing or reading an object's JSON.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not compress an object's JSON: {0}")]
    Compress(#[source] std::io::Error),
    #[error("could not decompress an object's JSON: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("an object's JSON of {0} bytes is too large to hold")]
    TooLarge(usize),
    #[error("an object's JSON decompressed to {got} bytes instead of {expected}")]
    Length { expected: usize, got: usize },
    #[error("an object decompressed to something that is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("an object decompressed to something that is not UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
}

/// Compact JSON, compressed. Compression is deterministic (same bytes in, same level, same
/// library: same frame out), so two values are equal exactly when their JSON is.
#[derive(Clone, PartialEq, Eq)]
pub struct CompressedJson {
    frame: Box<[u8]>,
    /// Bytes of the JSON.
    len: u32,
}

thread_local! {
    /// One compression context per thread, reused for every object (creating one per object
    /// would allocate and clear its tables every time), and its output buffer.
    static COMPRESSOR: RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
        const { RefCell::new(None) };
}

impl CompressedJson {
    /// Compresses `json` (assumed to be valid JSON: it comes from `serde_json`).
    pub fn compress(json: &str) -> Result<Self, Error> {
        let len = u32::try_from(json.len()).map_err(|_| Error::TooLarge(json.len()))?;
        COMPRESSOR.with_borrow_mut(|slot| {
            let (compressor, buffer) = match slot {
                Some(held) => held,
                None => slot.insert((
                    zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY)
                        .map_err(Error::Compress)?,
                    Vec::new(),
                )),
            };
            buffer.clear();
            buffer.reserve(zstd::zstd_safe::compress_bound(json.len()));
            compressor
                .compress_to_buffer(json.as_bytes(), buffer)
                .map_err(Error::Compress)?;
            // An exact-size copy: the buffer keeps its capacity for the next object.
            let frame: Box<[u8]> = buffer.as_slice().into();
            if buffer.capacity() > 1 << 20 {
                *buffer = Vec::new();
            }
            Ok(Self { frame, len })
        })
    }

    /// Bytes of the JSON (decompressed).
    pub fn json_len(&self) -> usize {
        self.len as usize
    }

    /// Bytes held (compressed).
    pub fn compressed_len(&self) -> usize {
        self.frame.len()
    }

    /// The JSON as a `String` (tests and tools; segments use a [`JsonReader`]).
    pub fn to_json(&self) -> Result<String, Error> {
        let mut reader = JsonReader::new()?;
        Ok(reader.read(self)?.get().to_string())
    }
}

impl fmt::Debug for CompressedJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CompressedJson({} bytes of JSON in {})",
            self.len,
            self.frame.len()
        )
    }
}

/// Decompresses objects one at a time into a buffer it reuses.
pub struct JsonReader {
    decompressor: zstd::bulk::Decompressor<'static>,
    buffer: Vec<u8>,
}

impl JsonReader {
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            decompressor: zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
                .map_err(Error::Decompress)?,
            buffer: Vec::new(),
        })
    }

    /// The JSON of `object`, valid until the next call.
    pub fn read(&mut self, object: &CompressedJson) -> Result<&RawValue, Error> {
        let expected = object.json_len();
        self.buffer.clear();
        self.buffer.reserve(expected);
        let got = self
            .decompressor
            .decompress_to_buffer(&object.frame, &mut self.buffer)
            .map_err(Error::Decompress)?;
        if got != expected {
            return Err(Error::Length { expected, got });
        }
        let json = std::str::from_utf8(&self.buffer).map_err(Error::NotUtf8)?;
        serde_json::from_str(json).map_err(Error::NotJson)
    }
}

impl fmt::Debug for JsonReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonReader")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_equal_json_compares_equal() {
        let json = serde_json::json!({"kind": "Pod", "metadata": {"name": "a", "labels": {"app": "x".repeat(300)}}}).to_string();
        let a = CompressedJson::compress(&json).unwrap();
        let b = CompressedJson::compress(&json).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.json_len(), json.len());
        assert!(a.compressed_len() < json.len() / 2, "{a:?}");
        assert_eq!(a.to_json().unwrap(), json);
        let other = CompressedJson::compress(&json.replace("\"a\"", "\"b\"")).unwrap();
        assert_ne!(a, other);
        let mut reader = JsonReader::new().unwrap();
        assert_eq!(
            reader.read(&other).unwrap().get(),
            json.replace("\"a\"", "\"b\"")
        );
        assert_eq!(reader.read(&a).unwrap().get(), json);
    }

    #[test]
    fn empty_and_tiny_objects() {
        for json in ["{}", "[]", "\"\"", "0"] {
            let c = CompressedJson::compress(json).unwrap();
            assert_eq!(c.to_json().unwrap(), json);
        }
    }

    #[test]
    fn a_frame_that_is_not_json_is_an_error() {
        let mut c = CompressedJson::compress("{\"a\":1}").unwrap();
        c.len += 1;
        assert!(matches!(
            JsonReader::new().unwrap().read(&c),
            Err(Error::Length { .. })
        ));
        let broken = CompressedJson::compress("{\"a\":").unwrap();
        assert!(matches!(
            JsonReader::new().unwrap().read(&broken),
            Err(Error::NotJson(_))
        ));
    }
}
