//! Builders for simulated Kubernetes objects: the [`ObjectFactory`] behind [`super::ClusterShape::build`].
//!
//! Every builder returns a `serde_json::Value` shaped like a kube-apiserver GET response: defaulted spec,
//! controller-written status, and `metadata.managedFields` derived from the object's own fields by
//! [`fields_of`]. All randomness comes from one seeded [`StdRng`]; the clock is simulated.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{ClusterShape, DAEMON_SETS};

/// 2026-11-01T00:00:00Z, where the simulated clock starts.
const CLOCK_START: i64 = 1_793_491_200;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// Mixed with the cluster seed so that `cluster` does not replay the factory's own stream.
const SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// Alphabet of `pod-template-hash` values and generated name suffixes (Kubernetes' `rand.SafeEncodeString`).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const BASE64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions \
of Kubernetes clusters.";

const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "ap-south-1",
    "sa-east-1",
    "ca-central-1",
];
const CLUSTER_WORDS: &[&str] = &[
    "prod",
    "production",
    "main",
    "platform",
    "core",
    "apps",
    "shared",
    "edge",
    "primary",
];
const DOMAINS: &[&str] = &[
    "checkout",
    "payments",
    "orders",
    "catalog",
    "search",
    "inventory",
    "billing",
    "accounts",
    "auth",
    "identity",
    "notifications",
    "email",
    "shipping",
    "pricing",
    "recommendations",
    "reviews",
    "cart",
    "ledger",
    "fraud",
    "risk",
    "reporting",
    "analytics",
    "events",
    "audit",
    "profile",
    "session",
    "media",
    "thumbnails",
    "geo",
    "tax",
    "invoices",
    "quotes",
    "loyalty",
    "promotions",
    "subscriptions",
    "onboarding",
    "kyc",
    "settlement",
    "webhooks",
    "feature-flags",
    "chat",
    "feeds",
    "ranking",
    "ads",
    "bidding",
    "routing",
    "dispatch",
    "fleet",
    "telemetry",
    "ingest",
    "export",
    "partner",
    "merchant",
    "customer",
    "wallet",
    "refunds",
    "receipts",
    "coupons",
    "content",
    "translation",
];
const ROLES: &[&str] = &[
    "api",
    "service",
    "worker",
    "consumer",
    "web",
    "frontend",
    "backend",
    "grpc",
    "gateway",
    "processor",
    "indexer",
    "scheduler",
    "proxy",
    "admin",
    "sync",
    "publisher",
    "aggregator",
    "adapter",
    "cache",
    "bff",
    "engine",
    "store",
];
const TEAMS: &[&str] = &[
    "platform",
    "growth",
    "core",
    "data",
    "infra",
    "commerce",
    "identity",
    "risk",
    "mobile",
    "discovery",
    "ml",
    "sre",
    "fintech",
    "logistics",
    "marketing",
    "support",
];
const ENVIRONMENTS: &[&str] = &["prod", "staging", "qa", "dev", "sandbox", "perf", "canary"];
const ORGS: &[&str] = &[
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "wonka",
    "aperture",
    "massive-dynamic",
    "oscorp",
    "vandelay",
];
const DATASTORES: &[(&str, &str, u64)] = &[
    ("postgres", "docker.io/bitnami/postgresql", 5432),
    ("redis", "docker.io/library/redis", 6379),
    ("kafka", "docker.io/bitnami/kafka", 9092),
    ("zookeeper", "docker.io/bitnami/zookeeper", 2181),
    ("rabbitmq", "docker.io/library/rabbitmq", 5672),
    (
        "elasticsearch",
        "docker.elastic.co/elasticsearch/elasticsearch",
        9200,
    ),
    ("mongodb", "docker.io/bitnami/mongodb", 27017),
    ("nats", "docker.io/library/nats", 4222),
    ("etcd", "quay.io/coreos/etcd", 2379),
    ("memcached", "docker.io/library/memcached", 11211),
    ("clickhouse", "docker.io/clickhouse/clickhouse-server", 8123),
];
const CRON_TASKS: &[&str] = &[
    "report",
    "cleanup",
    "backup",
    "reindex",
    "export",
    "digest",
    "reconcile",
    "rollup",
    "purge",
    "snapshot",
    "rotate-keys",
    "sync-catalog",
    "send-reminders",
    "expire-sessions",
    "compact",
];
const CRON_SCHEDULES: &[&str] = &[
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "0 */6 * * *",
    "0 2 * * *",
    "15 3 * * *",
    "0 0 * * 0",
    "45 23 * * *",
    "0 9 * * 1-5",
    "*/30 * * * *",
    "0 4 1 * *",
];
const SIDECARS: &[(&str, &str, &[&str], u64)] = &[
    (
        "envoy",
        "docker.io/envoyproxy/envoy:v1.31.2",
        &["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
        9901,
    ),
    (
        "fluent-bit",
        "cr.fluentbit.io/fluent/fluent-bit:3.1.9",
        &["--config=/fluent-bit/etc/fluent-bit.conf"],
        2020,
    ),
    (
        "cloud-sql-proxy",
        "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.13.0",
        &[
            "--structured-logs",
            "--port=5432",
            "--max-sigterm-delay=30s",
        ],
        9801,
    ),
    (
        "otel-collector",
        "docker.io/otel/opentelemetry-collector-contrib:0.112.0",
        &["--config=/conf/otel-collector-config.yaml"],
        4317,
    ),
    (
        "oauth2-proxy",
        "quay.io/oauth2-proxy/oauth2-proxy:v7.7.1",
        &[
            "--provider=oidc",
            "--upstream=http://127.0.0.1:8080",
            "--http-address=0.0.0.0:4180",
        ],
        4180,
    ),
    (
        "datadog-agent",
        "gcr.io/datadoghq/agent:7.58.1",
        &["agent", "run"],
        8125,
    ),
    (
        "istio-proxy",
        "docker.io/istio/proxyv2:1.23.3",
        &[
            "proxy",
            "sidecar",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local",
        ],
        15090,
    ),
];
const INIT_IMAGES: &[&str] = &[
    "docker.io/library/busybox:1.36.1",
    "docker.io/library/alpine:3.20",
    "docker.io/bitnami/os-shell:12-debian-12-r33",
];
const LOG_LEVELS: &[&str] = &["info", "debug", "warn", "INFO", "DEBUG", "WARN", "error"];
const JVM_FLAGS: &[&str] = &[
    "-XX:MaxRAMPercentage={pct}.0",
    "-XX:InitialRAMPercentage={pct2}.0",
    "-XX:+UseG1GC",
    "-XX:+UseZGC",
    "-XX:MaxGCPauseMillis={ms}",
    "-XX:+ExitOnOutOfMemoryError",
    "-Xss{kb}k",
    "-Dfile.encoding=UTF-8",
    "-Djava.security.egd=file:/dev/./urandom",
    "-Dnetworkaddress.cache.ttl={n}",
    "-XX:ActiveProcessorCount={cpu}",
    "-Dcom.sun.management.jmxremote.port={port}",
    "-Duser.timezone=UTC",
    "-XX:+HeapDumpOnOutOfMemoryError",
    "-XX:HeapDumpPath=/tmp/heapdump-{n}.hprof",
    "-Dlogging.level.root={level}",
    "-Dserver.tomcat.threads.max={n}",
    "-javaagent:/opt/otel/opentelemetry-javaagent.jar",
    "-Dotel.resource.attributes=service.version={version}",
];
const GO_FLAGS: &[&str] = &[
    "--log-level={level}",
    "--metrics-addr=:{port}",
    "--grpc-max-recv-msg-size={bytes}",
    "--shutdown-timeout={n}s",
    "--db-max-open-conns={n}",
    "--db-max-idle-conns={cpu}",
    "--cache-size={n}Mi",
    "--read-timeout={n}s",
    "--write-timeout={ms}ms",
    "--rate-limit={n}",
    "--upstream=http://{peer}.{ns}.svc.cluster.local:{port}",
    "--region={region}",
    "--workers={cpu}",
    "--batch-size={n}",
    "--enable-pprof",
    "--tracing-sample-rate=0.{pct}",
    "--leader-elect",
    "--config=/etc/{app}/config.yaml",
];
const ENV_NAMES: &[&str] = &[
    "LOG_LEVEL",
    "LOG_FORMAT",
    "DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "AWS_REGION",
    "HTTP_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "CACHE_TTL_SECONDS",
    "SENTRY_DSN",
    "FEATURE_NEW_CHECKOUT",
    "UPSTREAM_URL",
    "WORKER_CONCURRENCY",
    "S3_BUCKET",
    "SQS_QUEUE_URL",
    "ENVIRONMENT",
    "STATSD_HOST",
    "RETRY_BACKOFF",
    "GRPC_PORT",
    "TZ",
    "DD_ENV",
    "DD_VERSION",
    "RATE_LIMIT_RPS",
    "SESSION_TTL",
    "ALLOWED_ORIGINS",
    "TRACE_SAMPLE_RATE",
    "BATCH_SIZE",
    "DB_POOL_SIZE",
];
const CONFIG_KEYS: &[&str] = &[
    "timeout",
    "retries",
    "pool_size",
    "max_body_bytes",
    "batch_size",
    "flush_interval",
    "cache_ttl",
    "queue_depth",
    "circuit_breaker_threshold",
    "rate_limit",
    "page_size",
    "keepalive",
    "idle_timeout",
    "max_inflight",
];
const SECRET_KEYS: &[&str] = &[
    "password",
    "api-key",
    "client-secret",
    "database-url",
    "jwt-signing-key",
    "webhook-secret",
    "access-token",
    "encryption-key",
    "smtp-password",
    "stripe-key",
    "hmac-key",
    "username",
];
const TLDS: &[&str] = &["com", "io", "net", "dev", "cloud", "app", "co.uk", "de"];

/// How an app's manifests reach the cluster: decides labels, annotations and field managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Deployed by Spinnaker (`kubectl apply` under the hood): moniker and artifact annotations.
    Spinnaker,
    /// Deployed by Spinnaker with `strategy.spinnaker.io/server-side-apply`: an `Apply` entry, no
    /// last-applied annotation.
    SpinnakerServerSide,
    /// Installed by Helm: chart labels, release annotations, manager `helm`.
    Helm,
    /// `kubectl apply` (client-side): `last-applied-configuration` annotation.
    Kubectl,
    /// `kubectl apply --server-side`: an `Apply` managed-fields entry owning only the manifest's fields.
    ServerSide,
    /// Created by the control plane or an add-on installer (system objects).
    System,
}

impl Flavor {
    fn spinnaker(self) -> bool {
        matches!(self, Flavor::Spinnaker | Flavor::SpinnakerServerSide)
    }
}

/// The language stack of an app, which shapes its command line, environment and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Jvm,
    Go,
    Node,
    Python,
}

/// A fixed system component (kube-system Deployments and DaemonSets).
struct Component {
    name: &'static str,
    image: &'static str,
    command: &'static [&'static str],
    args: &'static [&'static str],
    ports: &'static [(&'static str, u64, &'static str)],
    probe: Option<(&'static str, u64)>,
    replicas: u64,
    host_network: bool,
}

static SYSTEM_DEPLOYMENTS: [Component; 5] = [
    Component {
        name: "coredns",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/coredns:v1.11.3-eksbuild.2",
        command: &[],
        args: &["-conf", "/etc/coredns/Corefile"],
        ports: &[
            ("dns", 53, "UDP"),
            ("dns-tcp", 53, "TCP"),
            ("metrics", 9153, "TCP"),
        ],
        probe: Some(("/health", 8080)),
        replicas: 2,
        host_network: false,
    },
    Component {
        name: "metrics-server",
        image: "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
        command: &[],
        args: &[
            "--cert-dir=/tmp",
            "--secure-port=10251",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ],
        ports: &[("https", 10251, "TCP")],
        probe: Some(("/livez", 10251)),
        replicas: 1,
        host_network: false,
    },
    Component {
        name: "ebs-csi-controller",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/aws-ebs-csi-driver:v1.36.0",
        command: &[],
        args: &[
            "controller",
            "--endpoint=$(CSI_ENDPOINT)",
            "--batching=true",
            "--logging-format=text",
            "--user-agent-extra=eks",
            "-v=2",
        ],
        ports: &[("healthz", 9808, "TCP")],
        probe: Some(("/healthz", 9808)),
        replicas: 2,
        host_network: false,
    },
    Component {
        name: "aws-load-balancer-controller",
        image: "public.ecr.aws/eks/aws-load-balancer-controller:v2.9.2",
        command: &[],
        args: &[
            "--cluster-name={cluster}",
            "--ingress-class=alb",
            "--aws-region={region}",
            "--enable-shield=false",
        ],
        ports: &[
            ("webhook-server", 9443, "TCP"),
            ("metrics-server", 8080, "TCP"),
        ],
        probe: Some(("/healthz", 61779)),
        replicas: 2,
        host_network: false,
    },
    Component {
        name: "cluster-autoscaler",
        image: "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0",
        command: &[
            "./cluster-autoscaler",
            "--v=4",
            "--stderrthreshold=info",
            "--cloud-provider=aws",
            "--skip-nodes-with-local-storage=false",
            "--expander=least-waste",
            "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/{cluster}",
            "--balance-similar-node-groups",
            "--skip-nodes-with-system-pods=false",
        ],
        args: &[],
        ports: &[("http", 8085, "TCP")],
        probe: Some(("/health-check", 8085)),
        replicas: 1,
        host_network: false,
    },
];

static SYSTEM_DAEMON_SETS: [Component; DAEMON_SETS] = [
    Component {
        name: "aws-node",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/amazon-k8s-cni:v1.18.5-eksbuild.1",
        command: &[],
        args: &[],
        ports: &[("metrics", 61678, "TCP")],
        probe: None,
        replicas: 0,
        host_network: true,
    },
    Component {
        name: "kube-proxy",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/kube-proxy:v1.31.2-minimal-eksbuild.3",
        command: &[
            "kube-proxy",
            "--v=2",
            "--config=/var/lib/kube-proxy-config/config",
            "--hostname-override=$(NODE_NAME)",
        ],
        args: &[],
        ports: &[],
        probe: None,
        replicas: 0,
        host_network: true,
    },
    Component {
        name: "ebs-csi-node",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/aws-ebs-csi-driver:v1.36.0",
        command: &[],
        args: &[
            "node",
            "--endpoint=$(CSI_ENDPOINT)",
            "--csi-mount-point-prefix=/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/",
            "--logging-format=text",
            "-v=2",
        ],
        ports: &[("healthz", 9808, "TCP")],
        probe: Some(("/healthz", 9808)),
        replicas: 0,
        host_network: false,
    },
    Component {
        name: "fluent-bit",
        image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4",
        command: &[],
        args: &[],
        ports: &[("http", 2020, "TCP")],
        probe: Some(("/api/v1/health", 2020)),
        replicas: 0,
        host_network: false,
    },
];

/// A worker node the simulated pods are scheduled on.
#[derive(Debug, Clone)]
struct Node {
    name: String,
    ip: String,
}

/// Everything the builders of one app share.
struct App {
    ns: String,
    name: String,
    flavor: Flavor,
    runtime: Runtime,
    created: i64,
    /// Labels on every object of the app.
    labels: Map<String, Value>,
    /// The pods' selector, a subset of the template labels.
    selector: Map<String, Value>,
    /// Extra labels on the pod template.
    template_labels: Map<String, Value>,
    image_repo: String,
    version: String,
    port: u64,
    config_map: Option<String>,
    secret: Option<String>,
    service_account: Option<String>,
    component: Option<&'static Component>,
    /// A plain workload: few env vars, no liveness probe, sidecars or scheduling constraints.
    lean: bool,
}

/// Deterministic generator of realistic Kubernetes objects; see the [module docs](super).
pub struct ObjectFactory {
    rng: StdRng,
    seed: u64,
    now: i64,
    cluster_created: i64,
    resource_version: u64,
    region: &'static str,
    account: String,
    cluster_name: String,
    domain: String,
    ca_pem: String,
    nodes: Vec<Node>,
    /// (kind, namespace, name) of every generated object, to keep names unique.
    names: BTreeSet<(String, String, String)>,
    /// IPv4 addresses handed out so far (pods, nodes, services).
    ips: BTreeSet<u32>,
    /// Digest of every image seen, so that all pods of an image report the same `imageID`.
    digests: BTreeMap<String, String>,
    /// Next StatefulSet ordinal per StatefulSet uid.
    ordinals: BTreeMap<String, u64>,
}

impl ObjectFactory {
    /// A factory whose objects depend only on `seed` and the sequence of calls.
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let mut factory = ObjectFactory {
            rng,
            seed,
            now: CLOCK_START,
            cluster_created: CLOCK_START,
            resource_version: 0,
            region,
            account: String::new(),
            cluster_name: String::new(),
            domain: String::new(),
            ca_pem: String::new(),
            nodes: Vec::new(),
            names: BTreeSet::new(),
            ips: BTreeSet::new(),
            digests: BTreeMap::new(),
            ordinals: BTreeMap::new(),
        };
        factory.cluster_created = CLOCK_START - factory.range(300, 900) as i64 * DAY;
        factory.resource_version = factory.range(50_000_000, 900_000_000);
        factory.account = factory.digits(12);
        factory.cluster_name = format!(
            "{}-{}-{}",
            factory.pick(ORGS),
            factory.pick(CLUSTER_WORDS),
            factory.range(1, 9)
        );
        factory.domain = format!("{}.{}", factory.pick(ORGS), factory.pick(TLDS));
        factory.ca_pem = factory.pem("CERTIFICATE", 1_060);
        factory
    }

    /// A whole cluster: all Namespaces first, then the system objects, then every application namespace's
    /// objects, owners always before their dependents.
    pub fn cluster(&mut self, shape: &ClusterShape) -> Vec<Value> {
        self.rng = StdRng::seed_from_u64(self.seed ^ shape.seed.wrapping_mul(SEED_MIX));
        self.nodes.clear();
        for _ in 0..shape.nodes.max(1) {
            let node = self.new_node();
            self.nodes.push(node);
        }
        let mut app_namespaces = Vec::new();
        let mut attempts = 0;
        while app_namespaces.len() < shape.namespaces {
            attempts += 1;
            let name = if attempts > 5_000 {
                format!("{}-{}", self.pick(TEAMS), attempts)
            } else if self.chance(0.5) {
                format!("{}-{}", self.pick(TEAMS), self.pick(ENVIRONMENTS))
            } else {
                format!("{}-{}", self.pick(DOMAINS), self.pick(TEAMS))
            };
            if !app_namespaces.contains(&name) {
                app_namespaces.push(name);
            }
        }
        let mut objects = Vec::new();
        for ns in SYSTEM_NAMESPACES {
            objects.push(self.namespace_at(ns, self.cluster_created));
        }
        for ns in &app_namespaces {
            objects.push(self.namespace(ns));
        }
        objects.extend(self.system_objects());
        let avg = shape.apps_per_namespace.max(1);
        for ns in &app_namespaces {
            let created = timestamp_of(
                objects
                    .iter()
                    .find(|o| text(o, "/metadata/name") == *ns && text(o, "/kind") == "Namespace"),
            );
            objects.extend(self.namespace_contents(ns, created));
            let apps = self.range((avg / 2).max(1) as u64, (avg * 3 / 2).max(1) as u64);
            for _ in 0..apps {
                objects.extend(self.app_created(ns, created));
            }
        }
        objects
    }

    /// A Namespace created some time after the cluster.
    pub fn namespace(&mut self, name: &str) -> Value {
        let created = self.between(self.cluster_created + DAY, self.now - 10 * DAY);
        self.namespace_at(name, created)
    }

    /// One Deployment-based app in `namespace`: Deployment, its ReplicaSets, the current ReplicaSet's
    /// Pods, a Service and sometimes a ServiceAccount, ConfigMap, Secret, Ingress and NetworkPolicy.
    pub fn app(&mut self, namespace: &str) -> Vec<Value> {
        let floor = self.cluster_created;
        self.app_created(namespace, floor)
    }

    /// An Opaque Secret with a few random keys, as Helm or a controller would create it.
    pub fn secret(&mut self, namespace: &str, name: &str) -> Value {
        let created = self.between(self.cluster_created, self.now - HOUR);
        let data = self.secret_data();
        self.secret_object(
            namespace,
            name,
            "Opaque",
            data,
            created,
            Flavor::Helm,
            Map::new(),
            Map::new(),
        )
    }

    /// An Opaque Secret applied with `kubectl apply`: its `last-applied-configuration` annotation holds the
    /// manifest, `data` included.
    pub fn applied_secret(&mut self, namespace: &str, name: &str) -> Value {
        let created = self.between(self.cluster_created, self.now - HOUR);
        let data = self.secret_data();
        let labels = labels_of(&[("app", name)]);
        self.secret_object(
            namespace,
            name,
            "Opaque",
            data,
            created,
            Flavor::Kubectl,
            labels,
            Map::new(),
        )
    }

    /// Moves the simulated clock forward.
    pub fn advance_clock(&mut self, seconds: u64) {
        self.now += i64::try_from(seconds).unwrap_or(i64::MAX / 2);
    }

    /// Rolls `deployment` out with a new image: returns the updated Deployment (revision + 1, generation + 1,
    /// newer resourceVersion) and its new ReplicaSet.
    pub fn new_replica_set_revision(&mut self, deployment: &Value) -> (Value, Value) {
        let mut updated = deployment.clone();
        let revision = text(
            deployment,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .parse::<u64>()
        .unwrap_or(0)
            + 1;
        let generation = deployment
            .pointer("/metadata/generation")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            + 1;
        if let Some(containers) = updated
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        {
            let mut bumped = BTreeMap::new();
            for container in containers.iter_mut() {
                let image = text(container, "/image");
                let next = match bumped.get(&image) {
                    Some(next) => String::clone(next),
                    None => {
                        let next = self.bump_image(&image);
                        bumped.insert(image, next.clone());
                        next
                    }
                };
                container["image"] = Value::String(next);
            }
        }
        let replicas = deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let rs = self.replica_set(&updated, revision, replicas, self.now);
        let rv = self.next_resource_version();
        let now = ts(self.now);
        let rs_name = text(&rs, "/metadata/name");
        if let Some(meta) = updated.get_mut("metadata") {
            meta["annotations"]["deployment.kubernetes.io/revision"] =
                Value::String(revision.to_string());
            meta["generation"] = json!(generation);
            meta["resourceVersion"] = Value::String(rv);
        }
        if let Some(status) = updated.get_mut("status") {
            status["observedGeneration"] = json!(generation);
            for condition in status
                .get_mut("conditions")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if condition["type"] == "Progressing" {
                    condition["lastUpdateTime"] = Value::String(now.clone());
                    condition["message"] = Value::String(format!(
                        "ReplicaSet \"{rs_name}\" has successfully progressed."
                    ));
                }
            }
        }
        for entry in updated
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            entry["time"] = Value::String(now.clone());
        }
        (updated, rs)
    }

    /// A new Pod of `owner` (a ReplicaSet, StatefulSet, DaemonSet or Job), created now on a random node.
    pub fn pod_for(&mut self, owner: &Value) -> Value {
        self.ensure_nodes();
        let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
        let created = self.now;
        self.pod_at(owner, node, created)
    }

    /// The next resourceVersion of the cluster's etcd; strictly increasing.
    pub fn next_resource_version(&mut self) -> String {
        self.resource_version += self.range(1, 40);
        self.resource_version.to_string()
    }

    /// The simulated clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// `t` (Unix seconds) as the API server writes a `metav1.Time`.
    pub fn timestamp(t: i64) -> String {
        ts(t)
    }

    /// The `fieldsV1` set of a managed-fields entry owning exactly the fields of `owned` (a partial object).
    pub fn fields_v1(owned: &Value) -> Value {
        fields_of(owned)
    }

    /// A Job of `cron_job` for its run scheduled at `scheduled` (Unix seconds), named as the CronJob
    /// controller names it, with the status of a completed run.
    pub fn job_for(&mut self, cron_job: &Value, scheduled: i64) -> Value {
        self.job(cron_job, scheduled)
    }

    /// A rotated copy of a Secret's `data`: the same keys with fresh values (usernames are kept).
    pub fn rotated_secret_data(&mut self, data: &Map<String, Value>) -> Map<String, Value> {
        data.iter()
            .map(|(key, old)| {
                let value = if key == "username" {
                    old.clone()
                } else {
                    Value::String(base64(self.secret_value(key).as_bytes()))
                };
                (key.clone(), value)
            })
            .collect()
    }
}

// Random primitives.
impl ObjectFactory {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.rng.random_range(0..alphabet.len())]))
            .collect()
    }

    fn hex(&mut self, n: usize) -> String {
        self.chars(b"0123456789abcdef", n)
    }

    fn digits(&mut self, n: usize) -> String {
        let first = char::from(b'1' + self.rng.random_range(0..9u8));
        let mut out = String::from(first);
        out.push_str(&self.chars(b"0123456789", n.saturating_sub(1)));
        out
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.rng.random::<u8>()).collect()
    }

    /// A random version-4 UUID.
    fn uid(&mut self) -> String {
        let mut b = self.bytes(16);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn suffix(&mut self) -> String {
        self.chars(SAFE_ALPHABET, 5)
    }

    fn template_hash(&mut self) -> String {
        let n = if self.chance(0.7) { 10 } else { 9 };
        self.chars(SAFE_ALPHABET, n)
    }

    /// A PEM block whose body is `der_len` random bytes behind a DER SEQUENCE header.
    fn pem(&mut self, label: &str, der_len: usize) -> String {
        let mut der = vec![0x30, 0x82, (der_len >> 8) as u8, der_len as u8];
        der.extend(self.bytes(der_len));
        let body = base64(&der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// A fresh, unused IPv4 address in `base/prefix`.
    fn ip_in(&mut self, base: u32, prefix: u32) -> u32 {
        let span = 1u32 << (32 - prefix);
        loop {
            let ip = base + self.rng.random_range(2..span - 1);
            if self.ips.insert(ip) {
                return ip;
            }
        }
    }

    fn pod_ip(&mut self) -> String {
        ipv4(self.ip_in(0x0A10_0000, 14)) // 10.16.0.0/14, the VPC's pod subnets
    }

    fn cluster_ip(&mut self) -> String {
        ipv4(self.ip_in(0xAC14_0000, 16)) // 172.20.0.0/16, the EKS service CIDR
    }

    fn new_node(&mut self) -> Node {
        let ip = self.ip_in(0x0A00_0000, 16);
        let [_, _, c, d] = ip.to_be_bytes();
        let name = format!("ip-10-0-{c}-{d}.{}.compute.internal", self.region);
        Node { name, ip: ipv4(ip) }
    }

    fn ensure_nodes(&mut self) {
        while self.nodes.len() < 3 {
            let node = self.new_node();
            self.nodes.push(node);
        }
    }

    /// Reserves `name` for `kind` in `ns`; false if it was taken.
    fn reserve(&mut self, kind: &str, ns: &str, name: &str) -> bool {
        self.names
            .insert((kind.to_string(), ns.to_string(), name.to_string()))
    }

    fn version(&mut self) -> String {
        let (major, minor, patch) = (self.range(0, 12), self.range(0, 40), self.range(0, 30));
        match self.range(0, 9) {
            0..=2 => format!("v{major}.{minor}.{patch}"),
            3..=4 => format!("{major}.{minor}.{patch}"),
            5 => self.hex(7),
            6 => format!(
                "2026.{:02}.{:02}-{}",
                self.range(1, 10),
                self.range(1, 28),
                self.hex(7)
            ),
            7 => format!("main-{}-{}", self.range(100, 9999), self.hex(8)),
            8 => format!("{major}.{minor}.{patch}-rc.{}", self.range(1, 6)),
            _ => format!("release-{}", self.range(100, 2500)),
        }
    }

    fn image_repo(&mut self, org: &str, name: &str) -> String {
        match self.range(0, 9) {
            0..=3 => format!(
                "{}.dkr.ecr.{}.amazonaws.com/{org}/{name}",
                self.account, self.region
            ),
            4..=5 => format!("ghcr.io/{org}/{name}"),
            6 => format!("gcr.io/{org}-{}/{name}", self.pick(ENVIRONMENTS)),
            7 => format!("quay.io/{org}/{name}"),
            _ => format!("docker.io/{org}/{name}"),
        }
    }

    /// `repo:tag`, sometimes pinned by digest.
    fn image(&mut self, repo: &str, tag: &str) -> String {
        match self.range(0, 9) {
            0..=1 => format!("{repo}:{tag}@sha256:{}", self.hex(64)),
            2 => format!("{repo}@sha256:{}", self.hex(64)),
            _ => format!("{repo}:{tag}"),
        }
    }

    /// The same image repository with another tag (and digest, if it was pinned).
    fn bump_image(&mut self, image: &str) -> String {
        let repo = image_repo_of(image);
        loop {
            let tag = self.version();
            let next = if image.contains('@') {
                format!("{repo}:{tag}@sha256:{}", self.hex(64))
            } else {
                format!("{repo}:{tag}")
            };
            if next != image {
                return next;
            }
        }
    }

    fn image_id(&mut self, image: &str) -> String {
        let repo = image_repo_of(image);
        if let Some((_, digest)) = image.split_once("@sha256:") {
            return format!("{repo}@sha256:{digest}");
        }
        let digest = match self.digests.get(image) {
            Some(d) => d.clone(),
            None => {
                let d = self.hex(64);
                self.digests.insert(image.to_string(), d.clone());
                d
            }
        };
        format!("{repo}@sha256:{digest}")
    }

    fn secret_data(&mut self) -> Map<String, Value> {
        let mut data = Map::new();
        for _ in 0..self.range(1, 5) {
            let key = self.pick(SECRET_KEYS);
            let value = self.secret_value(key);
            data.insert(key.to_string(), Value::String(base64(value.as_bytes())));
        }
        data
    }

    /// A fresh plain-text value for the Secret key `key`.
    fn secret_value(&mut self, key: &str) -> String {
        match key {
            "database-url" => format!(
                "postgres://{}:{}@{}.{}.rds.amazonaws.com:5432/{}",
                self.pick(DOMAINS),
                self.chars(ALNUM, 24),
                self.pick(DOMAINS),
                self.hex(12),
                self.pick(DOMAINS)
            ),
            "username" => format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES)),
            "stripe-key" => format!("sk_live_{}", self.chars(ALNUM, 40)),
            _ => {
                let n = self.range(16, 64) as usize;
                self.chars(ALNUM, n)
            }
        }
    }

    fn service_account_token(&mut self, ns: &str, sa: &str, secret: &str) -> String {
        let header = base64url(
            format!(
                "{{\"alg\":\"RS256\",\"kid\":\"{}\"}}",
                self.chars(ALNUM, 43)
            )
            .as_bytes(),
        );
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": sa,
            "kubernetes.io/serviceaccount/service-account.uid": self.uid(),
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        });
        let payload = base64url(claims.to_string().as_bytes());
        let signature = base64url(&self.bytes(256));
        format!("{header}.{payload}.{signature}")
    }
}

// Metadata and managed fields.
impl ObjectFactory {
    fn metadata(
        &mut self,
        ns: Option<&str>,
        name: &str,
        created: i64,
        labels: Map<String, Value>,
        annotations: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        if !annotations.is_empty() {
            m.insert("annotations".into(), Value::Object(annotations));
        }
        m.insert("creationTimestamp".into(), Value::String(ts(created)));
        if !labels.is_empty() {
            m.insert("labels".into(), Value::Object(labels));
        }
        m.insert("name".into(), Value::String(name.to_string()));
        if let Some(ns) = ns {
            m.insert("namespace".into(), Value::String(ns.to_string()));
        }
        m.insert(
            "resourceVersion".into(),
            Value::String(self.next_resource_version()),
        );
        m.insert("uid".into(), Value::String(self.uid()));
        m
    }

    /// Records how `flavor` applied `obj` at `time`: the last-applied annotation for client-side apply and the
    /// applier's managed-fields entry (replacing any existing entries).
    fn applied(&mut self, obj: &mut Value, flavor: Flavor, time: i64) {
        let api = text(obj, "/apiVersion");
        let mut manifest = Map::new();
        let mut owned = Map::new();
        let mut meta = Map::new();
        let mut owned_meta = Map::new();
        for key in ["annotations", "labels"] {
            if let Some(Value::Object(m)) = obj.pointer(&format!("/metadata/{key}")) {
                let user: Map<String, Value> = m
                    .iter()
                    .filter(|(k, _)| !k.starts_with("deployment.kubernetes.io/"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !user.is_empty() {
                    meta.insert(key.to_string(), Value::Object(user.clone()));
                    owned_meta.insert(key.to_string(), Value::Object(user));
                }
            }
        }
        meta.insert("name".into(), Value::String(text(obj, "/metadata/name")));
        if let Some(ns) = obj.pointer("/metadata/namespace") {
            meta.insert("namespace".into(), ns.clone());
        }
        manifest.insert("apiVersion".into(), Value::String(api.clone()));
        manifest.insert("kind".into(), Value::String(text(obj, "/kind")));
        manifest.insert("metadata".into(), Value::Object(meta));
        if let Value::Object(o) = &*obj {
            for (k, v) in o {
                if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                    manifest.insert(k.clone(), strip_defaults(k, v));
                    owned.insert(
                        k.clone(),
                        if matches!(
                            flavor,
                            Flavor::ServerSide | Flavor::SpinnakerServerSide | Flavor::System
                        ) {
                            strip_defaults(k, v)
                        } else {
                            v.clone()
                        },
                    );
                }
            }
        }
        let (manager, operation) = match flavor {
            Flavor::Helm => ("helm", "Update"),
            Flavor::ServerSide | Flavor::SpinnakerServerSide => ("kubectl", "Apply"),
            Flavor::Spinnaker | Flavor::Kubectl => ("kubectl-client-side-apply", "Update"),
            Flavor::System => ("eks", "Apply"),
        };
        if matches!(flavor, Flavor::Spinnaker | Flavor::Kubectl) {
            let last = format!("{}\n", Value::Object(manifest));
            let annotations = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
            if let Some(a) = annotations {
                a["kubectl.kubernetes.io/last-applied-configuration"] = Value::String(last);
            }
            let a = owned_meta.entry("annotations").or_insert_with(|| json!({}));
            a["kubectl.kubernetes.io/last-applied-configuration"] = json!("");
        }
        if !owned_meta.is_empty() {
            owned.insert("metadata".into(), Value::Object(owned_meta));
        }
        let entry = managed_entry(
            manager,
            operation,
            &api,
            time,
            fields_of(&Value::Object(owned)),
            None,
        );
        obj["metadata"]["managedFields"] = json!([entry]);
    }

    fn push_managed(obj: &mut Value, entry: Value) {
        match obj
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            Some(list) => list.push(entry),
            None => obj["metadata"]["managedFields"] = json!([entry]),
        }
    }

    /// Adds a controller's `status` subresource entry covering the object's whole status.
    fn status_managed(obj: &mut Value, manager: &str, time: i64) {
        let api = text(obj, "/apiVersion");
        let status = json!({"status": obj.get("status").cloned().unwrap_or(Value::Null)});
        Self::push_managed(
            obj,
            managed_entry(
                manager,
                "Update",
                &api,
                time,
                fields_of(&status),
                Some("status"),
            ),
        );
    }

    fn owner_reference(owner: &Value) -> Value {
        json!({
            "apiVersion": text(owner, "/apiVersion"),
            "blockOwnerDeletion": true,
            "controller": true,
            "kind": text(owner, "/kind"),
            "name": text(owner, "/metadata/name"),
            "uid": text(owner, "/metadata/uid"),
        })
    }

    /// The labels and annotations `flavor` puts on an object of `kind` in `app`.
    fn app_metadata(
        &mut self,
        app: &App,
        kind: &str,
        name: &str,
    ) -> (Map<String, Value>, Map<String, Value>) {
        let labels = app.labels.clone();
        let mut annotations = Map::new();
        match app.flavor {
            Flavor::Spinnaker | Flavor::SpinnakerServerSide => {
                let artifact_kind = format!("kubernetes/{}", lower_first(kind));
                let cluster = format!("{} {name}", lower_first(kind));
                for (k, v) in [
                    ("artifact.spinnaker.io/location", app.ns.as_str()),
                    ("artifact.spinnaker.io/name", name),
                    ("artifact.spinnaker.io/type", artifact_kind.as_str()),
                    ("artifact.spinnaker.io/version", ""),
                    (
                        "moniker.spinnaker.io/application",
                        spinnaker_application(&app.name),
                    ),
                    ("moniker.spinnaker.io/cluster", cluster.as_str()),
                ] {
                    annotations.insert(k.into(), Value::String(v.to_string()));
                }
            }
            Flavor::Helm => {
                let release = text(
                    &Value::Object(app.labels.clone()),
                    "/app.kubernetes.io~1instance",
                );
                annotations.insert("meta.helm.sh/release-name".into(), Value::String(release));
                annotations.insert(
                    "meta.helm.sh/release-namespace".into(),
                    Value::String(app.ns.clone()),
                );
            }
            Flavor::Kubectl | Flavor::ServerSide | Flavor::System => {}
        }
        if kind == "Deployment" && self.chance(0.3) {
            annotations.insert(
                "kubernetes.io/change-cause".into(),
                Value::String(format!("deploy {} by {}", app.version, self.pick(TEAMS))),
            );
        }
        (labels, annotations)
    }
}

// Objects.
impl ObjectFactory {
    fn namespace_at(&mut self, name: &str, created: i64) -> Value {
        self.reserve("Namespace", "", name);
        let mut labels = labels_of(&[("kubernetes.io/metadata.name", name)]);
        let system = SYSTEM_NAMESPACES.contains(&name);
        if !system && self.chance(0.6) {
            labels.insert("team".into(), Value::String(self.pick(TEAMS).to_string()));
            labels.insert(
                "pod-security.kubernetes.io/enforce".into(),
                Value::String(
                    self.pick(&["baseline", "restricted", "privileged"])
                        .to_string(),
                ),
            );
        }
        let meta = self.metadata(None, name, created, labels, Map::new());
        let mut ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let fields = json!({"metadata": {"labels": ns["metadata"]["labels"].clone()}});
        let manager = if system {
            "kube-apiserver"
        } else {
            "kubectl-create"
        };
        Self::push_managed(
            &mut ns,
            managed_entry(manager, "Update", "v1", created, fields_of(&fields), None),
        );
        ns
    }

    /// The objects every namespace gets, plus the occasional StatefulSet, CronJob and default-deny policy.
    fn namespace_contents(&mut self, ns: &str, created: i64) -> Vec<Value> {
        let mut out = self.namespace_basics(ns, created);
        if self.chance(0.35) {
            out.extend(self.stateful_set_bundle(ns, created));
        }
        if self.chance(0.4) {
            out.extend(self.cron_job_bundle(ns, created));
        }
        if self.chance(0.5) {
            out.push(self.default_deny(ns, created));
        }
        if self.chance(0.4) {
            out.push(self.docker_config_secret(ns, "regcred", created));
        }
        out
    }

    fn namespace_basics(&mut self, ns: &str, created: i64) -> Vec<Value> {
        self.reserve("ServiceAccount", ns, "default");
        let meta = self.metadata(Some(ns), "default", created, Map::new(), Map::new());
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
        self.reserve("ConfigMap", ns, "kube-root-ca.crt");
        let annotations = labels_of(&[("kubernetes.io/description", ROOT_CA_DESCRIPTION)]);
        let meta = self.metadata(
            Some(ns),
            "kube-root-ca.crt",
            created,
            Map::new(),
            annotations,
        );
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"ca.crt": self.ca_pem.clone()}});
        let fields = json!({"data": cm["data"].clone(), "metadata": {"annotations": cm["metadata"]["annotations"].clone()}});
        Self::push_managed(
            &mut cm,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "v1",
                created,
                fields_of(&fields),
                None,
            ),
        );
        vec![sa, cm]
    }

    fn new_app(&mut self, ns: &str, floor: i64) -> App {
        let mut name = String::new();
        for attempt in 0..50 {
            let candidate = if attempt < 40 {
                format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES))
            } else {
                format!(
                    "{}-{}-{}",
                    self.pick(DOMAINS),
                    self.pick(ROLES),
                    self.range(2, 999)
                )
            };
            if self.reserve("App", ns, &candidate) {
                name = candidate;
                break;
            }
        }
        let flavor = match self.range(0, 19) {
            0..=5 => Flavor::Spinnaker,
            6..=9 => Flavor::SpinnakerServerSide,
            10..=14 => Flavor::Helm,
            15..=17 => Flavor::Kubectl,
            _ => Flavor::ServerSide,
        };
        let runtime = self.pick(&[
            Runtime::Jvm,
            Runtime::Jvm,
            Runtime::Go,
            Runtime::Go,
            Runtime::Node,
            Runtime::Python,
        ]);
        let org = self.pick(ORGS);
        let team = self.pick(TEAMS);
        let version = self.version();
        let mut labels = Map::new();
        let mut selector = Map::new();
        let mut template_labels = Map::new();
        match flavor {
            Flavor::Helm => {
                let chart = format!(
                    "{name}-{}.{}.{}",
                    self.range(0, 5),
                    self.range(0, 30),
                    self.range(0, 20)
                );
                let release = if self.chance(0.5) {
                    name.clone()
                } else {
                    format!("{}-{}", name, self.pick(ENVIRONMENTS))
                };
                for (k, v) in [
                    ("app.kubernetes.io/instance", release.as_str()),
                    ("app.kubernetes.io/managed-by", "Helm"),
                    ("app.kubernetes.io/name", name.as_str()),
                    ("app.kubernetes.io/version", version.as_str()),
                    ("helm.sh/chart", chart.as_str()),
                ] {
                    labels.insert(k.into(), Value::String(v.to_string()));
                }
                selector.insert(
                    "app.kubernetes.io/instance".into(),
                    Value::String(release.clone()),
                );
                selector.insert("app.kubernetes.io/name".into(), Value::String(name.clone()));
            }
            Flavor::Spinnaker | Flavor::SpinnakerServerSide => {
                labels.insert("app.kubernetes.io/managed-by".into(), json!("spinnaker"));
                labels.insert(
                    "app.kubernetes.io/name".into(),
                    Value::String(spinnaker_application(&name).to_string()),
                );
                selector.insert("app".into(), Value::String(name.clone()));
                template_labels.insert("app.kubernetes.io/managed-by".into(), json!("spinnaker"));
                template_labels.insert(
                    "app.kubernetes.io/name".into(),
                    Value::String(spinnaker_application(&name).to_string()),
                );
            }
            _ => {
                labels.insert("app".into(), Value::String(name.clone()));
                selector.insert("app".into(), Value::String(name.clone()));
            }
        }
        if self.chance(0.5) {
            labels.insert("team".into(), Value::String(team.to_string()));
            template_labels.insert("team".into(), Value::String(team.to_string()));
        }
        if self.chance(0.3) {
            labels.insert(
                "app.kubernetes.io/part-of".into(),
                Value::String(self.pick(DOMAINS).to_string()),
            );
        }
        if self.chance(0.4) {
            template_labels.insert("version".into(), Value::String(version.clone()));
        }
        let image_repo = self.image_repo(org, &name);
        let port = self.pick(match runtime {
            Runtime::Jvm => &[8080, 8080, 8081, 9000][..],
            Runtime::Go => &[8080, 9090, 8000, 3000][..],
            Runtime::Node => &[3000, 3000, 8080, 4000][..],
            Runtime::Python => &[8000, 8000, 5000, 8080][..],
        });
        let created = self.between(floor.max(self.cluster_created) + HOUR, self.now - 2 * DAY);
        let lean = self.chance(0.65);
        App {
            ns: ns.to_string(),
            config_map: None,
            secret: None,
            service_account: None,
            name,
            flavor,
            runtime,
            created,
            labels,
            selector,
            template_labels,
            image_repo,
            version,
            port,
            component: None,
            lean,
        }
    }

    fn app_created(&mut self, ns: &str, floor: i64) -> Vec<Value> {
        self.ensure_nodes();
        let mut app = self.new_app(ns, floor);
        let mut extras = Vec::new();
        if self.chance(0.4) {
            let name = app.name.clone();
            extras.push(self.service_account(&app, &name));
            app.service_account = Some(name);
        }
        if self.chance(0.5) {
            let name = format!("{}-config", app.name);
            extras.push(self.config_map(&app, &name));
            app.config_map = Some(name);
        }
        if self.chance(0.5) {
            let name = format!("{}-secrets", app.name);
            let data = self.secret_data();
            let (labels, annotations) = self.app_metadata(&app, "Secret", &name);
            let created = app.created;
            extras.push(self.secret_object(
                ns,
                &name,
                "Opaque",
                data,
                created,
                app.flavor,
                labels,
                annotations,
            ));
            app.secret = Some(name);
        }
        let replicas = self.pick(&[1u64, 2, 2, 3, 3, 3, 4, 4, 5, 6]);
        let mut out = self.deployment_bundle(&app, replicas);
        out.push(self.service(&app));
        out.extend(extras);
        if self.chance(0.35) {
            out.extend(self.ingress(&app));
        }
        if self.chance(0.25) {
            out.push(self.network_policy(&app));
        }
        out
    }

    /// Deployment, ReplicaSets (older ones scaled to zero) and the current ReplicaSet's pods.
    fn deployment_bundle(&mut self, app: &App, replicas: u64) -> Vec<Value> {
        let template = self.pod_template(app);
        let replica_sets = self.pick(&[1, 2, 2, 3, 3, 3]);
        let revision = self.range(replica_sets, replica_sets + 12);
        let mut deployment = self.deployment(app, replicas, revision, template);
        let mut out = Vec::new();
        let mut rs_created = app.created;
        let mut current = Value::Null;
        for i in (0..replica_sets).rev() {
            let rev = revision - i;
            let mut source = deployment.clone();
            if i > 0 {
                for container in source
                    .pointer_mut("/spec/template/spec/containers")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let image = text(container, "/image");
                    container["image"] = Value::String(self.bump_image(&image));
                }
            }
            rs_created = self.between(
                rs_created + HOUR,
                (rs_created + 60 * DAY).min(self.now - HOUR),
            );
            let rs = self.replica_set(&source, rev, if i == 0 { replicas } else { 0 }, rs_created);
            if i == 0 {
                current = rs.clone();
            }
            out.push(rs);
        }
        let rs_name = text(&current, "/metadata/name");
        for condition in deployment
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if condition["type"] == "Progressing" {
                condition["lastUpdateTime"] = Value::String(ts(rs_created + 40));
                condition["message"] = Value::String(format!(
                    "ReplicaSet \"{rs_name}\" has successfully progressed."
                ));
            }
        }
        let status_time = self.between(rs_created + 40, self.now);
        Self::status_managed(&mut deployment, "kube-controller-manager", status_time);
        out.insert(0, deployment);
        for _ in 0..replicas {
            let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
            let created = self.between(rs_created + 5, self.now - 60);
            out.push(self.pod_at(&current, node, created));
        }
        out
    }

    fn deployment(&mut self, app: &App, replicas: u64, revision: u64, template: Value) -> Value {
        self.reserve("Deployment", &app.ns, &app.name);
        let (labels, mut annotations) = self.app_metadata(app, "Deployment", &app.name);
        annotations.insert(
            "deployment.kubernetes.io/revision".into(),
            Value::String(revision.to_string()),
        );
        let mut meta = self.metadata(Some(&app.ns), &app.name, app.created, labels, annotations);
        let generation = revision + self.range(0, 6);
        meta.insert("generation".into(), json!(generation));
        let available = ts(self.between(app.created + 60, self.now - HOUR));
        let progressing = ts(app.created + self.range(30, 90) as i64);
        let mut deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": app.selector.clone()},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": template,
            },
            "status": {
                "availableReplicas": replicas,
                "conditions": [
                    {
                        "lastTransitionTime": available,
                        "lastUpdateTime": available,
                        "message": "Deployment has minimum availability.",
                        "reason": "MinimumReplicasAvailable",
                        "status": "True",
                        "type": "Available",
                    },
                    {
                        "lastTransitionTime": progressing,
                        "lastUpdateTime": progressing,
                        "message": "",
                        "reason": "NewReplicaSetAvailable",
                        "status": "True",
                        "type": "Progressing",
                    },
                ],
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updatedReplicas": replicas,
            },
        });
        if self.chance(0.2) {
            deployment["spec"]["strategy"]["rollingUpdate"] =
                json!({"maxSurge": 1, "maxUnavailable": 0});
        }
        let applied_at = self.between(app.created, self.now - HOUR);
        self.applied(&mut deployment, app.flavor, applied_at);
        let fields =
            json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": ""}}});
        Self::push_managed(
            &mut deployment,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "apps/v1",
                applied_at + 2,
                fields_of(&fields),
                None,
            ),
        );
        deployment
    }

    /// A ReplicaSet of `deployment`'s current template at `revision`.
    fn replica_set(
        &mut self,
        deployment: &Value,
        revision: u64,
        replicas: u64,
        created: i64,
    ) -> Value {
        let ns = text(deployment, "/metadata/namespace");
        let mut hash = self.template_hash();
        let mut name = format!("{}-{hash}", text(deployment, "/metadata/name"));
        while !self.reserve("ReplicaSet", &ns, &name) {
            hash = self.template_hash();
            name = format!("{}-{hash}", text(deployment, "/metadata/name"));
        }
        let mut template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        template["metadata"]["labels"]["pod-template-hash"] = Value::String(hash.clone());
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut annotations: Map<String, Value> = deployment
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| {
                        k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let desired = deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(replicas);
        annotations.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            Value::String(desired.to_string()),
        );
        annotations.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            Value::String((desired + desired.div_ceil(4)).to_string()),
        );
        annotations.insert(
            "deployment.kubernetes.io/revision".into(),
            Value::String(revision.to_string()),
        );
        let mut meta = self.metadata(Some(&ns), &name, created, labels, annotations);
        let generation = if replicas == 0 {
            self.range(2, 4)
        } else {
            self.range(1, 3)
        };
        meta.insert("generation".into(), json!(generation));
        meta.insert(
            "ownerReferences".into(),
            json!([Self::owner_reference(deployment)]),
        );
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        selector["matchLabels"]["pod-template-hash"] = Value::String(hash);
        let status = if replicas == 0 {
            json!({"observedGeneration": generation, "replicas": 0})
        } else {
            json!({
                "availableReplicas": replicas,
                "fullyLabeledReplicas": replicas,
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
            })
        };
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta,
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": status,
        });
        let owned = json!({
            "metadata": {
                "annotations": rs["metadata"]["annotations"].clone(),
                "labels": rs["metadata"]["labels"].clone(),
                "ownerReferences": rs["metadata"]["ownerReferences"].clone(),
            },
            "spec": rs["spec"].clone(),
        });
        Self::push_managed(
            &mut rs,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "apps/v1",
                created,
                fields_of(&owned),
                None,
            ),
        );
        let status_time = self.between(created + 20, self.now.max(created + 20));
        Self::status_managed(&mut rs, "kube-controller-manager", status_time);
        rs
    }

    /// The pod template of an app's workload, defaulted as the API server stores it.
    fn pod_template(&mut self, app: &App) -> Value {
        let mut labels = app.selector.clone();
        for (k, v) in &app.template_labels {
            labels.insert(k.clone(), v.clone());
        }
        let mut annotations = Map::new();
        if app.component.is_none() {
            if !app.lean && self.chance(0.6) {
                annotations.insert("prometheus.io/scrape".into(), json!("true"));
                annotations.insert(
                    "prometheus.io/port".into(),
                    Value::String(app.port.to_string()),
                );
                annotations.insert(
                    "prometheus.io/path".into(),
                    json!(self.pick(&["/metrics", "/actuator/prometheus", "/prometheus"])),
                );
            }
            if app.flavor == Flavor::Helm {
                annotations.insert("checksum/config".into(), Value::String(self.hex(64)));
                if self.chance(0.5) {
                    annotations.insert("checksum/secret".into(), Value::String(self.hex(64)));
                }
            }
            if app.flavor.spinnaker() {
                annotations.insert(
                    "moniker.spinnaker.io/application".into(),
                    Value::String(spinnaker_application(&app.name).to_string()),
                );
                annotations.insert(
                    "moniker.spinnaker.io/cluster".into(),
                    Value::String(format!("deployment {}", app.name)),
                );
            }
            if self.chance(0.15) {
                let t = self.between(app.created, self.now);
                annotations.insert(
                    "kubectl.kubernetes.io/restartedAt".into(),
                    Value::String(ts(t).replace('Z', "+00:00")),
                );
            }
        }
        let spec = self.pod_spec(app);
        let mut metadata = json!({"creationTimestamp": null, "labels": labels});
        if !annotations.is_empty() {
            metadata["annotations"] = Value::Object(annotations);
        }
        json!({"metadata": metadata, "spec": spec})
    }

    fn pod_spec(&mut self, app: &App) -> Value {
        let mut containers = vec![self.main_container(app)];
        let mut volumes = Vec::new();
        if let Some(cm) = &app.config_map {
            volumes.push(json!({"configMap": {"defaultMode": 420, "name": cm}, "name": "config"}));
        }
        let read_only_root = containers[0].pointer("/securityContext/readOnlyRootFilesystem")
            == Some(&Value::Bool(true));
        if app.component.is_none() && read_only_root {
            volumes.push(json!({"emptyDir": {}, "name": "tmp"}));
        }
        if !app.lean && self.chance(0.15) {
            let (name, image, args, port) = self.pick(SIDECARS);
            let mut sidecar = json!({
                "args": args,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "name": name,
                "ports": [{"containerPort": port, "name": "admin", "protocol": "TCP"}],
                "resources": self.resources(0.6),
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            });
            if self.chance(0.5) {
                sidecar["volumeMounts"] = json!([{"mountPath": format!("/etc/{name}"), "name": format!("{name}-config")}]);
                volumes.push(json!({"configMap": {"defaultMode": 420, "name": format!("{}-{name}", app.name)}, "name": format!("{name}-config")}));
            }
            containers.push(sidecar);
        }
        let sa = app
            .service_account
            .clone()
            .or_else(|| app.component.map(|c| c.name.to_string()));
        let mut spec = json!({
            "containers": containers,
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": self.pick(&[30, 30, 30, 60, 45, 120]),
        });
        if let Some(sa) = sa {
            spec["serviceAccount"] = Value::String(sa.clone());
            spec["serviceAccountName"] = Value::String(sa);
        }
        if let Some(component) = app.component {
            spec["priorityClassName"] = json!("system-cluster-critical");
            if component.host_network {
                spec["hostNetwork"] = json!(true);
            }
            spec["tolerations"] = json!([{"key": "CriticalAddonsOnly", "operator": "Exists"}]);
            spec["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        } else if !app.lean {
            if self.chance(0.5) {
                spec["securityContext"] = json!({"fsGroup": 10001, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
            }
            if self.chance(0.15) {
                let selector = Value::Object(app.selector.clone());
                spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "podAffinityTerm": {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"},
                    "weight": 100,
                }]}});
            }
            if self.chance(0.1) {
                spec["topologySpreadConstraints"] = json!([{
                    "labelSelector": {"matchLabels": Value::Object(app.selector.clone())},
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                }]);
            }
            if self.chance(0.2) {
                spec["nodeSelector"] = json!({"karpenter.sh/capacity-type": self.pick(&["on-demand", "spot"]), "kubernetes.io/arch": "amd64"});
            }
            if self.chance(0.2) {
                spec["imagePullSecrets"] = json!([{"name": "regcred"}]);
            }
            if self.chance(0.05) {
                let image = format!("{}:{}", app.image_repo, app.version);
                spec["initContainers"] = json!([{
                    "command": ["/app/migrate", "up", format!("--timeout={}s", self.range(30, 600))],
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "name": "migrate",
                    "resources": self.resources(0.5),
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }]);
            } else if self.chance(0.03) {
                let target = format!("{}-{}", self.pick(DATASTORES).0, self.pick(ROLES));
                spec["initContainers"] = json!([{
                    "command": ["sh", "-c", format!("until nc -z {target} {}; do echo waiting; sleep 2; done", self.range(1000, 9999))],
                    "image": self.pick(INIT_IMAGES),
                    "imagePullPolicy": "IfNotPresent",
                    "name": "wait-for-deps",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }]);
            }
        }
        if !volumes.is_empty() {
            spec["volumes"] = Value::Array(volumes);
        }
        spec
    }

    fn resources(&mut self, p_limits: f64) -> Value {
        let cpu = self.pick(&["50m", "100m", "200m", "250m", "500m", "750m", "1", "2"]);
        let memory = self.pick(&[
            "64Mi", "128Mi", "256Mi", "384Mi", "512Mi", "768Mi", "1Gi", "2Gi", "3Gi", "4Gi",
        ]);
        let mut r = json!({"requests": {"cpu": cpu, "memory": memory}});
        if self.chance(p_limits) {
            r["limits"] = if self.chance(0.4) {
                json!({"cpu": cpu, "memory": memory})
            } else {
                // A limit below the request is refused by the API server: only those above it.
                let mebibytes = |q: &str| match q.strip_suffix("Gi") {
                    Some(g) => g.parse::<u32>().unwrap_or(0) * 1024,
                    None => q.trim_end_matches("Mi").parse::<u32>().unwrap_or(0),
                };
                let at_least: Vec<&str> = ["256Mi", "512Mi", "1Gi", "1536Mi", "2Gi", "4Gi", "6Gi"]
                    .into_iter()
                    .filter(|limit| mebibytes(limit) >= mebibytes(memory))
                    .collect();
                json!({"memory": self.pick(&at_least)})
            };
        }
        r
    }

    fn probe(&mut self, path: &str, port: Value, initial: u64) -> Value {
        let mut p = json!({
            "failureThreshold": self.pick(&[3, 3, 3, 5, 6, 10]),
            "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
            "periodSeconds": self.pick(&[10, 10, 5, 15, 20, 30]),
            "successThreshold": 1,
            "timeoutSeconds": self.pick(&[1, 1, 2, 3, 5]),
        });
        if initial > 0 {
            p["initialDelaySeconds"] = json!(initial);
        }
        p
    }

    fn main_container(&mut self, app: &App) -> Value {
        if let Some(component) = app.component {
            return self.component_container(component);
        }
        let tag = app.version.clone();
        let image = self.image(&app.image_repo, &tag);
        let mut c = Map::new();
        let (command, args) = self.command_line(app);
        if !args.is_empty() {
            c.insert("args".into(), json!(args));
        }
        if !command.is_empty() {
            c.insert("command".into(), json!(command));
        }
        c.insert("env".into(), Value::Array(self.env(app)));
        if let Some(cm) = &app.config_map
            && self.chance(0.4)
        {
            c.insert("envFrom".into(), json!([{"configMapRef": {"name": cm}}]));
        }
        let pull = if tag.starts_with("main-") || self.chance(0.15) {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("image".into(), Value::String(image));
        c.insert("imagePullPolicy".into(), json!(pull));
        let health = match app.runtime {
            Runtime::Jvm => ("/actuator/health/liveness", "/actuator/health/readiness"),
            Runtime::Go => ("/healthz", "/readyz"),
            Runtime::Node => ("/health", "/ready"),
            Runtime::Python => ("/health/live", "/health/ready"),
        };
        let port_ref = if self.chance(0.5) {
            json!("http")
        } else {
            json!(app.port)
        };
        let initial = if app.runtime == Runtime::Jvm {
            self.range(20, 90)
        } else {
            self.range(0, 15)
        };
        if !app.lean {
            c.insert(
                "livenessProbe".into(),
                self.probe(health.0, port_ref.clone(), initial),
            );
        }
        c.insert(
            "name".into(),
            Value::String(if self.chance(0.6) {
                app.name.clone()
            } else {
                self.pick(&["app", "server", "main"]).to_string()
            }),
        );
        let mut ports = vec![json!({"containerPort": app.port, "name": "http", "protocol": "TCP"})];
        if !app.lean && self.chance(0.3) {
            ports.push(json!({"containerPort": self.pick(&[9090, 9091, 8081, 9100]), "name": "metrics", "protocol": "TCP"}));
        }
        if self.chance(0.2) {
            ports.push(json!({"containerPort": self.pick(&[50051, 9000, 6565]), "name": "grpc", "protocol": "TCP"}));
        }
        let mut seen = BTreeSet::new();
        ports.retain(|p| seen.insert(p["containerPort"].as_u64()));
        c.insert("ports".into(), Value::Array(ports));
        if !app.lean || self.chance(0.5) {
            c.insert(
                "readinessProbe".into(),
                self.probe(health.1, port_ref.clone(), initial / 2),
            );
        }
        c.insert("resources".into(), self.resources(0.7));
        if !app.lean && self.chance(0.5) {
            c.insert(
                "securityContext".into(),
                json!({
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": true,
                    "runAsNonRoot": true,
                    "runAsUser": self.pick(&[1000, 10001, 65532, 1001]),
                }),
            );
        }
        if app.runtime == Runtime::Jvm && !app.lean && self.chance(0.3) {
            let mut startup = self.probe(health.0, port_ref, 0);
            startup["failureThreshold"] = json!(self.range(12, 60));
            c.insert("startupProbe".into(), startup);
        }
        c.insert(
            "terminationMessagePath".into(),
            json!("/dev/termination-log"),
        );
        c.insert("terminationMessagePolicy".into(), json!("File"));
        let mut mounts = Vec::new();
        if c.contains_key("securityContext") {
            mounts.push(json!({"mountPath": "/tmp", "name": "tmp"}));
        }
        if app.config_map.is_some() {
            mounts.push(json!({"mountPath": format!("/etc/{}", app.name), "name": "config", "readOnly": true}));
        }
        if !mounts.is_empty() {
            c.insert("volumeMounts".into(), Value::Array(mounts));
        }
        Value::Object(c)
    }

    fn component_container(&mut self, component: &Component) -> Value {
        let fill = |s: &str, f: &Self| {
            s.replace("{region}", f.region)
                .replace("{cluster}", &f.cluster_name)
        };
        let mut c = Map::new();
        if !component.args.is_empty() {
            c.insert(
                "args".into(),
                json!(
                    component
                        .args
                        .iter()
                        .map(|a| fill(a, self))
                        .collect::<Vec<_>>()
                ),
            );
        }
        if !component.command.is_empty() {
            c.insert(
                "command".into(),
                json!(
                    component
                        .command
                        .iter()
                        .map(|a| fill(a, self))
                        .collect::<Vec<_>>()
                ),
            );
        }
        let mut env = vec![
            json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        ];
        if component.name.contains("ebs-csi") {
            env.push(json!({"name": "CSI_ENDPOINT", "value": "unix:///var/lib/csi/sockets/pluginproxy/csi.sock"}));
        }
        if component.name == "aws-node" {
            for (k, v) in [
                ("ADDITIONAL_ENI_TAGS", "{}"),
                ("AWS_VPC_CNI_NODE_PORT_SUPPORT", "true"),
                ("AWS_VPC_ENI_MTU", "9001"),
                ("WARM_ENI_TARGET", "1"),
                ("ENABLE_PREFIX_DELEGATION", "false"),
            ] {
                env.push(json!({"name": k, "value": v}));
            }
            env.push(json!({"name": "CLUSTER_NAME", "value": self.cluster_name.clone()}));
        }
        c.insert("env".into(), Value::Array(env));
        c.insert("image".into(), Value::String(fill(component.image, self)));
        c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
        if let Some((path, port)) = component.probe {
            c.insert("livenessProbe".into(), self.probe(path, json!(port), 10));
        }
        c.insert("name".into(), Value::String(component.name.to_string()));
        if !component.ports.is_empty() {
            let ports: Vec<Value> = component
                .ports
                .iter()
                .map(|(n, p, proto)| json!({"containerPort": p, "name": n, "protocol": proto}))
                .collect();
            c.insert("ports".into(), Value::Array(ports));
        }
        c.insert("resources".into(), self.resources(0.5));
        c.insert(
            "securityContext".into(),
            json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}),
        );
        c.insert(
            "terminationMessagePath".into(),
            json!("/dev/termination-log"),
        );
        c.insert("terminationMessagePolicy".into(), json!("File"));
        Value::Object(c)
    }

    /// Fills the placeholders of a flag or JVM option with values from the app's context.
    fn fill_flag(&mut self, flag: &str, app: &App) -> String {
        let mut out = flag.to_string();
        let subs: [(&str, String); 13] = [
            ("{pct}", self.range(50, 85).to_string()),
            ("{pct2}", self.range(20, 50).to_string()),
            ("{ms}", self.range(50, 2000).to_string()),
            ("{kb}", self.pick(&["256", "512", "1024"]).to_string()),
            ("{n}", self.range(2, 5000).to_string()),
            ("{cpu}", self.range(1, 16).to_string()),
            ("{port}", self.range(1024, 65000).to_string()),
            ("{level}", self.pick(LOG_LEVELS).to_string()),
            ("{version}", app.version.clone()),
            ("{bytes}", (1u64 << self.range(20, 27)).to_string()),
            (
                "{peer}",
                format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES)),
            ),
            ("{ns}", app.ns.clone()),
            ("{region}", self.region.to_string()),
        ];
        for (k, v) in subs {
            out = out.replace(k, &v);
        }
        out.replace("{app}", &app.name)
    }

    fn command_line(&mut self, app: &App) -> (Vec<String>, Vec<String>) {
        match app.runtime {
            Runtime::Jvm => {
                if self.chance(0.5) {
                    return (Vec::new(), Vec::new()); // configured through JAVA_TOOL_OPTIONS
                }
                let mut command = vec!["java".to_string()];
                for _ in 0..self.range(1, 4) {
                    let flag = self.pick(JVM_FLAGS);
                    command.push(self.fill_flag(flag, app));
                }
                command.push("-jar".into());
                command.push(format!("/app/{}.jar", app.name));
                (command, Vec::new())
            }
            Runtime::Go => {
                let mut args = vec![format!("--port={}", app.port)];
                for _ in 0..self.range(1, 4) {
                    let flag = self.pick(GO_FLAGS);
                    args.push(self.fill_flag(flag, app));
                }
                let command = if self.chance(0.5) {
                    vec![format!("/usr/local/bin/{}", app.name)]
                } else {
                    Vec::new()
                };
                (command, args)
            }
            Runtime::Node => {
                let entry = self.pick(&[
                    "dist/index.js",
                    "dist/main.js",
                    "server.js",
                    "build/server/index.js",
                ]);
                (
                    vec![
                        "node".into(),
                        format!("--max-old-space-size={}", self.range(256, 4096)),
                        entry.into(),
                    ],
                    Vec::new(),
                )
            }
            Runtime::Python => {
                let workers = self.range(2, 9).to_string();
                let module =
                    self.pick(&["app:app", "main:app", "wsgi:application", "server.asgi:app"]);
                let args = vec![
                    module.to_string(),
                    "--bind".into(),
                    format!("0.0.0.0:{}", app.port),
                    "--workers".into(),
                    workers,
                    "--timeout".into(),
                    self.range(30, 120).to_string(),
                ];
                (vec!["gunicorn".into()], args)
            }
        }
    }

    fn env(&mut self, app: &App) -> Vec<Value> {
        let mut env = Vec::new();
        let mut names = BTreeSet::new();
        if app.runtime == Runtime::Jvm {
            let mut opts = Vec::new();
            for _ in 0..self.range(2, 4) {
                let flag = self.pick(JVM_FLAGS);
                opts.push(self.fill_flag(flag, app));
            }
            env.push(json!({"name": "JAVA_TOOL_OPTIONS", "value": opts.join(" ")}));
            env.push(json!({"name": "SPRING_PROFILES_ACTIVE", "value": self.pick(&["prod", "production,aws", "kubernetes", "prod,json-logs"])}));
        }
        let most = if app.lean { 2 } else { 5 };
        for _ in 0..self.range(0, most) {
            let name = self.pick(ENV_NAMES);
            if !names.insert(name) {
                continue;
            }
            let peer = format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES));
            let value = match name {
                "LOG_LEVEL" => self.pick(LOG_LEVELS).to_string(),
                "LOG_FORMAT" => self.pick(&["json", "logfmt", "text"]).to_string(),
                "DATABASE_URL" if app.secret.is_some() => {
                    let secret = app.secret.clone().unwrap_or_default();
                    env.push(json!({"name": name, "valueFrom": {"secretKeyRef": {"key": "database-url", "name": secret}}}));
                    continue;
                }
                "DATABASE_URL" => format!(
                    "jdbc:postgresql://{}.{}.{}.rds.amazonaws.com:5432/{}",
                    peer,
                    self.hex(12),
                    self.region,
                    app.name.replace('-', "_")
                ),
                "REDIS_URL" => format!(
                    "redis://redis-master.{}.svc.cluster.local:6379/{}",
                    app.ns,
                    self.range(0, 15)
                ),
                "KAFKA_BOOTSTRAP_SERVERS" => (0..3)
                    .map(|i| {
                        format!(
                            "b-{}.{}.{}.c{}.kafka.{}.amazonaws.com:9098",
                            i + 1,
                            app.ns,
                            self.hex(6),
                            self.range(2, 25),
                            self.region
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                "OTEL_EXPORTER_OTLP_ENDPOINT" => format!(
                    "http://otel-collector.{}.svc.cluster.local:4317",
                    self.pick(&["observability", "monitoring", "otel"])
                ),
                "OTEL_SERVICE_NAME" => app.name.clone(),
                "AWS_REGION" => self.region.to_string(),
                "SENTRY_DSN" => format!(
                    "https://{}@o{}.ingest.sentry.io/{}",
                    self.hex(32),
                    self.digits(6),
                    self.digits(7)
                ),
                "UPSTREAM_URL" => format!(
                    "http://{peer}.{}.svc.cluster.local:{}",
                    app.ns,
                    self.pick(&[80, 8080, 9090, 3000])
                ),
                "S3_BUCKET" => format!(
                    "{}-{}-{}",
                    self.pick(ORGS),
                    app.name,
                    self.pick(ENVIRONMENTS)
                ),
                "SQS_QUEUE_URL" => {
                    let task = self.pick(CRON_TASKS);
                    format!(
                        "https://sqs.{}.amazonaws.com/{}/{}-{task}",
                        self.region, self.account, app.name
                    )
                }
                "ENVIRONMENT" | "DD_ENV" => self.pick(ENVIRONMENTS).to_string(),
                "DD_VERSION" => app.version.clone(),
                "STATSD_HOST" => "$(HOST_IP)".to_string(),
                "TZ" => self
                    .pick(&["UTC", "Etc/UTC", "America/New_York", "Europe/Berlin"])
                    .to_string(),
                "FEATURE_NEW_CHECKOUT" => self
                    .pick(&["true", "false", "0", "1", "enabled"])
                    .to_string(),
                "ALLOWED_ORIGINS" => format!(
                    "https://{}.{},https://www.{}",
                    self.pick(DOMAINS),
                    self.domain,
                    self.domain
                ),
                "RETRY_BACKOFF" | "SESSION_TTL" => {
                    format!("{}{}", self.range(1, 600), self.pick(&["s", "ms", "m"]))
                }
                "TRACE_SAMPLE_RATE" => format!("0.{}", self.range(1, 99)),
                _ => self.range(1, 20_000).to_string(),
            };
            env.push(json!({"name": name, "value": value}));
        }
        if !app.lean && self.chance(0.4) {
            env.push(json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}));
            env.push(json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}));
        }
        if self.chance(0.3) {
            env.push(json!({"name": "HOST_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}}));
        }
        if app.runtime == Runtime::Go && self.chance(0.5) {
            env.push(json!({"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}}));
        }
        if let Some(secret) = &app.secret
            && self.chance(0.7)
        {
            let key = self.pick(SECRET_KEYS);
            env.push(json!({"name": key.to_uppercase().replace('-', "_"), "valueFrom": {"secretKeyRef": {"key": key, "name": secret}}}));
        }
        env
    }

    /// A Pod of `owner` on node `node` created at `created`, with the status the kubelet reports.
    fn pod_at(&mut self, owner: &Value, node: usize, created: i64) -> Value {
        let kind = text(owner, "/kind");
        let ns = text(owner, "/metadata/namespace");
        let owner_name = text(owner, "/metadata/name");
        let template = match kind.as_str() {
            "CronJob" => owner.pointer("/spec/jobTemplate/spec/template"),
            _ => owner.pointer("/spec/template"),
        }
        .cloned()
        .unwrap_or_else(|| json!({"spec": {"containers": []}}));
        let node = self.nodes.get(node).cloned().unwrap_or_else(|| Node {
            name: "unknown".into(),
            ip: "10.0.0.1".into(),
        });
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut generate_name = Some(format!("{owner_name}-"));
        let name = match kind.as_str() {
            "StatefulSet" => {
                let uid = text(owner, "/metadata/uid");
                let ordinal = self.ordinals.entry(uid).or_insert(0);
                let n = *ordinal;
                *ordinal += 1;
                let name = format!("{owner_name}-{n}");
                labels.insert(
                    "apps.kubernetes.io/pod-index".into(),
                    Value::String(n.to_string()),
                );
                labels.insert(
                    "controller-revision-hash".into(),
                    Value::String(text(owner, "/status/currentRevision")),
                );
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    Value::String(name.clone()),
                );
                spec["hostname"] = Value::String(name.clone());
                spec["subdomain"] = Value::String(text(owner, "/spec/serviceName"));
                let mut volumes = vec![];
                for claim in owner
                    .pointer("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let claim_name = text(claim, "/metadata/name");
                    volumes.push(json!({"name": claim_name, "persistentVolumeClaim": {"claimName": format!("{claim_name}-{name}")}}));
                }
                volumes.extend(
                    spec.get("volumes")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
                spec["volumes"] = Value::Array(volumes);
                generate_name = None;
                self.reserve("Pod", &ns, &name);
                name
            }
            _ => loop {
                let name = format!("{owner_name}-{}", self.suffix());
                if self.reserve("Pod", &ns, &name) {
                    break name;
                }
            },
        };
        if kind == "DaemonSet" {
            labels.insert(
                "controller-revision-hash".into(),
                Value::String(safe_hash(&text(owner, "/metadata/uid"))),
            );
            let generation = owner
                .pointer("/metadata/generation")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            labels.insert(
                "pod-template-generation".into(),
                Value::String(generation.to_string()),
            );
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node.name.clone()]}]}
            ]}}});
        }
        let mut meta = Map::new();
        if let Some(a) = template.pointer("/metadata/annotations") {
            meta.insert("annotations".into(), a.clone());
        }
        meta.insert("creationTimestamp".into(), Value::String(ts(created)));
        if let Some(g) = &generate_name {
            meta.insert("generateName".into(), Value::String(g.clone()));
        }
        meta.insert("labels".into(), Value::Object(labels));
        meta.insert("name".into(), Value::String(name.clone()));
        meta.insert("namespace".into(), Value::String(ns.clone()));
        meta.insert(
            "ownerReferences".into(),
            json!([Self::owner_reference(owner)]),
        );
        meta.insert(
            "resourceVersion".into(),
            Value::String(self.next_resource_version()),
        );
        meta.insert("uid".into(), Value::String(self.uid()));
        let owned_spec = spec.clone();
        self.admit_pod(&mut spec, &kind, &node);
        let host_network = spec["hostNetwork"] == true;
        let succeeded = kind == "Job";
        let status = self.pod_status(&spec, &node, created, host_network, succeeded);
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status});
        let mut owned_meta = json!({
            "labels": pod["metadata"]["labels"].clone(),
            "ownerReferences": pod["metadata"]["ownerReferences"].clone(),
        });
        if let Some(a) = pod.pointer("/metadata/annotations") {
            owned_meta["annotations"] = a.clone();
        }
        if generate_name.is_some() {
            owned_meta["generateName"] = json!("");
        }
        let mut owned_spec = owned_spec;
        owned_spec["enableServiceLinks"] = json!(true);
        let manager = "kube-controller-manager";
        let fields = json!({"metadata": owned_meta, "spec": owned_spec});
        Self::push_managed(
            &mut pod,
            managed_entry(manager, "Update", "v1", created, fields_of(&fields), None),
        );
        let status_time = created + self.range(30, 120) as i64;
        Self::status_managed(&mut pod, "kubelet", status_time);
        pod
    }

    /// What admission and the scheduler add to a pod's spec.
    fn admit_pod(&mut self, spec: &mut Value, owner_kind: &str, node: &Node) {
        let volume_name = format!("kube-api-access-{}", self.suffix());
        let mount = json!({"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": volume_name, "readOnly": true});
        for list in ["containers", "initContainers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                    Some(mounts) => mounts.push(mount.clone()),
                    None => c["volumeMounts"] = json!([mount.clone()]),
                }
            }
        }
        let projected = json!({"name": volume_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
        ]}});
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(v) => v.push(projected),
            None => spec["volumes"] = json!([projected]),
        }
        spec["enableServiceLinks"] = json!(true);
        spec["nodeName"] = Value::String(node.name.clone());
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
        let priority = match spec.get("priorityClassName").and_then(Value::as_str) {
            Some("system-node-critical") => 2_000_001_000,
            Some("system-cluster-critical") => 2_000_000_000,
            _ => 0,
        };
        spec["priority"] = json!(priority);
        if spec.get("serviceAccountName").is_none() {
            spec["serviceAccount"] = json!("default");
            spec["serviceAccountName"] = json!("default");
        }
        let mut tolerations = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if owner_kind == "DaemonSet" {
            for (key, effect) in [
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
                ("node.kubernetes.io/network-unavailable", "NoSchedule"),
            ] {
                tolerations.push(json!({"effect": effect, "key": key, "operator": "Exists"}));
            }
        } else {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                tolerations.push(json!({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}));
            }
        }
        spec["tolerations"] = Value::Array(tolerations);
    }

    fn pod_status(
        &mut self,
        spec: &Value,
        node: &Node,
        created: i64,
        host_network: bool,
        succeeded: bool,
    ) -> Value {
        let pod_ip = if host_network {
            node.ip.clone()
        } else {
            self.pod_ip()
        };
        let scheduled = created;
        let started = created + self.range(1, 4) as i64;
        let init_done = started + self.range(1, 20) as i64;
        let ready = init_done + self.range(5, 90) as i64;
        let finished = ready + self.range(10, 900) as i64;
        let condition = |t: &str, status: &str, at: i64, reason: Option<&str>| {
            let mut c = json!({"lastProbeTime": null, "lastTransitionTime": ts(at), "status": status, "type": t});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            c
        };
        let conditions = if succeeded {
            vec![
                condition("PodReadyToStartContainers", "False", finished, None),
                condition("Initialized", "True", init_done, Some("PodCompleted")),
                condition("Ready", "False", finished, Some("PodCompleted")),
                condition("ContainersReady", "False", finished, Some("PodCompleted")),
                condition("PodScheduled", "True", scheduled, None),
            ]
        } else {
            vec![
                condition("PodReadyToStartContainers", "True", started + 2, None),
                condition("Initialized", "True", init_done, None),
                condition("Ready", "True", ready, None),
                condition("ContainersReady", "True", ready, None),
                condition("PodScheduled", "True", scheduled, None),
            ]
        };
        let mut status = Map::new();
        status.insert("conditions".into(), Value::Array(conditions));
        let containers = spec
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut statuses = Vec::new();
        for c in &containers {
            statuses.push(self.container_status(c, init_done, finished, succeeded, false));
        }
        statuses.sort_by_key(|s| text(s, "/name"));
        status.insert("containerStatuses".into(), Value::Array(statuses));
        status.insert("hostIP".into(), Value::String(node.ip.clone()));
        status.insert("hostIPs".into(), json!([{"ip": node.ip.clone()}]));
        if let Some(inits) = spec.get("initContainers").and_then(Value::as_array) {
            let mut statuses = Vec::new();
            for c in inits {
                statuses.push(self.container_status(c, started, init_done, true, true));
            }
            status.insert("initContainerStatuses".into(), Value::Array(statuses));
        }
        status.insert(
            "phase".into(),
            json!(if succeeded { "Succeeded" } else { "Running" }),
        );
        status.insert("podIP".into(), Value::String(pod_ip.clone()));
        status.insert("podIPs".into(), json!([{"ip": pod_ip}]));
        status.insert("qosClass".into(), json!(qos_class(&containers)));
        status.insert("startTime".into(), Value::String(ts(started)));
        Value::Object(status)
    }

    fn container_status(
        &mut self,
        container: &Value,
        started: i64,
        finished: i64,
        terminated: bool,
        init: bool,
    ) -> Value {
        let image = text(container, "/image");
        let image_id = self.image_id(&image);
        let container_id = format!("containerd://{}", self.hex(64));
        let restarts = if terminated || self.chance(0.88) {
            0
        } else {
            self.range(1, 30)
        };
        let mut last_state = json!({});
        let mut running_since = started + self.range(1, 10) as i64;
        if restarts > 0 {
            let crashed = self.between(running_since, self.now - 60);
            last_state = json!({"terminated": {
                "containerID": format!("containerd://{}", self.hex(64)),
                "exitCode": self.pick(&[137, 1, 143, 2, 255]),
                "finishedAt": ts(crashed),
                "reason": self.pick(&["OOMKilled", "Error", "Error"]),
                "startedAt": ts(running_since),
            }});
            running_since = crashed + self.range(1, 300) as i64;
        }
        let state = if terminated {
            json!({"terminated": {
                "containerID": container_id.clone(),
                "exitCode": 0,
                "finishedAt": ts(finished),
                "reason": "Completed",
                "startedAt": ts(started + 1),
            }})
        } else {
            json!({"running": {"startedAt": ts(running_since)}})
        };
        let mut s = json!({
            "containerID": container_id,
            "image": image_display(&image),
            "imageID": image_id,
            "lastState": last_state,
            "name": text(container, "/name"),
            "ready": !terminated,
            "restartCount": restarts,
            "started": !terminated,
            "state": state,
        });
        if init {
            s["ready"] = json!(true);
            if let Some(m) = s.as_object_mut() {
                m.remove("started");
            }
        }
        let mounts = container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !mounts.is_empty() {
            let mounts: Vec<Value> = mounts
                .iter()
                .map(|m| {
                    let mut v = m.clone();
                    if v.get("readOnly") == Some(&json!(true)) {
                        v["recursiveReadOnly"] = json!("Disabled");
                    }
                    v
                })
                .collect();
            s["volumeMounts"] = Value::Array(mounts);
        }
        s
    }

    fn service(&mut self, app: &App) -> Value {
        self.reserve("Service", &app.ns, &app.name);
        let (labels, mut annotations) = self.app_metadata(app, "Service", &app.name);
        let load_balancer = self.chance(0.1);
        if load_balancer {
            annotations.insert(
                "service.beta.kubernetes.io/aws-load-balancer-type".into(),
                json!("nlb"),
            );
            annotations.insert(
                "service.beta.kubernetes.io/aws-load-balancer-scheme".into(),
                json!(self.pick(&["internal", "internet-facing"])),
            );
        }
        let created = app.created + self.range(0, 30) as i64;
        let meta = self.metadata(Some(&app.ns), &app.name, created, labels, annotations);
        let ip = self.cluster_ip();
        let mut ports = vec![
            json!({"name": "http", "port": self.pick(&[80, 80, 8080, app.port]), "protocol": "TCP", "targetPort": if self.chance(0.5) { json!("http") } else { json!(app.port) }}),
        ];
        if self.chance(0.2) {
            ports.push(json!({"name": "grpc", "port": 9000 + self.range(0, 99), "protocol": "TCP", "targetPort": app.port}));
        }
        let mut spec = json!({
            "clusterIP": ip,
            "clusterIPs": [ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": ports,
            "selector": Value::Object(app.selector.clone()),
            "sessionAffinity": "None",
            "type": "ClusterIP",
        });
        let mut status = json!({"loadBalancer": {}});
        if load_balancer {
            spec["type"] = json!("LoadBalancer");
            spec["allocateLoadBalancerNodePorts"] = json!(true);
            spec["externalTrafficPolicy"] = json!("Cluster");
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                p["nodePort"] = json!(self.range(30000, 32767));
            }
            let host = format!(
                "k8s-{}-{}-{}.elb.{}.amazonaws.com",
                truncate(&app.ns, 9),
                truncate(&app.name, 9),
                self.hex(10),
                self.region
            );
            status = json!({"loadBalancer": {"ingress": [{"hostname": host}]}});
        }
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status});
        self.applied(&mut svc, app.flavor, created);
        if load_balancer {
            Self::status_managed(&mut svc, "aws-load-balancer-controller", created + 60);
        }
        svc
    }

    fn service_account(&mut self, app: &App, name: &str) -> Value {
        self.reserve("ServiceAccount", &app.ns, name);
        let (labels, mut annotations) = self.app_metadata(app, "ServiceAccount", name);
        if self.chance(0.6) {
            annotations.insert(
                "eks.amazonaws.com/role-arn".into(),
                Value::String(format!(
                    "arn:aws:iam::{}:role/{}-{}-irsa",
                    self.account, app.ns, name
                )),
            );
        }
        let meta = self.metadata(Some(&app.ns), name, app.created, labels, annotations);
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
        if self.chance(0.3) {
            sa["automountServiceAccountToken"] = json!(true);
        }
        self.applied(&mut sa, app.flavor, app.created);
        sa
    }

    fn config_map(&mut self, app: &App, name: &str) -> Value {
        self.reserve("ConfigMap", &app.ns, name);
        let (labels, annotations) = self.app_metadata(app, "ConfigMap", name);
        let created = self.between(app.created, self.now - HOUR);
        let meta = self.metadata(Some(&app.ns), name, created, labels, annotations);
        let mut yaml = format!("server:\n  port: {}\n  shutdown: graceful\n", app.port);
        for section in 0..self.range(1, 4) {
            let _ = section;
            yaml.push_str(&format!("{}:\n", self.pick(DOMAINS)));
            for _ in 0..self.range(2, 8) {
                let key = self.pick(CONFIG_KEYS);
                let value = match self.range(0, 3) {
                    0 => format!("{}ms", self.range(50, 30_000)),
                    1 => self.range(1, 10_000).to_string(),
                    2 => format!(
                        "http://{}-{}.{}.svc.cluster.local:{}",
                        self.pick(DOMAINS),
                        self.pick(ROLES),
                        app.ns,
                        self.pick(&[80, 8080, 9090])
                    ),
                    _ => self.pick(&["true", "false"]).to_string(),
                };
                yaml.push_str(&format!("  {key}: {value}\n"));
            }
        }
        let mut data = Map::new();
        data.insert("application.yaml".into(), Value::String(yaml));
        if self.chance(0.5) {
            data.insert("LOG_LEVEL".into(), json!(self.pick(LOG_LEVELS)));
            data.insert(
                "FEATURE_FLAGS".into(),
                Value::String(
                    (0..self.range(1, 5))
                        .map(|_| self.pick(DOMAINS))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            );
        }
        let mut cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data});
        self.applied(&mut cm, app.flavor, created);
        cm
    }

    #[allow(clippy::too_many_arguments)]
    fn secret_object(
        &mut self,
        ns: &str,
        name: &str,
        kind: &str,
        data: Map<String, Value>,
        created: i64,
        flavor: Flavor,
        labels: Map<String, Value>,
        annotations: Map<String, Value>,
    ) -> Value {
        let name = if self.reserve("Secret", ns, name) {
            name.to_string()
        } else {
            loop {
                let candidate = format!("{name}-{}", self.suffix());
                if self.reserve("Secret", ns, &candidate) {
                    break candidate;
                }
            }
        };
        let meta = self.metadata(Some(ns), &name, created, labels, annotations);
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data, "type": kind});
        self.applied(&mut secret, flavor, created);
        secret
    }

    fn docker_config_secret(&mut self, ns: &str, name: &str, created: i64) -> Value {
        let registry = format!("{}.dkr.ecr.{}.amazonaws.com", self.account, self.region);
        let password = self.chars(ALNUM, 1200);
        let auth = base64(format!("AWS:{password}").as_bytes());
        let config =
            json!({"auths": {registry: {"auth": auth, "password": password, "username": "AWS"}}});
        let mut data = Map::new();
        data.insert(
            ".dockerconfigjson".into(),
            Value::String(base64(config.to_string().as_bytes())),
        );
        self.secret_object(
            ns,
            name,
            "kubernetes.io/dockerconfigjson",
            data,
            created,
            Flavor::Kubectl,
            Map::new(),
            Map::new(),
        )
    }

    fn tls_secret(&mut self, ns: &str, name: &str, created: i64, flavor: Flavor) -> Value {
        let mut data = Map::new();
        let cert = format!("{}{}", self.pem("CERTIFICATE", 1_200), self.ca_pem);
        data.insert("tls.crt".into(), Value::String(base64(cert.as_bytes())));
        data.insert(
            "tls.key".into(),
            Value::String(base64(self.pem("PRIVATE KEY", 1_190).as_bytes())),
        );
        if self.chance(0.5) {
            data.insert(
                "ca.crt".into(),
                Value::String(base64(self.ca_pem.as_bytes())),
            );
        }
        let common_name = format!("{name}.{ns}.svc");
        let annotations = labels_of(&[
            ("cert-manager.io/common-name", common_name.as_str()),
            ("cert-manager.io/issuer-name", "selfsigned"),
        ]);
        self.secret_object(
            ns,
            name,
            "kubernetes.io/tls",
            data,
            created,
            flavor,
            Map::new(),
            annotations,
        )
    }

    fn token_secret(&mut self, ns: &str, sa: &Value, created: i64) -> Value {
        let sa_name = text(sa, "/metadata/name");
        let name = format!("{sa_name}-token");
        let token = self.service_account_token(ns, &sa_name, &name);
        let mut data = Map::new();
        data.insert(
            "ca.crt".into(),
            Value::String(base64(self.ca_pem.as_bytes())),
        );
        data.insert("namespace".into(), Value::String(base64(ns.as_bytes())));
        data.insert("token".into(), Value::String(base64(token.as_bytes())));
        let annotations = labels_of(&[("kubernetes.io/service-account.name", sa_name.as_str())]);
        let mut secret = self.secret_object(
            ns,
            &name,
            "kubernetes.io/service-account-token",
            data,
            created,
            Flavor::Kubectl,
            Map::new(),
            annotations,
        );
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] =
            Value::String(text(sa, "/metadata/uid"));
        secret
    }

    fn ingress(&mut self, app: &App) -> Vec<Value> {
        self.reserve("Ingress", &app.ns, &app.name);
        let (labels, mut annotations) = self.app_metadata(app, "Ingress", &app.name);
        let alb = self.chance(0.6);
        let certificate = self.uid();
        let host = format!("{}.{}", app.name, self.domain);
        let mut out = Vec::new();
        let mut spec = json!({
            "ingressClassName": if alb { "alb" } else { "nginx" },
            "rules": [{"host": host, "http": {"paths": [{
                "backend": {"service": {"name": app.name, "port": {"number": 80}}},
                "path": "/",
                "pathType": "Prefix",
            }]}}],
        });
        if self.chance(0.4) {
            let paths = spec["rules"][0]["http"]["paths"].as_array_mut();
            if let Some(paths) = paths {
                paths.push(json!({
                    "backend": {"service": {"name": app.name, "port": {"name": "http"}}},
                    "path": format!("/api/v{}", self.range(1, 3)),
                    "pathType": "ImplementationSpecific",
                }));
            }
        }
        let lb_host;
        if alb {
            for (k, v) in [
                (
                    "alb.ingress.kubernetes.io/scheme",
                    self.pick(&["internet-facing", "internal"]).to_string(),
                ),
                ("alb.ingress.kubernetes.io/target-type", "ip".to_string()),
                (
                    "alb.ingress.kubernetes.io/listen-ports",
                    "[{\"HTTPS\":443}]".to_string(),
                ),
                (
                    "alb.ingress.kubernetes.io/group.name",
                    format!("{}-{}", self.pick(TEAMS), self.pick(ENVIRONMENTS)),
                ),
                (
                    "alb.ingress.kubernetes.io/certificate-arn",
                    format!(
                        "arn:aws:acm:{}:{}:certificate/{certificate}",
                        self.region, self.account
                    ),
                ),
                (
                    "alb.ingress.kubernetes.io/healthcheck-path",
                    self.pick(&["/healthz", "/health", "/actuator/health"])
                        .to_string(),
                ),
            ] {
                annotations.insert(k.into(), Value::String(v));
            }
            lb_host = format!(
                "internal-k8s-{}-{}-{}.{}.elb.amazonaws.com",
                truncate(&app.ns, 8),
                self.hex(10),
                self.digits(10),
                self.region
            );
        } else {
            let secret = format!("{}-tls", app.name);
            spec["tls"] = json!([{"hosts": [host], "secretName": secret}]);
            annotations.insert(
                "cert-manager.io/cluster-issuer".into(),
                json!("letsencrypt-prod"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/proxy-body-size".into(),
                Value::String(format!("{}m", self.range(1, 64))),
            );
            let created = app.created + self.range(60, 3_600) as i64;
            out.push(self.tls_secret(&app.ns, &secret, created, Flavor::System));
            lb_host = format!(
                "a{}-{}.{}.elb.amazonaws.com",
                self.hex(32),
                self.digits(10),
                self.region
            );
        }
        let created = app.created + self.range(0, 600) as i64;
        let meta = self.metadata(Some(&app.ns), &app.name, created, labels, annotations);
        let mut ingress = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta,
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"hostname": lb_host}]}},
        });
        if alb {
            ingress["metadata"]["finalizers"] = json!(["group.ingress.k8s.aws/resources"]);
        }
        self.applied(&mut ingress, app.flavor, created);
        if alb {
            let fields = json!({"metadata": {"finalizers": ["group.ingress.k8s.aws/resources"]}});
            Self::push_managed(
                &mut ingress,
                managed_entry(
                    "controller",
                    "Update",
                    "networking.k8s.io/v1",
                    created + 5,
                    fields_of(&fields),
                    None,
                ),
            );
            Self::status_managed(&mut ingress, "controller", created + 90);
        } else {
            Self::status_managed(&mut ingress, "nginx-ingress-controller", created + 30);
        }
        out.insert(0, ingress);
        out
    }

    fn network_policy(&mut self, app: &App) -> Value {
        self.reserve("NetworkPolicy", &app.ns, &app.name);
        let (labels, annotations) = self.app_metadata(app, "NetworkPolicy", &app.name);
        let meta = self.metadata(Some(&app.ns), &app.name, app.created, labels, annotations);
        let peer_ns = self.pick(&["ingress-nginx", "monitoring", "istio-system", "kube-system"]);
        let mut np = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {
                "ingress": [{
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": peer_ns}}},
                        {"podSelector": {"matchLabels": {"app": format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES))}}},
                    ],
                    "ports": [{"port": app.port, "protocol": "TCP"}],
                }],
                "podSelector": {"matchLabels": Value::Object(app.selector.clone())},
                "policyTypes": ["Ingress"],
            },
        });
        self.applied(&mut np, app.flavor, app.created);
        np
    }

    fn default_deny(&mut self, ns: &str, created: i64) -> Value {
        self.reserve("NetworkPolicy", ns, "default-deny");
        let meta = self.metadata(Some(ns), "default-deny", created, Map::new(), Map::new());
        let mut np = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        });
        self.applied(&mut np, Flavor::Kubectl, created);
        np
    }

    /// A datastore StatefulSet with its headless and client Services, its pods and a password Secret.
    fn stateful_set_bundle(&mut self, ns: &str, floor: i64) -> Vec<Value> {
        let (store, repo, port) = self.pick(DATASTORES);
        let mut app = self.new_app(ns, floor);
        let name = if self.reserve("App", ns, store) {
            store.to_string()
        } else {
            format!("{store}-{}", self.pick(ROLES))
        };
        self.reserve("App", ns, &name);
        app.name = name.clone();
        app.flavor = Flavor::Helm;
        let chart = format!(
            "{store}-{}.{}.{}",
            self.range(10, 20),
            self.range(0, 9),
            self.range(0, 9)
        );
        app.labels = labels_of(&[
            ("app.kubernetes.io/component", "primary"),
            ("app.kubernetes.io/instance", name.as_str()),
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/name", store),
            ("helm.sh/chart", chart.as_str()),
        ]);
        app.selector = labels_of(&[
            ("app.kubernetes.io/instance", name.as_str()),
            ("app.kubernetes.io/name", store),
        ]);
        app.template_labels = app.labels.clone();
        app.port = port;
        app.image_repo = repo.to_string();
        app.version = format!(
            "{}.{}.{}",
            self.range(2, 16),
            self.range(0, 9),
            self.range(0, 12)
        );
        let mut out = Vec::new();
        let data = self.secret_data();
        let (labels, annotations) = self.app_metadata(&app, "Secret", &name);
        out.push(self.secret_object(
            ns,
            &format!("{name}-auth"),
            "Opaque",
            data,
            app.created,
            Flavor::Helm,
            labels,
            annotations,
        ));
        app.secret = Some(text(out.last().unwrap_or(&Value::Null), "/metadata/name"));
        let replicas = self.range(1, 3);
        let mut template = self.pod_template(&app);
        for c in template
            .pointer_mut("/spec/containers")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.push(json!({"mountPath": format!("/var/lib/{store}"), "name": "data"}));
            }
        }
        self.reserve("StatefulSet", ns, &name);
        let (labels, annotations) = self.app_metadata(&app, "StatefulSet", &name);
        let mut meta = self.metadata(Some(ns), &name, app.created, labels, annotations);
        let generation = self.range(1, 8);
        meta.insert("generation".into(), json!(generation));
        let revision = format!("{name}-{}", self.template_hash());
        let mut sts = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta,
            "spec": {
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "podManagementPolicy": "OrderedReady",
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": Value::Object(app.selector.clone())},
                "serviceName": format!("{name}-headless"),
                "template": template,
                "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
                "volumeClaimTemplates": [{
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"creationTimestamp": null, "name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": self.pick(&["8Gi", "10Gi", "20Gi", "50Gi", "100Gi"])}},
                        "storageClassName": "gp3",
                        "volumeMode": "Filesystem",
                    },
                    "status": {"phase": "Pending"},
                }],
            },
            "status": {
                "availableReplicas": replicas,
                "collisionCount": 0,
                "currentReplicas": replicas,
                "currentRevision": revision,
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updateRevision": revision,
                "updatedReplicas": replicas,
            },
        });
        self.applied(&mut sts, Flavor::Helm, app.created);
        Self::status_managed(
            &mut sts,
            "kube-controller-manager",
            self.now - self.range(60, 30 * DAY as u64) as i64,
        );
        let mut services = Vec::new();
        for (svc_name, headless) in [(format!("{name}-headless"), true), (name.clone(), false)] {
            self.reserve("Service", ns, &svc_name);
            let meta = self.metadata(
                Some(ns),
                &svc_name,
                app.created,
                app.labels.clone(),
                Map::new(),
            );
            let ip = if headless {
                "None".to_string()
            } else {
                self.cluster_ip()
            };
            let mut spec = json!({
                "clusterIP": ip,
                "clusterIPs": [ip],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "tcp", "port": port, "protocol": "TCP", "targetPort": port}],
                "selector": Value::Object(app.selector.clone()),
                "sessionAffinity": "None",
                "type": "ClusterIP",
            });
            if headless {
                spec["publishNotReadyAddresses"] = json!(true);
            }
            let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": {"loadBalancer": {}}});
            self.applied(&mut svc, Flavor::Helm, app.created);
            services.push(svc);
        }
        out.push(sts.clone());
        out.extend(services);
        for _ in 0..replicas {
            let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
            let created = self.between(app.created, self.now - HOUR);
            out.push(self.pod_at(&sts, node, created));
        }
        out
    }

    /// A CronJob with its recent Jobs, each with one Succeeded pod.
    fn cron_job_bundle(&mut self, ns: &str, floor: i64) -> Vec<Value> {
        let mut app = self.new_app(ns, floor);
        let task = self.pick(CRON_TASKS);
        let mut name = format!("{}-{task}", self.pick(DOMAINS));
        while !self.reserve("CronJob", ns, &name) {
            name = format!("{}-{task}-{}", self.pick(DOMAINS), self.range(2, 99));
        }
        app.name = name.clone();
        app.flavor = if app.flavor.spinnaker() {
            app.flavor
        } else {
            Flavor::Kubectl
        };
        app.labels = labels_of(&[("app", name.as_str())]);
        app.selector = labels_of(&[("app", name.as_str())]);
        app.template_labels = Map::new();
        let schedule = self.pick(CRON_SCHEDULES);
        let mut template = self.pod_template(&app);
        template["spec"]["restartPolicy"] = json!(self.pick(&["Never", "OnFailure"]));
        if let Some(m) = template
            .pointer_mut("/spec/containers/0")
            .and_then(Value::as_object_mut)
        {
            for key in ["livenessProbe", "readinessProbe", "startupProbe", "ports"] {
                m.remove(key);
            }
        }
        let (labels, annotations) = self.app_metadata(&app, "CronJob", &name);
        let mut meta = self.metadata(Some(ns), &name, app.created, labels, annotations);
        meta.insert("generation".into(), json!(self.range(1, 5)));
        let runs = self.range(1, 3);
        let interval = self.pick(&[HOUR, 6 * HOUR, DAY, 15 * 60]);
        let last = (self.now - self.range(60, interval as u64) as i64) / 60 * 60;
        let mut cron = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {
                "concurrencyPolicy": self.pick(&["Forbid", "Allow", "Replace"]),
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": {
                    "backoffLimit": self.pick(&[0, 1, 3, 6]),
                    "template": template,
                }},
                "schedule": schedule,
                "successfulJobsHistoryLimit": 3,
                "suspend": false,
            },
            "status": {"lastScheduleTime": ts(last), "lastSuccessfulTime": ts(last + self.range(20, 600) as i64)},
        });
        if self.chance(0.4) {
            cron["spec"]["timeZone"] =
                json!(self.pick(&["Etc/UTC", "America/New_York", "Europe/London"]));
        }
        self.applied(&mut cron, app.flavor, app.created);
        Self::status_managed(&mut cron, "kube-controller-manager", last + 30);
        let mut out = vec![cron.clone()];
        for i in (0..runs).rev() {
            let scheduled = last - i as i64 * interval;
            let job = self.job(&cron, scheduled);
            out.push(job.clone());
            let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
            out.push(self.pod_at(&job, node, scheduled + 1));
        }
        out
    }

    fn job(&mut self, cron: &Value, scheduled: i64) -> Value {
        let ns = text(cron, "/metadata/namespace");
        let name = format!("{}-{}", text(cron, "/metadata/name"), scheduled / 60);
        self.reserve("Job", &ns, &name);
        let uid = self.uid();
        let mut template = cron
            .pointer("/spec/jobTemplate/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let job_labels = labels_of(&[
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid.as_str()),
            ("job-name", name.as_str()),
        ]);
        for (k, v) in &job_labels {
            template["metadata"]["labels"][k] = v.clone();
        }
        let scheduled_at = ts(scheduled);
        let annotations = labels_of(&[(
            "batch.kubernetes.io/cronjob-scheduled-timestamp",
            scheduled_at.as_str(),
        )]);
        let mut meta = self.metadata(Some(&ns), &name, scheduled, job_labels, annotations);
        meta.insert("uid".into(), Value::String(uid.clone()));
        meta.insert("generation".into(), json!(1));
        meta.insert(
            "ownerReferences".into(),
            json!([Self::owner_reference(cron)]),
        );
        let finished = scheduled + self.range(15, 900) as i64;
        let mut job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": {
                "backoffLimit": cron.pointer("/spec/jobTemplate/spec/backoffLimit").cloned().unwrap_or(json!(6)),
                "completionMode": "NonIndexed",
                "completions": 1,
                "manualSelector": false,
                "parallelism": 1,
                "podReplacementPolicy": "TerminatingOrFailed",
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                "suspend": false,
                "template": template,
            },
            "status": {
                "completionTime": ts(finished),
                "conditions": [
                    {"lastProbeTime": ts(finished), "lastTransitionTime": ts(finished), "message": "Reached expected number of succeeded pods", "reason": "CompletionsReached", "status": "True", "type": "SuccessCriteriaMet"},
                    {"lastProbeTime": ts(finished), "lastTransitionTime": ts(finished), "message": "Reached expected number of succeeded pods", "reason": "CompletionsReached", "status": "True", "type": "Complete"},
                ],
                "ready": 0,
                "startTime": ts(scheduled),
                "succeeded": 1,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            },
        });
        let owned = json!({
            "metadata": {
                "annotations": job["metadata"]["annotations"].clone(),
                "labels": job["metadata"]["labels"].clone(),
                "ownerReferences": job["metadata"]["ownerReferences"].clone(),
            },
            "spec": job["spec"].clone(),
        });
        Self::push_managed(
            &mut job,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "batch/v1",
                scheduled,
                fields_of(&owned),
                None,
            ),
        );
        Self::status_managed(&mut job, "kube-controller-manager", finished);
        job
    }

    fn system_app(&mut self, ns: &str, component: &'static Component) -> App {
        let name = component.name.to_string();
        self.reserve("App", ns, &name);
        let labels = labels_of(&[
            ("k8s-app", component.name),
            ("eks.amazonaws.com/component", component.name),
        ]);
        let selector = labels_of(&[("k8s-app", component.name)]);
        App {
            ns: ns.to_string(),
            name,
            flavor: Flavor::System,
            runtime: Runtime::Go,
            created: self.cluster_created + self.range(60, 3_600) as i64,
            labels,
            selector,
            template_labels: Map::new(),
            image_repo: String::new(),
            version: String::new(),
            port: component.ports.first().map(|p| p.1).unwrap_or(8080),
            config_map: None,
            secret: None,
            service_account: Some(component.name.to_string()),
            component: Some(component),
            lean: true,
        }
    }

    /// Objects of the system namespaces: the `kubernetes` Service, add-on Deployments and DaemonSets in
    /// kube-system, cluster-info, and one node Lease per node.
    fn system_objects(&mut self) -> Vec<Value> {
        let created = self.cluster_created;
        let mut out = Vec::new();
        // default
        out.extend(self.namespace_basics("default", created));
        self.reserve("Service", "default", "kubernetes");
        let labels = labels_of(&[("component", "apiserver"), ("provider", "kubernetes")]);
        let meta = self.metadata(Some("default"), "kubernetes", created, labels, Map::new());
        self.ips.insert(0xAC14_0001);
        let mut kubernetes = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "clusterIP": "172.20.0.1",
                "clusterIPs": ["172.20.0.1"],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        });
        let fields = json!({"metadata": {"labels": kubernetes["metadata"]["labels"].clone()}, "spec": kubernetes["spec"].clone()});
        Self::push_managed(
            &mut kubernetes,
            managed_entry(
                "kube-apiserver",
                "Update",
                "v1",
                created,
                fields_of(&fields),
                None,
            ),
        );
        out.push(kubernetes);
        out.push(self.docker_config_secret("default", "regcred", created + DAY));
        // kube-system
        let ks = "kube-system";
        out.extend(self.namespace_basics(ks, created));
        for component in &SYSTEM_DEPLOYMENTS {
            let app = self.system_app(ks, component);
            let sa = self.system_service_account(ks, component.name, app.created);
            out.push(sa.clone());
            out.extend(self.deployment_bundle(&app, component.replicas));
            match component.name {
                "coredns" => {
                    out.push(self.system_service(
                        &app,
                        "kube-dns",
                        Some(0xAC14_000A),
                        &[
                            ("dns", 53, "UDP"),
                            ("dns-tcp", 53, "TCP"),
                            ("metrics", 9153, "TCP"),
                        ],
                    ));
                    out.push(self.system_config_map(
                        ks,
                        "coredns",
                        app.created,
                        "Corefile",
                        COREFILE,
                    ));
                }
                "metrics-server" => out.push(self.system_service(
                    &app,
                    "metrics-server",
                    None,
                    &[("https", 443, "TCP")],
                )),
                "aws-load-balancer-controller" => {
                    out.push(self.system_service(
                        &app,
                        "aws-load-balancer-webhook-service",
                        None,
                        &[("webhook-server", 443, "TCP")],
                    ));
                    out.push(self.tls_secret(
                        ks,
                        "aws-load-balancer-tls",
                        app.created,
                        Flavor::System,
                    ));
                }
                "cluster-autoscaler" => out.push(self.token_secret(ks, &sa, app.created)),
                _ => {}
            }
        }
        for component in &SYSTEM_DAEMON_SETS {
            let app = self.system_app(ks, component);
            out.push(self.system_service_account(ks, component.name, app.created));
            let ds = self.daemon_set(&app);
            out.push(ds.clone());
            for node in 0..self.nodes.len() {
                let created = self.between(app.created.max(self.now - 120 * DAY), self.now - HOUR);
                out.push(self.pod_at(&ds, node, created));
            }
        }
        out.push(self.system_config_map(
            ks,
            "kube-proxy-config",
            created,
            "config",
            KUBE_PROXY_CONFIG,
        ));
        let kubeconfig = format!(
            "kind: Config\napiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: https://{}.gr7.{}.eks.amazonaws.com\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            self.hex(32).to_uppercase(),
            self.region
        );
        out.push(self.system_config_map(ks, "kube-proxy", created, "kubeconfig", &kubeconfig));
        let fluent = "[SERVICE]\n    Flush 5\n    Log_Level info\n    Parsers_File parsers.conf\n[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n    Tag kube.*\n    multiline.parser docker, cri\n    Mem_Buf_Limit 50MB\n[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    log_group_name /aws/eks/{cluster}/containers\n    auto_create_group true\n".replace("{cluster}", &self.cluster_name);
        out.push(self.system_config_map(
            ks,
            "fluent-bit-config",
            created,
            "fluent-bit.conf",
            &fluent,
        ));
        let node_group = self.hex(8);
        let aws_auth = format!(
            "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::{0}:role/{1}-node-group-{2}\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n- groups:\n  - system:masters\n  rolearn: arn:aws:iam::{0}:role/spinnaker-managed-{1}\n  username: spinnaker\n",
            self.account, self.cluster_name, node_group
        );
        out.push(self.system_config_map(ks, "aws-auth", created, "mapRoles", &aws_auth));
        let client_ca = self.ca_pem.clone();
        out.push(self.system_config_map(
            ks,
            "extension-apiserver-authentication",
            created,
            "client-ca-file",
            &client_ca,
        ));
        // kube-public
        out.extend(self.namespace_basics("kube-public", created));
        let cluster_info = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://{}.gr7.{}.eks.amazonaws.com\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
            base64(self.ca_pem.as_bytes()),
            self.hex(32).to_uppercase(),
            self.region
        );
        out.push(self.system_config_map(
            "kube-public",
            "cluster-info",
            created,
            "kubeconfig",
            &cluster_info,
        ));
        // kube-node-lease
        out.extend(self.namespace_basics("kube-node-lease", created));
        for node in self.nodes.clone() {
            out.push(self.lease(&node));
        }
        out
    }

    fn system_service_account(&mut self, ns: &str, name: &str, created: i64) -> Value {
        self.reserve("ServiceAccount", ns, name);
        let labels = labels_of(&[
            ("app.kubernetes.io/name", name),
            ("eks.amazonaws.com/component", name),
        ]);
        let meta = self.metadata(Some(ns), name, created, labels, Map::new());
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
        self.applied(&mut sa, Flavor::System, created);
        sa
    }

    fn system_service(
        &mut self,
        app: &App,
        name: &str,
        ip: Option<u32>,
        ports: &[(&str, u64, &str)],
    ) -> Value {
        self.reserve("Service", &app.ns, name);
        let meta = self.metadata(
            Some(&app.ns),
            name,
            app.created,
            app.labels.clone(),
            Map::new(),
        );
        let ip = match ip {
            Some(ip) => {
                self.ips.insert(ip);
                ipv4(ip)
            }
            None => self.cluster_ip(),
        };
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto, "targetPort": p}))
            .collect();
        let mut svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "clusterIP": ip,
                "clusterIPs": [ip],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": ports,
                "selector": Value::Object(app.selector.clone()),
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        });
        self.applied(&mut svc, Flavor::System, app.created);
        svc
    }

    fn system_config_map(
        &mut self,
        ns: &str,
        name: &str,
        created: i64,
        key: &str,
        value: &str,
    ) -> Value {
        self.reserve("ConfigMap", ns, name);
        let labels = labels_of(&[("eks.amazonaws.com/component", name)]);
        let meta = self.metadata(Some(ns), name, created, labels, Map::new());
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {key: value}});
        self.applied(&mut cm, Flavor::System, created);
        cm
    }

    fn daemon_set(&mut self, app: &App) -> Value {
        self.reserve("DaemonSet", &app.ns, &app.name);
        let template = self.pod_template(app);
        let mut template = template;
        template["spec"]["priorityClassName"] = json!("system-node-critical");
        template["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        let n = self.nodes.len();
        let generation = self.range(1, 6);
        let annotations = labels_of(&[(
            "deprecated.daemonset.template.generation",
            generation.to_string().as_str(),
        )]);
        let mut meta = self.metadata(
            Some(&app.ns),
            &app.name,
            app.created,
            app.labels.clone(),
            annotations,
        );
        meta.insert("generation".into(), json!(generation));
        let mut ds = json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta,
            "spec": {
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": Value::Object(app.selector.clone())},
                "template": template,
                "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}, "type": "RollingUpdate"},
            },
            "status": {
                "currentNumberScheduled": n,
                "desiredNumberScheduled": n,
                "numberAvailable": n,
                "numberMisscheduled": 0,
                "numberReady": n,
                "observedGeneration": generation,
                "updatedNumberScheduled": n,
            },
        });
        self.applied(&mut ds, Flavor::System, app.created);
        Self::status_managed(
            &mut ds,
            "kube-controller-manager",
            self.now - self.range(60, 3_600) as i64,
        );
        ds
    }

    fn lease(&mut self, node: &Node) -> Value {
        let ns = "kube-node-lease";
        self.reserve("Lease", ns, &node.name);
        let created = self.between(self.cluster_created, self.now - DAY);
        let meta = self.metadata(Some(ns), &node.name, created, Map::new(), Map::new());
        let renew = format!(
            "{}.{:06}Z",
            ts(self.now - self.range(0, 9) as i64).trim_end_matches('Z'),
            self.range(0, 999_999)
        );
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": renew},
        });
        let fields = json!({"spec": lease["spec"].clone()});
        Self::push_managed(
            &mut lease,
            managed_entry(
                "kubelet",
                "Update",
                "coordination.k8s.io/v1",
                self.now - 5,
                fields_of(&fields),
                None,
            ),
        );
        lease
    }
}

const KUBE_PROXY_CONFIG: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: 0.0.0.0\nclientConnection:\n  acceptContentTypes: \"\"\n  burst: 10\n  contentType: application/vnd.kubernetes.protobuf\n  kubeconfig: /var/lib/kube-proxy/kubeconfig\n  qps: 5\nclusterCIDR: \"\"\nconfigSyncPeriod: 15m0s\nconntrack:\n  maxPerCore: 32768\n  min: 131072\n  tcpCloseWaitTimeout: 1h0m0s\n  tcpEstablishedTimeout: 24h0m0s\nenableProfiling: false\nhealthzBindAddress: 0.0.0.0:10256\nhostnameOverride: \"\"\niptables:\n  masqueradeAll: false\n  masqueradeBit: 14\n  minSyncPeriod: 0s\n  syncPeriod: 30s\nmetricsBindAddress: 0.0.0.0:10249\nmode: \"iptables\"\noomScoreAdj: -998\nportRange: \"\"\n";

const COREFILE: &str = ".:53 {\n    errors\n    health {\n        lameduck 5s\n      }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n";

// Free helpers.

/// RFC 3339 with a `Z` suffix, second precision, as the API server writes `metav1.Time`.
fn ts(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The `metadata.creationTimestamp` of `obj` as Unix seconds (the clock start if absent).
fn timestamp_of(obj: Option<&Value>) -> i64 {
    obj.and_then(|o| o.pointer("/metadata/creationTimestamp"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp())
        .unwrap_or(CLOCK_START)
}

/// A stable `SAFE_ALPHABET` hash of `seed`, for labels that must agree across pods of one owner.
fn safe_hash(seed: &str) -> String {
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(10)
        .map(|b| char::from(SAFE_ALPHABET[usize::from(*b) % SAFE_ALPHABET.len()]))
        .collect()
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn labels_of(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

fn ipv4(ip: u32) -> String {
    let [a, b, c, d] = ip.to_be_bytes();
    format!("{a}.{b}.{c}.{d}")
}

fn truncate(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The Spinnaker application of an app: its name's first word.
fn spinnaker_application(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

/// The repository of an image reference, without tag or digest.
fn image_repo_of(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    }
}

/// The image as the kubelet reports it in `containerStatuses[].image` (tag without digest).
fn image_display(image: &str) -> String {
    match image.split_once('@') {
        Some((repo_tag, _))
            if repo_tag
                .rfind(':')
                .is_some_and(|i| !repo_tag[i..].contains('/')) =>
        {
            repo_tag.to_string()
        }
        _ => image.to_string(),
    }
}

fn qos_class(containers: &[Value]) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        any |= requests.is_some() || limits.is_some();
        guaranteed &= limits.is_some_and(|l| {
            l.get("cpu").is_some() && l.get("memory").is_some() && requests.is_none_or(|r| r == l)
        });
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(
                    BASE64_ALPHABET[(n >> (18 - 6 * i)) as usize & 63],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64url(data: &[u8]) -> String {
    base64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// One `metadata.managedFields` entry.
fn managed_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: i64,
    fields: Value,
    subresource: Option<&str>,
) -> Value {
    let mut e = json!({
        "apiVersion": api_version,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        "manager": manager,
        "operation": operation,
        "time": ts(time),
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    e
}

/// Fields whose value is a struct (not a pointer or map): their FieldsV1 set has no `.` entry.
const STRUCT_FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "resources",
    "jobTemplate",
    "loadBalancer",
];
/// Maps the API treats as atomic: owned as a whole.
const ATOMIC_FIELDS: &[&str] = &[
    "selector",
    "podSelector",
    "namespaceSelector",
    "labelSelector",
];

/// The FieldsV1 set of `owned`, a partial object holding exactly the fields a manager owns.
fn fields_of(owned: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = owned {
        for (k, v) in m {
            out.insert(format!("f:{k}"), field_set(k, v));
        }
    }
    Value::Object(out)
}

fn field_set(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() && !ATOMIC_FIELDS.contains(&key) => {
            let mut out = Map::new();
            if !STRUCT_FIELDS.contains(&key) {
                out.insert(".".into(), json!({}));
            }
            for (k, child) in m {
                out.insert(format!("f:{k}"), field_set(k, child));
            }
            Value::Object(out)
        }
        Value::Array(items) if !items.is_empty() => list_set(key, items),
        _ => json!({}),
    }
}

/// Keyed lists become `k:{…}` entries, sets of strings `v:"…"` entries, everything else is atomic.
fn list_set(key: &str, items: &[Value]) -> Value {
    let mut out = Map::new();
    if key == "finalizers" {
        out.insert(".".into(), json!({}));
        for item in items {
            out.insert(format!("v:{item}"), json!({}));
        }
        return Value::Object(out);
    }
    let keys: &[&str] = match key {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" => &["name"],
        "ports" if items[0].get("containerPort").is_some() => &["containerPort", "protocol"],
        "ports" if items[0].get("port").is_some() && items[0].get("targetPort").is_some() => {
            &["port", "protocol"]
        }
        "volumeMounts" => &["mountPath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "podIPs" | "hostIPs" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        _ => return json!({}),
    };
    out.insert(".".into(), json!({}));
    for item in items {
        let id: Map<String, Value> = keys
            .iter()
            .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let entry = if key == "ownerReferences" {
            json!({})
        } else {
            let mut entry = Map::new();
            entry.insert(".".into(), json!({}));
            for (k, child) in item.as_object().into_iter().flatten() {
                entry.insert(format!("f:{k}"), field_set(k, child));
            }
            Value::Object(entry)
        };
        out.insert(format!("k:{}", Value::Object(id)), entry);
    }
    Value::Object(out)
}

/// Whether `v` is the value the API server would have defaulted `key` to (so a manifest omits it).
fn is_default(key: &str, v: &Value) -> bool {
    match key {
        "terminationMessagePath" => *v == "/dev/termination-log",
        "terminationMessagePolicy" => *v == "File",
        "dnsPolicy" => *v == "ClusterFirst",
        "restartPolicy" => *v == "Always",
        "schedulerName" => *v == "default-scheduler",
        "terminationGracePeriodSeconds" => *v == 30,
        "progressDeadlineSeconds" => *v == 600,
        "revisionHistoryLimit" => *v == 10,
        "timeoutSeconds" | "successThreshold" => *v == 1,
        "periodSeconds" => *v == 10,
        "failureThreshold" => *v == 3,
        "scheme" => *v == "HTTP",
        "sessionAffinity" => *v == "None",
        "internalTrafficPolicy" | "externalTrafficPolicy" => *v == "Cluster",
        "ipFamilyPolicy" => *v == "SingleStack",
        "ipFamilies"
        | "clusterIPs"
        | "nodePort"
        | "allocateLoadBalancerNodePorts"
        | "persistentVolumeClaimRetentionPolicy" => true,
        "clusterIP" => *v != "None",
        "type" => *v == "ClusterIP",
        "securityContext" | "resources" => v.as_object().is_some_and(Map::is_empty),
        "creationTimestamp" => v.is_null(),
        "defaultMode" => *v == 420,
        "imagePullPolicy" => *v == "IfNotPresent",
        "serviceAccount" => true,
        "podManagementPolicy" => *v == "OrderedReady",
        "volumeMode" => *v == "Filesystem",
        "suspend" => *v == false,
        "successfulJobsHistoryLimit" => *v == 3,
        "failedJobsHistoryLimit" => *v == 1,
        "concurrencyPolicy" => *v == "Allow",
        "backoffLimit" => *v == 6,
        "status" => true,
        _ => false,
    }
}

/// `v` (the value of `key`) without the fields the API server defaults.
fn strip_defaults(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                if !is_default(k, child) {
                    out.insert(k.clone(), strip_defaults(k, child));
                }
            }
            if key == "strategy"
                && out.get("type").is_some_and(|t| t == "RollingUpdate")
                && out.get("rollingUpdate")
                    == Some(&json!({"maxSurge": "25%", "maxUnavailable": "25%"}))
            {
                return json!({});
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| strip_defaults(key, i)).collect()),
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_constants_match_measured_averages() {
        let (mut apps, mut app_objects) = (0usize, 0usize);
        let (mut namespaces, mut ns_objects) = (0usize, 0usize);
        for seed in 0..40 {
            let mut f = ObjectFactory::new(seed);
            for _ in 0..10 {
                app_objects += f.app("team").len();
                apps += 1;
            }
            for i in 0..10 {
                let ns = format!("ns-{i}");
                ns_objects += 1 + f.namespace_contents(&ns, CLOCK_START - 100 * DAY).len();
                namespaces += 1;
            }
        }
        let mut system_objects = 0;
        for seed in 0..40 {
            let mut f = ObjectFactory::new(seed);
            f.ensure_nodes();
            let per_node = f.nodes.len() * (DAEMON_SETS + 1);
            system_objects += f.system_objects().len() + SYSTEM_NAMESPACES.len() - per_node;
        }
        let system = system_objects as f64 / 40.0;
        let per_app = app_objects as f64 / apps as f64;
        let per_ns = ns_objects as f64 / namespaces as f64;
        eprintln!("objects per app {per_app:.2}, per namespace {per_ns:.2}, system {system:.1}");
        assert!(
            (per_app - super::super::OBJECTS_PER_APP).abs() < 0.5,
            "OBJECTS_PER_APP should be {per_app:.2}"
        );
        assert!(
            (per_ns - super::super::OBJECTS_PER_NAMESPACE).abs() < 0.7,
            "OBJECTS_PER_NAMESPACE should be {per_ns:.2}"
        );
        assert!(
            (system - super::super::SYSTEM_OBJECTS).abs() < 1.0,
            "SYSTEM_OBJECTS should be {system:.1}"
        );
    }

    #[test]
    fn memory_limits_are_never_below_requests() {
        let mebibytes = |q: &str| match q.strip_suffix("Gi") {
            Some(g) => g.parse::<u32>().unwrap() * 1024,
            None => q.trim_end_matches("Mi").parse::<u32>().unwrap(),
        };
        let mut f = ObjectFactory::new(5);
        let mut checked = 0;
        for i in 0..200 {
            for object in f.app(&format!("app{i}")) {
                let containers = object
                    .pointer("/spec/template/spec/containers")
                    .or_else(|| object.pointer("/spec/containers"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for c in containers {
                    if let (Some(request), Some(limit)) = (
                        c.pointer("/resources/requests/memory")
                            .and_then(Value::as_str),
                        c.pointer("/resources/limits/memory")
                            .and_then(Value::as_str),
                    ) {
                        assert!(mebibytes(limit) >= mebibytes(request), "{c}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} containers with both");
    }

    #[test]
    fn managed_fields_mirror_the_object() {
        let mut f = ObjectFactory::new(9);
        let app = f.app("web");
        let pod = app
            .iter()
            .find(|o| o["kind"] == "Pod")
            .expect("an app has pods");
        let name = text(pod, "/spec/containers/0/name");
        let kcm = &pod["metadata"]["managedFields"][0]["fieldsV1"];
        assert!(
            kcm["f:spec"]["f:containers"]
                .get(format!("k:{{\"name\":\"{name}\"}}"))
                .is_some(),
            "{kcm}"
        );
        assert_eq!(pod["metadata"]["managedFields"][1]["subresource"], "status");
        assert_eq!(image_repo_of("ghcr.io/a/b:v1@sha256:00"), "ghcr.io/a/b");
        assert_eq!(image_repo_of("localhost:5000/b"), "localhost:5000/b");
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }
}
