//! Agent configuration: flags, `OUTPOST_…` environment variables and a YAML file, resolved into
//! one validated [`AgentConfig`] before anything is built.
//!
//! Precedence, setting by setting: a flag > its environment variable > the config file > the
//! default. Two pairs are each one setting, decided at the highest level that gives either half:
//! `interval` / `schedule` (when to ship) and `namespaces` / `omitNamespaces` (which
//! namespaces); giving both halves at the same level is refused. `kinds` and `omitKinds` are
//! separate settings that combine: the agent watches `kinds` (or the defaults) minus `omitKinds`.
//!
//! The file is read again when it changes: the watch selection (`kinds`, `omitKinds`,
//! `namespaces`, `omitNamespaces`, `labelSelector`, `onlySpinnakerManaged`) and
//! `redaction.rules` apply without a restart; [`check_reload`] names any other changed setting,
//! which needs one. `--sim`, `--sim-changes-per-second`, `--decommission` and `--config` are
//! flags (and variables) only: they choose what a run does, not how the cluster is shipped.
//!
//! # Reference config file
//!
//! Every setting is optional in the file; unknown fields are refused with their line. Durations
//! are written `500ms`, `15s`, `5m`, `1h30m` (units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`, largest
//! first, no fractions).
//!
//! ```yaml
//! # /etc/outpost/agent.yaml
//! # Required here, or as --cluster / OUTPOST_CLUSTER: a DNS-1123 label.
//! cluster: prod-eu-1
//! # Required here, or as --bucket / OUTPOST_BUCKET: file://, s3://, gs:// or az:// (see outpost --help).
//! bucket: s3://fleet-bucket/prod?region=eu-west-1
//!
//! # Cluster credentials. Default: the pod's service account (in-cluster).
//! # kubeconfig: /etc/outpost/kubeconfig   # a kubeconfig file instead
//! # context: prod-eu-1                    # a context of that kubeconfig (or of $KUBECONFIG, ~/.kube/config)
//!
//! # What to watch. Default kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Pod,
//! # Service, Ingress, NetworkPolicy, Namespace. Custom resources as Kind.group.
//! kinds: [Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Pod, Service, Ingress,
//!         NetworkPolicy, Namespace, Rollout.argoproj.io]
//! # omitKinds: [Pod]                      # taken out of `kinds` (or of the defaults)
//! # Default: every namespace. Either `namespaces` or `omitNamespaces`, not both.
//! omitNamespaces: [kube-public, kube-node-lease]
//! # namespaces: [shop, payments]
//! labelSelector: "tier notin (scratch), !outpost.io/ignore"   # default: none
//! onlySpinnakerManaged: false             # only what Spinnaker deployed (default false)
//!
//! # When to ship a diff: every `interval` (default 15s, at least 1s) or on a cron `schedule`, not both.
//! interval: 15s
//! # schedule: "*/5 * * * *"              # 5 fields (minute precision) or 6 (seconds first)
//! heartbeat: 5m                  # an idle cluster refreshes head.json this often (default 5m, or the interval if longer)
//! takeoverGrace: 15m             # a silent writer is replaced after this (default 15m, or 3 x heartbeat if longer)
//! snapshotEveryDiffs: 240        # a new snapshot after this many diffs (default 240: an hour at 15s)
//! snapshotWhenDiffBytesExceed: 1.0   # ... or when the diffs outweigh the snapshot this many times (default 1.0)
//! snapshotMaxAge: 24h            # ... or when the snapshot is this old, even when idle, so that a bucket lifecycle
//!                                # rule expiring objects after N days never takes a live chain (default 24h)
//! zstdLevel: 3                   # 1 (fastest) to 19 (smallest), default 3
//! listen: "0.0.0.0:9090"         # /healthz, /readyz and /metrics (default 0.0.0.0:9090)
//!
//! redaction:
//!   # HMAC key for Secret values (at least 32 bytes), needed only when Secrets are watched.
//!   # Default: none here; the agent then keeps its key in Secret outpost-redaction-key of its
//!   # namespace, creating it if it may (docs/RBAC.md).
//!   # keyFile: /var/run/secrets/outpost/redaction.key
//!   rules:                       # removed from every object of `kind` (`*`: every kind); default none
//!     - id: container-env
//!       kind: Deployment
//!       pointer: /spec/template/spec/containers/0/env
//!     - id: notes
//!       kind: "*"
//!       pointer: /metadata/annotations/example.com~1notes
//!
//! account:                       # the Spinnaker account this cluster asks for
//!   name: prod-eu-1              # default: the cluster name
//!   permissions:                 # READ, WRITE, EXECUTE: role names (default: none)
//!     READ: [sre, developers]
//!     WRITE: [sre]
//!     EXECUTE: [sre]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use serde::{Deserialize, Serialize};

use super::redact::{self, Redactor, RemoveRule};
use crate::format::{self, ClusterName, documents::AccountRequest};
use crate::settings::duration::{format_duration, optional_duration, parse_duration};
use crate::settings::schedule::Schedule;
use crate::settings::selector::{LabelSelector, check_dns_subdomain};
use crate::store::{self, BucketLocation};

/// Kinds watched when `kinds` is not set: the ones Clouddriver caches by default, plus Namespace.
pub const DEFAULT_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Pod",
    "Service",
    "Ingress",
    "NetworkPolicy",
    "Namespace",
];
/// Default time between diffs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Shortest interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default heartbeat interval (raised to the interval when that is longer).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5 * 60);
/// Default takeover grace (raised to three heartbeats when that is longer).
pub const DEFAULT_TAKEOVER_GRACE: Duration = Duration::from_secs(15 * 60);
/// Default number of diffs after which a new snapshot is written.
pub const DEFAULT_SNAPSHOT_EVERY_DIFFS: u32 = 240;
/// Default ratio of the diffs' bytes to the snapshot's bytes above which a new snapshot is written.
pub const DEFAULT_SNAPSHOT_WHEN_DIFF_BYTES_EXCEED: f64 = 1.0;
/// Default age after which a new snapshot is written even when nothing changed: well inside any
/// bucket lifecycle expiry of a day or more.
pub const DEFAULT_SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default zstd level (see BENCHMARKS.md).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Default address of `/healthz`, `/readyz` and `/metrics`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9090";
/// Default changes per second of a simulated cluster.
pub const DEFAULT_SIM_CHANGES_PER_SECOND: f64 = 1.0;

/// Settings that only the config file holds (no flag, no variable).
const FILE_ONLY: &[&str] = &["redaction.rules", "account.name", "account.permissions"];

/// Why a configuration is refused. Every message names the setting and, where there is one, the
/// offending value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read the agent config file {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent config file {} is not valid: {source}", .path.display())]
    ParseFile {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{field} is required: give --{flag} (or {env}) or set `{field}:` in the config file")]
    Missing {
        field: &'static str,
        flag: &'static str,
        env: &'static str,
    },
    #[error("invalid {field} {value:?}{}: {reason}", where_set(.field))]
    Invalid {
        /// The setting as the config file names it (`interval`, `redaction.rules`), or the flag
        /// for flag-only settings (`--sim`).
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{first} and {second} are both set ({}): {reason}", where_set_both(.first, .second))]
    Conflict {
        first: &'static str,
        second: &'static str,
        reason: &'static str,
    },
    #[error(
        "the change to {} needs a restart of the agent; it keeps running with the previous configuration (only {} apply without a restart)",
        .fields.join(", "),
        RELOADABLE.join(", ")
    )]
    NeedsRestart { fields: Vec<&'static str> },
}

/// The settings that apply without a restart.
pub const RELOADABLE: &[&str] = &[
    "kinds",
    "omitKinds",
    "namespaces",
    "omitNamespaces",
    "labelSelector",
    "onlySpinnakerManaged",
    "redaction.rules",
];

/// Where a setting can be given, for messages: ` (--interval, OUTPOST_INTERVAL or the config file)`.
fn where_set(field: &str) -> String {
    if field.starts_with("--") {
        return String::new();
    }
    if FILE_ONLY.contains(&field) {
        return " (config file)".to_string();
    }
    let flag = flag_name(field);
    format!(" (--{flag}, {} or the config file)", env_name(&flag))
}

fn where_set_both(first: &str, second: &str) -> String {
    let flag = |f: &str| {
        if f.starts_with("--") {
            f.to_string()
        } else {
            format!("--{}", flag_name(f))
        }
    };
    format!("{} and {}", flag(first), flag(second))
}

/// `omitKinds` → `omit-kinds`, `redaction.keyFile` → `redaction-key-file`.
fn flag_name(field: &str) -> String {
    let mut flag = String::new();
    for c in field.chars() {
        if c == '.' {
            flag.push('-');
        } else if c.is_ascii_uppercase() {
            flag.push('-');
            flag.push(c.to_ascii_lowercase());
        } else {
            flag.push(c);
        }
    }
    flag
}

/// `omit-kinds` → `OUTPOST_OMIT_KINDS`.
fn env_name(flag: &str) -> String {
    format!("OUTPOST_{}", flag.replace('-', "_").to_ascii_uppercase())
}

fn invalid(field: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file.

/// The YAML config file, as written: every field optional so that flags and defaults can fill
/// the gaps. See the module documentation for the reference file and the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentFileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_spinnaker_managed: Option<bool>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat: Option<Duration>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub takeover_grace: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_every_diffs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_when_diff_bytes_exceed: Option<f64>,
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub snapshot_max_age: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<RedactionFileConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountFileConfig>,
}

/// `redaction:` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedactionFileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RemoveRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// `account:` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccountFileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<Permission, Vec<String>>>,
}

/// A Spinnaker account permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    READ,
    WRITE,
    EXECUTE,
}

impl Permission {
    /// The name as Spinnaker writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::READ => "READ",
            Permission::WRITE => "WRITE",
            Permission::EXECUTE => "EXECUTE",
        }
    }
}

/// Reads and parses a config file. Errors name the file; parse errors also name the line, the
/// column and the field (e.g. ``unknown field `kindz`, expected one of …``).
pub fn load_file(path: &Path) -> Result<AgentFileConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text).map_err(|source| Error::ParseFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses config file text; a file holding nothing but comments is an empty configuration.
fn parse_file(text: &str) -> Result<AgentFileConfig, serde_yaml_ng::Error> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    if value.is_null() {
        return Ok(AgentFileConfig::default());
    }
    // Parse the text again (not the value) so that errors keep their line and column.
    serde_yaml_ng::from_str(text)
}

// ---------------------------------------------------------------------------------------------
// The flags.

/// `outpost agent`'s flags. Each has an `OUTPOST_…` environment variable, and each but
/// `--config`, `--decommission` and the `--sim` ones can also be set in the config file.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Watch this cluster and ship its state to a bucket",
    long_about = "Watches the cluster's resources and writes compressed snapshots and diffs to object storage, for `outpost index` to load into Clouddriver's cache. Uses the pod's service account by default; --kubeconfig / --context otherwise. Serves /healthz, /readyz and /metrics.\n\nEvery flag has an OUTPOST_… environment variable and (but --config, --decommission and --sim…) a camelCase key in the YAML --config file; a flag beats its variable, which beats the file, which beats the default. Kinds, namespaces, the label selector, onlySpinnakerManaged and redaction rules are re-read from the file when it changes, without a restart.",
    after_help = "Examples:\n  outpost agent --cluster prod-eu-1 --bucket s3://fleet-bucket/prod?region=eu-west-1\n  outpost agent --config /etc/outpost/agent.yaml\n  outpost agent --cluster dev --bucket file:///var/tmp/outpost --kubeconfig ~/.kube/config --context kind-dev --omit-kinds Pod\n  outpost agent --cluster sim-1 --bucket file:///var/tmp/outpost-demo --sim 10000 --sim-changes-per-second 5"
)]
pub struct AgentArgs {
    /// The cluster's name, a DNS-1123 label (required here or in the config file).
    #[arg(long, env = "OUTPOST_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,
    /// The bucket URL: file://, s3://, gs:// or az:// (required here or in the config file).
    #[arg(long, env = "OUTPOST_BUCKET", value_name = "URL")]
    pub bucket: Option<String>,
    /// A YAML config file, re-read when it changes [default: none].
    #[arg(long, env = "OUTPOST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use this kubeconfig instead of in-cluster credentials [default: in-cluster].
    #[arg(long, env = "OUTPOST_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Use this kubeconfig context (of --kubeconfig, else $KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "OUTPOST_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// Kinds to watch, `Kind` or `Kind.group` for custom resources [default: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Pod, Service, Ingress, NetworkPolicy, Namespace].
    #[arg(
        long,
        env = "OUTPOST_KINDS",
        value_delimiter = ',',
        value_name = "KIND,…"
    )]
    pub kinds: Option<Vec<String>>,
    /// Kinds not to watch, taken out of --kinds or of the defaults [default: none].
    #[arg(
        long,
        env = "OUTPOST_OMIT_KINDS",
        value_delimiter = ',',
        value_name = "KIND,…"
    )]
    pub omit_kinds: Option<Vec<String>>,
    /// Watch only these namespaces [default: every namespace].
    #[arg(
        long,
        env = "OUTPOST_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,…"
    )]
    pub namespaces: Option<Vec<String>>,
    /// Watch every namespace but these (not with --namespaces) [default: none].
    #[arg(
        long,
        env = "OUTPOST_OMIT_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,…"
    )]
    pub omit_namespaces: Option<Vec<String>>,
    /// Watch only objects matching this label selector, e.g. `tier in (web,api),!canary` [default: none].
    #[arg(long, env = "OUTPOST_LABEL_SELECTOR", value_name = "SELECTOR")]
    pub label_selector: Option<String>,
    /// Ship only objects Spinnaker deployed [default: false].
    #[arg(
        long,
        env = "OUTPOST_ONLY_SPINNAKER_MANAGED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub only_spinnaker_managed: Option<bool>,
    /// Ship a diff this often, e.g. 15s, 1m (at least 1s; not with --schedule) [default: 15s].
    #[arg(long, env = "OUTPOST_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Option<Duration>,
    /// Ship a diff on this cron schedule instead, e.g. `*/5 * * * *` (5 fields, or 6 with seconds first).
    #[arg(long, env = "OUTPOST_SCHEDULE", value_name = "CRON")]
    pub schedule: Option<String>,
    /// When idle, refresh the head's heartbeat this often (at least the interval) [default: 5m, or the interval if longer].
    #[arg(long, env = "OUTPOST_HEARTBEAT", value_parser = parse_duration, value_name = "DURATION")]
    pub heartbeat: Option<Duration>,
    /// Take over from a writer silent this long (at least two heartbeats) [default: 15m, or 3 heartbeats if longer].
    #[arg(long, env = "OUTPOST_TAKEOVER_GRACE", value_parser = parse_duration, value_name = "DURATION")]
    pub takeover_grace: Option<Duration>,
    /// Write a new snapshot after this many diffs [default: 240].
    #[arg(long, env = "OUTPOST_SNAPSHOT_EVERY_DIFFS", value_name = "N")]
    pub snapshot_every_diffs: Option<u32>,
    /// Write a new snapshot when the diffs' bytes exceed this multiple of the snapshot's bytes [default: 1.0].
    #[arg(
        long,
        env = "OUTPOST_SNAPSHOT_WHEN_DIFF_BYTES_EXCEED",
        value_name = "RATIO"
    )]
    pub snapshot_when_diff_bytes_exceed: Option<f64>,
    /// Write a new snapshot when the last one is this old, even when idle; keep it well below the bucket's lifecycle expiry [default: 24h].
    #[arg(long, env = "OUTPOST_SNAPSHOT_MAX_AGE", value_parser = parse_duration, value_name = "DURATION")]
    pub snapshot_max_age: Option<Duration>,
    /// zstd level, 1 (fastest) to 19 (smallest) [default: 3].
    #[arg(
        long,
        env = "OUTPOST_ZSTD_LEVEL",
        value_name = "LEVEL",
        allow_negative_numbers = true
    )]
    pub zstd_level: Option<i32>,
    /// Address for /healthz, /readyz and /metrics [default: 0.0.0.0:9090].
    #[arg(long, env = "OUTPOST_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A file holding the HMAC key for Secret values, at least 32 bytes; needed only when Secrets are watched [default: none; the agent then keeps its key in Secret outpost-redaction-key of its namespace, creating it if it may].
    #[arg(long, env = "OUTPOST_REDACTION_KEY_FILE", value_name = "FILE")]
    pub redaction_key_file: Option<PathBuf>,
    /// Mark the cluster decommissioned in the bucket (the indexer evicts it at once) and exit.
    #[arg(long, env = "OUTPOST_DECOMMISSION", value_parser = BoolishValueParser::new())]
    pub decommission: bool,
    /// Watch a simulated cluster of about this many objects instead of a real one (demo, benchmarks).
    #[arg(long, env = "OUTPOST_SIM", value_name = "OBJECTS", conflicts_with_all = ["kubeconfig", "context"])]
    pub sim: Option<usize>,
    /// Changes per second in the simulated cluster (0 for an idle one).
    #[arg(long, env = "OUTPOST_SIM_CHANGES_PER_SECOND", value_name = "RATE", allow_negative_numbers = true, default_value_t = DEFAULT_SIM_CHANGES_PER_SECOND)]
    pub sim_changes_per_second: f64,
}

// ---------------------------------------------------------------------------------------------
// The resolved configuration.

/// The resolved, validated configuration: every setting concrete.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `cluster`: required.
    pub cluster: ClusterName,
    /// `bucket`: required.
    pub bucket: BucketLocation,
    /// `kubeconfig` / `context` / `--sim`: default in-cluster.
    pub access: ClusterAccess,
    /// What to watch (reloadable).
    pub watch: WatchSelection,
    /// `interval` / `schedule`: default every 15 s.
    pub shipping: ShipTrigger,
    /// `heartbeat`: default 5 min, or the interval if longer.
    pub heartbeat: Duration,
    /// `takeoverGrace`: default 15 min, or three heartbeats if longer.
    pub takeover_grace: Duration,
    /// `snapshotEveryDiffs` / `snapshotWhenDiffBytesExceed`: default 240 diffs / 1.0.
    pub snapshot: SnapshotPolicy,
    /// `zstdLevel`: default 3.
    pub zstd_level: i32,
    /// `listen`: default 0.0.0.0:9090.
    pub listen: SocketAddr,
    /// `redaction` (the rules are reloadable).
    pub redaction: RedactionConfig,
    /// `account`: the name defaults to the cluster name, the permissions to none.
    pub account: AccountRequest,
    /// `--decommission`: default false.
    pub decommission: bool,
    /// `--config`: the file to re-read when it changes, if any.
    pub config_file: Option<PathBuf>,
}

/// How the agent reaches its cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterAccess {
    /// The pod's service account (the default).
    InCluster,
    /// A kubeconfig: `path` or else `$KUBECONFIG` / `~/.kube/config`; `context` or else its
    /// current context.
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    /// A simulated cluster (`--sim`).
    Simulated {
        approx_objects: usize,
        changes_per_second: f64,
    },
}

/// Which objects are watched: the settings that apply without a restart, with the redaction rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSelection {
    /// `kinds` as configured, duplicates removed (default [`DEFAULT_KINDS`]).
    pub kinds: Vec<String>,
    /// `omitKinds` (default none).
    pub omit_kinds: Vec<String>,
    /// `namespaces` / `omitNamespaces` (default every namespace).
    pub namespaces: Namespaces,
    /// `labelSelector` (default none).
    pub label_selector: Option<LabelSelector>,
    /// `onlySpinnakerManaged` (default false).
    pub only_spinnaker_managed: bool,
}

impl WatchSelection {
    /// The kinds to watch: `kinds` minus `omitKinds`, in the configured order.
    pub fn effective_kinds(&self) -> Vec<String> {
        self.kinds
            .iter()
            .filter(|k| !self.omit_kinds.contains(k))
            .cloned()
            .collect()
    }
}

/// Which namespaces are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace (one cluster-wide watch per kind).
    All,
    /// Only these (`namespaces`).
    Only(Vec<String>),
    /// Every namespace but these (`omitNamespaces`).
    Except(Vec<String>),
}

/// When diffs are shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipTrigger {
    /// Every `interval`.
    Interval(Duration),
    /// On a cron `schedule`.
    Schedule(Schedule),
}

/// When a new snapshot replaces the chain of diffs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotPolicy {
    /// After this many diffs (at least 1).
    pub every_diffs: u32,
    /// When the diffs' total bytes exceed this multiple of the snapshot's bytes (above 0).
    pub when_diff_bytes_exceed: f64,
    /// When the snapshot is this old, changes or not (at least the heartbeat).
    pub max_age: Duration,
}

impl Default for SnapshotPolicy {
    /// 240 diffs, diffs outweighing the snapshot, or 24 h.
    fn default() -> Self {
        Self {
            every_diffs: DEFAULT_SNAPSHOT_EVERY_DIFFS,
            when_diff_bytes_exceed: DEFAULT_SNAPSHOT_WHEN_DIFF_BYTES_EXCEED,
            max_age: DEFAULT_SNAPSHOT_MAX_AGE,
        }
    }
}

impl SnapshotPolicy {
    /// Whether the chain after a snapshot of `snapshot_bytes` is long enough for a new snapshot
    /// (written with the next change).
    pub fn chain_long(&self, diffs: usize, diff_bytes: u64, snapshot_bytes: u64) -> bool {
        diffs >= self.every_diffs as usize
            || diff_bytes as f64 > self.when_diff_bytes_exceed * snapshot_bytes as f64
    }

    /// Whether a snapshot of this age must be replaced now, changes or not.
    pub fn too_old(&self, age: Duration) -> bool {
        age >= self.max_age
    }
}

/// `redaction`: the user's rules (reloadable) and where the HMAC key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionConfig {
    /// `redaction.rules`, validated as [`Redactor::new`] does (default none).
    pub rules: Vec<RemoveRule>,
    /// `redaction.keyFile`: default none (no key when no Secret is watched; else the agent
    /// keeps its own, see [`super::key`]).
    pub key_file: Option<PathBuf>,
}

impl AgentConfig {
    /// The kinds to watch: `kinds` minus `omitKinds`, in the configured order.
    pub fn effective_kinds(&self) -> Vec<String> {
        self.watch.effective_kinds()
    }

    /// Whether a reloadable setting (the watch selection or the redaction rules) differs.
    pub fn reloadable_differs(&self, other: &AgentConfig) -> bool {
        self.watch != other.watch || self.redaction.rules != other.redaction.rules
    }
}

/// Reads `--config` (if given) and resolves it with the flags: what the agent calls at start and
/// again when the file changes.
pub fn load(args: &AgentArgs) -> Result<AgentConfig, Error> {
    let file = args.config.as_deref().map(load_file).transpose()?;
    resolve(args, file.as_ref())
}

/// Checks that a configuration re-read after a file change differs from the running one only in
/// settings that apply without a restart; otherwise names every setting that needs one.
pub fn check_reload(old: &AgentConfig, new: &AgentConfig) -> Result<(), Error> {
    let changed = [
        ("cluster", old.cluster != new.cluster),
        ("bucket", old.bucket != new.bucket),
        ("kubeconfig/context", old.access != new.access),
        ("interval/schedule", old.shipping != new.shipping),
        ("heartbeat", old.heartbeat != new.heartbeat),
        ("takeoverGrace", old.takeover_grace != new.takeover_grace),
        (
            "snapshotEveryDiffs",
            old.snapshot.every_diffs != new.snapshot.every_diffs,
        ),
        (
            "snapshotWhenDiffBytesExceed",
            old.snapshot.when_diff_bytes_exceed != new.snapshot.when_diff_bytes_exceed,
        ),
        (
            "snapshotMaxAge",
            old.snapshot.max_age != new.snapshot.max_age,
        ),
        ("zstdLevel", old.zstd_level != new.zstd_level),
        ("listen", old.listen != new.listen),
        (
            "redaction.keyFile",
            old.redaction.key_file != new.redaction.key_file,
        ),
        ("account", old.account != new.account),
        ("--decommission", old.decommission != new.decommission),
        ("--config", old.config_file != new.config_file),
    ];
    let fields: Vec<&'static str> = changed
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(field, _)| field)
        .collect();
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::NeedsRestart { fields })
    }
}

/// Resolves flags (and their variables) over the file over the defaults, and validates the
/// result: nothing is built from a configuration that fails here.
pub fn resolve(args: &AgentArgs, file: Option<&AgentFileConfig>) -> Result<AgentConfig, Error> {
    let empty = AgentFileConfig::default();
    let file = file.unwrap_or(&empty);

    let cluster = pick(&args.cluster, &file.cluster).ok_or(Error::Missing {
        field: "cluster",
        flag: "cluster",
        env: "OUTPOST_CLUSTER",
    })?;
    let cluster =
        ClusterName::new(&cluster).map_err(|e| invalid("cluster", &cluster, format_reason(e)))?;
    let bucket = pick(&args.bucket, &file.bucket).ok_or(Error::Missing {
        field: "bucket",
        flag: "bucket",
        env: "OUTPOST_BUCKET",
    })?;
    let bucket =
        BucketLocation::parse(&bucket).map_err(|e| invalid("bucket", &bucket, store_reason(e)))?;

    let access = resolve_access(args, file)?;
    let watch = resolve_watch(args, file)?;

    let shipping = match one_of(
        ("interval", args.interval, file.interval),
        ("schedule", args.schedule.clone(), file.schedule.clone()),
        "ship either every interval or on a schedule; remove one",
    )? {
        Either::Neither => ShipTrigger::Interval(DEFAULT_INTERVAL),
        Either::First(interval) => {
            if interval < MIN_INTERVAL {
                return Err(invalid(
                    "interval",
                    format_duration(interval),
                    format!("must be at least {}", format_duration(MIN_INTERVAL)),
                ));
            }
            ShipTrigger::Interval(interval)
        }
        Either::Second(schedule) => ShipTrigger::Schedule(
            Schedule::parse(&schedule).map_err(|reason| invalid("schedule", &schedule, reason))?,
        ),
    };

    let heartbeat = match pick(&args.heartbeat, &file.heartbeat) {
        Some(heartbeat) => {
            if heartbeat < MIN_INTERVAL {
                return Err(invalid(
                    "heartbeat",
                    format_duration(heartbeat),
                    format!("must be at least {}", format_duration(MIN_INTERVAL)),
                ));
            }
            if let ShipTrigger::Interval(interval) = shipping
                && heartbeat < interval
            {
                return Err(invalid(
                    "heartbeat",
                    format_duration(heartbeat),
                    format!(
                        "must be at least the interval ({}): the agent only wakes up once per interval",
                        format_duration(interval)
                    ),
                ));
            }
            heartbeat
        }
        None => match shipping {
            ShipTrigger::Interval(interval) => DEFAULT_HEARTBEAT.max(interval),
            ShipTrigger::Schedule(_) => DEFAULT_HEARTBEAT,
        },
    };

    let takeover_grace = match pick(&args.takeover_grace, &file.takeover_grace) {
        Some(grace) => {
            if grace < heartbeat * 2 {
                return Err(invalid(
                    "takeoverGrace",
                    format_duration(grace),
                    format!(
                        "must be at least two heartbeats ({}): a healthy idle writer refreshes its heartbeat only once per heartbeat interval ({}), so a shorter grace would let a standby replica take over from it",
                        format_duration(heartbeat * 2),
                        format_duration(heartbeat)
                    ),
                ));
            }
            grace
        }
        None => DEFAULT_TAKEOVER_GRACE.max(heartbeat * 3),
    };

    let every_diffs = pick(&args.snapshot_every_diffs, &file.snapshot_every_diffs)
        .unwrap_or(DEFAULT_SNAPSHOT_EVERY_DIFFS);
    if every_diffs < 1 {
        return Err(invalid(
            "snapshotEveryDiffs",
            every_diffs,
            "must be at least 1",
        ));
    }
    let ratio = pick(
        &args.snapshot_when_diff_bytes_exceed,
        &file.snapshot_when_diff_bytes_exceed,
    )
    .unwrap_or(DEFAULT_SNAPSHOT_WHEN_DIFF_BYTES_EXCEED);
    if !(ratio.is_finite() && ratio > 0.0) {
        return Err(invalid(
            "snapshotWhenDiffBytesExceed",
            ratio,
            "must be a number above 0 (a ratio of the snapshot's bytes, e.g. 1.0)",
        ));
    }

    let max_age = pick(&args.snapshot_max_age, &file.snapshot_max_age)
        .unwrap_or(DEFAULT_SNAPSHOT_MAX_AGE.max(heartbeat));
    if max_age < heartbeat {
        return Err(invalid(
            "snapshotMaxAge",
            format_duration(max_age),
            format!(
                "must be at least the heartbeat ({}): an idle agent looks at its chain only that often",
                format_duration(heartbeat)
            ),
        ));
    }

    let zstd_level = pick(&args.zstd_level, &file.zstd_level).unwrap_or(DEFAULT_ZSTD_LEVEL);
    if !(1..=19).contains(&zstd_level) {
        return Err(invalid(
            "zstdLevel",
            zstd_level,
            "must be between 1 (fastest) and 19 (smallest)",
        ));
    }

    let listen = match pick(&args.listen, &file.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| invalid("listen", DEFAULT_LISTEN, "the default does not parse"))?,
    };

    let redaction_file = file.redaction.clone().unwrap_or_default();
    let rules = redaction_file.rules.unwrap_or_default();
    check_rules(&rules)?;
    let key_file = pick(&args.redaction_key_file, &redaction_file.key_file);
    if key_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return Err(invalid("redaction.keyFile", "", "the path is empty"));
    }

    let account = resolve_account(file.account.as_ref(), &cluster)?;

    Ok(AgentConfig {
        cluster,
        bucket,
        access,
        watch,
        shipping,
        heartbeat,
        takeover_grace,
        snapshot: SnapshotPolicy {
            every_diffs,
            when_diff_bytes_exceed: ratio,
            max_age,
        },
        zstd_level,
        listen,
        redaction: RedactionConfig { rules, key_file },
        account,
        decommission: args.decommission,
        config_file: args.config.clone(),
    })
}

fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

enum Either<A, B> {
    Neither,
    First(A),
    Second(B),
}

/// Two settings that are one choice: decided at the highest level (flags, then file) that gives
/// either; both at the same level are refused.
fn one_of<A, B>(
    first: (&'static str, Option<A>, Option<A>),
    second: (&'static str, Option<B>, Option<B>),
    reason: &'static str,
) -> Result<Either<A, B>, Error> {
    let (first_name, first_flag, first_file) = first;
    let (second_name, second_flag, second_file) = second;
    for (a, b) in [(first_flag, second_flag), (first_file, second_file)] {
        match (a, b) {
            (Some(_), Some(_)) => {
                return Err(Error::Conflict {
                    first: first_name,
                    second: second_name,
                    reason,
                });
            }
            (Some(a), None) => return Ok(Either::First(a)),
            (None, Some(b)) => return Ok(Either::Second(b)),
            (None, None) => {}
        }
    }
    Ok(Either::Neither)
}

/// The reason part of a name error, without repeating the value.
fn format_reason(error: format::Error) -> String {
    match error {
        format::Error::InvalidName { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// The reason part of a bucket URL error, without repeating the URL.
fn store_reason(error: store::Error) -> String {
    match error {
        store::Error::InvalidUrl { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn resolve_access(args: &AgentArgs, file: &AgentFileConfig) -> Result<ClusterAccess, Error> {
    let kubeconfig = pick(&args.kubeconfig, &file.kubeconfig);
    let context = pick(&args.context, &file.context);
    if let Some(path) = &kubeconfig
        && path.as_os_str().is_empty()
    {
        return Err(invalid("kubeconfig", "", "the path is empty"));
    }
    if let Some(context) = &context
        && context.trim().is_empty()
    {
        return Err(invalid("context", context, "the context name is empty"));
    }
    if let Some(approx_objects) = args.sim {
        if kubeconfig.is_some() || context.is_some() {
            return Err(Error::Conflict {
                first: "--sim",
                second: if kubeconfig.is_some() {
                    "kubeconfig"
                } else {
                    "context"
                },
                reason: "a simulated cluster needs no credentials; remove one",
            });
        }
        if approx_objects == 0 {
            return Err(invalid(
                "--sim",
                0,
                "a simulated cluster needs at least 1 object",
            ));
        }
        let rate = args.sim_changes_per_second;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(invalid(
                "--sim-changes-per-second",
                rate,
                "must be a number of changes per second, 0 or more",
            ));
        }
        return Ok(ClusterAccess::Simulated {
            approx_objects,
            changes_per_second: rate,
        });
    }
    if kubeconfig.is_some() || context.is_some() {
        Ok(ClusterAccess::Kubeconfig {
            path: kubeconfig,
            context,
        })
    } else {
        Ok(ClusterAccess::InCluster)
    }
}

fn resolve_watch(args: &AgentArgs, file: &AgentFileConfig) -> Result<WatchSelection, Error> {
    let configured = pick(&args.kinds, &file.kinds);
    let explicit = configured.is_some();
    let kinds = match configured {
        Some(list) => {
            let kinds = checked_kinds("kinds", list)?;
            if kinds.is_empty() {
                return Err(invalid(
                    "kinds",
                    "",
                    "the list is empty; leave kinds unset to watch the default kinds",
                ));
            }
            kinds
        }
        None => DEFAULT_KINDS.iter().map(|k| k.to_string()).collect(),
    };
    let omit_kinds = checked_kinds(
        "omitKinds",
        pick(&args.omit_kinds, &file.omit_kinds).unwrap_or_default(),
    )?;
    if explicit && let Some(both) = omit_kinds.iter().find(|k| kinds.contains(k)) {
        return Err(invalid(
            "omitKinds",
            both,
            "it is also listed in kinds; list it in only one of them",
        ));
    }
    let watch = WatchSelection {
        kinds,
        omit_kinds,
        namespaces: Namespaces::All,
        label_selector: None,
        only_spinnaker_managed: false,
    };
    if watch.effective_kinds().is_empty() {
        return Err(invalid(
            "omitKinds",
            watch.omit_kinds.join(","),
            "it leaves no kind to watch",
        ));
    }

    let namespaces = match one_of(
        (
            "namespaces",
            args.namespaces.clone(),
            file.namespaces.clone(),
        ),
        (
            "omitNamespaces",
            args.omit_namespaces.clone(),
            file.omit_namespaces.clone(),
        ),
        "watch either only some namespaces or all but some; remove one",
    )? {
        Either::Neither => Namespaces::All,
        Either::First(list) => Namespaces::Only(checked_namespaces("namespaces", list)?),
        Either::Second(list) => Namespaces::Except(checked_namespaces("omitNamespaces", list)?),
    };

    let label_selector = match pick(&args.label_selector, &file.label_selector) {
        Some(selector) => LabelSelector::parse(&selector)
            .map_err(|reason| invalid("labelSelector", &selector, reason))?,
        None => None,
    };
    let only_spinnaker_managed =
        pick(&args.only_spinnaker_managed, &file.only_spinnaker_managed).unwrap_or(false);

    Ok(WatchSelection {
        namespaces,
        label_selector,
        only_spinnaker_managed,
        ..watch
    })
}

/// Checks each kind's syntax and drops duplicates, keeping the first occurrence.
fn checked_kinds(field: &'static str, list: Vec<String>) -> Result<Vec<String>, Error> {
    let mut kinds: Vec<String> = Vec::new();
    for kind in list {
        let kind = kind.trim().to_string();
        check_kind(&kind).map_err(|reason| invalid(field, &kind, reason))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// Checks each namespace name (a DNS-1123 label, the same rule as cluster names) and drops
/// duplicates.
fn checked_namespaces(field: &'static str, list: Vec<String>) -> Result<Vec<String>, Error> {
    if list.is_empty() {
        return Err(invalid(
            field,
            "",
            "the list is empty; leave it unset to watch every namespace",
        ));
    }
    let mut namespaces: Vec<String> = Vec::new();
    for namespace in list {
        let namespace = namespace.trim().to_string();
        ClusterName::new(&namespace).map_err(|e| invalid(field, &namespace, format_reason(e)))?;
        if !namespaces.contains(&namespace) {
            namespaces.push(namespace);
        }
    }
    Ok(namespaces)
}

/// `Kind` (an upper-case letter, then letters and digits) or `Kind.group` (a DNS subdomain).
fn check_kind(kind: &str) -> Result<(), String> {
    let (name, group) = match kind.split_once('.') {
        Some((name, group)) => (name, Some(group)),
        None => (kind, None),
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("the kind is empty".into()),
        Some(c) if !c.is_ascii_uppercase() => {
            return Err(
                "a kind starts with an upper-case letter, as in its manifests (e.g. Deployment)"
                    .into(),
            );
        }
        Some(_) => {}
    }
    if let Some(c) = chars.find(|c| !c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the kind contains {c:?}; write Kind, or Kind.group for a custom resource"
        ));
    }
    if let Some(group) = group {
        check_dns_subdomain(group).map_err(|reason| format!("the group {group:?}: {reason}"))?;
    }
    Ok(())
}

/// Checks the user's redaction rules with [`Redactor::new`]'s own validation (with a throwaway
/// key), plus what it leaves to the configuration: kind syntax and unique ids.
fn check_rules(rules: &[RemoveRule]) -> Result<(), Error> {
    Redactor::new(&[0u8; 32], rules.to_vec()).map_err(|e| match e {
        redact::Error::InvalidRule { id, reason } => invalid("redaction.rules", id, reason),
        other => invalid("redaction.rules", "", other.to_string()),
    })?;
    let mut ids = BTreeSet::new();
    for rule in rules {
        if rule.kind != "*" {
            check_kind(&rule.kind).map_err(|reason| {
                invalid(
                    "redaction.rules",
                    &rule.id,
                    format!("kind {:?}: {reason} (or '*' for every kind)", rule.kind),
                )
            })?;
        }
        if !ids.insert(rule.id.as_str()) {
            return Err(invalid(
                "redaction.rules",
                &rule.id,
                "two rules have this id; segment headers name rules by id",
            ));
        }
    }
    Ok(())
}

fn resolve_account(
    account: Option<&AccountFileConfig>,
    cluster: &ClusterName,
) -> Result<AccountRequest, Error> {
    let account = account.cloned().unwrap_or_default();
    let name = account.name.unwrap_or_else(|| cluster.as_str().to_string());
    if let Err(e) = crate::format::check_account_name(&name) {
        // The indexer refuses any other name (docs/SECURITY.md): say so where it is configured.
        return Err(invalid("account.name", &name, e.to_string()));
    }
    let mut permissions = BTreeMap::new();
    for (permission, roles) in account.permissions.unwrap_or_default() {
        if let Some(role) = roles.iter().find(|r| r.trim().is_empty()) {
            return Err(invalid(
                "account.permissions",
                role,
                format!("an empty role name under {}", permission.as_str()),
            ));
        }
        permissions.insert(permission.as_str().to_string(), roles);
    }
    Ok(AccountRequest {
        name: Some(name),
        permissions,
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: AgentArgs,
    }

    fn args(flags: &[&str]) -> AgentArgs {
        let mut argv = vec!["agent"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).unwrap().args
    }

    fn yaml(text: &str) -> AgentFileConfig {
        parse_file(text).unwrap()
    }

    fn base() -> AgentArgs {
        args(&["--cluster", "c1", "--bucket", "memory://t"])
    }

    fn resolve_err(flags: &[&str], file: &str) -> String {
        let mut argv = flags.to_vec();
        for (flag, value) in [("--cluster", "c1"), ("--bucket", "memory://t")] {
            if !flags.contains(&flag) {
                argv.extend([flag, value]);
            }
        }
        match resolve(&args(&argv), Some(&yaml(file))) {
            Ok(config) => panic!("accepted: {flags:?} {file:?}: {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The reference file from the module documentation.
    fn reference_yaml() -> String {
        let source = include_str!("config.rs");
        let start = source.find("//! ```yaml\n").unwrap() + "//! ```yaml\n".len();
        let end = start + source[start..].find("//! ```\n").unwrap();
        source[start..end]
            .lines()
            .map(|line| {
                line.strip_prefix("//! ")
                    .unwrap_or(line.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_reference_file_parses_and_resolves() {
        let file = parse_file(&reference_yaml()).unwrap();
        assert_eq!(file.cluster.as_deref(), Some("prod-eu-1"));
        assert_eq!(file.interval, Some(Duration::from_secs(15)));
        let config = resolve(&args(&[]), Some(&file)).unwrap();
        assert_eq!(config.cluster.as_str(), "prod-eu-1");
        assert_eq!(config.access, ClusterAccess::InCluster);
        assert_eq!(config.effective_kinds().len(), 12);
        assert_eq!(config.effective_kinds()[11], "Rollout.argoproj.io");
        assert_eq!(
            config.watch.namespaces,
            Namespaces::Except(vec!["kube-public".into(), "kube-node-lease".into()])
        );
        assert_eq!(
            config
                .watch
                .label_selector
                .as_ref()
                .map(LabelSelector::as_str),
            Some("tier notin (scratch), !outpost.io/ignore")
        );
        assert_eq!(config.redaction.rules.len(), 2);
        assert_eq!(
            config.redaction.rules[1].pointer,
            "/metadata/annotations/example.com~1notes"
        );
        assert_eq!(config.account.permissions["WRITE"], vec!["sre".to_string()]);
        assert_eq!(config.listen, "0.0.0.0:9090".parse().unwrap());
        // Everything the reference file sets is the default, but for the watch selection and
        // redaction/account.
        let defaults = resolve(
            &args(&[
                "--cluster",
                "prod-eu-1",
                "--bucket",
                "s3://fleet-bucket/prod?region=eu-west-1",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(config.shipping, defaults.shipping);
        assert_eq!(config.heartbeat, defaults.heartbeat);
        assert_eq!(config.takeover_grace, defaults.takeover_grace);
        assert_eq!(config.snapshot, defaults.snapshot);
        assert_eq!(config.zstd_level, defaults.zstd_level);
        assert_eq!(config.listen, defaults.listen);
    }

    #[test]
    fn every_file_field_parses() {
        let file = yaml(
            "cluster: c1\nbucket: memory://t\nkubeconfig: /k\ncontext: ctx\nkinds: [Pod]\nomitKinds: [Service]\n\
             namespaces: [a]\nomitNamespaces: [b]\nlabelSelector: a=b\nonlySpinnakerManaged: true\ninterval: 1m\n\
             schedule: '@hourly'\nheartbeat: 10m\ntakeoverGrace: 1h\nsnapshotEveryDiffs: 10\n\
             snapshotWhenDiffBytesExceed: 0.5\nsnapshotMaxAge: 2d\nzstdLevel: 9\nlisten: '127.0.0.1:1'\n\
             redaction: {rules: [], keyFile: /key}\naccount: {name: n, permissions: {READ: [r]}}\n",
        );
        // Every key has a flag and an environment variable, but the file-only ones.
        let keys = serde_json::to_value(&file).unwrap();
        let command = Cli::command();
        let mut seen = 0;
        for (key, value) in keys.as_object().unwrap() {
            let nested: Vec<String> = match value.as_object() {
                Some(object) => object.keys().map(|k| format!("{key}.{k}")).collect(),
                None => vec![key.clone()],
            };
            for field in nested {
                seen += 1;
                if FILE_ONLY.contains(&field.as_str()) {
                    continue;
                }
                let flag = flag_name(&field);
                let arg = command
                    .get_arguments()
                    .find(|a| a.get_long() == Some(flag.as_str()))
                    .unwrap_or_else(|| panic!("no --{flag} for {field}"));
                assert_eq!(
                    arg.get_env().and_then(|e| e.to_str()),
                    Some(env_name(&flag).as_str()),
                    "{field}"
                );
            }
        }
        assert_eq!(seen, 23);
        // And every flag has a variable.
        for arg in command.get_arguments() {
            if arg.get_long().is_some_and(|l| l != "help") {
                assert!(arg.get_env().is_some(), "{:?} has no env", arg.get_long());
            }
        }
        // The file round-trips through YAML.
        let text = serde_yaml_ng::to_string(&file).unwrap();
        assert_eq!(parse_file(&text).unwrap(), file);
    }

    #[test]
    fn defaults() {
        let config = resolve(&base(), None).unwrap();
        assert_eq!(config.access, ClusterAccess::InCluster);
        assert_eq!(config.effective_kinds(), DEFAULT_KINDS);
        assert_eq!(config.watch.namespaces, Namespaces::All);
        assert_eq!(config.watch.label_selector, None);
        assert!(!config.watch.only_spinnaker_managed);
        assert_eq!(
            config.shipping,
            ShipTrigger::Interval(Duration::from_secs(15))
        );
        assert_eq!(config.heartbeat, Duration::from_secs(300));
        assert_eq!(config.takeover_grace, Duration::from_secs(900));
        assert_eq!(
            config.snapshot,
            SnapshotPolicy {
                every_diffs: 240,
                when_diff_bytes_exceed: 1.0,
                max_age: Duration::from_secs(86_400),
            }
        );
        assert_eq!(config.zstd_level, 3);
        assert_eq!(config.listen.to_string(), "0.0.0.0:9090");
        assert_eq!(
            config.redaction,
            RedactionConfig {
                rules: vec![],
                key_file: None
            }
        );
        assert_eq!(config.account.name.as_deref(), Some("c1"));
        assert!(config.account.permissions.is_empty());
        assert!(!config.decommission);
        // Long intervals raise the derived defaults instead of failing on them.
        let config = resolve(
            &args(&[
                "--cluster",
                "c",
                "--bucket",
                "memory://t",
                "--interval",
                "10m",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(config.heartbeat, Duration::from_secs(600));
        assert_eq!(config.takeover_grace, Duration::from_secs(1800));
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file = yaml(
            "cluster: from-file\nbucket: memory://file\nzstdLevel: 9\nheartbeat: 2m\nkinds: [Pod, Service]\n\
             onlySpinnakerManaged: true\nlisten: '127.0.0.1:1000'\nredaction: {keyFile: /file.key}\n",
        );
        let config = resolve(&args(&[]), Some(&file)).unwrap();
        assert_eq!(config.cluster.as_str(), "from-file");
        assert_eq!(config.zstd_level, 9);
        assert_eq!(config.heartbeat, Duration::from_secs(120));
        assert_eq!(config.takeover_grace, Duration::from_secs(900)); // default
        assert!(config.watch.only_spinnaker_managed);
        assert_eq!(config.redaction.key_file, Some(PathBuf::from("/file.key")));

        let flags = args(&[
            "--cluster",
            "from-flag",
            "--zstd-level",
            "1",
            "--kinds",
            "Deployment,Job",
            "--only-spinnaker-managed=false",
            "--listen",
            "127.0.0.1:2000",
            "--redaction-key-file",
            "/flag.key",
        ]);
        let config = resolve(&flags, Some(&file)).unwrap();
        assert_eq!(config.cluster.as_str(), "from-flag");
        assert_eq!(config.bucket.url, "memory://file");
        assert_eq!(config.zstd_level, 1);
        assert_eq!(config.heartbeat, Duration::from_secs(120));
        assert_eq!(config.effective_kinds(), vec!["Deployment", "Job"]);
        assert!(!config.watch.only_spinnaker_managed);
        assert_eq!(config.listen.port(), 2000);
        assert_eq!(config.redaction.key_file, Some(PathBuf::from("/flag.key")));
        assert!(
            args(&["--only-spinnaker-managed"])
                .only_spinnaker_managed
                .unwrap()
        );
        assert!(args(&["--decommission"]).decommission);
        assert_eq!(
            args(&["--kinds", "A", "--kinds", "B,C"]).kinds.unwrap(),
            ["A", "B", "C"]
        );
    }

    #[test]
    fn paired_settings_are_decided_at_the_highest_level() {
        // A schedule flag replaces a file interval; both at one level are refused.
        let file = yaml("interval: 30s\nomitNamespaces: [kube-system]\n");
        let flags = args(&[
            "--cluster",
            "c",
            "--bucket",
            "memory://t",
            "--schedule",
            "0 */5 * * * *",
            "--namespaces",
            "shop",
        ]);
        let config = resolve(&flags, Some(&file)).unwrap();
        assert!(matches!(&config.shipping, ShipTrigger::Schedule(s) if s.has_seconds()));
        assert_eq!(
            config.watch.namespaces,
            Namespaces::Only(vec!["shop".into()])
        );
        let e = resolve_err(&[], "interval: 30s\nschedule: '@hourly'\n");
        assert!(
            e.contains("interval and schedule are both set")
                && e.contains("--interval and --schedule"),
            "{e}"
        );
        let e = resolve_err(&["--namespaces", "a", "--omit-namespaces", "b"], "");
        assert!(
            e.contains("namespaces and omitNamespaces are both set"),
            "{e}"
        );
    }

    #[test]
    fn access_modes() {
        let a = resolve(
            &args(&[
                "--cluster",
                "c",
                "--bucket",
                "memory://t",
                "--context",
                "kind-dev",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            a.access,
            ClusterAccess::Kubeconfig {
                path: None,
                context: Some("kind-dev".into())
            }
        );
        let a = resolve(
            &args(&[
                "--cluster",
                "c",
                "--bucket",
                "memory://t",
                "--sim",
                "500",
                "--sim-changes-per-second",
                "0",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            a.access,
            ClusterAccess::Simulated {
                approx_objects: 500,
                changes_per_second: 0.0
            }
        );
        let e = resolve_err(&["--sim", "10"], "kubeconfig: /k\n");
        assert!(e.contains("--sim and kubeconfig are both set"), "{e}");
        assert!(Cli::try_parse_from(["agent", "--sim", "10", "--context", "x"]).is_err());
    }

    #[test]
    fn missing_required_settings_say_where_to_set_them() {
        let e = resolve(&args(&["--bucket", "memory://t"]), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cluster is required: give --cluster (or OUTPOST_CLUSTER) or set `cluster:` in the config file"
        );
        let e = resolve(&args(&["--cluster", "c"]), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bucket is required"), "{e}");
    }

    #[test]
    fn every_validation_error_names_the_field_and_the_value() {
        let cases: &[(&[&str], &str, &str, &str)] = &[
            (
                &["--cluster", "Prod_1"],
                "",
                "invalid cluster \"Prod_1\" (--cluster, OUTPOST_CLUSTER or the config file)",
                "'P'",
            ),
            (
                &["--bucket", "ftp://x"],
                "",
                "invalid bucket \"ftp://x\"",
                "unknown scheme",
            ),
            (
                &[],
                "kinds: [deployment]\n",
                "invalid kinds \"deployment\" (--kinds, OUTPOST_KINDS",
                "upper-case",
            ),
            (
                &[],
                "kinds: [Rollout.Argoproj.io]\n",
                "invalid kinds \"Rollout.Argoproj.io\"",
                "group",
            ),
            (&[], "kinds: [Pod-x]\n", "invalid kinds \"Pod-x\"", "'-'"),
            (&[], "kinds: []\n", "invalid kinds \"\"", "empty"),
            (
                &["--omit-kinds", "Pod"],
                "kinds: [Pod, Service]\n",
                "invalid omitKinds \"Pod\" (--omit-kinds",
                "also listed in kinds",
            ),
            (
                &["--kinds", "Pod", "--omit-kinds", "Pod"],
                "",
                "invalid omitKinds \"Pod\"",
                "also listed in kinds",
            ),
            (
                &[
                    "--omit-kinds",
                    "Deployment,ReplicaSet,StatefulSet,DaemonSet,Job,CronJob,Pod,Service,Ingress,NetworkPolicy,Namespace",
                ],
                "",
                "invalid omitKinds",
                "no kind to watch",
            ),
            (
                &["--namespaces", "Shop"],
                "",
                "invalid namespaces \"Shop\"",
                "'S'",
            ),
            (
                &[],
                "omitNamespaces: [-x]\n",
                "invalid omitNamespaces \"-x\"",
                "start and end",
            ),
            (&[], "namespaces: []\n", "invalid namespaces \"\"", "empty"),
            (
                &["--label-selector", "a in b"],
                "",
                "invalid labelSelector \"a in b\" (--label-selector",
                "\"a in b\"",
            ),
            (
                &["--label-selector", "a=b,,c"],
                "",
                "invalid labelSelector \"a=b,,c\"",
                "stray comma",
            ),
            (
                &["--label-selector", "a in (b"],
                "",
                "invalid labelSelector",
                "'(' without ')'",
            ),
            (
                &["--label-selector", "a notin ()"],
                "",
                "invalid labelSelector",
                "empty",
            ),
            (
                &["--label-selector", "a=b c"],
                "",
                "invalid labelSelector",
                "' '",
            ),
            (
                &["--label-selector", "x/y/z"],
                "",
                "invalid labelSelector",
                "'/'",
            ),
            (
                &["--interval", "500ms"],
                "",
                "invalid interval \"500ms\" (--interval, OUTPOST_INTERVAL",
                "at least 1s",
            ),
            (
                &[],
                "schedule: '* * *'\n",
                "invalid schedule \"* * *\"",
                "3 fields",
            ),
            (
                &[],
                "schedule: '61 * * * *'\n",
                "invalid schedule",
                "minute field \"61\": 61 is outside 0-59",
            ),
            (&[], "schedule: '0 0 * FOO *'\n", "invalid schedule", "JAN"),
            (
                &[],
                "schedule: '0 0 5-1 * *'\n",
                "invalid schedule",
                "backwards",
            ),
            (&[], "schedule: '*/0 * * * *'\n", "invalid schedule", "step"),
            (&[], "schedule: '@often'\n", "invalid schedule", "@often"),
            (
                &["--heartbeat", "10s"],
                "",
                "invalid heartbeat \"10s\" (--heartbeat",
                "at least the interval (15s)",
            ),
            (
                &["--takeover-grace", "9m"],
                "",
                "invalid takeoverGrace \"9m\" (--takeover-grace",
                "two heartbeats (10m)",
            ),
            (
                &["--snapshot-max-age", "4m"],
                "",
                "invalid snapshotMaxAge \"4m\" (--snapshot-max-age",
                "at least the heartbeat (5m)",
            ),
            (
                &["--snapshot-every-diffs", "0"],
                "",
                "invalid snapshotEveryDiffs \"0\"",
                "at least 1",
            ),
            (
                &[],
                "snapshotWhenDiffBytesExceed: 0\n",
                "invalid snapshotWhenDiffBytesExceed \"0\"",
                "above 0",
            ),
            (
                &["--snapshot-when-diff-bytes-exceed", "NaN"],
                "",
                "invalid snapshotWhenDiffBytesExceed \"NaN\"",
                "above 0",
            ),
            (
                &["--zstd-level", "22"],
                "",
                "invalid zstdLevel \"22\" (--zstd-level, OUTPOST_ZSTD_LEVEL",
                "between 1",
            ),
            (
                &["--zstd-level", "-1"],
                "",
                "invalid zstdLevel \"-1\"",
                "between 1",
            ),
            (
                &[],
                "redaction: {rules: [{id: 'a b', kind: Pod, pointer: /x}]}\n",
                "invalid redaction.rules \"a b\" (config file)",
                "letters, digits",
            ),
            (
                &[],
                "redaction: {rules: [{id: a, kind: Pod, pointer: x}]}\n",
                "invalid redaction.rules \"a\"",
                "RFC 6901",
            ),
            (
                &[],
                "redaction: {rules: [{id: a, kind: pod, pointer: /x}]}\n",
                "invalid redaction.rules \"a\"",
                "kind \"pod\"",
            ),
            (
                &[],
                "redaction: {rules: [{id: a, kind: Pod, pointer: /x}, {id: a, kind: '*', pointer: /y}]}\n",
                "invalid redaction.rules \"a\"",
                "two rules",
            ),
            (
                &[],
                "account: {name: 'my account'}\n",
                "invalid account.name \"my account\" (config file)",
                "letters",
            ),
            (
                &[],
                "account: {permissions: {READ: ['']}}\n",
                "invalid account.permissions \"\"",
                "READ",
            ),
            (&["--sim", "0"], "", "invalid --sim \"0\":", "at least 1"),
            (
                &["--sim", "5", "--sim-changes-per-second", "-1"],
                "",
                "invalid --sim-changes-per-second \"-1\":",
                "0 or more",
            ),
            (&[], "context: ''\n", "invalid context \"\"", "empty"),
        ];
        for (flags, file, starts, contains) in cases {
            let e = resolve_err(flags, file);
            assert!(e.starts_with(starts), "{flags:?} {file:?}: {e}");
            assert!(e.contains(contains), "{flags:?} {file:?}: {e}");
        }
    }

    #[test]
    fn good_selectors_schedules_and_kinds_pass() {
        for selector in [
            "app=web",
            "app==web,tier!=db",
            "app.kubernetes.io/managed-by=spinnaker",
            "!canary, env in (prod, staging), tier notin (x)",
            "release",
            "a=",
        ] {
            LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        }
        for schedule in [
            "*/5 * * * *",
            "0 0 * * MON-FRI",
            "30 2 1,15 jan,jul ?",
            "0 */15 * * * *",
            "0 0 0 1-31/2 * 7",
            "@daily",
        ] {
            Schedule::parse(schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        }
        for kind in [
            "Pod",
            "HorizontalPodAutoscaler",
            "Rollout.argoproj.io",
            "V1Thing.x-y.example.com",
        ] {
            check_kind(kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, "cluster: c1\n# a comment\nkindz: [Pod]\n").unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("unknown field `kindz`"), "{e}");
        assert!(
            e.contains("expected one of") && e.contains("`kinds`"),
            "{e}"
        );
        assert!(e.contains("line 3"), "{e}");

        std::fs::write(
            &path,
            "redaction:\n  rules:\n    - id: a\n      kind: Pod\n      pointr: /x\n",
        )
        .unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("unknown field `pointr`") && e.contains("line 5"),
            "{e}"
        );

        std::fs::write(&path, "cluster: c1\ninterval: 15\n").unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("interval") && e.contains("15s") && e.contains("line 2"),
            "{e}"
        );

        std::fs::write(&path, "account:\n  permissions:\n    ADMIN: [x]\n").unwrap();
        let e = load_file(&path).unwrap_err().to_string();
        assert!(e.contains("ADMIN") && e.contains("READ"), "{e}");

        let e = load_file(&dir.path().join("missing.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("could not read the agent config file") && e.contains("missing.yaml"),
            "{e}"
        );

        std::fs::write(&path, "# nothing set yet\n").unwrap();
        assert_eq!(load_file(&path).unwrap(), AgentFileConfig::default());
    }

    #[test]
    fn load_reads_the_config_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, "cluster: c9\nbucket: memory://x\n").unwrap();
        let config = load(&args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(config.cluster.as_str(), "c9");
        assert_eq!(config.config_file.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn a_duration_flag_that_is_not_a_duration_is_refused() {
        assert!(Cli::try_parse_from(["agent", "--interval", "soon"]).is_err());
    }

    #[test]
    fn reloads_accept_watch_and_rule_changes_and_name_the_rest() {
        let old = resolve(&base(), None).unwrap();
        let file = yaml(
            "kinds: [Pod]\nnamespaces: [shop]\nlabelSelector: a=b\nonlySpinnakerManaged: true\n\
             redaction: {rules: [{id: env, kind: Pod, pointer: /spec/containers/0/env}]}\n",
        );
        let new = resolve(&base(), Some(&file)).unwrap();
        assert!(old.reloadable_differs(&new));
        check_reload(&old, &new).unwrap();
        assert!(!old.reloadable_differs(&old.clone()));

        let file = yaml("listen: '127.0.0.1:1'\nbucket: memory://other\nzstdLevel: 5\n");
        let new = resolve(&args(&["--cluster", "c1"]), Some(&file)).unwrap();
        let e = check_reload(&old, &new).unwrap_err().to_string();
        assert!(
            e.starts_with("the change to bucket, zstdLevel, listen needs a restart"),
            "{e}"
        );
        assert!(e.contains("only kinds, omitKinds"), "{e}");
    }

    #[test]
    fn snapshots_are_due_on_count_or_bytes() {
        let policy = SnapshotPolicy {
            every_diffs: 3,
            when_diff_bytes_exceed: 0.5,
            max_age: Duration::from_secs(3600),
        };
        assert!(!policy.chain_long(2, 50, 100));
        assert!(policy.chain_long(3, 0, 100));
        assert!(policy.chain_long(1, 51, 100));
        assert!(!policy.too_old(Duration::from_secs(3599)));
        assert!(policy.too_old(Duration::from_secs(3600)));
    }

    #[test]
    fn the_flags_are_well_formed() {
        Cli::command().debug_assert();
    }
}
