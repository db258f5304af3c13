//! libFuzzer: the first 9 bytes are the indexer's checkpoint (flags, then the seq, big endian), the rest is `head.json`: parsed, verified, and the segments to apply chosen
//! (`harness::head`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((prefix, head)) = data.split_first_chunk::<9>() else {
        return;
    };
    let flags = prefix[0];
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&prefix[1..]);
    let checkpoint = (flags & 1 != 0).then_some(harness::Checkpoint {
        same_epoch: flags & 2 != 0,
        seq: u64::from_be_bytes(seq),
        same_sha256: (flags & 8 != 0).then_some(flags & 16 != 0),
        same_account: flags & 4 != 0,
    });
    harness::head(head, checkpoint);
});
