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
    #[error("{field} is required: give {} or set `{field}:` in the config file", how_to_give(.field))]
    Missing { field: &'static str },
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
    #[error("could not lay one level of settings over another: {0}")]
    Layer(#[source] serde_yaml_ng::Error),
    #[error(
        "the change to {} needs a restart of the agent; it keeps running with the previous configuration (only {} apply without a restart)",
        .fields.join(", "),
        reloadable_settings().join(", ")
    )]
    NeedsRestart { fields: Vec<String> },
}

/// `outpost agent`'s flags as clap defines them: where messages read each setting's flag,
/// variable and heading.
fn agent_command() -> clap::Command {
    use clap::Args as _;
    AgentArgs::augment_args(clap::Command::new("agent"))
}

/// The heading in `--help` of the flags whose settings apply without a restart when the file
/// changes: being under it is what makes a flag's setting reloadable.
const RELOADABLE_HEADING: &str = "Reloaded from --config when it changes, without a restart";

/// The settings that apply without a restart: the flags under [`RELOADABLE_HEADING`], in their
/// order, and the file's redaction rules.
pub fn reloadable_settings() -> Vec<String> {
    let command = agent_command();
    let flags = command
        .get_arguments()
        .filter(|a| a.get_help_heading() == Some(RELOADABLE_HEADING))
        .map(|a| a.get_id().to_string());
    flags.chain(["redaction.rules".to_string()]).collect()
}

/// A setting's flag and variable, `("omit-kinds", "OUTPOST_OMIT_KINDS")`, read from
/// [`AgentArgs`]' own definition, where each flag's id is the setting's key in the file; `None`
/// for a setting only the file holds.
fn flag_and_env(field: &str) -> Option<(String, String)> {
    let command = agent_command();
    let arg = command.get_arguments().find(|a| a.get_id() == field)?;
    let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
    Some((arg.get_long()?.to_string(), env.unwrap_or_default()))
}

/// How to give a required setting: `--cluster (or OUTPOST_CLUSTER)`.
fn how_to_give(field: &str) -> String {
    match flag_and_env(field) {
        Some((long, env)) => format!("--{long} (or {env})"),
        None => format!("`{field}:`"),
    }
}

/// Where a setting can be given, for messages: ` (--interval, OUTPOST_INTERVAL or the config
/// file)`; nothing for the flag-only settings, which errors name by their flag (`--sim`).
fn where_set(field: &str) -> String {
    if field.starts_with("--") {
        return String::new();
    }
    match flag_and_env(field) {
        Some((long, env)) => format!(" (--{long}, {env} or the config file)"),
        None => " (config file)".to_string(),
    }
}

/// The flags of two conflicting settings: `--interval and --schedule`.
fn where_set_both(first: &str, second: &str) -> String {
    let flag = |f: &str| {
        if f.starts_with("--") {
            return f.to_string();
        }
        match flag_and_env(f) {
            Some((long, _)) => format!("--{long}"),
            None => format!("`{f}:`"),
        }
    };
    format!("{} and {}", flag(first), flag(second))
}

fn invalid(field: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The settings.

/// Every setting the config file can hold, defined once: the doc comment is its `--help`,
/// `#[arg]` its flag and variable (the flag's id is the setting's key in the file), `#[serde]` its
/// key. Every field is optional, so that the flags and the file are each an `AgentSettings` and
/// one can be laid over the other ([`AgentSettings::over`]); [`resolve`] fills in the defaults
/// and validates. See the module documentation for the reference file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSettings {
    /// The cluster's name, a DNS-1123 label (required here or in the config file).
    #[arg(long, env = "OUTPOST_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,
    /// The bucket URL: file://, s3://, gs:// or az:// (required here or in the config file).
    #[arg(long, env = "OUTPOST_BUCKET", value_name = "URL")]
    pub bucket: Option<String>,
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
        help_heading = RELOADABLE_HEADING,
        value_delimiter = ',',
        value_name = "KIND,…"
    )]
    pub kinds: Option<Vec<String>>,
    /// Kinds not to watch, taken out of --kinds or of the defaults [default: none].
    #[arg(
        id = "omitKinds",
        long = "omit-kinds",
        env = "OUTPOST_OMIT_KINDS",
        help_heading = RELOADABLE_HEADING,
        value_delimiter = ',',
        value_name = "KIND,…"
    )]
    pub omit_kinds: Option<Vec<String>>,
    /// Watch only these namespaces [default: every namespace].
    #[arg(
        long,
        env = "OUTPOST_NAMESPACES",
        help_heading = RELOADABLE_HEADING,
        value_delimiter = ',',
        value_name = "NS,…"
    )]
    pub namespaces: Option<Vec<String>>,
    /// Watch every namespace but these (not with --namespaces) [default: none].
    #[arg(
        id = "omitNamespaces",
        long = "omit-namespaces",
        env = "OUTPOST_OMIT_NAMESPACES",
        help_heading = RELOADABLE_HEADING,
        value_delimiter = ',',
        value_name = "NS,…"
    )]
    pub omit_namespaces: Option<Vec<String>>,
    /// Watch only objects matching this label selector, e.g. `tier in (web,api),!canary` [default: none].
    #[arg(
        id = "labelSelector",
        long = "label-selector",
        env = "OUTPOST_LABEL_SELECTOR",
        help_heading = RELOADABLE_HEADING,
        value_name = "SELECTOR"
    )]
    pub label_selector: Option<String>,
    /// Ship only objects Spinnaker deployed [default: false].
    #[arg(
        id = "onlySpinnakerManaged",
        long = "only-spinnaker-managed",
        env = "OUTPOST_ONLY_SPINNAKER_MANAGED",
        help_heading = RELOADABLE_HEADING,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub only_spinnaker_managed: Option<bool>,
    /// Ship a diff this often, e.g. 15s, 1m (at least 1s; not with --schedule) [default: 15s].
    #[arg(long, env = "OUTPOST_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    #[serde(with = "optional_duration")]
    pub interval: Option<Duration>,
    /// Ship a diff on this cron schedule instead, e.g. `*/5 * * * *` (5 fields, or 6 with seconds first).
    #[arg(long, env = "OUTPOST_SCHEDULE", value_name = "CRON")]
    pub schedule: Option<String>,
    /// When idle, refresh the head's heartbeat this often (at least the interval) [default: 5m, or the interval if longer].
    #[arg(long, env = "OUTPOST_HEARTBEAT", value_parser = parse_duration, value_name = "DURATION")]
    #[serde(with = "optional_duration")]
    pub heartbeat: Option<Duration>,
    /// Take over from a writer silent this long (at least two heartbeats) [default: 15m, or 3 heartbeats if longer].
    #[arg(id = "takeoverGrace", long = "takeover-grace", env = "OUTPOST_TAKEOVER_GRACE", value_parser = parse_duration, value_name = "DURATION")]
    #[serde(with = "optional_duration")]
    pub takeover_grace: Option<Duration>,
    /// Write a new snapshot after this many diffs [default: 240].
    #[arg(
        id = "snapshotEveryDiffs",
        long = "snapshot-every-diffs",
        env = "OUTPOST_SNAPSHOT_EVERY_DIFFS",
        value_name = "N"
    )]
    pub snapshot_every_diffs: Option<u32>,
    /// Write a new snapshot when the diffs' bytes exceed this multiple of the snapshot's bytes [default: 1.0].
    #[arg(
        id = "snapshotWhenDiffBytesExceed",
        long = "snapshot-when-diff-bytes-exceed",
        env = "OUTPOST_SNAPSHOT_WHEN_DIFF_BYTES_EXCEED",
        value_name = "RATIO"
    )]
    pub snapshot_when_diff_bytes_exceed: Option<f64>,
    /// Write a new snapshot when the last one is this old, even when idle; keep it well below the bucket's lifecycle expiry [default: 24h].
    #[arg(id = "snapshotMaxAge", long = "snapshot-max-age", env = "OUTPOST_SNAPSHOT_MAX_AGE", value_parser = parse_duration, value_name = "DURATION")]
    #[serde(with = "optional_duration")]
    pub snapshot_max_age: Option<Duration>,
    /// zstd level, 1 (fastest) to 19 (smallest) [default: 3].
    #[arg(
        id = "zstdLevel",
        long = "zstd-level",
        env = "OUTPOST_ZSTD_LEVEL",
        value_name = "LEVEL",
        allow_negative_numbers = true
    )]
    pub zstd_level: Option<i32>,
    /// Address for /healthz, /readyz and /metrics [default: 0.0.0.0:9090].
    #[arg(long, env = "OUTPOST_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// `redaction:`.
    #[command(flatten)]
    pub redaction: RedactionSettings,
    /// `account:`: the file only.
    #[arg(skip)]
    pub account: Option<AccountSettings>,
}

/// `redaction:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RedactionSettings {
    /// Removal rules: the file only.
    #[arg(skip)]
    pub rules: Option<Vec<RemoveRule>>,
    /// A file holding the HMAC key for Secret values, at least 32 bytes; needed only when Secrets are watched [default: none; the agent then keeps its key in Secret outpost-redaction-key of its namespace, creating it if it may].
    #[arg(
        id = "redaction.keyFile",
        long = "redaction-key-file",
        env = "OUTPOST_REDACTION_KEY_FILE",
        value_name = "FILE"
    )]
    pub key_file: Option<PathBuf>,
}

/// `account:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AccountSettings {
    pub name: Option<String>,
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

/// Pairs of settings that are one choice, with why only one may be given: decided at the highest
/// level that gives either half, refused when one level gives both.
const PAIRS: [(&str, &str, &str); 2] = [
    (
        "interval",
        "schedule",
        "ship either every interval or on a schedule; remove one",
    ),
    (
        "namespaces",
        "omitNamespaces",
        "watch either only some namespaces or all but some; remove one",
    ),
];

impl AgentSettings {
    /// These settings laid over `lower`: each setting given here wins, a section (`redaction:`)
    /// is merged setting by setting, and giving either half of a pair ([`PAIRS`]) here drops
    /// both of `lower`'s. Each level is first checked not to give both halves of a pair.
    pub fn over(&self, lower: &AgentSettings) -> Result<AgentSettings, Error> {
        let upper = self.to_yaml()?;
        let mut lower_value = lower.to_yaml()?;
        check_pairs(&upper)?;
        check_pairs(&lower_value)?;
        if let Some(lower_map) = lower_value.as_mapping_mut() {
            for (first, second, _) in PAIRS {
                if is_given(&upper, first) || is_given(&upper, second) {
                    lower_map.remove(first);
                    lower_map.remove(second);
                }
            }
        }
        serde_yaml_ng::from_value(overlay(upper, lower_value)).map_err(Error::Layer)
    }

    /// The settings as the file would hold them; unset ones are null.
    fn to_yaml(&self) -> Result<serde_yaml_ng::Value, Error> {
        serde_yaml_ng::to_value(self).map_err(Error::Layer)
    }

    /// The settings whose values differ between `self` and `other`, in the file's order, by
    /// their dotted keys (`zstdLevel`, `redaction.keyFile`).
    pub fn differing(&self, other: &AgentSettings) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        differing_keys("", &self.to_yaml()?, &other.to_yaml()?, &mut keys);
        Ok(keys)
    }
}

fn is_given(settings: &serde_yaml_ng::Value, key: &str) -> bool {
    settings.get(key).is_some_and(|v| !v.is_null())
}

/// Refuses a level that gives both halves of a pair.
fn check_pairs(settings: &serde_yaml_ng::Value) -> Result<(), Error> {
    for (first, second, reason) in PAIRS {
        if is_given(settings, first) && is_given(settings, second) {
            return Err(Error::Conflict {
                first,
                second,
                reason,
            });
        }
    }
    Ok(())
}

/// `upper` over `lower`: mappings merge key by key, any other value given in `upper` replaces
/// `lower`'s (a list of kinds is one setting), and null gives nothing.
fn overlay(upper: serde_yaml_ng::Value, lower: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match (upper, lower) {
        (Value::Mapping(upper), Value::Mapping(mut lower)) => {
            for (key, value) in upper {
                let merged = match lower.remove(&key) {
                    Some(below) => overlay(value, below),
                    None => value,
                };
                lower.insert(key, merged);
            }
            Value::Mapping(lower)
        }
        (Value::Null, lower) => lower,
        (upper, _) => upper,
    }
}

/// Collects the dotted keys under `prefix` whose values differ, descending into sections.
fn differing_keys(
    prefix: &str,
    old: &serde_yaml_ng::Value,
    new: &serde_yaml_ng::Value,
    keys: &mut Vec<String>,
) {
    use serde_yaml_ng::{Mapping, Value};
    let empty = Mapping::new();
    match (old, new) {
        (Value::Mapping(_), _) | (_, Value::Mapping(_)) => {
            let old = old.as_mapping().unwrap_or(&empty);
            let new = new.as_mapping().unwrap_or(&empty);
            let names = old
                .keys()
                .chain(new.keys().filter(|k| !old.contains_key(*k)));
            for name in names {
                let key = match name.as_str() {
                    Some(name) if prefix.is_empty() => name.to_string(),
                    Some(name) => format!("{prefix}.{name}"),
                    None => continue,
                };
                let (old, new) = (
                    old.get(name).unwrap_or(&Value::Null),
                    new.get(name).unwrap_or(&Value::Null),
                );
                differing_keys(&key, old, new, keys);
            }
        }
        (old, new) if old != new => keys.push(prefix.to_string()),
        _ => {}
    }
}

/// Reads and parses a config file. Errors name the file; parse errors also name the line, the
/// column and the field (e.g. ``unknown field `kindz`, expected one of …``).
pub fn load_file(path: &Path) -> Result<AgentSettings, Error> {
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
fn parse_file(text: &str) -> Result<AgentSettings, serde_yaml_ng::Error> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    if value.is_null() {
        return Ok(AgentSettings::default());
    }
    // Parse the text again (not the value) so that errors keep their line and column.
    serde_yaml_ng::from_str(text)
}

// ---------------------------------------------------------------------------------------------
// The flags.

/// `outpost agent`'s flags: the settings, and what chooses what a run does (`--config`,
/// `--decommission`, `--sim`…), which the file cannot hold. Each has an `OUTPOST_…` variable.
#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(
    about = "Watch this cluster and ship its state to a bucket",
    long_about = "Watches the cluster's resources and writes compressed snapshots and diffs to object storage, for `outpost index` to load into Clouddriver's cache. Uses the pod's service account by default; --kubeconfig / --context otherwise. Serves /healthz, /readyz and /metrics.\n\nEvery flag has an OUTPOST_… environment variable and (but --config, --decommission and --sim…) a camelCase key in the YAML --config file; a flag beats its variable, which beats the file, which beats the default. Kinds, namespaces, the label selector, onlySpinnakerManaged and redaction rules are re-read from the file when it changes, without a restart.",
    after_help = "Examples:\n  outpost agent --cluster prod-eu-1 --bucket s3://fleet-bucket/prod?region=eu-west-1\n  outpost agent --config /etc/outpost/agent.yaml\n  outpost agent --cluster dev --bucket file:///var/tmp/outpost --kubeconfig ~/.kube/config --context kind-dev --omit-kinds Pod\n  outpost agent --cluster sim-1 --bucket file:///var/tmp/outpost-demo --sim 10000 --sim-changes-per-second 5"
)]
pub struct AgentArgs {
    /// A YAML config file, re-read when it changes [default: none].
    #[arg(long, env = "OUTPOST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: AgentSettings,
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
    /// The settings as given, the flags laid over the file, before defaults: what
    /// [`check_reload`] names changes by.
    pub settings: AgentSettings,
    /// The flags it was resolved with, which [`reload`] lays over the file again.
    pub flags: AgentArgs,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace (one cluster-wide watch per kind).
    #[default]
    All,
    /// Only these (`namespaces`).
    Only(Vec<String>),
    /// Every namespace but these (`omitNamespaces`).
    Except(Vec<String>),
}

impl Namespaces {
    /// The namespaces watched one by one (one watch per namespace and namespaced kind), or `None`
    /// when namespaced kinds are watched cluster-wide.
    pub fn only(&self) -> Option<&[String]> {
        match self {
            Namespaces::Only(only) => Some(only),
            Namespaces::All | Namespaces::Except(_) => None,
        }
    }

    /// Whether objects of `namespace` are selected.
    pub fn selects(&self, namespace: &str) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(only) => only.iter().any(|n| n == namespace),
            Namespaces::Except(except) => !except.iter().any(|n| n == namespace),
        }
    }

    /// The namespaces whose objects are dropped although a cluster-wide watch sees them.
    pub fn omitted(&self) -> &[String] {
        match self {
            Namespaces::Except(except) => except,
            Namespaces::All | Namespaces::Only(_) => &[],
        }
    }
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

impl RedactionConfig {
    /// The redactor of these rules, keyed when there is a key (see [`super::key::for_config`]).
    pub fn redactor(&self, key: Option<&[u8]>) -> Result<Redactor, redact::Error> {
        match key {
            Some(key) => Redactor::new(key, self.rules.clone()),
            None => Redactor::without_key(self.rules.clone()),
        }
    }
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

mod resolve;

pub use resolve::{check_reload, load, reload, resolve};

#[cfg(test)]
mod tests;
