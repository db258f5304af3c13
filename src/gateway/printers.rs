//! The columns and cells `kubectl get` prints for the common kinds (pure, no I/O), as the
//! kube-apiserver's own server-side printers compute them for a `Table`, from an object's JSON.
//!
//! The API server always prints the wide form (kubectl hides the priority-1 columns unless
//! `-o wide`), so every row here carries every column. The column definitions are the API server's
//! own (v1.20, the server the tests compare against, descriptions included); a cell that cannot
//! be computed from a messy object falls back to what the API server prints for an unset field
//! (`<none>`, `<unknown>`, `0`), never a panic.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A column of a `Table`, as `meta.k8s.io/v1` `TableColumnDefinition` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// The OpenAPI type (`string`, `integer`, `boolean`, `date`).
    pub kind: &'static str,
    pub format: &'static str,
    /// 0: always printed; 1: only by `kubectl get -o wide`.
    pub priority: u8,
    pub description: &'static str,
}

impl Column {
    /// The column as the `Table`'s `columnDefinitions` lists it.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

// Columns several kinds print alike, defined once.
const NAME_COLUMN: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: http://kubernetes.io/docs/user-guide/identifiers#names",
};

const AGE_COLUMN: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
};

const CONTAINERS_COLUMN: Column = Column {
    name: "Containers",
    kind: "string",
    format: "",
    priority: 1,
    description: "Names of each container in the template.",
};

const IMAGES_COLUMN: Column = Column {
    name: "Images",
    kind: "string",
    format: "",
    priority: 1,
    description: "Images referenced by each container in the template.",
};

const READY_COLUMN: Column = Column {
    name: "Ready",
    kind: "string",
    format: "",
    priority: 0,
    description: "Number of the pod with ready state",
};

const SELECTOR_COLUMN: Column = Column {
    name: "Selector",
    kind: "string",
    format: "",
    priority: 1,
    description: "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
};

/// The columns of a kind without a printer of its own (custom resources, and kinds not printed
/// here): the name and the age, as the API server prints a custom resource whose definition has
/// no printer columns (the age a `date` column, its cell already the time since creation).
pub const DEFAULT: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Age",
        kind: "date",
        format: "",
        priority: 0,
        description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    },
];

/// A kind the API server has a printer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printed {
    Pod,
    Service,
    ConfigMap,
    Secret,
    Namespace,
    Node,
    Event,
    PersistentVolumeClaim,
    ServiceAccount,
    Endpoints,
    ReplicationController,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Ingress,
    NetworkPolicy,
    HorizontalPodAutoscaler,
}

impl Printed {
    /// The printer of `kind` in API group `group`, if the API server has one.
    fn of(group: &str, kind: &str) -> Option<Self> {
        use Printed::*;
        Some(match (group, kind) {
            ("", "Pod") => Pod,
            ("", "Service") => Service,
            ("", "ConfigMap") => ConfigMap,
            ("", "Secret") => Secret,
            ("", "Namespace") => Namespace,
            ("", "Node") => Node,
            ("" | "events.k8s.io", "Event") => Event,
            ("", "PersistentVolumeClaim") => PersistentVolumeClaim,
            ("", "ServiceAccount") => ServiceAccount,
            ("", "Endpoints") => Endpoints,
            ("", "ReplicationController") => ReplicationController,
            ("apps" | "extensions", "Deployment") => Deployment,
            ("apps" | "extensions", "ReplicaSet") => ReplicaSet,
            ("apps", "StatefulSet") => StatefulSet,
            ("apps" | "extensions", "DaemonSet") => DaemonSet,
            ("batch", "Job") => Job,
            ("batch", "CronJob") => CronJob,
            ("networking.k8s.io" | "extensions", "Ingress") => Ingress,
            ("networking.k8s.io" | "extensions", "NetworkPolicy") => NetworkPolicy,
            ("autoscaling", "HorizontalPodAutoscaler") => HorizontalPodAutoscaler,
            _ => return None,
        })
    }

    fn columns(self) -> &'static [Column] {
        use Printed::*;
        match self {
            Pod => POD,
            Service => SERVICE,
            ConfigMap => CONFIG_MAP,
            Secret => SECRET,
            Namespace => NAMESPACE,
            Node => NODE,
            Event => EVENT,
            PersistentVolumeClaim => PERSISTENT_VOLUME_CLAIM,
            ServiceAccount => SERVICE_ACCOUNT,
            Endpoints => ENDPOINTS,
            ReplicationController => REPLICATION_CONTROLLER,
            Deployment => DEPLOYMENT,
            ReplicaSet => REPLICA_SET,
            StatefulSet => STATEFUL_SET,
            DaemonSet => DAEMON_SET,
            Job => JOB,
            CronJob => CRON_JOB,
            Ingress => INGRESS,
            NetworkPolicy => NETWORK_POLICY,
            HorizontalPodAutoscaler => HORIZONTAL_POD_AUTOSCALER,
        }
    }
}

/// The columns the API server prints for `kind` of `group`.
pub fn columns(group: &str, kind: &str) -> &'static [Column] {
    Printed::of(group, kind).map_or(DEFAULT, Printed::columns)
}

/// One row of a `Table`: its cells, one per column of [`columns`], and its conditions (pods that
/// have completed carry one, which kubectl reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<Value>,
    pub conditions: Option<Value>,
}

/// The row the API server prints for `object` of `kind` in `group`, at time `now`.
pub fn row(group: &str, kind: &str, object: &Value, now: DateTime<Utc>) -> Row {
    let cells = |cells: Vec<Value>| Row {
        cells,
        conditions: None,
    };
    let o = Object { value: object, now };
    let Some(printed) = Printed::of(group, kind) else {
        return cells(vec![o.name(), o.age()]);
    };
    use Printed::*;
    match printed {
        Pod => pod(&o),
        Service => cells(service(&o)),
        ConfigMap => cells(vec![
            o.name(),
            json!(o.len("/data") + o.len("/binaryData")),
            o.age(),
        ]),
        Secret => cells(vec![
            o.name(),
            json!(o.str("/type")),
            json!(o.len("/data")),
            o.age(),
        ]),
        Namespace => cells(vec![o.name(), json!(o.str("/status/phase")), o.age()]),
        Node => cells(node(&o)),
        Event => cells(event(&o)),
        PersistentVolumeClaim => cells(persistent_volume_claim(&o)),
        ServiceAccount => cells(vec![o.name(), json!(o.len("/secrets")), o.age()]),
        Endpoints => cells(vec![o.name(), json!(endpoints(&o)), o.age()]),
        ReplicationController => {
            let (names, images) = containers(o.at("/spec/template/spec/containers"));
            cells(vec![
                o.name(),
                json!(o.int_or("/spec/replicas", 1)),
                json!(o.int("/status/replicas")),
                json!(o.int("/status/readyReplicas")),
                o.age(),
                json!(names),
                json!(images),
                json!(format_labels(o.at("/spec/selector"))),
            ])
        }
        Deployment => {
            let (names, images) = containers(o.at("/spec/template/spec/containers"));
            cells(vec![
                o.name(),
                json!(format!(
                    "{}/{}",
                    o.int("/status/readyReplicas"),
                    o.int_or("/spec/replicas", 1)
                )),
                json!(o.int("/status/updatedReplicas")),
                json!(o.int("/status/availableReplicas")),
                o.age(),
                json!(names),
                json!(images),
                json!(label_selector(o.at("/spec/selector")).unwrap_or_else(|| "<invalid>".into())),
            ])
        }
        ReplicaSet => {
            let (names, images) = containers(o.at("/spec/template/spec/containers"));
            cells(vec![
                o.name(),
                json!(o.int_or("/spec/replicas", 1)),
                json!(o.int("/status/replicas")),
                json!(o.int("/status/readyReplicas")),
                o.age(),
                json!(names),
                json!(images),
                json!(format_label_selector(o.at("/spec/selector"))),
            ])
        }
        StatefulSet => {
            let (names, images) = containers(o.at("/spec/template/spec/containers"));
            cells(vec![
                o.name(),
                json!(format!(
                    "{}/{}",
                    o.int("/status/readyReplicas"),
                    o.int_or("/spec/replicas", 1)
                )),
                o.age(),
                json!(names),
                json!(images),
            ])
        }
        DaemonSet => {
            let (names, images) = containers(o.at("/spec/template/spec/containers"));
            cells(vec![
                o.name(),
                json!(o.int("/status/desiredNumberScheduled")),
                json!(o.int("/status/currentNumberScheduled")),
                json!(o.int("/status/numberReady")),
                json!(o.int("/status/updatedNumberScheduled")),
                json!(o.int("/status/numberAvailable")),
                json!(format_labels(o.at("/spec/template/spec/nodeSelector"))),
                o.age(),
                json!(names),
                json!(images),
                json!(format_label_selector(o.at("/spec/selector"))),
            ])
        }
        Job => cells(job(&o)),
        CronJob => {
            let (names, images) =
                containers(o.at("/spec/jobTemplate/spec/template/spec/containers"));
            let last = match o.time("/status/lastScheduleTime") {
                Some(t) => human_duration(now - t),
                None => "<none>".into(),
            };
            let suspend = match o.at("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            };
            cells(vec![
                o.name(),
                json!(o.str("/spec/schedule")),
                json!(suspend),
                json!(o.len("/status/active")),
                json!(last),
                o.age(),
                json!(names),
                json!(images),
                json!(format_label_selector(
                    o.at("/spec/jobTemplate/spec/selector")
                )),
            ])
        }
        Ingress => cells(ingress(&o)),
        NetworkPolicy => cells(vec![
            o.name(),
            // The pod selector is not a pointer: unset, it selects every pod.
            json!(format_label_selector(Some(
                o.at("/spec/podSelector").unwrap_or(&json!({}))
            ))),
            o.age(),
        ]),
        HorizontalPodAutoscaler => cells(horizontal_pod_autoscaler(&o)),
    }
}

/// An object being printed, and the time it is printed at.
struct Object<'a> {
    value: &'a Value,
    now: DateTime<Utc>,
}

impl Object<'_> {
    fn at(&self, pointer: &str) -> Option<&Value> {
        self.value.pointer(pointer).filter(|v| !v.is_null())
    }

    /// A string field; unset (or not a string) reads as the empty string, as Go's zero value.
    fn str(&self, pointer: &str) -> &str {
        self.at(pointer).and_then(Value::as_str).unwrap_or_default()
    }

    /// An integer field; unset reads as 0.
    fn int(&self, pointer: &str) -> i64 {
        self.int_or(pointer, 0)
    }

    /// An integer field, or what the API server defaults it to when unset.
    fn int_or(&self, pointer: &str, default: i64) -> i64 {
        self.at(pointer).and_then(Value::as_i64).unwrap_or(default)
    }

    /// How many members an array or map field has.
    fn len(&self, pointer: &str) -> usize {
        match self.at(pointer) {
            Some(Value::Array(items)) => items.len(),
            Some(Value::Object(map)) => map.len(),
            _ => 0,
        }
    }

    fn items(&self, pointer: &str) -> &[Value] {
        self.at(pointer)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn time(&self, pointer: &str) -> Option<DateTime<Utc>> {
        parse_time(self.at(pointer))
    }

    fn name(&self) -> Value {
        json!(self.str("/metadata/name"))
    }

    /// The age cell: `<unknown>` for an object without a creation time.
    fn age(&self) -> Value {
        json!(since(self.time("/metadata/creationTimestamp"), self.now))
    }
}

fn parse_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    value
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The time since `time` as the API server prints an age; `<unknown>` when there is none.
pub fn since(time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match time {
        Some(time) => human_duration(now - time),
        None => "<unknown>".into(),
    }
}

/// A duration as the API server's printers write it (apimachinery's `HumanDuration`): `42s`,
/// `5m30s`, `45m`, `2h15m`, `12h`, `3d4h`, `30d`, `2y100d`, `9y`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The containers' names and images, comma-separated.
fn containers(list: Option<&Value>) -> (String, String) {
    let list = list
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let field = |f: &str| {
        list.iter()
            .map(|c| c[f].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

/// A map of labels as `k=v,…` sorted by key; `<none>` when empty (apimachinery's `FormatLabels`).
fn format_labels(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// A `LabelSelector` written as a selector string, requirements sorted by key (`a=b,c in (d,e)`);
/// empty for a selector that selects everything or is unset; `None` when it is invalid.
fn label_selector(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key.clone(), format!("{key}={}", value.as_str()?)));
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = expression.get("key").and_then(Value::as_str)?;
        let mut values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        values.sort_unstable();
        values.dedup();
        let text = match expression.get("operator").and_then(Value::as_str)? {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), text));
    }
    // A stable sort by key: requirements of one key keep their order, as the API server's do.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A `LabelSelector` as `kubectl` prints it in a column: `<none>` when it selects everything,
/// `<error>` when it is invalid (apimachinery's `FormatLabelSelector`).
fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector(selector) {
        None => "<error>".into(),
        Some(text) if text.is_empty() => "<none>".into(),
        Some(text) => text,
    }
}

fn pod(o: &Object) -> Row {
    let phase = o.str("/status/phase");
    let mut reason = match o.str("/status/reason") {
        "" => phase.to_string(),
        reason => reason.to_string(),
    };
    let conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let mut restarts = 0;
    let mut ready = 0;
    let mut initializing = false;
    let init_containers = o.len("/spec/initContainers");
    for (i, status) in o.items("/status/initContainerStatuses").iter().enumerate() {
        restarts += status["restartCount"].as_i64().unwrap_or(0);
        let terminated = status["state"].get("terminated").filter(|t| !t.is_null());
        let waiting_reason = status["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or_default();
        match terminated {
            Some(t) if t["exitCode"].as_i64().unwrap_or(0) == 0 => continue,
            Some(t) => {
                reason = match t["reason"].as_str().unwrap_or_default() {
                    "" => match t["signal"].as_i64().unwrap_or(0) {
                        0 => format!("Init:ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
                        signal => format!("Init:Signal:{signal}"),
                    },
                    r => format!("Init:{r}"),
                };
            }
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                reason = format!("Init:{waiting_reason}");
            }
            None => reason = format!("Init:{i}/{init_containers}"),
        }
        initializing = true;
        break;
    }
    if !initializing {
        restarts = 0;
        let mut running = false;
        for status in o.items("/status/containerStatuses").iter().rev() {
            restarts += status["restartCount"].as_i64().unwrap_or(0);
            let state = &status["state"];
            let waiting = state["waiting"]["reason"].as_str().unwrap_or_default();
            let terminated = state.get("terminated").filter(|t| !t.is_null());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match t["reason"].as_str().unwrap_or_default() {
                    "" => match t["signal"].as_i64().unwrap_or(0) {
                        0 => format!("ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
                        signal => format!("Signal:{signal}"),
                    },
                    r => r.to_string(),
                };
            } else if status["ready"].as_bool() == Some(true)
                && state.get("running").is_some_and(|r| !r.is_null())
            {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            let pod_ready = o.items("/status/conditions").iter().any(|c| {
                c["type"].as_str() == Some("Ready") && c["status"].as_str() == Some("True")
            });
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if o.at("/metadata/deletionTimestamp").is_some() {
        reason = if o.str("/status/reason") == "NodeLost" {
            "Unknown"
        } else {
            "Terminating"
        }
        .into();
    }
    let none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    // The API server converts a pod that sets only the older `podIP` into one `podIPs` entry
    // before printing, so that is the fallback.
    let ip = o
        .items("/status/podIPs")
        .first()
        .and_then(|p| p["ip"].as_str())
        .unwrap_or_else(|| o.str("/status/podIP"));
    let gates = o.items("/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = o.items("/status/conditions");
        let met = gates
            .iter()
            .filter(|gate| {
                conditions
                    .iter()
                    .find(|c| c["type"] == gate["conditionType"])
                    .is_some_and(|c| c["status"].as_str() == Some("True"))
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    Row {
        cells: vec![
            o.name(),
            json!(format!("{ready}/{}", o.len("/spec/containers"))),
            json!(reason),
            json!(restarts),
            o.age(),
            json!(none(ip)),
            json!(none(o.str("/spec/nodeName"))),
            json!(none(o.str("/status/nominatedNodeName"))),
            json!(readiness_gates),
        ],
        conditions,
    }
}

/// The load balancer's addresses, sorted and without repeats (an IP, else a hostname each).
fn load_balancer(o: &Object, pointer: &str) -> String {
    let mut addresses: Vec<&str> = o
        .items(pointer)
        .iter()
        .filter_map(|i| {
            [i["ip"].as_str(), i["hostname"].as_str()]
                .into_iter()
                .flatten()
                .find(|a| !a.is_empty())
        })
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    addresses.join(",")
}

fn service(o: &Object) -> Vec<Value> {
    let kind = o.str("/spec/type");
    let cluster_ip = o
        .items("/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| o.str("/spec/clusterIP"));
    let cluster_ip = if cluster_ip.is_empty() {
        "<none>"
    } else {
        cluster_ip
    };
    let external: Vec<&str> = o
        .items("/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match kind {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let balancer = load_balancer(o, "/status/loadBalancer/ingress");
            let mut all: Vec<&str> = balancer.split(',').filter(|a| !a.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => o.str("/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = o
        .items("/spec/ports")
        .iter()
        .map(|p| {
            let port = p["port"].as_i64().unwrap_or(0);
            let protocol = p["protocol"].as_str().unwrap_or_default();
            match p["nodePort"].as_i64().unwrap_or(0) {
                0 => format!("{port}/{protocol}"),
                node => format!("{port}:{node}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        o.name(),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip),
        json!(ports),
        o.age(),
        json!(format_labels(o.at("/spec/selector"))),
    ]
}

fn node(o: &Object) -> Vec<Value> {
    let mut status: Vec<String> = o
        .items("/status/conditions")
        .iter()
        .rfind(|c| c["type"].as_str() == Some("Ready"))
        .map(|c| {
            if c["status"].as_str() == Some("True") {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            }
        })
        .into_iter()
        .collect();
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if o.at("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<&str> = o
        .at("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role),
                    Some(_) => None,
                    None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()),
                    None => None,
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let address = |kind: &str| {
        o.items("/status/addresses")
            .iter()
            .find(|a| a["type"].as_str() == Some(kind))
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |field: &str| match o.str(&format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        value => value.to_string(),
    };
    vec![
        o.name(),
        json!(status.join(",")),
        json!(roles),
        o.age(),
        json!(o.str("/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn event(o: &Object) -> Vec<Value> {
    let first = match o.time("/firstTimestamp") {
        Some(t) => human_duration(o.now - t),
        None => since(o.time("/eventTime"), o.now),
    };
    let mut last = match o.time("/lastTimestamp") {
        Some(t) => human_duration(o.now - t),
        None => first.clone(),
    };
    let mut count = o.int("/count");
    if o.at("/series").is_some() {
        last = since(o.time("/series/lastObservedTime"), o.now);
        count = o.int("/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = o.str("/involvedObject/kind").to_lowercase();
    let target = match o.str("/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    // The reporting controller and instance stand in for an unset source (events.k8s.io).
    let first_set = |a: &'static str, b: &'static str| match o.str(a) {
        "" => o.str(b),
        value => value,
    };
    let component = first_set("/source/component", "/reportingComponent");
    let source = match first_set("/source/host", "/reportingInstance") {
        "" => component.to_string(),
        host => format!("{component}, {host}"),
    };
    vec![
        json!(last),
        json!(o.str("/type")),
        json!(o.str("/reason")),
        json!(target),
        json!(o.str("/involvedObject/fieldPath")),
        json!(source),
        json!(o.str("/message").trim()),
        json!(first),
        json!(count),
        o.name(),
    ]
}

fn persistent_volume_claim(o: &Object) -> Vec<Value> {
    let phase = if o.at("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        o.str("/status/phase")
    };
    let (mut capacity, mut modes) = (String::new(), String::new());
    if !o.str("/spec/volumeName").is_empty() {
        let have: Vec<&str> = o
            .items("/status/accessModes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        modes = [
            ("ReadWriteOnce", "RWO"),
            ("ReadOnlyMany", "ROX"),
            ("ReadWriteMany", "RWX"),
        ]
        .iter()
        .filter(|(mode, _)| have.contains(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",");
        // An unset quantity prints as Go's zero quantity.
        capacity = match o.str("/status/capacity/storage") {
            "" => "0".into(),
            quantity => quantity.into(),
        };
    }
    let class = o
        .at("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .unwrap_or_else(|| o.str("/spec/storageClassName"));
    let volume_mode = match o.str("/spec/volumeMode") {
        "" => "<unset>",
        mode => mode,
    };
    vec![
        o.name(),
        json!(phase),
        json!(o.str("/spec/volumeName")),
        json!(capacity),
        json!(modes),
        json!(class),
        o.age(),
        json!(volume_mode),
    ]
}

/// `address:port` for each address of each port (the address alone where a subset has no
/// ports), the first three and how many more.
fn endpoints(o: &Object) -> String {
    let subsets = o.items("/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for subset in subsets {
        let addresses = subset["addresses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let ip = |a: &Value| a["ip"].as_str().unwrap_or_default().to_string();
        match subset["ports"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            [] => all.extend(addresses.iter().map(ip)),
            ports => {
                for port in ports {
                    let number = port["port"].as_i64().unwrap_or(0);
                    for address in addresses {
                        let ip = ip(address);
                        all.push(if ip.contains(':') {
                            format!("[{ip}]:{number}")
                        } else {
                            format!("{ip}:{number}")
                        });
                    }
                }
            }
        }
    }
    more(&all, 3, ",")
}

/// The first `max` of `items` joined by `separator`, and `+ N more...` for the rest.
fn more(items: &[String], max: usize, separator: &str) -> String {
    let shown = items[..items.len().min(max)].join(separator);
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else {
        shown
    }
}

fn job(o: &Object) -> Vec<Value> {
    let succeeded = o.int("/status/succeeded");
    let completions = match o.at("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match o.int("/spec/parallelism") {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        o.time("/status/startTime"),
        o.time("/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(o.now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let (names, images) = containers(o.at("/spec/template/spec/containers"));
    vec![
        o.name(),
        json!(completions),
        json!(duration),
        o.age(),
        json!(names),
        json!(images),
        json!(format_label_selector(o.at("/spec/selector"))),
    ]
}

fn ingress(o: &Object) -> Vec<Value> {
    let class = o
        .at("/spec/ingressClassName")
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let rules = o.items("/spec/rules");
    // The first three hosts; once three are listed, `+ N more` counts the rules (with or
    // without a host) past the third.
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == 3 {
            more = true;
        }
        if let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty() && !more) {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!(
            "{} + {} more...",
            hosts.join(","),
            rules.len().saturating_sub(3)
        )
    } else {
        hosts.join(",")
    };
    let ports = if o.len("/spec/tls") > 0 {
        "80, 443"
    } else {
        "80"
    };
    vec![
        o.name(),
        json!(class),
        json!(hosts),
        json!(load_balancer(o, "/status/loadBalancer/ingress")),
        json!(ports),
        o.age(),
    ]
}

fn horizontal_pod_autoscaler(o: &Object) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        o.str("/spec/scaleTargetRef/kind"),
        o.str("/spec/scaleTargetRef/name")
    );
    let min = match o.at("/spec/minReplicas").and_then(Value::as_i64) {
        Some(min) => min.to_string(),
        None => "<unset>".into(),
    };
    vec![
        o.name(),
        json!(reference),
        json!(hpa_targets(o)),
        json!(min),
        json!(o.int("/spec/maxReplicas")),
        json!(o.int("/status/currentReplicas")),
        o.age(),
    ]
}

/// The HPA's targets: `autoscaling/v1`'s CPU utilisation (`current%/target%`) or, for later
/// versions, each resource metric's current value against its target, the first two and how
/// many more.
fn hpa_targets(o: &Object) -> String {
    if let Some(metrics) = o.at("/spec/metrics").and_then(Value::as_array) {
        if metrics.is_empty() {
            return "<none>".into();
        }
        let statuses = o.items("/status/currentMetrics");
        let listed: Vec<String> = metrics
            .iter()
            .enumerate()
            .map(|(i, metric)| {
                if metric["type"].as_str() != Some("Resource") {
                    return "<unknown type>".into();
                }
                let target = &metric["resource"]["target"];
                let current = statuses
                    .get(i)
                    .map(|s| &s["resource"]["current"])
                    .filter(|c| !c.is_null());
                if let Some(value) = target["averageValue"].as_str() {
                    let now = current
                        .and_then(|c| c["averageValue"].as_str())
                        .unwrap_or("<unknown>");
                    format!("{now}/{value}")
                } else {
                    let now = current
                        .and_then(|c| c["averageUtilization"].as_i64())
                        .map_or("<unknown>".into(), |u| format!("{u}%"));
                    let goal = target["averageUtilization"]
                        .as_i64()
                        .map_or("<auto>".into(), |u| format!("{u}%"));
                    format!("{now}/{goal}")
                }
            })
            .collect();
        return more(&listed, 2, ", ");
    }
    match o
        .at("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        Some(target) => {
            let current = o
                .at("/status/currentCPUUtilizationPercentage")
                .and_then(Value::as_i64)
                .map_or("<unknown>".into(), |u| format!("{u}%"));
            format!("{current}/{target}%")
        }
        None => "<none>".into(),
    }
}

const POD: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Ready",
        kind: "string",
        format: "",
        priority: 0,
        description: "The aggregate readiness state of this pod for accepting traffic.",
    },
    Column {
        name: "Status",
        kind: "string",
        format: "",
        priority: 0,
        description: "The aggregate status of the containers in this pod.",
    },
    Column {
        name: "Restarts",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The number of times the containers in this pod have been restarted.",
    },
    AGE_COLUMN,
    Column {
        name: "IP",
        kind: "string",
        format: "",
        priority: 1,
        description: "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    },
    Column {
        name: "Node",
        kind: "string",
        format: "",
        priority: 1,
        description: "NodeName is a request to schedule this pod onto a specific node. If it is non-empty, the scheduler simply schedules this pod onto that node, assuming that it fits resource requirements.",
    },
    Column {
        name: "Nominated Node",
        kind: "string",
        format: "",
        priority: 1,
        description: "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
    },
    Column {
        name: "Readiness Gates",
        kind: "string",
        format: "",
        priority: 1,
        description: "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/0007-pod-ready%2B%2B.md",
    },
];
const SERVICE: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Type",
        kind: "string",
        format: "",
        priority: 0,
        description: "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
    },
    Column {
        name: "Cluster-IP",
        kind: "string",
        format: "",
        priority: 0,
        description: "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    },
    Column {
        name: "External-IP",
        kind: "string",
        format: "",
        priority: 0,
        description: "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
    },
    Column {
        name: "Port(s)",
        kind: "string",
        format: "",
        priority: 0,
        description: "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    },
    AGE_COLUMN,
    Column {
        name: "Selector",
        kind: "string",
        format: "",
        priority: 1,
        description: "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
    },
];
const CONFIG_MAP: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Data",
        kind: "string",
        format: "",
        priority: 0,
        description: "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
    },
    AGE_COLUMN,
];
const SECRET: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Type",
        kind: "string",
        format: "",
        priority: 0,
        description: "Used to facilitate programmatic handling of secret data.",
    },
    Column {
        name: "Data",
        kind: "string",
        format: "",
        priority: 0,
        description: "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
    },
    AGE_COLUMN,
];
const NAMESPACE: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Status",
        kind: "string",
        format: "",
        priority: 0,
        description: "The status of the namespace",
    },
    AGE_COLUMN,
];
const NODE: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Status",
        kind: "string",
        format: "",
        priority: 0,
        description: "The status of the node",
    },
    Column {
        name: "Roles",
        kind: "string",
        format: "",
        priority: 0,
        description: "The roles of the node",
    },
    AGE_COLUMN,
    Column {
        name: "Version",
        kind: "string",
        format: "",
        priority: 0,
        description: "Kubelet Version reported by the node.",
    },
    Column {
        name: "Internal-IP",
        kind: "string",
        format: "",
        priority: 1,
        description: "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/concepts/nodes/node/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See http://pr.k8s.io/79391 for an example.",
    },
    Column {
        name: "External-IP",
        kind: "string",
        format: "",
        priority: 1,
        description: "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/concepts/nodes/node/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See http://pr.k8s.io/79391 for an example.",
    },
    Column {
        name: "OS-Image",
        kind: "string",
        format: "",
        priority: 1,
        description: "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    },
    Column {
        name: "Kernel-Version",
        kind: "string",
        format: "",
        priority: 1,
        description: "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    },
    Column {
        name: "Container-Runtime",
        kind: "string",
        format: "",
        priority: 1,
        description: "ContainerRuntime Version reported by the node through runtime remote API (e.g. docker://1.5.0).",
    },
];
const EVENT: &[Column] = &[
    Column {
        name: "Last Seen",
        kind: "string",
        format: "",
        priority: 0,
        description: "The time at which the most recent occurrence of this event was recorded.",
    },
    Column {
        name: "Type",
        kind: "string",
        format: "",
        priority: 0,
        description: "Type of this event (Normal, Warning), new types could be added in the future",
    },
    Column {
        name: "Reason",
        kind: "string",
        format: "",
        priority: 0,
        description: "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    },
    Column {
        name: "Object",
        kind: "string",
        format: "",
        priority: 0,
        description: "The object that this event is about.",
    },
    Column {
        name: "Subobject",
        kind: "string",
        format: "",
        priority: 1,
        description: "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
    },
    Column {
        name: "Source",
        kind: "string",
        format: "",
        priority: 1,
        description: "The component reporting this event. Should be a short machine understandable string.",
    },
    Column {
        name: "Message",
        kind: "string",
        format: "",
        priority: 0,
        description: "A human-readable description of the status of this operation.",
    },
    Column {
        name: "First Seen",
        kind: "string",
        format: "",
        priority: 1,
        description: "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    },
    Column {
        name: "Count",
        kind: "string",
        format: "",
        priority: 1,
        description: "The number of times this event has occurred.",
    },
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        priority: 1,
        description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: http://kubernetes.io/docs/user-guide/identifiers#names",
    },
];
const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Status",
        kind: "string",
        format: "",
        priority: 0,
        description: "Phase represents the current phase of PersistentVolumeClaim.",
    },
    Column {
        name: "Volume",
        kind: "string",
        format: "",
        priority: 0,
        description: "VolumeName is the binding reference to the PersistentVolume backing this claim.",
    },
    Column {
        name: "Capacity",
        kind: "string",
        format: "",
        priority: 0,
        description: "Represents the actual resources of the underlying volume.",
    },
    Column {
        name: "Access Modes",
        kind: "string",
        format: "",
        priority: 0,
        description: "AccessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
    },
    Column {
        name: "StorageClass",
        kind: "string",
        format: "",
        priority: 0,
        description: "StorageClass of the pvc",
    },
    AGE_COLUMN,
    Column {
        name: "VolumeMode",
        kind: "string",
        format: "",
        priority: 1,
        description: "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
    },
];
const SERVICE_ACCOUNT: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Secrets",
        kind: "string",
        format: "",
        priority: 0,
        description: "Secrets is the list of secrets allowed to be used by pods running using this ServiceAccount. More info: https://kubernetes.io/docs/concepts/configuration/secret",
    },
    AGE_COLUMN,
];
const ENDPOINTS: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Endpoints",
        kind: "string",
        format: "",
        priority: 0,
        description: "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
    },
    AGE_COLUMN,
];
const REPLICATION_CONTROLLER: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Desired",
        kind: "integer",
        format: "",
        priority: 0,
        description: "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
    },
    Column {
        name: "Current",
        kind: "integer",
        format: "",
        priority: 0,
        description: "Replicas is the most recently oberved number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
    },
    Column {
        name: "Ready",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The number of ready replicas for this replication controller.",
    },
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    Column {
        name: "Selector",
        kind: "string",
        format: "",
        priority: 1,
        description: "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    },
];
const DEPLOYMENT: &[Column] = &[
    NAME_COLUMN,
    READY_COLUMN,
    Column {
        name: "Up-to-date",
        kind: "string",
        format: "",
        priority: 0,
        description: "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    },
    Column {
        name: "Available",
        kind: "string",
        format: "",
        priority: 0,
        description: "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    },
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    Column {
        name: "Selector",
        kind: "string",
        format: "",
        priority: 1,
        description: "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    },
];
const REPLICA_SET: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Desired",
        kind: "integer",
        format: "",
        priority: 0,
        description: "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    },
    Column {
        name: "Current",
        kind: "integer",
        format: "",
        priority: 0,
        description: "Replicas is the most recently oberved number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
    },
    Column {
        name: "Ready",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The number of ready replicas for this replica set.",
    },
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    Column {
        name: "Selector",
        kind: "string",
        format: "",
        priority: 1,
        description: "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    },
];
const STATEFUL_SET: &[Column] = &[
    NAME_COLUMN,
    READY_COLUMN,
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
];
const DAEMON_SET: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Desired",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    },
    Column {
        name: "Current",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    },
    Column {
        name: "Ready",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    },
    Column {
        name: "Up-to-date",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The total number of nodes that are running updated daemon pod",
    },
    Column {
        name: "Available",
        kind: "integer",
        format: "",
        priority: 0,
        description: "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    },
    Column {
        name: "Node Selector",
        kind: "string",
        format: "",
        priority: 0,
        description: "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
    },
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    Column {
        name: "Selector",
        kind: "string",
        format: "",
        priority: 1,
        description: "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    },
];
const JOB: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Completions",
        kind: "string",
        format: "",
        priority: 0,
        description: "The number of pods which reached phase Succeeded.",
    },
    Column {
        name: "Duration",
        kind: "string",
        format: "",
        priority: 0,
        description: "Time required to complete the job.",
    },
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];
const CRON_JOB: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Schedule",
        kind: "string",
        format: "",
        priority: 0,
        description: "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    },
    Column {
        name: "Suspend",
        kind: "boolean",
        format: "",
        priority: 0,
        description: "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
    },
    Column {
        name: "Active",
        kind: "integer",
        format: "",
        priority: 0,
        description: "A list of pointers to currently running jobs.",
    },
    Column {
        name: "Last Schedule",
        kind: "string",
        format: "",
        priority: 0,
        description: "Information when was the last time the job was successfully scheduled.",
    },
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];
const INGRESS: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Class",
        kind: "string",
        format: "",
        priority: 0,
        description: "The name of the IngressClass resource that should be used for additional configuration",
    },
    Column {
        name: "Hosts",
        kind: "string",
        format: "",
        priority: 0,
        description: "Hosts that incoming requests are matched against before the ingress rule",
    },
    Column {
        name: "Address",
        kind: "string",
        format: "",
        priority: 0,
        description: "Address is a list containing ingress points for the load-balancer",
    },
    Column {
        name: "Ports",
        kind: "string",
        format: "",
        priority: 0,
        description: "Ports of TLS configurations that open",
    },
    AGE_COLUMN,
];
const NETWORK_POLICY: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Pod-Selector",
        kind: "string",
        format: "",
        priority: 0,
        description: "Selects the pods to which this NetworkPolicy object applies.  The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods.  In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.",
    },
    AGE_COLUMN,
];
const HORIZONTAL_POD_AUTOSCALER: &[Column] = &[
    NAME_COLUMN,
    Column {
        name: "Reference",
        kind: "string",
        format: "",
        priority: 0,
        description: "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
    },
    Column {
        name: "Targets",
        kind: "string",
        format: "",
        priority: 0,
        description: "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond.",
    },
    Column {
        name: "MinPods",
        kind: "string",
        format: "",
        priority: 0,
        description: "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.",
    },
    Column {
        name: "MaxPods",
        kind: "string",
        format: "",
        priority: 0,
        description: "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.",
    },
    Column {
        name: "Replicas",
        kind: "string",
        format: "",
        priority: 0,
        description: "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
    },
    AGE_COLUMN,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z")
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn cells(group: &str, kind: &str, object: Value) -> Vec<Value> {
        row(group, kind, &object, now()).cells
    }

    const CREATED: &str = "2026-01-10T11:55:30Z";

    #[test]
    fn every_printed_kind_has_a_cell_per_column_even_for_an_empty_object() {
        let kinds = [
            ("", "Pod"),
            ("", "Service"),
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Namespace"),
            ("", "Node"),
            ("", "Event"),
            ("events.k8s.io", "Event"),
            ("", "PersistentVolumeClaim"),
            ("", "ServiceAccount"),
            ("", "Endpoints"),
            ("", "ReplicationController"),
            ("apps", "Deployment"),
            ("extensions", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("networking.k8s.io", "Ingress"),
            ("networking.k8s.io", "NetworkPolicy"),
            ("autoscaling", "HorizontalPodAutoscaler"),
            ("example.com", "Widget"),
        ];
        // Empty, null, and fields of the wrong types: never a panic, always a full row.
        let messy = [
            json!({}),
            Value::Null,
            json!({"metadata": 3, "spec": "x", "status": []}),
            json!({"metadata": {"name": 7, "creationTimestamp": "yesterday"},
                   "spec": {"containers": "none", "replicas": "three", "selector": {"matchLabels": {"a": 1}},
                            "ports": [{"port": "http"}], "rules": [null, 4], "metrics": [{"type": "Pods"}]},
                   "status": {"containerStatuses": [null, {"state": null}], "initContainerStatuses": [{"state": {"terminated": null}}],
                              "conditions": "ready", "loadBalancer": {"ingress": [{}]}},
                   "subsets": [{"addresses": [{}], "ports": [{}]}, {}], "involvedObject": [], "series": {}}),
        ];
        for (group, kind) in kinds {
            for object in &messy {
                let printed = row(group, kind, object, now());
                assert_eq!(
                    printed.cells.len(),
                    columns(group, kind).len(),
                    "{group}/{kind} of {object}"
                );
            }
        }
        assert_eq!(columns("example.com", "Widget"), DEFAULT);
        assert_eq!(columns("apps", "Widget"), DEFAULT);
        // A kind of another group keeps the default columns: a printer is per group and kind.
        assert_eq!(columns("example.com", "Pod"), DEFAULT);
    }

    #[test]
    fn columns_are_the_api_servers_with_wide_ones_at_priority_one() {
        let names = |group, kind| -> Vec<(&str, u8)> {
            columns(group, kind)
                .iter()
                .map(|c| (c.name, c.priority))
                .collect()
        };
        assert_eq!(
            names("", "Pod"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
        );
        assert_eq!(columns("", "Pod")[3].kind, "integer");
        assert_eq!(columns("", "Pod")[0].format, "name");
        let definition = columns("batch", "CronJob")[2].definition();
        assert_eq!(definition["name"], "Suspend");
        assert_eq!(definition["type"], "boolean");
        // Events list the name last, and only in the wide form.
        assert_eq!(names("", "Event").last(), Some(&("Name", 1)));
        for (group, kind) in [("", "Pod"), ("apps", "Deployment"), ("", "Node")] {
            assert!(
                columns(group, kind)
                    .iter()
                    .all(|c| !c.description.is_empty())
            );
        }
    }

    #[test]
    fn durations_read_as_the_api_server_writes_them() {
        let d = |s: i64| human_duration(chrono::Duration::seconds(s));
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (2 * 3600 + 15 * 60 + 5, "135m"),
            (3 * 3600 + 15 * 60, "3h15m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (830 * 86400, "2y100d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, text) in cases {
            assert_eq!(d(seconds), text, "{seconds} s");
        }
        assert_eq!(since(None, now()), "<unknown>");
    }

    #[test]
    fn pods_print_readiness_status_restarts_and_placement() {
        let running = json!({
            "metadata": {"name": "web", "creationTimestamp": CREATED},
            "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}],
                     "readinessGates": [{"conditionType": "x"}, {"conditionType": "y"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}],
                       "conditions": [{"type": "x", "status": "True"}, {"type": "y", "status": "False"}],
                       "containerStatuses": [
                           {"ready": true, "restartCount": 2, "state": {"running": {}}},
                           {"ready": true, "restartCount": 1, "state": {"running": {}}}]}
        });
        assert_eq!(
            cells("", "Pod", running),
            [
                json!("web"),
                json!("2/2"),
                json!("Running"),
                json!(3),
                json!("4m30s"),
                json!("10.0.0.9"),
                json!("node-a"),
                json!("<none>"),
                json!("1/2")
            ]
        );
        let only_pod_ip = json!({"status": {"phase": "Running", "podIP": "10.0.0.7"}});
        assert_eq!(
            row("", "Pod", &only_pod_ip, now()).cells[5],
            json!("10.0.0.7")
        );
        let both = json!({"status": {"podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.8"}]}});
        assert_eq!(row("", "Pod", &both, now()).cells[5], json!("10.0.0.8"));
        let status = |status: Value| {
            let pod =
                json!({"spec": {"initContainers": [{}, {}], "containers": [{}]}, "status": status});
            let printed = row("", "Pod", &pod, now());
            (
                printed.cells[2].clone(),
                printed.cells[3].clone(),
                printed.conditions,
            )
        };
        let cases = [
            (json!({"phase": "Pending"}), "Pending"),
            (json!({"phase": "Failed", "reason": "Evicted"}), "Evicted"),
            (
                json!({"initContainerStatuses": [{"state": {"terminated": {"exitCode": 0}}}, {"state": {"running": {}}}]}),
                "Init:1/2",
            ),
            (
                json!({"initContainerStatuses": [{"state": {"terminated": {"exitCode": 2}}}]}),
                "Init:ExitCode:2",
            ),
            (
                json!({"initContainerStatuses": [{"state": {"terminated": {"exitCode": 2, "signal": 9}}}]}),
                "Init:Signal:9",
            ),
            (
                json!({"initContainerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                "Init:Error",
            ),
            (
                json!({"initContainerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
                "Init:ImagePullBackOff",
            ),
            (
                json!({"initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}),
                "Init:0/2",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "CrashLoopBackOff",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}),
                "ExitCode:3",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"state": {"terminated": {"signal": 15}}}]}),
                "Signal:15",
            ),
            (
                json!({"phase": "Running", "containerStatuses": [{"state": {"terminated": {"reason": "Completed"}}}, {"ready": true, "state": {"running": {}}}]}),
                "NotReady",
            ),
            (
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"state": {"terminated": {"reason": "Completed"}}}, {"ready": true, "state": {"running": {}}}]}),
                "Running",
            ),
        ];
        for (pod_status, reason) in cases {
            assert_eq!(status(pod_status.clone()).0, reason, "{pod_status}");
        }
        // Restarts count the init containers while they run, the containers after.
        assert_eq!(
            status(json!({"initContainerStatuses": [{"restartCount": 4, "state": {"running": {}}}], "containerStatuses": [{"restartCount": 9}]})).1,
            4
        );
        let (_, _, conditions) = status(json!({"phase": "Succeeded"}));
        assert_eq!(
            conditions,
            Some(
                json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
            )
        );
        assert_eq!(
            status(json!({"phase": "Failed"})).2.expect("a condition")[0]["reason"],
            "Failed"
        );
        assert_eq!(status(json!({"phase": "Running"})).2, None);
        let terminating =
            json!({"metadata": {"deletionTimestamp": CREATED}, "status": {"phase": "Running"}});
        assert_eq!(cells("", "Pod", terminating)[2], "Terminating");
        let lost = json!({"metadata": {"deletionTimestamp": CREATED}, "status": {"phase": "Running", "reason": "NodeLost"}});
        assert_eq!(cells("", "Pod", lost)[2], "Unknown");
    }

    #[test]
    fn selectors_print_sorted_by_key_and_invalid_ones_say_so() {
        let selector = json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
            {"key": "c", "operator": "NotIn", "values": ["y", "x", "x"]},
            {"key": "a", "operator": "Exists"},
            {"key": "d", "operator": "DoesNotExist"},
            {"key": "e", "operator": "In", "values": ["one"]}]});
        assert_eq!(
            label_selector(Some(&selector)).as_deref(),
            Some("a=1,a,b=2,c notin (x,y),!d,e in (one)")
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        for invalid in [
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchLabels": {"a": 1}}),
        ] {
            assert_eq!(
                format_label_selector(Some(&invalid)),
                "<error>",
                "{invalid}"
            );
        }
        let deployment = json!({"spec": {"selector": {"matchExpressions": [{"key": "a"}]}}});
        assert_eq!(cells("apps", "Deployment", deployment)[7], "<invalid>");
        // A deployment without a selector prints an empty one, a replica set `<none>`.
        assert_eq!(cells("apps", "Deployment", json!({}))[7], "");
        assert_eq!(cells("apps", "ReplicaSet", json!({}))[7], "<none>");
        assert_eq!(format_labels(Some(&json!({"z": "1", "a": "2"}))), "a=2,z=1");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
    }

    #[test]
    fn workloads_print_replicas_containers_and_images() {
        let template = json!({"spec": {"containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "j:2"}]}});
        let deployment = json!({"metadata": {"name": "d", "creationTimestamp": CREATED},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}}, "template": template},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 1}});
        assert_eq!(
            cells("apps", "Deployment", deployment),
            [
                json!("d"),
                json!("2/3"),
                json!(3),
                json!(1),
                json!("4m30s"),
                json!("a,b"),
                json!("i:1,j:2"),
                json!("app=d")
            ]
        );
        // Unset replicas read as the API server defaults them.
        assert_eq!(cells("apps", "StatefulSet", json!({}))[1], "0/1");
        let daemon_set = json!({"spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}}});
        assert_eq!(cells("apps", "DaemonSet", daemon_set)[6], "os=linux");
        assert_eq!(cells("apps", "DaemonSet", json!({}))[6], "<none>");
        let job = |spec: Value, status: Value| {
            let c = cells("batch", "Job", json!({"spec": spec, "status": status}));
            (c[1].clone(), c[2].clone())
        };
        assert_eq!(
            job(json!({"completions": 5}), json!({"succeeded": 2})),
            (json!("2/5"), json!(""))
        );
        assert_eq!(job(json!({"parallelism": 3}), json!({})).0, "0/1 of 3");
        assert_eq!(
            job(json!({"parallelism": 1}), json!({"succeeded": 1})).0,
            "1/1"
        );
        assert_eq!(
            job(json!({}), json!({"startTime": "2026-01-10T11:00:00Z", "completionTime": "2026-01-10T11:03:20Z"})).1,
            "3m20s"
        );
        assert_eq!(
            job(json!({}), json!({"startTime": "2026-01-10T10:00:00Z"})).1,
            "120m"
        );
        let cron = |spec: Value, status: Value| {
            cells("batch", "CronJob", json!({"spec": spec, "status": status}))
        };
        let c = cron(
            json!({"schedule": "*/5 * * * *", "suspend": false}),
            json!({"active": [{}, {}], "lastScheduleTime": "2026-01-10T11:59:00Z"}),
        );
        assert_eq!(
            (&c[1], &c[2], &c[3], &c[4]),
            (
                &json!("*/5 * * * *"),
                &json!("False"),
                &json!(2),
                &json!("60s")
            )
        );
        let c = cron(json!({}), json!({}));
        assert_eq!((&c[2], &c[4]), (&json!("<unset>"), &json!("<none>")));
    }

    #[test]
    fn services_print_addresses_and_ports_by_type() {
        let service = |spec: Value, status: Value| {
            let c = cells("", "Service", json!({"spec": spec, "status": status}));
            (
                c[1].clone(),
                c[2].clone(),
                c[3].clone(),
                c[4].clone(),
                c[6].clone(),
            )
        };
        assert_eq!(
            service(
                json!({"type": "ClusterIP", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5", "fd00::5"], "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "x"}}),
                json!({})
            ),
            (
                json!("ClusterIP"),
                json!("10.0.0.5"),
                json!("<none>"),
                json!("80/TCP"),
                json!("app=x")
            )
        );
        assert_eq!(service(json!({"type": "NodePort", "clusterIP": "10.0.0.6", "externalIPs": ["1.2.3.4", "5.6.7.8"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}), json!({})).2, "1.2.3.4,5.6.7.8");
        assert_eq!(service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "UDP"}]}), json!({})).3, "80:30080/UDP");
        assert_eq!(
            service(json!({"type": "LoadBalancer"}), json!({})).2,
            "<pending>"
        );
        assert_eq!(
            service(json!({"type": "LoadBalancer", "externalIPs": ["9.9.9.9"]}), json!({"loadBalancer": {"ingress": [{"hostname": "b.example"}, {"ip": "1.1.1.1", "hostname": "x"}, {"ip": "1.1.1.1"}]}})).2,
            "1.1.1.1,b.example,9.9.9.9"
        );
        assert_eq!(
            service(
                json!({"type": "ExternalName", "externalName": "db.example"}),
                json!({})
            )
            .2,
            "db.example"
        );
        let (kind, ip, external, ports, selector) = service(json!({}), json!({}));
        assert_eq!(
            (kind, ip, external, ports, selector),
            (
                json!(""),
                json!("<none>"),
                json!("<unknown>"),
                json!("<none>"),
                json!("<none>")
            )
        );
    }

    #[test]
    fn nodes_print_readiness_roles_and_system_info() {
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": CREATED, "labels": {
                "node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/": "x", "kubernetes.io/role": "infra"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}],
                       "addresses": [{"type": "InternalIP", "address": "10.1.1.1"}, {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.4", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": ""}}
        });
        assert_eq!(
            cells("", "Node", node),
            [
                json!("n1"),
                json!("NotReady,SchedulingDisabled"),
                json!("control-plane,infra,worker"),
                json!("4m30s"),
                json!("v1.31.4"),
                json!("10.1.1.1"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1"),
                json!("<unknown>")
            ]
        );
        let c = cells("", "Node", json!({}));
        assert_eq!((&c[1], &c[2]), (&json!("Unknown"), &json!("<none>")));
        assert_eq!(
            cells(
                "",
                "Node",
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
            )[1],
            "Ready"
        );
    }

    #[test]
    fn events_print_their_object_source_and_count() {
        let event = json!({"metadata": {"name": "e.1"}, "type": "Warning", "reason": "BackOff", "message": " Back-off \n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "source": {"component": "kubelet"}, "firstTimestamp": "2026-01-10T11:00:00Z", "lastTimestamp": "2026-01-10T11:59:00Z", "count": 4});
        assert_eq!(
            cells("", "Event", event),
            [
                json!("60s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{a}"),
                json!("kubelet"),
                json!("Back-off"),
                json!("60m"),
                json!(4),
                json!("e.1")
            ]
        );
        // Fractions of a second are dropped (119.88 s is `119s`), as the API server drops them.
        let series = json!({"involvedObject": {"kind": "Node"}, "eventTime": "2026-01-10T11:58:00.123456Z",
            "series": {"count": 9, "lastObservedTime": "2026-01-10T11:59:30.000000Z"}, "reportingComponent": "kubelet", "reportingInstance": "n1"});
        let c = cells("", "Event", series);
        assert_eq!(
            (&c[0], &c[3], &c[5], &c[7], &c[8]),
            (
                &json!("30s"),
                &json!("node"),
                &json!("kubelet, n1"),
                &json!("119s"),
                &json!(9)
            )
        );
        let c = cells("", "Event", json!({}));
        assert_eq!(
            (&c[0], &c[7], &c[8]),
            (&json!("<unknown>"), &json!("<unknown>"), &json!(1))
        );
    }

    #[test]
    fn storage_network_and_scaling_kinds_print_their_own_cells() {
        let claim = json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
            "spec": {"volumeName": "pv", "storageClassName": "new", "volumeMode": "Block"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"], "capacity": {"storage": "10Gi"}}});
        let c = cells("", "PersistentVolumeClaim", claim);
        assert_eq!(
            &c[1..6],
            [
                json!("Bound"),
                json!("pv"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("old")
            ]
        );
        assert_eq!(c[7], "Block");
        let c = cells(
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"deletionTimestamp": CREATED}, "spec": {"storageClassName": "new"}, "status": {"phase": "Pending"}}),
        );
        assert_eq!(
            &c[1..6],
            [
                json!("Terminating"),
                json!(""),
                json!(""),
                json!(""),
                json!("new")
            ]
        );
        assert_eq!(c[7], "<unset>");
        let endpoints = json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}, {"port": 81}]},
            {"addresses": [{"ip": "10.0.0.2"}]}]});
        assert_eq!(
            cells("", "Endpoints", endpoints)[1],
            "10.0.0.1:80,[fd00::1]:80,10.0.0.1:81 + 2 more..."
        );
        assert_eq!(
            cells(
                "",
                "Endpoints",
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]})
            )[1],
            "10.0.0.2"
        );
        assert_eq!(cells("", "Endpoints", json!({}))[1], "<none>");
        let ingress = |spec: Value| cells("networking.k8s.io", "Ingress", json!({"spec": spec}));
        let c = ingress(
            json!({"rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {}], "tls": [{}]}),
        );
        assert_eq!(
            (&c[1], &c[2], &c[3], &c[4]),
            (
                &json!("<none>"),
                &json!("a,b,c + 2 more..."),
                &json!(""),
                &json!("80, 443")
            )
        );
        assert_eq!(ingress(json!({"rules": [{}]}))[2], "*");
        assert_eq!(
            ingress(json!({"rules": [{"host": "a"}, {"host": "b"}, {"host": "c"}]}))[2],
            "a,b,c"
        );
        assert_eq!(
            cells("networking.k8s.io", "NetworkPolicy", json!({}))[1],
            "<none>"
        );
        let hpa = |spec: Value, status: Value| {
            cells(
                "autoscaling",
                "HorizontalPodAutoscaler",
                json!({"spec": spec, "status": status}),
            )
        };
        let c = hpa(
            json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80}),
            json!({"currentReplicas": 2}),
        );
        assert_eq!(
            &c[1..6],
            [
                json!("Deployment/web"),
                json!("<unknown>/80%"),
                json!("1"),
                json!(5),
                json!(2)
            ]
        );
        assert_eq!(hpa(json!({}), json!({}))[3], "<unset>");
        let metrics = json!({"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
            {"type": "Pods"}]});
        let status = json!({"currentMetrics": [{"type": "Resource", "resource": {"current": {"averageUtilization": 30}}}]});
        assert_eq!(
            hpa(metrics, status)[2],
            "30%/60%, <unknown>/500Mi + 1 more..."
        );
        assert_eq!(hpa(json!({"metrics": []}), json!({}))[2], "<none>");
        assert_eq!(
            hpa(
                json!({"metrics": [{"type": "Resource", "resource": {"target": {}}}]}),
                json!({})
            )[2],
            "<unknown>/<auto>"
        );
        let config_map = json!({"data": {"a": "1"}, "binaryData": {"b": "AA=="}});
        assert_eq!(cells("", "ConfigMap", config_map)[1], 2);
        assert_eq!(
            cells("", "Secret", json!({"type": "Opaque", "data": {"a": "x"}}))[1..3],
            [json!("Opaque"), json!(1)]
        );
        assert_eq!(
            cells("", "ServiceAccount", json!({"secrets": [{}, {}]}))[1],
            2
        );
        assert_eq!(
            cells("", "Namespace", json!({"status": {"phase": "Terminating"}}))[1],
            "Terminating"
        );
        assert_eq!(
            cells(
                "",
                "ReplicationController",
                json!({"spec": {"selector": {"app": "x"}}})
            )[7],
            "app=x"
        );
    }

    #[test]
    fn other_kinds_print_the_name_and_the_age() {
        let widget = json!({"metadata": {"name": "w", "creationTimestamp": CREATED}});
        assert_eq!(
            cells("example.com", "Widget", widget),
            [json!("w"), json!("4m30s")]
        );
        assert_eq!(
            cells("example.com", "Widget", json!({})),
            [json!(""), json!("<unknown>")]
        );
    }
}
