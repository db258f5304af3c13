//! Resolution of flags, variables and the file into one validated [`AgentConfig`], and the check
//! of what a re-read file may change without a restart.

use super::*;

/// Reads `--config` (if given) and resolves it with the flags: what the agent calls at start and
/// again when the file changes.
pub fn load(args: &AgentArgs) -> Result<AgentConfig, Error> {
    let file = args.config.as_deref().map(load_file).transpose()?;
    resolve(args, file.as_ref())
}

/// Reads the running configuration's file again and resolves it with the same flags: the new
/// configuration, if it differs from `running` only where [`check_reload`] allows.
pub fn reload(running: &AgentConfig) -> Result<AgentConfig, Error> {
    let new = load(&running.flags)?;
    check_reload(running, &new)?;
    Ok(new)
}

/// Checks that a configuration re-read after a file change differs from the running one only in
/// settings that apply without a restart; otherwise names every setting that needs one. A change
/// that resolves to the same configuration (a default written out) needs nothing.
pub fn check_reload(old: &AgentConfig, new: &AgentConfig) -> Result<(), Error> {
    let unchanged = AgentConfig {
        watch: old.watch.clone(),
        redaction: RedactionConfig {
            rules: old.redaction.rules.clone(),
            ..new.redaction.clone()
        },
        settings: old.settings.clone(),
        ..new.clone()
    };
    if unchanged == *old {
        return Ok(());
    }
    let reloadable = reloadable_settings();
    let fields: Vec<String> = old
        .settings
        .differing(&new.settings)?
        .into_iter()
        .filter(|key| !reloadable.contains(key))
        .collect();
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Error::NeedsRestart { fields })
    }
}

/// Resolves flags (and their variables) over the file over the defaults, and validates the
/// result: nothing is built from a configuration that fails here.
pub fn resolve(args: &AgentArgs, file: Option<&AgentSettings>) -> Result<AgentConfig, Error> {
    let settings = args
        .settings
        .over(file.unwrap_or(&AgentSettings::default()))?;
    let s = &settings;

    let cluster = s
        .cluster
        .clone()
        .ok_or(Error::Missing { field: "cluster" })?;
    let cluster =
        ClusterName::new(&cluster).map_err(|e| invalid("cluster", &cluster, format_reason(e)))?;
    let bucket = s.bucket.clone().ok_or(Error::Missing { field: "bucket" })?;
    let bucket =
        BucketLocation::parse(&bucket).map_err(|e| invalid("bucket", &bucket, store_reason(e)))?;

    let access = resolve_access(args, s)?;
    let watch = resolve_watch(s)?;

    let shipping = match (s.interval, &s.schedule) {
        (None, None) => ShipTrigger::Interval(DEFAULT_INTERVAL),
        (Some(interval), _) => {
            if interval < MIN_INTERVAL {
                return Err(invalid(
                    "interval",
                    format_duration(interval),
                    format!("must be at least {}", format_duration(MIN_INTERVAL)),
                ));
            }
            ShipTrigger::Interval(interval)
        }
        (None, Some(schedule)) => ShipTrigger::Schedule(
            Schedule::parse(schedule).map_err(|reason| invalid("schedule", schedule, reason))?,
        ),
    };

    let heartbeat = match s.heartbeat {
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

    let takeover_grace = match s.takeover_grace {
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

    let every_diffs = s
        .snapshot_every_diffs
        .unwrap_or(DEFAULT_SNAPSHOT_EVERY_DIFFS);
    if every_diffs < 1 {
        return Err(invalid(
            "snapshotEveryDiffs",
            every_diffs,
            "must be at least 1",
        ));
    }
    let ratio = s
        .snapshot_when_diff_bytes_exceed
        .unwrap_or(DEFAULT_SNAPSHOT_WHEN_DIFF_BYTES_EXCEED);
    if !(ratio.is_finite() && ratio > 0.0) {
        return Err(invalid(
            "snapshotWhenDiffBytesExceed",
            ratio,
            "must be a number above 0 (a ratio of the snapshot's bytes, e.g. 1.0)",
        ));
    }

    let max_age = s
        .snapshot_max_age
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

    let zstd_level = s.zstd_level.unwrap_or(DEFAULT_ZSTD_LEVEL);
    if !(1..=19).contains(&zstd_level) {
        return Err(invalid(
            "zstdLevel",
            zstd_level,
            "must be between 1 (fastest) and 19 (smallest)",
        ));
    }

    let listen = match s.listen {
        Some(listen) => listen,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| invalid("listen", DEFAULT_LISTEN, "the default does not parse"))?,
    };

    let rules = s.redaction.rules.clone().unwrap_or_default();
    check_rules(&rules)?;
    let key_file = s.redaction.key_file.clone();
    if key_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        return Err(invalid("redaction.keyFile", "", "the path is empty"));
    }

    let account = resolve_account(s.account.as_ref(), &cluster)?;

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
        settings,
        flags: args.clone(),
    })
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

fn resolve_access(args: &AgentArgs, s: &AgentSettings) -> Result<ClusterAccess, Error> {
    let kubeconfig = s.kubeconfig.clone();
    let context = s.context.clone();
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

fn resolve_watch(s: &AgentSettings) -> Result<WatchSelection, Error> {
    let configured = s.kinds.clone();
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
    let omit_kinds = checked_kinds("omitKinds", s.omit_kinds.clone().unwrap_or_default())?;
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

    // `over` leaves at most one half of the pair.
    let namespaces = match (&s.namespaces, &s.omit_namespaces) {
        (None, None) => Namespaces::All,
        (Some(list), _) => Namespaces::Only(checked_namespaces("namespaces", list)?),
        (None, Some(list)) => Namespaces::Except(checked_namespaces("omitNamespaces", list)?),
    };

    let label_selector = match &s.label_selector {
        Some(selector) => LabelSelector::parse(selector)
            .map_err(|reason| invalid("labelSelector", selector, reason))?,
        None => None,
    };
    let only_spinnaker_managed = s.only_spinnaker_managed.unwrap_or(false);

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
fn checked_namespaces(field: &'static str, list: &[String]) -> Result<Vec<String>, Error> {
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
pub(super) fn check_kind(kind: &str) -> Result<(), String> {
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
    account: Option<&AccountSettings>,
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
