//! Writes the golden v1 fixtures (`fixtures/v1/`): a bucket folder holding two clusters with
//! identity, head, a snapshot and diffs, built from realistic simulated objects through the
//! agent's redaction, plus `expected.json`, the state a reader must arrive at, and `documents/`,
//! single documents of the format.
//!
//! Run once per format version (`just fixtures`); the files are committed and every later
//! version of outpost must still read them (`tests/fixtures_v1.rs`). Refuses to overwrite: once
//! the bucket exists, only documents missing from `documents/` (added to the format later) are
//! written.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use outpost::agent::redact::Redactor;
use outpost::format::documents::{AccountRequest, ForbiddenKind, ServedResource};
use outpost::format::segment::{Counts, ObjectKey, ObjectRef, Window};
use outpost::format::{
    ClusterName, Decommissioned, EncodeOptions, Epoch, Head, Identity, Record, SegmentHeader,
    SegmentRef, SegmentType, SegmentWriter,
};
use outpost::sim::{ClusterShape, ObjectFactory};
use outpost::store::Store;
use serde_json::Value;

/// A cluster's chain as the fixture writer builds it.
struct Chain {
    store: Store,
    cluster: ClusterName,
    epoch: Epoch,
    redactor: Redactor,
    state: BTreeMap<ObjectKey, Value>,
    head: Option<Head>,
    /// The version of head.json this writer last wrote or read.
    head_version: Option<outpost::store::Version>,
}

impl Chain {
    /// Writes the next segment and moves the head to it. For seq 1, or when `snapshot` is set,
    /// that is a snapshot of the whole state after `puts`; otherwise a diff of `puts` then
    /// `deletes`. The head is created, or swapped against the version last written or read.
    async fn write(
        &mut self,
        at: DateTime<Utc>,
        snapshot: bool,
        puts: &[Value],
        deletes: &[Value],
    ) -> anyhow::Result<()> {
        let seq = self.head.as_ref().map_or(1, |h| h.seq + 1);
        let segment_type = if seq == 1 || snapshot {
            SegmentType::Snapshot
        } else {
            SegmentType::Diff
        };
        let mut records = Vec::new();
        for object in puts {
            let mut object = object.clone();
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            self.redactor.redact(&kind, &mut object);
            let record = Record::put_object(&object).context("incomplete object")?;
            self.state.insert(record.target().key(), object);
            records.push(record);
        }
        for object in deletes {
            let target = ObjectRef::of_object(object).context("incomplete object")?;
            self.state.remove(&target.key());
            records.push(Record::Delete { target });
        }
        if segment_type == SegmentType::Snapshot {
            records = self
                .state
                .values()
                .map(|o| Record::put_object(o).context("incomplete object"))
                .collect::<anyhow::Result<_>>()?;
        }
        let put = records
            .iter()
            .filter(|r| matches!(r, Record::Put { .. }))
            .count() as u64;
        let counts = Counts {
            put,
            delete: records.len() as u64 - put,
        };
        let header = SegmentHeader::new(
            segment_type,
            self.cluster.clone(),
            self.epoch.clone(),
            seq,
            self.head.as_ref().map(|h| h.tip().sha256.clone()),
            at,
            Window {
                from: at - Duration::seconds(15),
                to: at,
            },
            counts,
            self.redactor.rule_ids(),
        );
        let key = self
            .store
            .layout()
            .segment(&self.cluster, &self.epoch, seq, segment_type);
        let mut writer = SegmentWriter::new(
            &key.to_string(),
            Vec::new(),
            &header,
            &EncodeOptions::default(),
        )?;
        for record in &records {
            writer.write(record)?;
        }
        let (bytes, summary) = writer.finish()?;
        self.store.put_segment(&key, Bytes::from(bytes)).await?;
        let reference = SegmentRef {
            seq,
            key: key.relative.clone(),
            sha256: summary.sha256,
            bytes: summary.bytes,
        };
        let (objects, kinds) = self.counts();
        let head = match self.head.as_mut() {
            None => self.head.insert(Head::new(
                self.cluster.clone(),
                self.epoch.clone(),
                reference,
                at,
                objects,
                kinds,
            )),
            Some(head) if segment_type == SegmentType::Snapshot => {
                head.replace_snapshot(reference, at, objects, kinds)?;
                head
            }
            Some(head) => {
                head.push_diff(reference, at, objects, kinds)?;
                head
            }
        };
        let head_key = self.store.layout().head(&self.cluster);
        let json = Bytes::from(head.to_json()?);
        self.head_version = Some(match &self.head_version {
            None => self.store.put_create(&head_key, json).await?,
            Some(version) => self.store.put_update(&head_key, json, version).await?,
        });
        Ok(())
    }

    fn counts(&self) -> (u64, BTreeMap<String, u64>) {
        let mut kinds = BTreeMap::new();
        for key in self.state.keys() {
            *kinds.entry(key.kind.clone()).or_insert(0) += 1;
        }
        (self.state.len() as u64, kinds)
    }

    /// `group/kind/namespace/name` → resourceVersion of every object after the chain.
    fn expected(&self) -> BTreeMap<String, String> {
        self.state
            .iter()
            .map(|(k, v)| {
                let rv = v
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                (
                    format!("{}/{}/{}/{}", k.group, k.kind, k.namespace, k.name),
                    rv.to_string(),
                )
            })
            .collect()
    }
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> {
    let kind = kind.to_string();
    objects.iter().filter(move |o| o["kind"] == kind.as_str())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1");
    let existed = root.exists();
    if !existed {
        write_bucket(&root).await?;
    }
    // Documents added to the format after the bucket was frozen: each written once, where missing.
    let added = write_documents(&root)?;
    if existed && added == 0 {
        bail!(
            "{} exists: golden fixtures are never regenerated in place",
            root.display()
        );
    }
    println!("wrote {}", root.display());
    Ok(())
}

/// `documents/`: single documents of the format beside the bucket (decoded by
/// `tests/fixtures_v1.rs`); returns how many were missing and written.
fn write_documents(root: &std::path::Path) -> anyhow::Result<usize> {
    let dir = root.join("documents");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("identity-with-resources.json");
    if path.exists() {
        return Ok(0);
    }
    let t0 = Utc
        .with_ymd_and_hms(2026, 12, 7, 3, 0, 0)
        .single()
        .context("valid time")?;
    let mut identity = Identity::new(ClusterName::new("fixture-gateway")?, t0);
    identity.kube_system_uid = Some("5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into());
    identity.server_version = Some("v1.33.1".into());
    identity.ca_fingerprint = Some(outpost::format::sha256_hex(b"fixture-gateway cluster CA"));
    let widget = "Widget.example.com";
    identity.kinds = ["Deployment", "Namespace", "Pod", "Service", widget]
        .map(String::from)
        .to_vec();
    identity.forbidden_kinds = vec![ForbiddenKind {
        kind: "Secret".into(),
        reason: "secrets is forbidden: User \"system:serviceaccount:outpost:agent\" cannot list resource \"secrets\" in API group \"\" at the cluster scope".into(),
    }];
    let mut resources =
        outpost::agent::simulated::simulated_resources(identity.kinds.iter().map(String::as_str));
    resources.push(ServedResource {
        group: "example.com".into(),
        version: "v1beta1".into(),
        name: "widgets".into(),
        singular_name: "widget".into(),
        kind: "Widget".into(),
        namespaced: true,
        short_names: vec!["wdg".into()],
        categories: vec!["all".into(), "example".into()],
        verbs: [
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "create",
            "update",
            "watch",
        ]
        .map(String::from)
        .to_vec(),
    });
    resources.sort();
    identity.resources = resources;
    std::fs::write(&path, identity.to_json()?)?;
    Ok(1)
}

/// `bucket/` and `expected.json`: the clusters' chains and the state a reader must arrive at.
async fn write_bucket(root: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join("bucket"))?;
    let store = Store::open(&format!("file://{}", root.join("bucket").display())).await?;
    let t0 = Utc
        .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .context("valid time")?;
    let mut expected = BTreeMap::new();

    // fixture-prod: a snapshot and two diffs (a rollout with a deleted pod; a deleted service
    // and a rotated secret).
    let mut factory = ObjectFactory::new(2026);
    let shape = ClusterShape {
        seed: 2026,
        namespaces: 2,
        apps_per_namespace: 2,
        nodes: 1,
    };
    let mut objects = factory.cluster(&shape);
    objects.push(factory.applied_secret("ns-fixture", "db-credentials"));
    for kind in [
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Service",
        "Ingress",
        "Secret",
    ] {
        if of_kind(&objects, kind).next().is_none() {
            bail!("the fixture cluster has no {kind}: pick another seed");
        }
    }
    let mut prod = Chain {
        store: store.clone(),
        cluster: ClusterName::new("fixture-prod")?,
        epoch: Epoch::from_parts(t0.timestamp_millis() as u64 - 60_000, 0x0f1e2d3c)?,
        redactor: Redactor::new(&[0x42; 32], vec![])?,
        state: BTreeMap::new(),
        head: None,
        head_version: None,
    };
    prod.write(t0, false, &objects, &[]).await?;

    factory.advance_clock(900);
    let deployment = of_kind(&objects, "Deployment")
        .next()
        .context("a deployment")?
        .clone();
    let (rolled, replica_set) = factory.new_replica_set_revision(&deployment);
    let new_pods = [factory.pod_for(&replica_set), factory.pod_for(&replica_set)];
    let old_pod = of_kind(&objects, "Pod")
        .find(|p| p.pointer("/metadata/ownerReferences/0/kind") == Some(&Value::from("ReplicaSet")))
        .context("a replica set pod")?
        .clone();
    let mut puts = vec![rolled, replica_set];
    puts.extend(new_pods);
    prod.write(t0 + Duration::seconds(900), false, &puts, &[old_pod])
        .await?;

    factory.advance_clock(600);
    let service = of_kind(&objects, "Service")
        .find(|s| s.pointer("/metadata/namespace") != Some(&Value::from("default")))
        .context("an application service")?
        .clone();
    let rotated = factory.applied_secret("ns-fixture", "db-credentials");
    prod.write(t0 + Duration::seconds(1500), false, &[rotated], &[service])
        .await?;

    let mut identity = Identity::new(prod.cluster.clone(), t0);
    identity.kube_system_uid = Some("0b6c0d1e-5f7a-4b2c-9d3e-8f1a2b3c4d5e".into());
    identity.server_version = Some("v1.20.2".into());
    identity.ca_fingerprint = Some(outpost::format::sha256_hex(b"fixture-prod cluster CA"));
    let watched: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_string))
        .collect();
    identity.kinds = watched.into_iter().collect();
    identity.forbidden_kinds = vec![ForbiddenKind {
        kind: "NetworkPolicy".into(),
        reason: "networkpolicies.networking.k8s.io is forbidden: User \"system:serviceaccount:outpost:agent\" cannot list resource \"networkpolicies\"".into(),
    }];
    identity.account = AccountRequest {
        name: Some("prod-eu".into()),
        permissions: BTreeMap::from([
            ("READ".into(), vec!["sre".into(), "payments".into()]),
            ("WRITE".into(), vec!["sre".into()]),
        ]),
    };
    store
        .put_overwrite(
            &store.layout().identity(&prod.cluster),
            Bytes::from(identity.to_json()?),
        )
        .await?;
    expected.insert(prod.cluster.to_string(), prod.expected());

    // fixture-retired: a snapshot, then decommissioned.
    let mut factory = ObjectFactory::new(7);
    let small = factory.cluster(&ClusterShape {
        seed: 7,
        namespaces: 1,
        apps_per_namespace: 1,
        nodes: 1,
    });
    let mut retired = Chain {
        store: store.clone(),
        cluster: ClusterName::new("fixture-retired")?,
        epoch: Epoch::from_parts(t0.timestamp_millis() as u64 - 120_000, 0x00c0ffee)?,
        redactor: Redactor::new(&[0x17; 32], vec![])?,
        state: BTreeMap::new(),
        head: None,
        head_version: None,
    };
    retired.write(t0, false, &small, &[]).await?;
    let notice = Decommissioned::new(
        retired.cluster.clone(),
        t0 + Duration::hours(1),
        Some("terraform destroy".into()),
    );
    store
        .put_create(
            &store.layout().decommissioned(&retired.cluster),
            Bytes::from(notice.to_json()?),
        )
        .await?;
    store
        .put_overwrite(
            &store.layout().identity(&retired.cluster),
            Bytes::from(Identity::new(retired.cluster.clone(), t0).to_json()?),
        )
        .await?;
    expected.insert(retired.cluster.to_string(), retired.expected());

    // fixture-rolled: an older epoch left behind by a previous writer, then a new epoch whose
    // chain restarts at a mid-epoch snapshot, followed by a diff that names one object several
    // times (the later record wins).
    let mut factory = ObjectFactory::new(99);
    let objects = factory.cluster(&ClusterShape {
        seed: 99,
        namespaces: 1,
        apps_per_namespace: 2,
        nodes: 1,
    });
    let mut previous = Chain {
        store: store.clone(),
        cluster: ClusterName::new("fixture-rolled")?,
        epoch: Epoch::from_parts(t0.timestamp_millis() as u64 - 86_400_000, 0x0ddba11)?,
        redactor: Redactor::new(&[0x99; 32], vec![])?,
        state: BTreeMap::new(),
        head: None,
        head_version: None,
    };
    previous
        .write(t0 - Duration::days(1), false, &objects, &[])
        .await?;
    // A new writer takes the head over with its own epoch, starting with a snapshot.
    let mut rolled = Chain {
        store: store.clone(),
        cluster: previous.cluster.clone(),
        epoch: Epoch::from_parts(t0.timestamp_millis() as u64, 0x00ab0de5)?,
        redactor: previous.redactor.clone(),
        state: BTreeMap::new(),
        head: None,
        head_version: Some(store.get(&store.layout().head(&previous.cluster)).await?.1),
    };
    rolled.write(t0, false, &objects, &[]).await?;
    let pods: Vec<Value> = of_kind(&objects, "Pod").cloned().collect();
    factory.advance_clock(60);
    rolled
        .write(t0 + Duration::seconds(60), false, &[], &pods[..1])
        .await?;
    rolled
        .write(t0 + Duration::seconds(120), true, &[], &[])
        .await?;
    let deployment = of_kind(&objects, "Deployment")
        .next()
        .context("a deployment")?
        .clone();
    let (first, replica_set) = factory.new_replica_set_revision(&deployment);
    let (second, _) = factory.new_replica_set_revision(&first);
    let doomed = factory.pod_for(&replica_set);
    rolled
        .write(
            t0 + Duration::seconds(180),
            false,
            &[first, replica_set, doomed.clone(), second],
            &[doomed],
        )
        .await?;
    expected.insert(rolled.cluster.to_string(), rolled.expected());

    let mut text = serde_json::to_vec_pretty(&expected)?;
    text.push(b'\n');
    std::fs::write(root.join("expected.json"), text)?;
    Ok(())
}
