//! The gateway's `Table`s against the real kube-apiserver's: objects of every printed kind are
//! created in the test API server (their status set through the status subresource, as the
//! controllers it lacks would), shipped by the agent, indexed and served by the gateway, and the
//! gateway's columns and cells must be the API server's own. Every kubectl found then reads both
//! servers: `get` prints the same tables (plain and `-o wide`), and `describe`, selectors, single
//! objects, discovery and the refusals work through the gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use outpost::agent::config::{self, AgentArgs, AgentSettings, DEFAULT_SIM_CHANGES_PER_SECOND};
use outpost::format::ClusterName;
use outpost::gateway::server::{self, Listener};
use outpost::gateway::source::Source;
use outpost::gateway::tokens::Tokens;
use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;
use serde_json::{Value, json};
use tokio::sync::oneshot;

mod common;

const TOKEN: &str = "gateway-tables-token-0123456789abcdef";

/// A kind the test creates objects of: its API group and version, kind and plural resource.
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
}

const KINDS: &[Kind] = &[
    kind("", "v1", "Pod", "pods"),
    kind("", "v1", "Service", "services"),
    kind("", "v1", "ConfigMap", "configmaps"),
    kind("", "v1", "Secret", "secrets"),
    kind("", "v1", "ServiceAccount", "serviceaccounts"),
    kind("", "v1", "Endpoints", "endpoints"),
    kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    kind("", "v1", "ReplicationController", "replicationcontrollers"),
    kind("", "v1", "Event", "events"),
    kind("apps", "v1", "Deployment", "deployments"),
    kind("apps", "v1", "ReplicaSet", "replicasets"),
    kind("apps", "v1", "StatefulSet", "statefulsets"),
    kind("apps", "v1", "DaemonSet", "daemonsets"),
    kind("batch", "v1", "Job", "jobs"),
    kind("batch", "v1beta1", "CronJob", "cronjobs"),
    kind("networking.k8s.io", "v1", "Ingress", "ingresses"),
    kind(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    kind(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
];

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
    }
}

impl Kind {
    fn path(&self, namespace: &str) -> String {
        if self.group.is_empty() {
            format!(
                "/api/{}/namespaces/{namespace}/{}",
                self.version, self.plural
            )
        } else {
            format!(
                "/apis/{}/{}/namespaces/{namespace}/{}",
                self.group, self.version, self.plural
            )
        }
    }
}

/// A time `minutes` before now, as the API writes times.
fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn template(labels: &Value, containers: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"containers": containers}})
}

/// The objects of the test, each with the status it is then given (if any).
fn objects() -> Vec<(&'static str, Value, Option<Value>)> {
    let labels = json!({"app": "web", "tier": "front"});
    let two =
        json!([{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox:1.36"}]);
    let selector = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}, {"key": "canary", "operator": "DoesNotExist"}]});
    vec![
        (
            "Pod",
            json!({"metadata": {"name": "running", "labels": labels}, "spec": {"nodeName": "node-a", "containers": two, "readinessGates": [{"conditionType": "example.com/ready"}]}}),
            Some(
                json!({"phase": "Running", "podIP": "10.1.2.3", "podIPs": [{"ip": "10.1.2.3"}], "nominatedNodeName": "node-b",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "web", "ready": true, "restartCount": 3, "image": "nginx:1.27", "imageID": "", "state": {"running": {"startedAt": ago(5)}}},
                    {"name": "log", "ready": false, "restartCount": 1, "image": "busybox:1.36", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            ),
        ),
        (
            "Pod",
            json!({"metadata": {"name": "done"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": "busybox:1.36"}]}}),
            Some(
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "job", "ready": false, "restartCount": 0, "image": "busybox:1.36", "imageID": "", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
        ),
        (
            "Pod",
            json!({"metadata": {"name": "initializing"}, "spec": {"initContainers": [{"name": "a", "image": "busybox:1.36"}, {"name": "b", "image": "busybox:1.36"}], "containers": [{"name": "main", "image": "busybox:1.36"}]}}),
            Some(json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 2, "image": "busybox:1.36", "imageID": "", "state": {"terminated": {"exitCode": 0}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "busybox:1.36", "imageID": "", "state": {"running": {}}}]})),
        ),
        (
            "Pod",
            json!({"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}),
            None,
        ),
        (
            "Service",
            json!({"metadata": {"name": "web", "labels": labels}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "protocol": "TCP"}]}}),
            None,
        ),
        (
            "Service",
            json!({"metadata": {"name": "balanced"}, "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.7"], "ports": [{"port": 8080, "protocol": "UDP"}]}}),
            Some(
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}),
            ),
        ),
        (
            "Service",
            json!({"metadata": {"name": "nodes"}, "spec": {"type": "NodePort", "ports": [{"port": 9000}]}}),
            None,
        ),
        (
            "Service",
            json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
            None,
        ),
        (
            "Service",
            json!({"metadata": {"name": "elsewhere"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            None,
        ),
        (
            "ConfigMap",
            json!({"metadata": {"name": "settings", "labels": labels}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}}),
            None,
        ),
        ("ConfigMap", json!({"metadata": {"name": "empty"}}), None),
        (
            "Secret",
            json!({"metadata": {"name": "credentials"}, "type": "kubernetes.io/basic-auth", "data": {"username": "YWRtaW4=", "password": "c2VjcmV0"}}),
            None,
        ),
        ("Secret", json!({"metadata": {"name": "opaque"}}), None),
        (
            "ServiceAccount",
            json!({"metadata": {"name": "builder"}, "secrets": [{"name": "builder-token"}]}),
            None,
        ),
        (
            "Endpoints",
            json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}, {"ip": "fd00::3"}], "ports": [{"name": "http", "port": 80}]},
            {"addresses": [{"ip": "10.1.0.4"}], "ports": [{"name": "x", "port": 81}]}]}),
            None,
        ),
        ("Endpoints", json!({"metadata": {"name": "none"}}), None),
        (
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "bound"}, "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Filesystem", "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}}),
            Some(
                json!({"phase": "Bound", "accessModes": ["ReadOnlyMany", "ReadWriteOnce"], "capacity": {"storage": "2Gi"}}),
            ),
        ),
        (
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "waiting", "annotations": {"volume.beta.kubernetes.io/storage-class": "old-style"}}, "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}}}}),
            None,
        ),
        (
            "ReplicationController",
            json!({"metadata": {"name": "legacy"}, "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template(&json!({"app": "legacy"}), json!([{"name": "main", "image": "busybox:1.36"}]))}}),
            Some(json!({"replicas": 2, "readyReplicas": 1})),
        ),
        (
            "Event",
            json!({"metadata": {"name": "running.1"}, "involvedObject": {"kind": "Pod", "name": "running", "fieldPath": "spec.containers{log}"}, "reason": "BackOff", "message": "Back-off restarting failed container  ", "type": "Warning", "count": 7,
            "source": {"component": "kubelet", "host": "node-a"}, "firstTimestamp": ago(30), "lastTimestamp": ago(2)}),
            None,
        ),
        (
            "Event",
            json!({"metadata": {"name": "cluster.2"}, "involvedObject": {"kind": "Node"}, "reason": "Starting", "message": "started", "type": "Normal", "eventTime": format!("{}.000000Z", &ago(3)[..19]), "reportingComponent": "kubelet", "reportingInstance": "node-a", "action": "Start"}),
            None,
        ),
        (
            "Deployment",
            json!({"metadata": {"name": "web", "labels": labels}, "spec": {"replicas": 3, "selector": selector, "template": template(&labels, two.clone())}}),
            Some(
                json!({"replicas": 3, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}),
            ),
        ),
        (
            "ReplicaSet",
            json!({"metadata": {"name": "web-5d8f"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template(&labels, two.clone())}}),
            Some(json!({"replicas": 2, "readyReplicas": 1})),
        ),
        (
            "StatefulSet",
            json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}}, "template": template(&json!({"app": "db"}), json!([{"name": "db", "image": "postgres:17"}]))}}),
            Some(json!({"replicas": 2, "readyReplicas": 1})),
        ),
        (
            "DaemonSet",
            json!({"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"nodeSelector": {"disk": "ssd", "arch": "amd64"}, "containers": [{"name": "agent", "image": "agent:1"}]}}}}),
            Some(
                json!({"desiredNumberScheduled": 4, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2, "numberMisscheduled": 0}),
            ),
        ),
        (
            "Job",
            json!({"metadata": {"name": "migrate"}, "spec": {"completions": 3, "parallelism": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "migrate:2"}]}}}}),
            Some(json!({"succeeded": 2, "startTime": ago(150), "completionTime": ago(3)})),
        ),
        (
            "Job",
            json!({"metadata": {"name": "workers"}, "spec": {"parallelism": 4, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "work:1"}]}}}}),
            Some(json!({"succeeded": 1, "startTime": ago(30)})),
        ),
        (
            "CronJob",
            json!({"metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "backup", "image": "backup:3"}]}}}}}}),
            Some(
                json!({"lastScheduleTime": ago(200), "active": [{"kind": "Job", "name": "nightly-1", "namespace": "x"}]}),
            ),
        ),
        (
            "Ingress",
            json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}], "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "d.example.com"}, {"host": "e.example.com"}]}}),
            Some(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}})),
        ),
        (
            "Ingress",
            json!({"metadata": {"name": "default"}, "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}),
            None,
        ),
        (
            "NetworkPolicy",
            json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}}),
            None,
        ),
        (
            "NetworkPolicy",
            json!({"metadata": {"name": "web"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}),
            None,
        ),
        (
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70}}),
            Some(
                json!({"currentReplicas": 3, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 55}),
            ),
        ),
        (
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "bare"}, "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}, "maxReplicas": 4}}),
            None,
        ),
    ]
}

/// Creates the objects in `ns` and sets their status.
async fn create_all(admin: &kube::Client, ns: &str) {
    // The custom resource's definition (the same in every run: applied, not created).
    let definitions: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    );
    let definition: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("a CustomResourceDefinition");
    definitions
        .patch(
            "widgets.example.com",
            &PatchParams::apply("outpost-test").force(),
            &Patch::Apply(&definition),
        )
        .await
        .expect("the Widget CRD is applied");
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        ns,
        &common::resource("example.com", "v1", "Widget"),
    );
    for _ in 0..60 {
        if widgets.list(&Default::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut uids = BTreeMap::new();
    for (kind_name, mut body, status) in objects() {
        let kind = KINDS
            .iter()
            .find(|k| k.kind == kind_name)
            .expect("a kind of the test");
        let api: Api<DynamicObject> = Api::namespaced_with(
            admin.clone(),
            ns,
            &common::resource(kind.group, kind.version, kind.kind),
        );
        body["apiVersion"] = json!(if kind.group.is_empty() {
            kind.version.to_string()
        } else {
            format!("{}/{}", kind.group, kind.version)
        });
        body["kind"] = json!(kind.kind);
        let name = body["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        if kind_name == "Event" {
            // An event is of an object in its namespace (kubectl describe finds it by uid).
            let involved = &mut body["involvedObject"];
            involved["namespace"] = json!(ns);
            let key = (
                involved["kind"].as_str().unwrap_or_default().to_string(),
                involved["name"].as_str().unwrap_or_default().to_string(),
            );
            if let Some(uid) = uids.get(&key) {
                involved["uid"] = json!(uid);
            }
        }
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(body).expect("an object"),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {kind_name} {name}: {e}"));
        uids.insert(
            (kind_name.to_string(), name.clone()),
            created.metadata.uid.unwrap_or_default(),
        );
        if let Some(status) = status {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap_or_else(|e| panic!("setting the status of {kind_name} {name}: {e}"));
        }
    }
}

/// Ships `ns` with the agent (in this process, until every object is in the bucket) and returns
/// the bucket and the cluster's name.
async fn ship(kubeconfig: &str, ns: &str) -> (Store, ClusterName, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a folder");
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    std::fs::create_dir_all(dir.path().join("bucket")).expect("the bucket's folder");
    let key_file = dir.path().join("redaction.key");
    std::fs::write(&key_file, [7u8; 32]).expect("the redaction key");
    let mut settings = AgentSettings {
        cluster: Some("tables".into()),
        bucket: Some(bucket.clone()),
        kubeconfig: Some(PathBuf::from(kubeconfig)),
        kinds: Some(
            KINDS
                .iter()
                .map(|k| k.kind)
                .chain(["Namespace"])
                .map(String::from)
                .collect(),
        ),
        namespaces: Some(vec![ns.to_string()]),
        interval: Some(config::MIN_INTERVAL),
        ..AgentSettings::default()
    };
    settings.redaction.key_file = Some(key_file);
    let args = AgentArgs {
        config: None,
        settings,
        decommission: false,
        sim: None,
        sim_changes_per_second: DEFAULT_SIM_CHANGES_PER_SECOND,
    };
    let config = config::resolve(&args, None).expect("a valid agent configuration");
    let store = Store::open(&bucket).await.expect("the bucket opens");
    let agent = outpost::agent::build(&config, store.clone())
        .await
        .expect("the agent builds");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    let cluster = ClusterName::new("tables").expect("a cluster name");
    // Every object, and the namespace itself.
    let wanted = objects().len() + 1;
    let mut shipped = 0;
    for _ in 0..120 {
        if let Some((_, objects)) = common::replay(&store, &cluster).await {
            shipped = objects.len();
            if shipped >= wanted {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(());
    running.await.expect("the agent stops");
    assert!(
        shipped >= wanted,
        "the agent shipped {shipped} of {wanted} objects"
    );
    (store, cluster, dir)
}

/// The `Table` `path` answers with (every row with its object's metadata).
async fn table(client: &kube::Client, path: &str) -> Value {
    let request = axum::http::Request::get(format!("{path}?includeObject=Metadata"))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .expect("a request");
    let text = client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("GET {path} as a Table: {e}"));
    serde_json::from_str(&text).expect("a Table")
}

/// Columns whose cells are times since now, which may differ by the seconds between two reads.
fn is_time(column: &str) -> bool {
    matches!(
        column,
        "Age" | "Last Seen" | "First Seen" | "Duration" | "Last Schedule"
    )
}

/// The seconds a duration as the API server prints it reads (`42s`, `3m19s`, `12m`), if it is
/// one of those forms.
fn seconds(text: &str) -> Option<i64> {
    let number = |n: &str| {
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse::<i64>().ok())
            .flatten()
    };
    if let Some(minutes) = text.strip_suffix('m') {
        return Some(number(minutes)? * 60);
    }
    let text = text.strip_suffix('s')?;
    match text.split_once('m') {
        Some((minutes, rest)) => Some(number(minutes)? * 60 + number(rest)?),
        None => number(text),
    }
}

/// Two readings of a time since now agree: equal, or a few seconds apart.
fn close(a: &str, b: &str) -> bool {
    a == b || matches!((seconds(a), seconds(b)), (Some(x), Some(y)) if (x - y).abs() <= 5)
}

/// Two readings of a Table cell agree, as [`close`] for the columns of times since now.
fn same_cell(column: &str, a: &Value, b: &Value) -> bool {
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) if is_time(column) => close(x, y),
        _ => a == b,
    }
}

/// The rows of a Table by object name: cells and conditions.
fn rows(table: &Value) -> BTreeMap<String, (Vec<Value>, Value)> {
    table["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["object"]["metadata"]["name"]
                    .as_str()
                    .expect("a row's object's name")
                    .to_string(),
                (
                    row["cells"].as_array().expect("cells").clone(),
                    row["conditions"].clone(),
                ),
            )
        })
        .collect()
}

/// kubectl's table output as words per line (a wider age shifts the columns).
fn words(output: &str) -> Vec<Vec<&str>> {
    output
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect()
}

/// Two kubectl outputs print the same table: the same words, ages a few seconds apart (the two
/// servers are read seconds apart).
fn same_table(a: &str, b: &str) -> bool {
    let (a, b) = (words(a), words(b));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(v, w)| close(v, w)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_kubectl_match_the_api_server() {
    let Some(kubeconfig) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let admin = common::kube_client(&kubeconfig).await;
    let ns = common::new_namespace(&admin, "tables").await;
    create_all(&admin, &ns).await;
    let (store, cluster, _bucket) = ship(&kubeconfig, &ns).await;

    let db = outpost::test_support::db::sqlite_database();
    let database = Database::connect(&db.url, None).await.expect("a database");
    Indexer {
        store,
        database,
        options: IndexOptions::default(),
    }
    .index_cluster(&cluster)
    .await
    .expect("indexed");
    let dir = tempfile::tempdir().expect("a folder");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("- {{name: test, token: {TOKEN}}}\n")).expect("tokens");
    let (cert, key) = common::certificate(dir.path());
    let tls = outpost::gateway::tls_config(&cert, &key).expect("a TLS configuration");
    // Served twice from the same tables: over HTTPS for kubectl, which sends a token only over
    // HTTPS, and over plain HTTP for this test's own client, whose TLS stack refuses a
    // self-signed certificate as its own CA.
    let mut servings = Vec::new();
    let mut addresses = Vec::new();
    for listener in [Listener::Tls(tls), Listener::Plain] {
        let reader = Database::connect_reader(&db.url).await.expect("a reader");
        let (address, running) = server::bind(
            "127.0.0.1:0".parse().expect("an address"),
            listener,
            Source::new(reader),
            Tokens::load(&tokens).expect("tokens"),
        )
        .await
        .expect("bound");
        addresses.push(address);
        servings.push(tokio::spawn(async move {
            running.await.expect("the gateway runs");
        }));
    }
    let address = addresses[0];
    let gateway_config = |name: &str, token: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: gw\n  cluster: {{server: \"https://{address}/clusters/tables\", certificate-authority: \"{}\"}}\nusers:\n- name: gw\n  user: {{token: {token}}}\ncontexts:\n- name: gw\n  context: {{cluster: gw, user: gw, namespace: {ns}}}\ncurrent-context: gw\n",
                cert.display()
            ),
        )
        .expect("a kubeconfig");
        path
    };
    let good = gateway_config("good", TOKEN);
    let bad = gateway_config("bad", "not-a-token-of-this-gateway-at-all");
    let gateway = {
        let url = format!("http://{}/clusters/tables", addresses[1])
            .parse()
            .expect("a URL");
        let mut config = kube::Config::new(url);
        config.auth_info.token = Some(TOKEN.to_string().into());
        kube::Client::try_from(config).expect("a client")
    };

    // The gateway's Tables are the API server's, kind by kind.
    for kind in KINDS {
        let path = kind.path(&ns);
        let (theirs, ours) = (table(&admin, &path).await, table(&gateway, &path).await);
        assert_eq!(
            ours["columnDefinitions"], theirs["columnDefinitions"],
            "the columns of {}",
            kind.kind
        );
        let columns: Vec<&str> = theirs["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default())
            .collect();
        let (their_rows, our_rows) = (rows(&theirs), rows(&ours));
        assert_eq!(
            our_rows.keys().collect::<Vec<_>>(),
            their_rows.keys().collect::<Vec<_>>(),
            "the {} rows",
            kind.kind
        );
        for (name, (their_cells, their_conditions)) in &their_rows {
            let (our_cells, our_conditions) = &our_rows[name];
            assert_eq!(our_cells.len(), columns.len(), "{} {name}", kind.kind);
            for (i, column) in columns.iter().enumerate() {
                let (a, b) = (&our_cells[i], &their_cells[i]);
                assert!(
                    same_cell(column, a, b),
                    "{} {name}, column {column}: the gateway prints {a}, the API server {b}\n gateway: {our_cells:?}\n apiserver: {their_cells:?}",
                    kind.kind
                );
            }
            assert_eq!(
                our_conditions, their_conditions,
                "{} {name}: row conditions",
                kind.kind
            );
        }
    }

    // Every kubectl prints the same tables from both, and reads the gateway as a cluster.
    let binaries = common::kubectls();
    assert!(
        !binaries.is_empty() || std::env::var_os("OUTPOST_TEST_REQUIRE_SERVERS").is_none(),
        "no kubectl found (scripts/test-kube sets OUTPOST_TEST_KUBECTL)"
    );
    let apiserver = PathBuf::from(&kubeconfig);
    for binary in &binaries {
        let context = binary.display().to_string();
        let run = |config: &Path, args: &[&str]| common::kubectl(binary, config, args);
        for kind in KINDS {
            let resource = if kind.group.is_empty() {
                kind.plural.to_string()
            } else {
                format!("{}.{}", kind.plural, kind.group)
            };
            for wide in [false, true] {
                let mut args = vec!["get", resource.as_str(), "-n", ns.as_str()];
                if wide {
                    args.extend(["-o", "wide"]);
                }
                let (ok, theirs, err) = run(&apiserver, &args);
                assert!(ok, "{context} {args:?} on the API server: {err}");
                let (ok, ours, err) = run(&good, &args);
                assert!(ok, "{context} {args:?} through the gateway: {err}");
                assert!(
                    same_table(&ours, &theirs),
                    "{context} {args:?}\ngateway:\n{ours}\nAPI server:\n{theirs}"
                );
            }
        }
        for args in [
            vec!["get", "namespace", ns.as_str()],
            vec!["get", "namespace", ns.as_str(), "-o", "wide"],
        ] {
            let (ok, theirs, err) = run(&apiserver, &args);
            assert!(ok, "{context} {args:?} on the API server: {err}");
            let (ok, ours, err) = run(&good, &args);
            assert!(ok, "{context} {args:?} through the gateway: {err}");
            assert!(
                same_table(&ours, &theirs),
                "{context} {args:?}\ngateway:\n{ours}\nAPI server:\n{theirs}"
            );
        }
        let (ok, out, err) = run(&good, &["get", "pods", "-A"]);
        assert!(
            ok && out.starts_with("NAMESPACE") && out.contains("running"),
            "{context}: {out}{err}"
        );
        let (ok, out, err) = run(&good, &["get", "pods", "-l", "app=web", "-o", "name"]);
        assert!(ok && out.trim() == "pod/running", "{context}: {out}{err}");
        let (ok, out, err) = run(
            &good,
            &["get", "pods", "--field-selector", "status.phase=Succeeded"],
        );
        assert!(
            ok && out.contains("done") && !out.contains("running"),
            "{context}: {out}{err}"
        );
        let (ok, out, err) = run(&good, &["get", "deployment", "web", "-o", "json"]);
        assert!(ok, "{context}: {err}");
        let object: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(object["spec"]["replicas"], 3, "{context}");
        let (ok, out, err) = run(&good, &["get", "configmap", "settings", "-o", "yaml"]);
        assert!(
            ok && out.contains("name: settings"),
            "{context}: {out}{err}"
        );
        let (ok, out, err) = run(&good, &["get", "service", "web"]);
        assert!(
            ok && out.contains("80/TCP,443/TCP"),
            "{context}: {out}{err}"
        );
        let (ok, out, err) = run(&good, &["api-resources"]);
        assert!(
            ok && out.contains("horizontalpodautoscalers"),
            "{context}: {out}{err}"
        );
        let (ok, out, err) = run(&good, &["api-versions"]);
        assert!(ok && out.contains("batch/v1beta1"), "{context}: {out}{err}");
        for (what, name) in [
            ("pod", "running"),
            ("deployment", "web"),
            ("service", "web"),
            ("configmap", "settings"),
            ("namespace", ns.as_str()),
        ] {
            let (ok, out, err) = run(&good, &["describe", what, name]);
            assert!(
                ok && out.contains("Name:") && out.contains(name),
                "{context} describe {what} {name}: {out}{err}"
            );
            if what != "namespace" {
                assert!(
                    out.contains("app=web"),
                    "{context} describe {what} {name} shows its labels: {out}"
                );
            }
        }
        let (ok, out, _) = run(&good, &["describe", "pod", "running"]);
        assert!(
            ok && out.contains("BackOff") && out.contains("Back-off restarting"),
            "{context}: describe shows the pod's events: {out}"
        );
        let (ok, _, err) = run(&good, &["delete", "configmap", "settings"]);
        assert!(!ok && err.contains("read-only"), "{context}: {err}");
        let (ok, _, err) = run(&good, &["label", "configmap", "settings", "x=y"]);
        assert!(!ok && err.contains("read-only"), "{context}: {err}");
        let (ok, _, err) = run(&bad, &["get", "pods"]);
        assert!(
            !ok && err.to_lowercase().contains("unauthorized"),
            "{context}: {err}"
        );
    }
    for serving in servings {
        serving.abort();
    }
    let namespaces: Api<DynamicObject> =
        Api::all_with(admin.clone(), &common::resource("", "v1", "Namespace"));
    let _ = namespaces.delete(&ns, &Default::default()).await;
}
