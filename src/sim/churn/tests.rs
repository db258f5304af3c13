//! Tests of the churn: determinism, the watch invariants of its events, its rate and size, and how its pods and rollouts look.

#![cfg(test)]

use super::*;
use crate::sim::json::{Fields, namespace_of, terminating};
use crate::sim::kinds::deployments::deployment_settled;
use std::collections::BTreeMap;
use std::time::Instant;

type Id = (String, String, String);

fn id(o: &Value) -> Id {
    (
        o.str_at("/kind").to_string(),
        namespace_of(o).to_string(),
        o.str_at("/metadata/name").to_string(),
    )
}

fn rv(o: &Value) -> u64 {
    o.str_at("/metadata/resourceVersion")
        .parse()
        .expect("a valid literal")
}

/// Applies `events` to `state`, checking the watch invariants on the way.
fn apply_all(state: &mut BTreeMap<Id, Value>, events: &[ChurnEvent], last_rv: &mut u64) {
    for e in events {
        let o = e.object();
        let v = rv(o);
        assert!(
            v > *last_rv,
            "resourceVersion {v} after {last_rv}: {:?}",
            id(o)
        );
        *last_rv = v;
        match e {
            ChurnEvent::Apply(o) => {
                if let Some(old) = state.get(&id(o)) {
                    assert_ne!(rv(old), v);
                    assert_eq!(
                        old.str_at("/metadata/uid"),
                        o.str_at("/metadata/uid"),
                        "{:?} replaced without a delete",
                        id(o)
                    );
                }
                state.insert(id(o), o.clone());
            }
            ChurnEvent::Delete(o) => {
                let old = state.remove(&id(o));
                assert!(old.is_some(), "delete of missing {:?}", id(o));
                assert_eq!(
                    old.expect("asserted just above").str_at("/metadata/uid"),
                    o.str_at("/metadata/uid")
                );
            }
        }
    }
}

fn check_owners(state: &BTreeMap<Id, Value>) {
    for o in state.values() {
        for r in o
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = (
                r.str_at("/kind").to_string(),
                namespace_of(o).to_string(),
                r.str_at("/name").to_string(),
            );
            let owner = state
                .get(&k)
                .unwrap_or_else(|| panic!("{:?} owned by missing {k:?}", id(o)));
            assert_eq!(owner.str_at("/metadata/uid"), r.str_at("/uid"));
        }
    }
}

fn as_map(objects: Vec<Value>) -> BTreeMap<Id, Value> {
    let n = objects.len();
    let map: BTreeMap<Id, Value> = objects.into_iter().map(|o| (id(&o), o)).collect();
    assert_eq!(map.len(), n, "duplicate keys");
    map
}

#[test]
fn same_seed_same_events() {
    let run = |seed| {
        let mut c = Churn::new(seed, 600);
        let mut out = Vec::new();
        for i in 0..120 {
            out.extend(c.step(if i % 3 == 0 { 0.5 } else { 2.0 }, 2.0));
        }
        (out, c.objects())
    };
    let (a, objects_a) = run(5);
    let (b, objects_b) = run(5);
    assert!(a.len() > 100);
    assert_eq!(a, b);
    assert_eq!(objects_a, objects_b);
    let (c, _) = run(6);
    assert_ne!(a, c);
}

#[test]
fn events_replayed_on_the_initial_list_give_the_current_objects() {
    let mut churn = Churn::new(7, 800);
    let mut state = as_map(churn.initial());
    assert_eq!(state.len(), churn.len());
    let mut last_rv = state
        .values()
        .map(rv)
        .max()
        .expect("the state is not empty");
    check_owners(&state);
    let mut events = 0;
    for i in 0..300 {
        let batch = churn.step(10.0, if i % 2 == 0 { 1.0 } else { 3.0 });
        events += batch.len();
        apply_all(&mut state, &batch, &mut last_rv);
        check_owners(&state);
        if i % 50 == 0 {
            assert_eq!(state, as_map(churn.objects()), "after step {i}");
        }
    }
    assert_eq!(state, as_map(churn.objects()));
    assert_eq!(state.len(), churn.len());
    let stats = churn.stats();
    for kind in ChangeKind::ALL {
        eprintln!(
            "{:>15}: {:>5} changes, {:>6} events, {:.1} events/change",
            kind.name(),
            stats.changes(kind),
            stats.events(kind),
            stats.events(kind) as f64 / stats.changes(kind).max(1) as f64
        );
        assert!(stats.changes(kind) > 0, "no {}", kind.name());
    }
    assert_eq!(stats.total_events() as usize, events);
    eprintln!(
        "cron jobs: {}",
        state
            .values()
            .filter(|o| o.str_at("/kind") == "CronJob")
            .count()
    );
}

#[test]
fn change_rate_follows_the_requested_rate() {
    let mut churn = Churn::new(8, 1000);
    for _ in 0..1000 {
        churn.step(1.0, 1.0);
    }
    let n = churn.stats().total_changes();
    assert!((800..=1200).contains(&n), "{n} changes in 1000 s at 1/s");

    let mut churn = Churn::new(9, 1000);
    churn.step(250.0, 4.0);
    churn.step(750.0, 0.0);
    let n = churn.stats().total_changes();
    assert!((800..=1200).contains(&n), "{n} changes at 4/s for 250 s");
}

#[test]
fn cluster_size_stays_stable() {
    let mut churn = Churn::new(10, 1500);
    let n0 = churn.len() as f64;
    let (mut lo, mut hi) = (n0, n0);
    for _ in 0..1000 {
        churn.step(10.0, 1.0);
        let n = churn.len() as f64;
        lo = lo.min(n);
        hi = hi.max(n);
        assert!(
            (n - n0).abs() / n0 <= 0.15,
            "{n} objects, started with {n0}"
        );
    }
    eprintln!(
        "{n0} objects at start, between {lo} and {hi} over 10,000 s; {} changes",
        churn.stats().total_changes()
    );
}

#[test]
fn pod_lifecycle_and_rollouts_look_like_a_real_api_server() {
    let mut churn = Churn::new(11, 800);
    let mut created_pending = 0;
    let mut restarted = 0;
    let mut rollouts = BTreeSet::new();
    let mut generation_bumps = 0;
    let mut last: BTreeMap<Id, Value> = as_map(churn.initial());
    for _ in 0..400 {
        let step_start = ObjectFactory::timestamp(churn.clock);
        for e in churn.step(5.0, 2.0) {
            let o = e.object();
            let before = last.get(&id(o)).cloned();
            match (&e, o.str_at("/kind")) {
                (ChurnEvent::Apply(_), "Pod") if before.is_none() => {
                    assert_eq!(o.str_at("/status/phase"), "Pending");
                    assert!(o.pointer("/spec/nodeName").is_none());
                    created_pending += 1;
                }
                (ChurnEvent::Apply(_), "Pod") => {
                    let before = before.expect("an applied object was held before");
                    if o.count_at("/status/containerStatuses/0/restartCount")
                        > before.count_at("/status/containerStatuses/0/restartCount")
                    {
                        assert!(
                            o.pointer("/status/containerStatuses/0/lastState/terminated")
                                .is_some()
                        );
                        restarted += 1;
                    }
                }
                (ChurnEvent::Apply(_), "Deployment") if before.is_some() && !terminating(o) => {
                    let before = before.expect("an applied object was held before");
                    if before["spec"] != o["spec"] {
                        assert_eq!(
                            o.u64_at("/metadata/generation"),
                            before.u64_at("/metadata/generation") + 1
                        );
                        generation_bumps += 1;
                    }
                    let times: Vec<&str> = o["metadata"]["managedFields"]
                        .as_array()
                        .expect("the simulator writes managedFields")
                        .iter()
                        .map(|e| e.str_at("/time"))
                        .collect();
                    let newest = times.iter().max().expect("the state is not empty");
                    let old_newest = before["metadata"]["managedFields"]
                        .as_array()
                        .expect("the simulator writes managedFields")
                        .iter()
                        .map(|e| e.str_at("/time").to_string())
                        .max()
                        .expect("the state is not empty");
                    assert!(
                        *newest >= old_newest.as_str() && *newest >= step_start.as_str(),
                        "managedFields not re-timed: {newest} after {old_newest}, step from {step_start}"
                    );
                }
                (ChurnEvent::Apply(_), "ReplicaSet") if before.is_none() => {
                    rollouts.insert(o.str_at("/metadata/ownerReferences/0/name").to_string());
                }
                _ => {}
            }
            match &e {
                ChurnEvent::Apply(o) => {
                    last.insert(id(o), o.clone());
                }
                ChurnEvent::Delete(o) => {
                    last.remove(&id(o));
                }
            }
        }
    }
    eprintln!(
        "{created_pending} pods created, {restarted} restarts, {} deployments rolled out, {generation_bumps} spec changes",
        rollouts.len()
    );
    assert!(
        created_pending > 20 && restarted > 20 && !rollouts.is_empty() && generation_bumps > 10
    );
    // Completed rollouts: every settled Deployment's newest ReplicaSet has all the replicas.
    let objects = as_map(churn.objects());
    for d in objects
        .values()
        .filter(|o| o.str_at("/kind") == "Deployment")
    {
        if !deployment_settled(d) {
            continue;
        }
        let uid = d.str_at("/metadata/uid");
        let sets: Vec<&Value> = objects
            .values()
            .filter(|o| {
                o.str_at("/kind") == "ReplicaSet"
                    && o.str_at("/metadata/ownerReferences/0/uid") == uid
            })
            .collect();
        let newest = sets
            .iter()
            .max_by_key(|r| {
                r.str_at("/metadata/annotations/deployment.kubernetes.io~1revision")
                    .parse::<u64>()
                    .expect("revisions are numbers")
            })
            .expect("a deployment has replica sets");
        assert_eq!(
            newest.u64_at("/spec/replicas"),
            d.u64_at("/spec/replicas"),
            "{:?}",
            id(d)
        );
        for r in &sets {
            if r != newest {
                assert_eq!(r.u64_at("/spec/replicas"), 0, "{:?}", id(r));
            }
        }
    }
}

#[test]
fn ten_thousand_objects_step_quickly() {
    let t = Instant::now();
    let mut churn = Churn::new(12, 10_000);
    let built = t.elapsed();
    let t = Instant::now();
    let mut events = 0;
    let mut bytes = 0;
    let steps = 600u32;
    for _ in 0..steps {
        for e in churn.step(1.0, 1.0) {
            bytes += serde_json::to_vec(e.object())
                .expect("objects serialise")
                .len();
            events += 1;
        }
    }
    let stepped = t.elapsed();
    eprintln!(
        "10k cluster ({} objects) built in {built:?}; {steps} × step(1.0, 1.0): {} changes, {events} events \
         ({:.1} events/s simulated, {} KB/s of JSON), {:?} per step",
        churn.len(),
        churn.stats().total_changes(),
        events as f64 / f64::from(steps),
        bytes / steps as usize / 1000,
        stepped / steps
    );
}
