//! libFuzzer: any bytes as a stored segment (zstd), decoded record by record (`harness::segment`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::segment(data);
});
