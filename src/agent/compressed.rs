//! An object's redacted JSON as the agent holds it in memory: one zstd frame per object,
//! decompressed only while a segment is written, with a dictionary trained on the cluster's own
//! objects once its first snapshot is shipped.
//!
//! Alone, a 3 KB object compresses only about 2.4×: most of it is field names and values every
//! object of the cluster repeats (`metadata`, `kubernetes.io/…`, `terminationMessagePath`, its
//! images and labels). A dictionary holds those. The agent trains one (64 KB, zstd's
//! `ZDICT_trainFromBuffer`) on a sample of the objects it holds after its first snapshot
//! ([`train_dictionary`]), then recompresses what it holds with it
//! ([`crate::agent::state::State::adopt_dictionary`]); every object compressed after that uses
//! it. Training happens once per process, so objects are never compressed with two dictionaries.
//! The dictionary only shapes memory, never what is shipped: segments are plain zstd (FORMAT.md).

use std::cell::RefCell;
use std::fmt;
use std::sync::OnceLock;

use serde_json::value::RawValue;

/// zstd level of the objects held in memory: level 3 is zstd's default, fast enough for every
/// watch event (BENCHMARKS.md).
const LEVEL: i32 = 3;

/// The dictionary's size: zstd's usual choice for small JSON documents.
const DICTIONARY_BYTES: usize = 64 * 1024;

/// The dictionary of this process, once trained.
static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();

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
    #[error("an object was compressed with a dictionary this process does not have")]
    NoDictionary,
    #[error("could not train a dictionary on {samples} objects: {source}")]
    Train {
        samples: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Whether this process has trained its dictionary.
pub fn dictionary_trained() -> bool {
    DICTIONARY.get().is_some()
}

/// Trains this process's dictionary on `samples` (objects' JSON). `Ok(false)` if one was already
/// trained (it stays). zstd refuses samples too few or too small to learn from.
pub fn train_dictionary(samples: &[Vec<u8>]) -> Result<bool, Error> {
    if dictionary_trained() {
        return Ok(false);
    }
    let dictionary =
        zstd::dict::from_samples(samples, DICTIONARY_BYTES).map_err(|source| Error::Train {
            samples: samples.len(),
            source,
        })?;
    Ok(DICTIONARY.set(dictionary).is_ok())
}

/// Compact JSON, compressed. Compression is deterministic (same bytes in, same level, same
/// dictionary, same library: same frame out), so two values compressed the same way are equal
/// exactly when their JSON is ([`CompressedJson::same_json`] compares any two).
#[derive(Clone, PartialEq, Eq)]
pub struct CompressedJson {
    frame: Box<[u8]>,
    /// Bytes of the JSON.
    len: u32,
    /// Compressed with the process's dictionary.
    with_dictionary: bool,
}

/// A compression context and its output buffer, and whether it uses the dictionary.
struct Compressing {
    compressor: zstd::bulk::Compressor<'static>,
    buffer: Vec<u8>,
    with_dictionary: bool,
}

thread_local! {
    /// One compression context per thread, reused for every object (creating one per object
    /// would allocate and clear its tables every time), and its output buffer.
    static COMPRESSOR: RefCell<Option<Compressing>> = const { RefCell::new(None) };
}

impl CompressedJson {
    /// Compresses `json` (assumed to be valid JSON: it comes from `serde_json`), with the
    /// process's dictionary once there is one.
    pub fn compress(json: &str) -> Result<Self, Error> {
        let len = u32::try_from(json.len()).map_err(|_| Error::TooLarge(json.len()))?;
        let dictionary = DICTIONARY.get();
        COMPRESSOR.with_borrow_mut(|slot| {
            // The context of this thread, made anew when the dictionary came after it.
            let Compressing {
                compressor, buffer, ..
            } = match slot.take() {
                Some(held) if held.with_dictionary == dictionary.is_some() => slot.insert(held),
                _ => {
                    let compressor = match dictionary {
                        Some(dictionary) => {
                            zstd::bulk::Compressor::with_dictionary(LEVEL, dictionary)
                        }
                        None => zstd::bulk::Compressor::new(LEVEL),
                    }
                    .map_err(Error::Compress)?;
                    slot.insert(Compressing {
                        compressor,
                        buffer: Vec::new(),
                        with_dictionary: dictionary.is_some(),
                    })
                }
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
            Ok(Self {
                frame,
                len,
                with_dictionary: dictionary.is_some(),
            })
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

    /// This object compressed as new objects now are (with the dictionary, once trained);
    /// `None` when it already is.
    pub fn recompressed(&self, reader: &mut JsonReader) -> Result<Option<Self>, Error> {
        if self.with_dictionary || !dictionary_trained() {
            return Ok(None);
        }
        let json = reader.read(self)?.get();
        Self::compress(json).map(Some)
    }

    /// Whether `self` and `other` hold the same JSON, however each was compressed.
    pub fn same_json(&self, other: &Self) -> Result<bool, Error> {
        if self.with_dictionary == other.with_dictionary || self.len != other.len {
            return Ok(self == other);
        }
        Ok(self.to_json()? == other.to_json()?)
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
    plain: zstd::bulk::Decompressor<'static>,
    /// Made when the first object compressed with the dictionary is read.
    with_dictionary: Option<zstd::bulk::Decompressor<'static>>,
    buffer: Vec<u8>,
}

impl JsonReader {
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            plain: zstd::bulk::Decompressor::new().map_err(Error::Decompress)?,
            with_dictionary: None,
            buffer: Vec::new(),
        })
    }

    /// The JSON of `object`, valid until the next call.
    pub fn read(&mut self, object: &CompressedJson) -> Result<&RawValue, Error> {
        let decompressor = if object.with_dictionary {
            match &mut self.with_dictionary {
                Some(decompressor) => decompressor,
                slot => {
                    let dictionary = DICTIONARY.get().ok_or(Error::NoDictionary)?;
                    slot.insert(
                        zstd::bulk::Decompressor::with_dictionary(dictionary)
                            .map_err(Error::Decompress)?,
                    )
                }
            }
        } else {
            &mut self.plain
        };
        let expected = object.json_len();
        self.buffer.clear();
        self.buffer.reserve(expected);
        let got = decompressor
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
        // (Compared by JSON: another test may train the process's dictionary in between.)
        assert!(a.same_json(&b).unwrap());
        assert_eq!(a.json_len(), json.len());
        assert!(a.compressed_len() < json.len() / 2, "{a:?}");
        assert_eq!(a.to_json().unwrap(), json);
        let other = CompressedJson::compress(&json.replace("\"a\"", "\"b\"")).unwrap();
        assert!(!a.same_json(&other).unwrap());
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
