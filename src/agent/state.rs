//! The agent's view of the cluster: every watched object as redacted compact JSON, and what has
//! changed since the last segment was shipped (pure, no I/O).
//!
//! Objects are kept as serialized bytes, not parsed trees, zstd-compressed one by one, so memory
//! follows the cluster's size in compressed JSON. Changes are tracked per object as "what was shipped last" — nothing, or the reference of
//! the object as shipped — so a diff holds the net change of each object since the last segment:
//! an object created and deleted between two segments produces nothing, an object changed many
//! times produces one `put` of its last state, and an unchanged object seen again (a relist)
//! produces nothing. A relist (`Init` … `InitDone`) turns objects of its scope that were not seen
//! again into deletions.

use std::collections::{BTreeMap, HashMap};

use super::compressed::{self, CompressedJson, JsonReader};
use crate::format::segment::{ObjectKey, ObjectRef, api_group};

/// Which watch an object came from: a kind, and the namespace when namespaces are restricted
/// (`None` for a cluster-wide watch). A relist only affects objects of its own scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// `Kind` or `Kind.group` (see [`kind_name`]).
    pub kind: String,
    pub namespace: Option<String>,
}

/// One object as the agent holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub target: ObjectRef,
    pub resource_version: String,
    /// The redacted object, compact JSON, compressed.
    pub object: CompressedJson,
    pub scope: Scope,
}

/// What applying an object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    /// The same bytes were already held: nothing to ship.
    Unchanged,
}

/// One record of the next diff.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Put(&'a Entry),
    Delete(&'a ObjectRef),
}

/// An entry and the last relist that reported it.
#[derive(Debug)]
struct Held {
    entry: Entry,
    /// The number of the last relist of the entry's scope that reported it (0: none).
    relist: u64,
}

/// The objects and the changes not yet shipped.
#[derive(Debug, Default)]
pub struct State {
    objects: BTreeMap<ObjectKey, Held>,
    /// For every object changed since the last ship: the reference it was last shipped with
    /// (`None`: it was not in the last shipped state).
    dirty: BTreeMap<ObjectKey, Option<ObjectRef>>,
    /// The relist in progress of each scope, by number: the objects it reports are marked with
    /// it, so that no set of keys is built while tens of thousands of objects are listed.
    relists: HashMap<Scope, u64>,
    /// The number of the last relist started.
    last_relist: u64,
    /// Bytes of JSON held, for memory accounting.
    bytes: usize,
    /// Bytes of compressed JSON held.
    compressed_bytes: usize,
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an object as it is now (an `Apply` or `InitApply` event, already redacted).
    pub fn apply(&mut self, entry: Entry) -> Applied {
        let key = entry.target.key();
        let relist = self.relists.get(&entry.scope).copied().unwrap_or(0);
        match self.objects.get_mut(&key) {
            // (Should the JSON not decompress, the object counts as changed: it is shipped.)
            Some(current)
                if current
                    .entry
                    .object
                    .same_json(&entry.object)
                    .unwrap_or(false) =>
            {
                // Same bytes; the scope may differ after a configuration change.
                current.entry.scope = entry.scope;
                current.relist = relist;
                Applied::Unchanged
            }
            Some(current) => {
                let shipped = current.entry.target.clone();
                self.dirty.entry(key).or_insert(Some(shipped));
                self.bytes = self.bytes - current.entry.object.json_len() + entry.object.json_len();
                self.compressed_bytes = self.compressed_bytes
                    - current.entry.object.compressed_len()
                    + entry.object.compressed_len();
                *current = Held { entry, relist };
                Applied::Updated
            }
            None => {
                self.dirty.entry(key.clone()).or_insert(None);
                self.bytes += entry.object.json_len();
                self.compressed_bytes += entry.object.compressed_len();
                self.objects.insert(key, Held { entry, relist });
                Applied::Created
            }
        }
    }

    /// Recompresses every object held with the process's dictionary, once it is trained (see
    /// [`super::compressed`]). Returns the bytes held compressed before and after.
    pub fn adopt_dictionary(&mut self) -> Result<(usize, usize), compressed::Error> {
        let before = self.compressed_bytes;
        let mut reader = JsonReader::new()?;
        for held in self.objects.values_mut() {
            if let Some(object) = held.entry.object.recompressed(&mut reader)? {
                self.compressed_bytes = self.compressed_bytes - held.entry.object.compressed_len()
                    + object.compressed_len();
                held.entry.object = object;
            }
        }
        Ok((before, self.compressed_bytes))
    }

    /// Applies `redact` (kind name, object; returns whether it changed the object) to every
    /// object held, as when a redaction rule is added or edited while the agent runs: the
    /// objects it changes are replaced and go into the next diff. An object whose JSON cannot be
    /// read back (which does not happen short of a zstd bug) is dropped, as a deletion, rather
    /// than kept unredacted; its watch's relist brings it back. Returns how many objects changed
    /// and how many were dropped.
    pub fn redact_again(
        &mut self,
        mut redact: impl FnMut(&str, &mut serde_json::Value) -> bool,
    ) -> Result<(usize, usize), compressed::Error> {
        let mut reader = JsonReader::new()?;
        let mut changed = 0;
        let mut unreadable = Vec::new();
        for (key, held) in &mut self.objects {
            let read = reader.read(&held.entry.object).and_then(|json| {
                serde_json::from_str::<serde_json::Value>(json.get())
                    .map_err(compressed::Error::NotJson)
            });
            let Ok(mut value) = read else {
                unreadable.push(key.clone());
                continue;
            };
            if !redact(&held.entry.scope.kind, &mut value) {
                continue;
            }
            let Ok(object) = CompressedJson::compress(&value.to_string()) else {
                unreadable.push(key.clone());
                continue;
            };
            self.bytes = self.bytes - held.entry.object.json_len() + object.json_len();
            self.compressed_bytes = self.compressed_bytes - held.entry.object.compressed_len()
                + object.compressed_len();
            held.entry.object = object;
            self.dirty
                .entry(key.clone())
                .or_insert_with(|| Some(held.entry.target.clone()));
            changed += 1;
        }
        for key in &unreadable {
            self.delete(key);
        }
        Ok((changed, unreadable.len()))
    }

    /// The JSON of up to `count` objects spread over the state, at most `bytes` in all: what a
    /// dictionary is trained on.
    pub fn samples(&self, count: usize, bytes: usize) -> Result<Vec<Vec<u8>>, compressed::Error> {
        let step = (self.objects.len() / count.max(1)).max(1);
        let mut reader = JsonReader::new()?;
        let mut samples = Vec::new();
        let mut total = 0;
        for held in self.objects.values().step_by(step).take(count) {
            let json = reader.read(&held.entry.object)?.get();
            total += json.len();
            if total > bytes {
                break;
            }
            samples.push(json.as_bytes().to_vec());
        }
        Ok(samples)
    }

    /// Records that an object is gone. `false` if it was not held.
    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        let Some(Held { entry: old, .. }) = self.objects.remove(key) else {
            return false;
        };
        self.bytes -= old.object.json_len();
        self.compressed_bytes -= old.object.compressed_len();
        self.dirty.entry(key.clone()).or_insert(Some(old.target));
        true
    }

    /// A relist of `scope` begins (`Init`): from now on the objects it reports are remembered.
    pub fn relist_started(&mut self, scope: &Scope) {
        self.last_relist += 1;
        self.relists.insert(scope.clone(), self.last_relist);
    }

    /// The relist of `scope` is complete (`InitDone`): every object of the scope it did not report
    /// is gone. Returns how many were deleted. Without a matching start, nothing is deleted.
    pub fn relist_done(&mut self, scope: &Scope) -> usize {
        let Some(relist) = self.relists.remove(scope) else {
            return 0;
        };
        let gone: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, held)| held.entry.scope == *scope && held.relist != relist)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            self.delete(key);
        }
        gone.len()
    }

    /// Drops every object of a scope that is no longer watched (a kind removed from the
    /// configuration), as deletions. Returns how many.
    pub fn forget_scope(&mut self, scope: &Scope) -> usize {
        self.relists.remove(scope);
        let gone: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, held)| held.entry.scope == *scope)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            self.delete(key);
        }
        gone.len()
    }

    /// Whether the next diff would hold anything.
    pub fn has_changes(&self) -> bool {
        self.changes().next().is_some()
    }

    /// The net change of every object since the last ship, in key order.
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> {
        self.dirty
            .iter()
            .filter_map(|(key, shipped)| match (self.objects.get(key), shipped) {
                (Some(held), _) => Some(Change::Put(&held.entry)),
                (None, Some(shipped)) => Some(Change::Delete(shipped)),
                (None, None) => None,
            })
    }

    /// Every object, in key order (a snapshot).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.objects.values().map(|held| &held.entry)
    }

    /// Call once the segment holding [`State::changes`] (or a snapshot of [`State::entries`]) is
    /// safely in the bucket: the current state becomes the shipped state.
    pub fn shipped(&mut self) {
        self.dirty.clear();
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is held.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Bytes of object JSON held (decompressed).
    pub fn json_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of compressed object JSON held.
    pub fn compressed_bytes(&self) -> usize {
        self.compressed_bytes
    }

    /// Objects per kind name (`Kind` or `Kind.group`), for `head.json`.
    pub fn kind_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for held in self.objects.values() {
            *counts.entry(held.entry.scope.kind.clone()).or_insert(0) += 1;
        }
        counts
    }
}

/// API groups built into Kubernetes, whose kinds are named without their group.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

/// How a kind is named in configuration and documents: `Kind` for the groups built into
/// Kubernetes, `Kind.group` for everything else (custom resources).
pub fn kind_name(api_version: &str, kind: &str) -> String {
    let group = api_group(api_version);
    if BUILT_IN_GROUPS.contains(&group) {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn scope(kind: &str) -> Scope {
        Scope {
            kind: kind.into(),
            namespace: None,
        }
    }

    fn entry(kind: &str, name: &str, uid: &str, rv: u64) -> Entry {
        let object = serde_json::json!({"kind": kind, "metadata": {"name": name, "uid": uid, "resourceVersion": rv.to_string()}});
        Entry {
            target: ObjectRef {
                api_version: "v1".into(),
                kind: kind.into(),
                namespace: "ns".into(),
                name: name.into(),
                uid: uid.into(),
            },
            resource_version: rv.to_string(),
            object: CompressedJson::compress(&object.to_string()).unwrap(),
            scope: scope(kind),
        }
    }

    fn key(kind: &str, name: &str) -> ObjectKey {
        entry(kind, name, "", 0).target.key()
    }

    /// A pod as realistic as a dictionary needs: most of it repeated across pods.
    fn pod(i: u64) -> Entry {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-{i}"), "namespace": "prod", "uid": format!("{:032x}", i * 7_919),
                "labels": {"app": "web", "pod-template-hash": format!("{:x}", i * 104_729)},
                "annotations": {"kubernetes.io/psp": "restricted", "prometheus.io/scrape": "true"}},
            "spec": {"containers": [{"name": "web", "image": "registry.example.com/shop/web:1.2.3",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIP": format!("10.1.{}.{}", i / 250, i % 250), "qosClass": "Burstable"}});
        let mut entry = entry("Pod", &format!("web-{i}"), &format!("u{i}"), i);
        entry.object = CompressedJson::compress(&object.to_string()).unwrap();
        entry
    }

    /// The only test that trains the process's dictionary (it is trained once per process).
    #[test]
    fn objects_held_are_recompressed_with_a_dictionary_trained_on_them() {
        let mut s = State::new();
        for i in 0..400 {
            s.apply(pod(i));
        }
        let plain_again = pod(7);
        let json_before: Vec<String> = s.entries().map(|e| e.object.to_json().unwrap()).collect();
        let samples = s.samples(300, 1 << 20).unwrap();
        assert_eq!(samples.len(), 300);
        assert!(compressed::train_dictionary(&samples).unwrap());
        assert!(compressed::dictionary_trained());
        assert!(
            !compressed::train_dictionary(&samples).unwrap(),
            "trained once"
        );
        let (before, after) = s.adopt_dictionary().unwrap();
        assert!(after * 2 < before, "{before} → {after} bytes");
        assert_eq!(s.compressed_bytes(), after);
        let json_after: Vec<String> = s.entries().map(|e| e.object.to_json().unwrap()).collect();
        assert_eq!(json_before, json_after);
        // An object compressed before the dictionary (e.g. waiting in the event channel) is still
        // recognised as unchanged, and one compressed after it too.
        s.shipped();
        assert_eq!(s.apply(plain_again), Applied::Unchanged);
        assert_eq!(s.apply(pod(8)), Applied::Unchanged);
        assert!(!s.has_changes());
    }

    /// The changes as (op, name, resourceVersion or uid).
    fn changes(state: &State) -> Vec<(String, String, String)> {
        state
            .changes()
            .map(|c| match c {
                Change::Put(e) => (
                    "put".into(),
                    e.target.name.clone(),
                    e.resource_version.clone(),
                ),
                Change::Delete(r) => ("delete".into(), r.name.clone(), r.uid.clone()),
            })
            .collect()
    }

    #[test]
    fn many_updates_collapse_to_the_last_and_create_delete_cancels() {
        let mut s = State::new();
        assert_eq!(s.apply(entry("Pod", "a", "u1", 1)), Applied::Created);
        assert_eq!(s.apply(entry("Pod", "a", "u1", 2)), Applied::Updated);
        assert_eq!(s.apply(entry("Pod", "a", "u1", 3)), Applied::Updated);
        s.apply(entry("Pod", "b", "u2", 4));
        s.delete(&key("Pod", "b"));
        assert_eq!(changes(&s), vec![("put".into(), "a".into(), "3".into())]);
        s.shipped();
        assert!(!s.has_changes());
        assert_eq!(s.apply(entry("Pod", "a", "u1", 3)), Applied::Unchanged);
        assert!(!s.has_changes());
    }

    #[test]
    fn a_delete_names_the_object_as_it_was_shipped() {
        let mut s = State::new();
        s.apply(entry("Pod", "a", "u1", 1));
        s.shipped();
        // Recreated with a new uid, then deleted again: the delete names the shipped uid.
        s.delete(&key("Pod", "a"));
        s.apply(entry("Pod", "a", "u2", 2));
        s.delete(&key("Pod", "a"));
        assert_eq!(
            changes(&s),
            vec![("delete".into(), "a".into(), "u1".into())]
        );
        assert!(!s.delete(&key("Pod", "nope")));
    }

    #[test]
    fn a_relist_deletes_what_it_did_not_see_in_its_scope_only() {
        let mut s = State::new();
        s.apply(entry("Pod", "a", "u1", 1));
        s.apply(entry("Pod", "b", "u2", 2));
        s.apply(entry("Service", "c", "u3", 3));
        s.shipped();
        s.relist_started(&scope("Pod"));
        assert_eq!(s.apply(entry("Pod", "a", "u1", 1)), Applied::Unchanged);
        assert_eq!(s.relist_done(&scope("Pod")), 1);
        assert_eq!(
            changes(&s),
            vec![("delete".into(), "b".into(), "u2".into())]
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.relist_done(&scope("Pod")), 0, "a relist ends once");
        assert_eq!(s.forget_scope(&scope("Service")), 1);
        assert_eq!(s.kind_counts(), BTreeMap::from([("Pod".to_string(), 1)]));
    }

    #[test]
    fn objects_redacted_again_are_replaced_and_shipped_in_the_next_diff() {
        let mut s = State::new();
        s.apply(entry("Pod", "a", "u1", 1));
        s.apply(entry("Service", "b", "u2", 2));
        s.shipped();
        let before = s.json_bytes();
        let changed = s
            .redact_again(|kind, object| {
                kind == "Pod"
                    && object["metadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("uid")
                        .is_some()
            })
            .unwrap();
        assert_eq!(changed, (1, 0));
        assert_eq!(changes(&s), vec![("put".into(), "a".into(), "1".into())]);
        let pod = s.entries().find(|e| e.target.name == "a").unwrap();
        assert!(!pod.object.to_json().unwrap().contains("uid"));
        assert_eq!(before - s.json_bytes(), r#","uid":"u1""#.len());
        // A relist reporting the object as redacted now changes nothing.
        s.shipped();
        let mut again = entry("Pod", "a", "u1", 1);
        let mut value: serde_json::Value =
            serde_json::from_str(&again.object.to_json().unwrap()).unwrap();
        value["metadata"].as_object_mut().unwrap().remove("uid");
        again.object = CompressedJson::compress(&value.to_string()).unwrap();
        assert_eq!(s.apply(again), Applied::Unchanged);
        assert!(!s.has_changes());
    }

    #[test]
    fn memory_accounting_follows_the_json() {
        let mut s = State::new();
        let (a, b) = (entry("Pod", "a", "u1", 1), entry("Pod", "bb", "u1", 1));
        let (na, ca) = (a.object.json_len(), a.object.compressed_len());
        let (nb, cb) = (b.object.json_len(), b.object.compressed_len());
        s.apply(a);
        s.apply(b);
        assert_eq!(s.json_bytes(), na + nb);
        assert_eq!(s.compressed_bytes(), ca + cb);
        s.delete(&key("Pod", "a"));
        assert_eq!(s.json_bytes(), nb);
        assert_eq!(s.compressed_bytes(), cb);
        let c = entry("Pod", "bb", "u1", 22);
        let (nc, cc) = (c.object.json_len(), c.object.compressed_len());
        s.apply(c);
        assert_eq!(s.json_bytes(), nc);
        assert_eq!(s.compressed_bytes(), cc);
    }

    #[test]
    fn kind_names() {
        assert_eq!(kind_name("apps/v1", "Deployment"), "Deployment");
        assert_eq!(kind_name("v1", "Pod"), "Pod");
        assert_eq!(kind_name("networking.k8s.io/v1", "Ingress"), "Ingress");
        assert_eq!(
            kind_name("example.com/v1alpha1", "Widget"),
            "Widget.example.com"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Apply { kind: u8, name: u8, uid: u8 },
        Delete { kind: u8, name: u8 },
        Relist { kind: u8, keep: Vec<u8> },
        Ship,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..2, 0u8..6, 0u8..3).prop_map(|(kind, name, uid)| Op::Apply { kind, name, uid }),
            2 => (0u8..2, 0u8..6).prop_map(|(kind, name)| Op::Delete { kind, name }),
            1 => (0u8..2, prop::collection::vec(0u8..6, 0..6)).prop_map(|(kind, keep)| Op::Relist { kind, keep }),
            2 => Just(Op::Ship),
        ]
    }

    proptest! {
        /// Replaying what was shipped (the first snapshot, then every diff) always gives exactly
        /// the state at the last ship: no lost change, no phantom change.
        #[test]
        fn shipped_diffs_replay_to_the_shipped_state(ops in prop::collection::vec(op(), 1..80)) {
            let kinds = ["Pod", "Service"];
            let mut s = State::new();
            let mut truth: BTreeMap<(String, String), (String, u64)> = BTreeMap::new();
            let mut replica: BTreeMap<(String, String), (String, u64)> = BTreeMap::new();
            let mut rv = 0u64;
            for op in ops {
                match op {
                    Op::Apply { kind, name, uid } => {
                        rv += 1;
                        let (k, n, u) = (kinds[kind as usize], format!("o{name}"), format!("u{uid}"));
                        s.apply(entry(k, &n, &u, rv));
                        truth.insert((k.into(), n), (u, rv));
                    }
                    Op::Delete { kind, name } => {
                        let (k, n) = (kinds[kind as usize], format!("o{name}"));
                        let was = truth.remove(&(k.to_string(), n.clone())).is_some();
                        prop_assert_eq!(s.delete(&key(k, &n)), was);
                    }
                    Op::Relist { kind, keep } => {
                        let k = kinds[kind as usize];
                        let kept: BTreeSet<String> = keep.iter().map(|n| format!("o{n}")).collect();
                        s.relist_started(&scope(k));
                        for n in &kept {
                            // A relist reports objects as they are (same bytes if unchanged).
                            let current = truth.get(&(k.to_string(), n.clone())).cloned();
                            let (u, r) = current.unwrap_or_else(|| { rv += 1; ("u9".into(), rv) });
                            s.apply(entry(k, n, &u, r));
                            truth.insert((k.into(), n.clone()), (u, r));
                        }
                        s.relist_done(&scope(k));
                        // Whatever the relist did not report is gone.
                        truth.retain(|(tk, tn), _| tk != k || kept.contains(tn));
                    }
                    Op::Ship => {
                        for change in s.changes() {
                            match change {
                                Change::Put(e) => {
                                    replica.insert((e.target.kind.clone(), e.target.name.clone()), (e.target.uid.clone(), e.resource_version.parse().unwrap()));
                                }
                                Change::Delete(r) => {
                                    let removed = replica.remove(&(r.kind.clone(), r.name.clone()));
                                    prop_assert!(removed.is_some(), "phantom delete of {:?}", r);
                                    prop_assert_eq!(&removed.unwrap().0, &r.uid, "a delete names the shipped uid");
                                }
                            }
                        }
                        s.shipped();
                        prop_assert_eq!(&replica, &truth);
                        let held: BTreeMap<_, _> = s.entries().map(|e| ((e.target.kind.clone(), e.target.name.clone()), (e.target.uid.clone(), e.resource_version.parse::<u64>().unwrap()))).collect();
                        prop_assert_eq!(&held, &truth);
                    }
                }
            }
        }
    }
}
