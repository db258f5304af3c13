//! Tests of the agent's configuration: the reference file, precedence, every validation error.

#![cfg(test)]

use clap::{CommandFactory, Parser};

use super::resolve::check_kind;
use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: AgentArgs,
}

fn args(flags: &[&str]) -> AgentArgs {
    let mut argv = vec!["agent"];
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).expect("the flags parse").args
}

fn yaml(text: &str) -> AgentSettings {
    parse_file(text).expect("the YAML parses")
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

/// A file that sets every setting the file holds.
const EVERY_SETTING: &str = "cluster: c1\nbucket: memory://t\nkubeconfig: /k\ncontext: ctx\nkinds: [Pod]\n\
     omitKinds: [Service]\nnamespaces: [a]\nomitNamespaces: [b]\nlabelSelector: a=b\n\
     onlySpinnakerManaged: true\ninterval: 1m\nschedule: '@hourly'\nheartbeat: 10m\ntakeoverGrace: 1h\n\
     snapshotEveryDiffs: 10\nsnapshotWhenDiffBytesExceed: 0.5\nsnapshotMaxAge: 2d\nzstdLevel: 9\n\
     listen: '127.0.0.1:1'\nredaction: {rules: [], keyFile: /key}\n\
     account: {name: n, permissions: {READ: [r]}}\n";

/// The reference file from the module documentation.
fn reference_yaml() -> String {
    let source = include_str!("mod.rs");
    let start = source
        .find("//! ```yaml\n")
        .expect("the module doc has its reference YAML")
        + "//! ```yaml\n".len();
    let end = start
        + source[start..]
            .find("//! ```\n")
            .expect("the module doc has its reference YAML");
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
    let file = parse_file(&reference_yaml()).expect("the YAML parses");
    assert_eq!(file.cluster.as_deref(), Some("prod-eu-1"));
    assert_eq!(file.interval, Some(Duration::from_secs(15)));
    let config = resolve(&args(&[]), Some(&file)).expect("the settings resolve");
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
    assert_eq!(
        config.listen,
        "0.0.0.0:9090".parse().expect("a valid literal")
    );
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
    .expect("the settings resolve");
    assert_eq!(config.shipping, defaults.shipping);
    assert_eq!(config.heartbeat, defaults.heartbeat);
    assert_eq!(config.takeover_grace, defaults.takeover_grace);
    assert_eq!(config.snapshot, defaults.snapshot);
    assert_eq!(config.zstd_level, defaults.zstd_level);
    assert_eq!(config.listen, defaults.listen);
}

#[test]
fn every_file_field_parses() {
    let file = yaml(EVERY_SETTING);
    // Every key has a flag and an environment variable, but the file-only ones.
    let keys = serde_json::to_value(&file).expect("settings serialise to JSON");
    let command = Cli::command();
    let mut seen = 0;
    for (key, value) in keys
        .as_object()
        .expect("settings serialise to a JSON object")
    {
        let nested: Vec<String> = match value.as_object() {
            Some(object) => object.keys().map(|k| format!("{key}.{k}")).collect(),
            None => vec![key.clone()],
        };
        for field in nested {
            seen += 1;
            // The flag's id is the key; file-only keys have none.
            let Some(arg) = command
                .get_arguments()
                .find(|a| a.get_id() == field.as_str())
            else {
                assert!(
                    ["redaction.rules", "account.name", "account.permissions"]
                        .contains(&field.as_str()),
                    "no flag has the id {field}"
                );
                continue;
            };
            let long = arg.get_long().expect("every setting has a long flag");
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(format!("OUTPOST_{}", long.replace('-', "_").to_uppercase()).as_str()),
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
    let text = serde_yaml_ng::to_string(&file).expect("settings serialise to YAML");
    assert_eq!(parse_file(&text).expect("the YAML parses"), file);
}

#[test]
fn defaults() {
    let config = resolve(&base(), None).expect("the settings resolve");
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
    .expect("the settings resolve");
    assert_eq!(config.heartbeat, Duration::from_secs(600));
    assert_eq!(config.takeover_grace, Duration::from_secs(1800));
}

#[test]
fn flags_beat_the_file_which_beats_defaults() {
    let file = yaml(
        "cluster: from-file\nbucket: memory://file\nzstdLevel: 9\nheartbeat: 2m\nkinds: [Pod, Service]\n\
         onlySpinnakerManaged: true\nlisten: '127.0.0.1:1000'\nredaction: {keyFile: /file.key}\n",
    );
    let config = resolve(&args(&[]), Some(&file)).expect("the settings resolve");
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
    let config = resolve(&flags, Some(&file)).expect("the settings resolve");
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
            .settings
            .only_spinnaker_managed
            .expect("the flag sets it")
    );
    assert!(args(&["--decommission"]).decommission);
    assert_eq!(
        args(&["--kinds", "A", "--kinds", "B,C"])
            .settings
            .kinds
            .expect("the flag sets it"),
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
    let config = resolve(&flags, Some(&file)).expect("the settings resolve");
    assert!(matches!(&config.shipping, ShipTrigger::Schedule(s) if s.has_seconds()));
    assert_eq!(
        config.watch.namespaces,
        Namespaces::Only(vec!["shop".into()])
    );
    let e = resolve_err(&[], "interval: 30s\nschedule: '@hourly'\n");
    assert!(
        e.contains("interval and schedule are both set") && e.contains("--interval and --schedule"),
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
    .expect("the settings resolve");
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
    .expect("the settings resolve");
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
fn good_schedules_and_kinds_pass() {
    // Good selectors: settings::selector's own tests.
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
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, "cluster: c1\n# a comment\nkindz: [Pod]\n").expect("the file is written");
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
    .expect("the file is written");
    let e = load_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("unknown field `pointr`") && e.contains("line 5"),
        "{e}"
    );

    std::fs::write(&path, "cluster: c1\ninterval: 15\n").expect("the file is written");
    let e = load_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("interval") && e.contains("15s") && e.contains("line 2"),
        "{e}"
    );

    std::fs::write(&path, "account:\n  permissions:\n    ADMIN: [x]\n")
        .expect("the file is written");
    let e = load_file(&path).unwrap_err().to_string();
    assert!(e.contains("ADMIN") && e.contains("READ"), "{e}");

    let e = load_file(&dir.path().join("missing.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("could not read the agent config file") && e.contains("missing.yaml"),
        "{e}"
    );

    std::fs::write(&path, "# nothing set yet\n").expect("the file is written");
    assert_eq!(
        load_file(&path).expect("the file loads"),
        AgentSettings::default()
    );
}

#[test]
fn load_reads_the_config_flag() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, "cluster: c9\nbucket: memory://x\n").expect("the file is written");
    let config =
        load(&args(&["--config", path.to_str().expect("a UTF-8 path")])).expect("a UTF-8 path");
    assert_eq!(config.cluster.as_str(), "c9");
    assert_eq!(config.config_file.as_deref(), Some(path.as_path()));
}

#[test]
fn a_duration_flag_that_is_not_a_duration_is_refused() {
    assert!(Cli::try_parse_from(["agent", "--interval", "soon"]).is_err());
}

#[test]
fn reloads_accept_watch_and_rule_changes_and_name_the_rest() {
    let old = resolve(&base(), None).expect("the settings resolve");
    let file = yaml(
        "kinds: [Pod]\nnamespaces: [shop]\nlabelSelector: a=b\nonlySpinnakerManaged: true\n\
         redaction: {rules: [{id: env, kind: Pod, pointer: /spec/containers/0/env}]}\n",
    );
    let new = resolve(&base(), Some(&file)).expect("the settings resolve");
    assert!(old.reloadable_differs(&new));
    check_reload(&old, &new).expect("the change needs no restart");
    assert!(!old.reloadable_differs(&old.clone()));

    let file = yaml("listen: '127.0.0.1:1'\nbucket: memory://other\nzstdLevel: 5\n");
    let new = resolve(&args(&["--cluster", "c1"]), Some(&file)).expect("the settings resolve");
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

#[test]
fn each_reloadable_setting_applies_without_a_restart() {
    let old = resolve(&base(), None).expect("the settings resolve");
    let changes = [
        ("kinds", "kinds: [Pod]"),
        ("omitKinds", "omitKinds: [Pod]"),
        ("namespaces", "namespaces: [a]"),
        ("omitNamespaces", "omitNamespaces: [a]"),
        ("labelSelector", "labelSelector: a=b"),
        ("onlySpinnakerManaged", "onlySpinnakerManaged: true"),
        (
            "redaction.rules",
            "redaction: {rules: [{id: env, kind: Pod, pointer: /spec/containers/0/env}]}",
        ),
    ];
    let keys: Vec<String> = changes.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(reloadable_settings(), keys);
    for (key, text) in changes {
        let new = resolve(&base(), Some(&yaml(text))).expect("the settings resolve");
        assert!(old.reloadable_differs(&new), "{key}");
        check_reload(&old, &new).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    let help = Cli::command().render_long_help().to_string();
    let section = &help[help
        .find(RELOADABLE_HEADING)
        .expect("--help has the reloadable heading")..];
    assert!(section.contains("--label-selector"), "{help}");
}

#[test]
fn the_reference_file_documents_every_setting() {
    let every = yaml(EVERY_SETTING);
    let reference = reference_yaml();
    let value = serde_json::to_value(&every).expect("settings serialise to JSON");
    for (key, value) in value
        .as_object()
        .expect("settings serialise to a JSON object")
    {
        let mut keys = vec![key.clone()];
        if let Some(object) = value.as_object() {
            keys.extend(object.keys().cloned());
        }
        for key in keys {
            // Set, or shown commented out with its default.
            assert!(
                reference.contains(&format!("\n{key}:"))
                    || reference.contains(&format!(" {key}:"))
                    || reference.contains(&format!("# {key}:")),
                "the reference file in the module documentation does not show `{key}:`"
            );
        }
    }
    // Every field, without `..`: a new setting stops this test compiling until it is added to
    // `every` above, and so to the check of the reference file.
    let AgentSettings {
        cluster: _,
        bucket: _,
        kubeconfig: _,
        context: _,
        kinds: _,
        omit_kinds: _,
        namespaces: _,
        omit_namespaces: _,
        label_selector: _,
        only_spinnaker_managed: _,
        interval: _,
        schedule: _,
        heartbeat: _,
        takeover_grace: _,
        snapshot_every_diffs: _,
        snapshot_when_diff_bytes_exceed: _,
        snapshot_max_age: _,
        zstd_level: _,
        listen: _,
        redaction: RedactionSettings {
            rules: _,
            key_file: _,
        },
        account: _,
    } = every;
}

#[test]
fn namespaces_select_watch_and_omit_consistently() {
    let list = vec!["a".to_string(), "b".to_string()];
    for (namespaces, a, c) in [
        (Namespaces::All, true, true),
        (Namespaces::Only(list.clone()), true, false),
        (Namespaces::Except(list.clone()), false, true),
    ] {
        assert_eq!(namespaces.selects("a"), a, "{namespaces:?}");
        assert_eq!(namespaces.selects("c"), c, "{namespaces:?}");
        // Watched one by one, or cluster-wide and then dropped: the same selection.
        for ns in ["a", "b", "c"] {
            let watched = namespaces
                .only()
                .is_none_or(|only| only.iter().any(|n| n == ns));
            let dropped = namespaces.omitted().iter().any(|n| n == ns);
            assert_eq!(
                watched && !dropped,
                namespaces.selects(ns),
                "{namespaces:?} {ns}"
            );
        }
    }
}

#[test]
fn a_level_laid_over_another_wins_setting_by_setting() {
    let file = yaml(
        "kinds: [Pod]\nschedule: '@hourly'\nnamespaces: [a]\nzstdLevel: 9\n\
         redaction: {rules: [{id: env, kind: Pod, pointer: /spec/containers/0/env}], keyFile: /f}\n",
    );
    let flags = args(&[
        "--kinds",
        "Service",
        "--interval",
        "1m",
        "--redaction-key-file",
        "/k",
    ]);
    let merged = flags.settings.over(&file).expect("the layers merge");
    // A flag replaces the file's setting whole (a list too); the others stay.
    assert_eq!(merged.kinds, Some(vec!["Service".to_string()]));
    assert_eq!(merged.zstd_level, Some(9));
    assert_eq!(merged.namespaces, Some(vec!["a".to_string()]));
    // A section merges setting by setting.
    assert_eq!(merged.redaction.key_file, Some(PathBuf::from("/k")));
    assert_eq!(merged.redaction.rules.as_ref().map(Vec::len), Some(1));
    // Half of a pair given above drops both halves below.
    assert_eq!(merged.interval, Some(Duration::from_secs(60)));
    assert_eq!(merged.schedule, None);
    // Nothing over the file is the file; the file over nothing is the file.
    assert_eq!(
        AgentSettings::default()
            .over(&file)
            .expect("the layers merge"),
        file
    );
    assert_eq!(
        file.over(&AgentSettings::default())
            .expect("the layers merge"),
        file
    );
    // What differs, by dotted key, in the file's order.
    assert_eq!(
        file.differing(&merged).expect("the settings compare"),
        ["kinds", "interval", "schedule", "redaction.keyFile"]
    );
    assert!(
        merged
            .differing(&merged)
            .expect("the settings compare")
            .is_empty()
    );
}

#[test]
fn a_default_written_out_in_a_reloaded_file_needs_no_restart() {
    let old = resolve(&base(), None).expect("the settings resolve");
    let new = resolve(&base(), Some(&yaml("interval: 15s\nzstdLevel: 3\n")))
        .expect("the settings resolve");
    check_reload(&old, &new).expect("the change needs no restart");
    let new = resolve(
        &base(),
        Some(&yaml("redaction: {keyFile: /k}\naccount: {name: other}\n")),
    )
    .expect("the settings resolve");
    let e = check_reload(&old, &new).unwrap_err().to_string();
    assert!(
        e.starts_with("the change to redaction.keyFile, account.name needs a restart"),
        "{e}"
    );
}
