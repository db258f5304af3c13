//! Word lists and alphabets the simulator draws names, images, flags and settings from.

/// Alphabet of `pod-template-hash` values and generated name suffixes (Kubernetes' `rand.SafeEncodeString`).
pub(in crate::sim) const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub(in crate::sim) const ALNUM: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub(in crate::sim) const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

pub(in crate::sim) const REGIONS: &[&str] = &[
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

pub(in crate::sim) const CLUSTER_WORDS: &[&str] = &[
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

pub(in crate::sim) const DOMAINS: &[&str] = &[
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

pub(in crate::sim) const ROLES: &[&str] = &[
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

pub(in crate::sim) const TEAMS: &[&str] = &[
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

pub(in crate::sim) const ENVIRONMENTS: &[&str] =
    &["prod", "staging", "qa", "dev", "sandbox", "perf", "canary"];

pub(in crate::sim) const ORGS: &[&str] = &[
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

pub(in crate::sim) const DATASTORES: &[(&str, &str, u64)] = &[
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

pub(in crate::sim) const CRON_TASKS: &[&str] = &[
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

pub(in crate::sim) const CRON_SCHEDULES: &[&str] = &[
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

pub(in crate::sim) const SIDECARS: &[(&str, &str, &[&str], u64)] = &[
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

pub(in crate::sim) const INIT_IMAGES: &[&str] = &[
    "docker.io/library/busybox:1.36.1",
    "docker.io/library/alpine:3.20",
    "docker.io/bitnami/os-shell:12-debian-12-r33",
];

pub(in crate::sim) const LOG_LEVELS: &[&str] =
    &["info", "debug", "warn", "INFO", "DEBUG", "WARN", "error"];

pub(in crate::sim) const JVM_FLAGS: &[&str] = &[
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

pub(in crate::sim) const GO_FLAGS: &[&str] = &[
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

pub(in crate::sim) const ENV_NAMES: &[&str] = &[
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

pub(in crate::sim) const CONFIG_KEYS: &[&str] = &[
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

pub(in crate::sim) const SECRET_KEYS: &[&str] = &[
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

pub(in crate::sim) const TLDS: &[&str] =
    &["com", "io", "net", "dev", "cloud", "app", "co.uk", "de"];
