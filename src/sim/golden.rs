//! Hashes of the simulator's output for fixed seeds and shapes, so that any change to it (golden fixtures and benchmarks depend on it) is noticed.

use super::{Churn, ChurnEvent, ClusterShape, ObjectFactory};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The sha256 of `objects` as NDJSON, in lowercase hex.
fn ndjson_sha256<'a>(objects: impl IntoIterator<Item = &'a Value>) -> String {
    let mut hasher = Sha256::new();
    for object in objects {
        let bytes = serde_json::to_vec(object).expect("a JSON value serializes");
        hasher.update(&bytes);
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every event of `steps` one-second churn steps at `rate` changes a second, each tagged with whether it
/// is a deletion.
fn churn_events(seed: u64, objects: usize, steps: usize, rate: f64) -> Vec<Value> {
    let mut churn = Churn::new(seed, objects);
    let mut out = churn.initial();
    for _ in 0..steps {
        for event in churn.step(1.0, rate) {
            let tag = match &event {
                ChurnEvent::Apply(_) => "apply",
                ChurnEvent::Delete(_) => "delete",
            };
            out.push(Value::String(tag.to_string()));
            out.push(event.object().clone());
        }
    }
    out
}

/// A sequence of direct factory calls, covering the pieces churn builds objects from.
fn factory_calls(seed: u64) -> Vec<Value> {
    let mut factory = ObjectFactory::new(seed);
    let mut out = vec![factory.namespace("golden")];
    let app = factory.app("golden");
    out.extend(app.iter().cloned());
    out.push(factory.secret("golden", "plain"));
    out.push(factory.applied_secret("golden", "applied"));
    factory.advance_clock(3600);
    if let Some(deployment) = app.iter().find(|o| o["kind"] == "Deployment") {
        let (old, new) = factory.new_replica_set_revision(deployment);
        out.push(old);
        out.push(factory.pod_for(&new));
        out.push(new);
    }
    out
}

#[test]
fn clusters_are_unchanged() {
    let small = ClusterShape {
        seed: 7,
        namespaces: 3,
        apps_per_namespace: 2,
        nodes: 3,
    };
    let cases = [
        (
            small,
            "7e1ed7339bea50f308f465835e0115ba7fcd44a2e6232930864058418ab5b7d1",
        ),
        (
            ClusterShape::with_approx_objects(1, 1500),
            "e779d968ae1116f27b1a5fd3d39b69ecc12d91720e45c7d15f9befbc4532c44f",
        ),
        (
            ClusterShape::with_approx_objects(42, 600),
            "7b4d7c8275014e293eefbb44393d18b53670cfae58c58f0328240f7a5e273ae2",
        ),
    ];
    let (shapes, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let actual: Vec<_> = shapes.iter().map(|s| ndjson_sha256(&s.build())).collect();
    assert_eq!(actual, expected, "{shapes:?}");
}

#[test]
fn churn_is_unchanged() {
    let cases = [
        (
            (3, 600, 120, 2.0),
            "20bdfa9010e199a6b74f939df583f2f20153629f2cc9f8da5e7488e2a0b8f2c3",
        ),
        (
            (11, 1500, 60, 10.0),
            "3edf71342f2f71eecb495cd8545620ff58b794088531068d83f5849afe703c27",
        ),
    ];
    let (runs, expected): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let actual: Vec<_> = runs
        .iter()
        .map(|&(seed, objects, steps, rate)| {
            ndjson_sha256(&churn_events(seed, objects, steps, rate))
        })
        .collect();
    assert_eq!(actual, expected, "(seed, objects, steps, rate): {runs:?}");
}

#[test]
fn factory_calls_are_unchanged() {
    let (seeds, expected): (Vec<_>, Vec<_>) = [
        (
            5,
            "7658499924412576a04df3e3aab0e0ffc9fd3bc9aa38a538cf33529e9cf170c6",
        ),
        (
            99,
            "b38db83fb21bafd4568847f57d0e60ef2bfeea1d4e95bcfd467ee08e35077b7c",
        ),
    ]
    .into_iter()
    .unzip();
    let actual: Vec<_> = seeds
        .iter()
        .map(|&s| ndjson_sha256(&factory_calls(s)))
        .collect();
    assert_eq!(actual, expected, "seeds {seeds:?}");
}
