//! The golden v1 fixtures (`fixtures/v1/`, written once by `examples/make-fixtures.rs`): this and
//! every later version of outpost must decode them to the state in `expected.json`, and
//! `outpost inspect` must verify them — and name the object when a copy is tampered with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use outpost::format::codec::{decode_all, encode_all};
use outpost::format::{DecodeLimits, EncodeOptions, Record};
use outpost::store::Store;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1")
}

fn expected() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read(fixtures().join("expected.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[tokio::test]
async fn fixtures_decode_to_the_expected_state() {
    let store = Store::open(&format!("file://{}", fixtures().join("bucket").display()))
        .await
        .unwrap();
    let clusters: Vec<String> = store
        .list_clusters()
        .await
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let expected = expected();
    assert_eq!(clusters, expected.keys().cloned().collect::<Vec<_>>());
    for cluster in store.list_clusters().await.unwrap() {
        let head = store.read_head(&cluster).await.unwrap().unwrap();
        let mut state = BTreeMap::new();
        for listed in head.segments() {
            let mut stream = store
                .read_listed(&cluster, &head, &listed, &DecodeLimits::default())
                .await
                .unwrap();
            while let Some(record) = stream.next().await {
                let record = record.unwrap();
                let k = record.target().key();
                let name = format!("{}/{}/{}/{}", k.group, k.kind, k.namespace, k.name);
                match record {
                    Record::Put {
                        resource_version, ..
                    } => state.insert(name, resource_version),
                    Record::Delete { .. } => state.remove(&name),
                };
            }
            stream.finish().await.unwrap();
        }
        assert_eq!(state, expected[cluster.as_str()], "cluster {cluster}");
        assert_eq!(head.objects as usize, state.len());
    }
}

/// An identity.json naming the API server's discovery of each watched kind (`resources`) decodes
/// with every member, and names one resource per watched kind.
#[test]
fn an_identity_with_resources_decodes() {
    let path = fixtures().join("documents/identity-with-resources.json");
    let identity =
        outpost::format::Identity::from_json("identity.json", &std::fs::read(path).unwrap())
            .unwrap();
    assert_eq!(identity.cluster.as_str(), "fixture-gateway");
    assert_eq!(identity.resources.len(), identity.kinds.len());
    let deployments = identity
        .resources
        .iter()
        .find(|r| r.kind == "Deployment")
        .unwrap();
    assert_eq!(
        (deployments.group.as_str(), deployments.version.as_str()),
        ("apps", "v1")
    );
    assert_eq!(deployments.name, "deployments");
    assert_eq!(deployments.singular_name, "deployment");
    assert_eq!(deployments.short_names, ["deploy"]);
    assert_eq!(deployments.categories, ["all"]);
    assert!(deployments.namespaced);
    assert!(deployments.verbs.iter().any(|v| v == "list"));
    let widgets = identity.resources.last().unwrap();
    assert_eq!(
        (widgets.group.as_str(), widgets.kind.as_str()),
        ("example.com", "Widget")
    );
    assert_eq!(widgets.short_names, ["wdg"]);
    assert!(
        identity
            .resources
            .iter()
            .any(|r| r.kind == "Namespace" && !r.namespaced)
    );
    assert_eq!(identity.forbidden_kinds[0].kind, "Secret");
}

#[test]
fn fixtures_hold_the_promised_kinds_and_no_secret_values() {
    let bucket = fixtures().join("bucket");
    let snapshot = find(&bucket, ".snap.ndjson.zst")
        .into_iter()
        .find(|p| p.to_string_lossy().contains("fixture-prod"))
        .unwrap();
    let (_, records) = decode_all(
        "snapshot",
        &std::fs::read(&snapshot).unwrap(),
        &DecodeLimits::default(),
    )
    .unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.target().kind.as_str()).collect();
    for kind in [
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Service",
        "Ingress",
        "Secret",
        "Namespace",
    ] {
        assert!(kinds.contains(kind), "no {kind} in the fixture snapshot");
    }
    for record in &records {
        let Record::Put { target, object, .. } = record else {
            continue;
        };
        let object: serde_json::Value = serde_json::from_str(object.get()).unwrap();
        assert!(object.pointer("/metadata/managedFields").is_none());
        if target.kind == "Secret" {
            for value in object["data"]
                .as_object()
                .into_iter()
                .flat_map(|d| d.values())
            {
                assert!(
                    value.as_str().unwrap().starts_with("outpost-hmac-sha256:"),
                    "{target:?}"
                );
            }
            assert!(
                object
                    .pointer(
                        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
                    )
                    .is_none()
            );
        }
        if target.kind == "Pod" {
            assert!(
                object.pointer("/metadata/ownerReferences/0/uid").is_some()
                    || target.namespace == "kube-system"
            );
        }
    }
}

fn find(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(find(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A private copy of the fixture bucket to tamper with.
fn tampered_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    copy_dir(&fixtures().join("bucket"), &bucket);
    (dir, bucket)
}

fn inspect(bucket: &Path, extra: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .arg("inspect")
        .arg(format!("file://{}", bucket.display()))
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn prod_diff(bucket: &Path, seq: u64) -> PathBuf {
    let name = format!("{seq:016x}.diff.ndjson.zst");
    find(bucket, &name)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("fixture-prod"))
        .unwrap()
}

fn prod_head(bucket: &Path) -> PathBuf {
    bucket.join("outpost/v1/clusters/fixture-prod/head.json")
}

fn relative(bucket: &Path, path: &Path) -> String {
    path.strip_prefix(bucket)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn inspect_verifies_the_fixtures() {
    let (code, stdout, stderr) = inspect(&fixtures().join("bucket"), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("fixture-prod") && l.contains(" ok ")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("fixture-retired") && l.contains("decommissioned")),
        "{stdout}"
    );
    let (code, stdout, _) = inspect(&fixtures().join("bucket"), &["--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report[0]["segments"].as_array().unwrap().len(), 3);
}

#[test]
fn inspect_prints_a_segments_records() {
    let bucket = fixtures().join("bucket");
    let diff = prod_diff(&bucket, 2);
    let (code, stdout, stderr) = inspect(&bucket, &["--segment", &relative(&bucket, &diff)]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "outpost.segment/v1");
    let counts = &lines[0]["counts"];
    let total = counts["put"].as_u64().unwrap() + counts["delete"].as_u64().unwrap();
    assert_eq!(lines.len() as u64, 1 + total);
    assert!(lines[1..].iter().any(|l| l["op"] == "delete"));
    let (code, _, stderr) = inspect(
        &bucket,
        &["--segment", "outpost/v1/clusters/../../etc/passwd"],
    );
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_flipped_byte_is_named() {
    let (_dir, bucket) = tampered_copy();
    let diff = prod_diff(&bucket, 2);
    let mut bytes = std::fs::read(&diff).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&diff, bytes).unwrap();
    let (code, _, stderr) = inspect(&bucket, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&relative(&bucket, &diff)), "{stderr}");
}

#[test]
fn a_missing_diff_is_named() {
    let (_dir, bucket) = tampered_copy();
    let diff = prod_diff(&bucket, 2);
    std::fs::remove_file(&diff).unwrap();
    let (code, _, stderr) = inspect(&bucket, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&relative(&bucket, &diff)) && stderr.contains("not found"),
        "{stderr}"
    );
}

#[test]
fn a_head_pointing_at_a_wrong_hash_is_named() {
    let (_dir, bucket) = tampered_copy();
    let path = prod_head(&bucket);
    let mut head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    head["diffs"][1]["sha256"] = serde_json::Value::from("0".repeat(64));
    std::fs::write(&path, serde_json::to_vec_pretty(&head).unwrap()).unwrap();
    let (code, _, stderr) = inspect(&bucket, &[]);
    assert_eq!(code, 1, "{stderr}");
    let diff = prod_diff(&bucket, 3);
    assert!(
        stderr.contains(&relative(&bucket, &diff)) && stderr.contains("sha256"),
        "{stderr}"
    );
}

#[test]
fn a_diff_whose_prev_sha256_does_not_link_is_named() {
    let (_dir, bucket) = tampered_copy();
    let diff = prod_diff(&bucket, 3);
    let (summary, records) = decode_all(
        "diff",
        &std::fs::read(&diff).unwrap(),
        &DecodeLimits::default(),
    )
    .unwrap();
    let mut header = summary.header.clone();
    header.prev_sha256 = Some("f".repeat(64));
    let (bytes, relinked) =
        encode_all("diff", &header, &records, &EncodeOptions::default()).unwrap();
    std::fs::write(&diff, bytes).unwrap();
    // The head is updated to the new bytes, so size and hash match: only the link is wrong.
    let path = prod_head(&bucket);
    let mut head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    head["diffs"][1]["sha256"] = serde_json::Value::from(relinked.sha256);
    head["diffs"][1]["bytes"] = serde_json::Value::from(relinked.bytes);
    std::fs::write(&path, serde_json::to_vec_pretty(&head).unwrap()).unwrap();
    let (code, _, stderr) = inspect(&bucket, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&relative(&bucket, &diff)) && stderr.contains("prev_sha256"),
        "{stderr}"
    );
}

#[test]
fn a_head_of_a_newer_format_version_is_named() {
    let (_dir, bucket) = tampered_copy();
    let path = prod_head(&bucket);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("outpost.head/v1", "outpost.head/v2");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = inspect(&bucket, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("head.json") && stderr.contains("outpost.head/v2"),
        "{stderr}"
    );
}
