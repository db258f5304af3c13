//! libFuzzer: any bytes as a segment's NDJSON text, compressed and decoded
//! (`harness::segment_text`), so mutations reach the record parser.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::segment_text(data);
});
