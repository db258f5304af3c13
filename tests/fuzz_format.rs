//! Bounded fuzzing in the normal test suite: the golden fixtures (`fixtures/v1/`), mutated byte
//! by byte and, for heads, value by value, through segment decoding, head parsing and
//! verification and the indexer's choice of segments (`fuzz/harness.rs`): errors, never panics.
//! `PROPTEST_CASES` sets the cases per test (`just fuzz` runs many more).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::Value;

#[path = "../fuzz/harness.rs"]
mod harness;

/// The fixture files, by kind.
struct Seeds {
    segments: Vec<Vec<u8>>,
    texts: Vec<Vec<u8>>,
    heads: Vec<Vec<u8>>,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

static SEEDS: LazyLock<Seeds> = LazyLock::new(|| {
    let mut paths = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1/bucket"),
        &mut paths,
    );
    paths.sort();
    let read = |suffix: &str| -> Vec<Vec<u8>> {
        paths
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let segments = read(".ndjson.zst");
    let texts = segments.iter().map(|s| harness::decompressed(s)).collect();
    Seeds {
        segments,
        texts,
        heads: read("head.json"),
    }
});

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// One change to a seed's bytes; positions wrap around its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Copies `len` bytes from `from` to `to`, within the input.
    Duplicate {
        from: usize,
        to: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'"'),
        Just(b'\n'),
        Just(b'{'),
        Just(b'}'),
        Just(b'9'),
        Just(b'-'),
        Just(0u8),
        Just(0xff),
    ];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (any::<usize>(), interesting).prop_map(|(at, b)| Mutation::Set(at, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove(at, len)),
        (any::<usize>(), any::<usize>(), 1usize..256)
            .prop_map(|(from, to, len)| Mutation::Duplicate { from, to, len }),
    ]
}

fn mutate(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        let len = bytes.len();
        match m {
            Mutation::Flip(i, bit) if len > 0 => bytes[at(*i, len)] ^= bit,
            Mutation::Set(i, b) if len > 0 => bytes[at(*i, len)] = *b,
            Mutation::Truncate(i) => bytes.truncate(at(*i, len + 1)),
            Mutation::Insert(i, more) => {
                let i = at(*i, len + 1);
                bytes.splice(i..i, more.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let i = at(*i, len);
                bytes.drain(i..(i + n).min(len));
            }
            Mutation::Duplicate { from, to, len: n } if len > 0 => {
                let from = at(*from, len);
                let chunk: Vec<u8> = bytes[from..(from + n).min(len)].to_vec();
                let to = at(*to, len + 1);
                bytes.splice(to..to, chunk);
            }
            _ => {}
        }
    }
    bytes
}

/// Values a hostile head.json may hold where the fixture has another.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(u64::MAX - 1)),
        Just(serde_json::json!(i64::MAX)),
        Just(serde_json::json!(1u64 << 63)),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(1)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1.5)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!("")),
        Just(serde_json::json!("\u{1b}[2J")),
        Just(serde_json::json!("a".repeat(64))),
        Just(serde_json::json!("1795435140000-0f1e2d3c")),
        Just(serde_json::json!("9999-12-31T23:59:59Z")),
        Just(serde_json::json!("outpost/v1/clusters/x/head.json")),
        Just(Value::Null),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!(true)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
    ]
}

/// Every JSON pointer into `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One change to a head's JSON: a value replaced, removed, or an array's element repeated.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, Value),
    Remove(usize),
    Repeat(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), value()).prop_map(|(at, v)| Edit::Replace(at, v)),
        1 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Repeat),
    ]
}

fn apply(head: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    pointers(head, String::new(), &mut all);
    let pick = |i: usize| all[i % all.len()].clone();
    match edit {
        Edit::Replace(i, v) => {
            if let Some(slot) = head.pointer_mut(&pick(*i)) {
                *slot = v.clone();
            }
        }
        Edit::Remove(i) | Edit::Repeat(i) => {
            let pointer = pick(*i);
            let Some((parent, last)) = pointer.rsplit_once('/') else {
                return;
            };
            match head.pointer_mut(parent) {
                Some(Value::Object(map)) if matches!(edit, Edit::Remove(_)) => {
                    map.remove(last);
                }
                Some(Value::Array(items)) => {
                    if let Ok(index) = last.parse::<usize>()
                        && index < items.len()
                    {
                        if matches!(edit, Edit::Remove(_)) {
                            items.remove(index);
                        } else {
                            let copy = items[index].clone();
                            items.insert(index, copy);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn checkpoint() -> impl Strategy<Value = Option<harness::Checkpoint>> {
    let seq = prop_oneof![0u64..8, any::<u64>(), Just(u64::MAX)];
    prop::option::of(
        (
            any::<bool>(),
            seq,
            prop::option::of(any::<bool>()),
            any::<bool>(),
        )
            .prop_map(
                |(same_epoch, seq, same_sha256, same_account)| harness::Checkpoint {
                    same_epoch,
                    seq,
                    same_sha256,
                    same_account,
                },
            ),
    )
}

#[test]
fn the_unmutated_fixtures_pass_every_check() {
    assert!(!SEEDS.segments.is_empty() && !SEEDS.heads.is_empty());
    for segment in &SEEDS.segments {
        assert!(harness::segment(segment));
    }
    for text in &SEEDS.texts {
        assert!(harness::segment_text(text));
    }
    for head in &SEEDS.heads {
        for seq in 0..6 {
            for same_sha256 in [None, Some(true), Some(false)] {
                let reached = harness::head(
                    head,
                    Some(harness::Checkpoint {
                        same_epoch: true,
                        seq,
                        same_sha256,
                        same_account: true,
                    }),
                );
                assert_eq!(reached, harness::Reached::Planned);
            }
        }
        assert_eq!(harness::head(head, None), harness::Reached::Planned);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn mutated_segments_decode_or_fail(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seed = seed.get(&SEEDS.segments);
        harness::segment(&mutate(seed, &mutations));
    }

    #[test]
    fn mutated_segment_texts_decode_or_fail(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seed = seed.get(&SEEDS.texts);
        harness::segment_text(&mutate(seed, &mutations));
    }

    #[test]
    fn mutated_head_bytes_parse_verify_and_plan_or_fail(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
        checkpoint in checkpoint(),
    ) {
        let seed = seed.get(&SEEDS.heads);
        harness::head(&mutate(seed, &mutations), checkpoint);
    }

    #[test]
    fn mutated_head_values_parse_verify_and_plan_or_fail(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
        checkpoint in checkpoint(),
    ) {
        let seed: &Vec<u8> = seed.get(&SEEDS.heads);
        let mut head: Value = serde_json::from_slice(seed).unwrap();
        for edit in &edits {
            apply(&mut head, edit);
        }
        harness::head(&serde_json::to_vec(&head).unwrap(), checkpoint);
    }
}
