//! `outpost agent`: watch a cluster (or a simulated one) and ship it to the bucket until SIGTERM.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use tokio::sync::mpsc;

use crate::agent::api_error::ApiError;
use crate::agent::config::{self, AgentArgs, AgentConfig, ClusterAccess, ShipTrigger};
use crate::agent::key;
use crate::agent::redact::{MIN_KEY_BYTES, Redactor};
use crate::agent::run::{Agent, Status};
use crate::agent::ship::{ShipOptions, Shipper};
use crate::agent::state::{Scope, State, kind_name};
use crate::agent::watch::{self, Selection, SourceEvent, Watches, redacted_entry};
use crate::format::{Decommissioned, Identity};
use crate::settings::schedule::Trigger;
use crate::sim::churn::{Churn, ChurnEvent};
use crate::store::Store;

/// How often the configuration file is checked for changes.
const CONFIG_POLL_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// How often discovery runs again while a configured kind is not served.
const REDISCOVERY_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    crate::agent::run::tune_allocator();
    let config = config::load(&args)?;
    let store = Store::open(&config.bucket.url).await?;
    if config.decommission {
        let notice = Decommissioned::new(
            config.cluster.clone(),
            chrono::Utc::now(),
            Some("outpost agent --decommission".into()),
        );
        let key = store.layout().decommissioned(&config.cluster);
        store
            .put_overwrite(&key, Bytes::from(notice.to_json()?))
            .await?;
        eprintln!("{key}: cluster {} marked decommissioned", config.cluster);
        return Ok(ExitCode::SUCCESS);
    }
    let trigger = match &config.shipping {
        ShipTrigger::Interval(interval) => Trigger::Every(*interval),
        ShipTrigger::Schedule(schedule) => Trigger::Cron(schedule.clone()),
    };
    let status = Arc::new(Mutex::new(Status::default()));
    let server = crate::agent::health::bind(config.listen, status.clone()).await?;
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(error = %crate::error_chain(&error), "health and metrics server stopped");
        }
    });
    let (events_tx, events) = mpsc::channel(4096);
    let mut identity = Identity::new(config.cluster.clone(), chrono::Utc::now());
    identity.kinds = config.watch.effective_kinds();
    identity.account = config.account.clone();
    let (redactor, scopes, watching) = match &config.access {
        ClusterAccess::Simulated {
            approx_objects,
            changes_per_second,
        } => {
            // A simulated cluster's Secrets are made up: any key will do.
            let key = match &config.redaction.key_file {
                Some(path) => key::read_key_file(path)?,
                None => (0..MIN_KEY_BYTES).map(|_| rand::random::<u8>()).collect(),
            };
            let redactor = Arc::new(config.redaction.redactor(Some(&key))?);
            let churn = Churn::new(rand::random(), *approx_objects);
            let scopes = simulated_scopes(&churn, &Selection::of(&config));
            identity.kinds = scopes.iter().map(|s| s.kind.clone()).collect();
            identity.server_version = Some("simulated".into());
            tokio::spawn(simulate(
                churn,
                *changes_per_second,
                redactor.clone(),
                scopes.clone(),
                Selection::of(&config),
                events_tx,
            ));
            (redactor, scopes, None)
        }
        access => {
            let kube_config = kube_config(access).await?;
            let client = kube::Client::try_from(kube_config.clone())
                .context("could not build the Kubernetes client")?;
            let key = key::for_config(&config, &client, None).await?;
            let redactor = Arc::new(config.redaction.redactor(key.as_deref())?);
            describe_cluster(&client, &kube_config, &mut identity).await;
            let served = watch::discover(&client)
                .await
                .map_err(ApiError)
                .context("API discovery failed")?;
            let selection = Selection::of(&config);
            let watches = Watches::start(&client, &served, &selection, redactor.clone(), events_tx);
            let scopes: BTreeSet<Scope> = watches.scopes().cloned().collect();
            // Configured kinds not served yet (CRDs installed later) are picked up by
            // rediscovery; changes of the configuration file are applied without a restart.
            let (reconfigure_tx, reconfigure) = mpsc::channel(4);
            let supervisor = tokio::spawn(watches.supervise(REDISCOVERY_PERIOD, reconfigure));
            if let Some(path) = config.config_file.clone() {
                tokio::spawn(follow_config_file(
                    path,
                    args.clone(),
                    config.clone(),
                    (client.clone(), key),
                    reconfigure_tx,
                ));
            }
            (redactor, scopes, Some(supervisor))
        }
    };
    let options = ShipOptions {
        zstd_level: config.zstd_level,
        snapshot: config.snapshot,
        heartbeat: chrono::Duration::from_std(config.heartbeat)?,
        takeover_grace: chrono::Duration::from_std(config.takeover_grace)?,
        redaction: redactor.rule_ids(),
    };
    let agent = Agent {
        store: store.clone(),
        cluster: config.cluster.clone(),
        shipper: Shipper::new(store, config.cluster.clone(), options),
        state: State::new(),
        identity,
        trigger,
        status: status.clone(),
    };
    tracing::info!(cluster = %config.cluster, bucket = %config.bucket.url, scopes = scopes.len(), "agent started");
    let state = agent.run(events, scopes, shutdown_signal()).await;
    if let Some(watching) = watching {
        watching.abort();
    }
    let status = status.lock().map(|s| s.clone()).unwrap_or_default();
    tracing::info!(cluster = %config.cluster, objects = state.len(), segments = status.segments, "agent stopped");
    Ok(ExitCode::SUCCESS)
}

/// Re-reads the configuration file when it changes and hands the reloadable parts (kinds,
/// namespaces, filters, redaction rules) to the watch supervisor. A change that needs a restart,
/// or an invalid file, is logged and the running configuration kept; so is a change that starts
/// watching Secrets when no key can be had (the message says what to grant or give).
async fn follow_config_file(
    path: std::path::PathBuf,
    args: AgentArgs,
    mut running: AgentConfig,
    (client, mut key): (kube::Client, Option<Vec<u8>>),
    reconfigure: mpsc::Sender<(Selection, Arc<Redactor>)>,
) {
    let read = |path: &std::path::Path| std::fs::read(path).ok();
    let mut last = read(&path);
    let mut ticker = tokio::time::interval(CONFIG_POLL_PERIOD);
    loop {
        ticker.tick().await;
        let now = read(&path);
        if now == last {
            continue;
        }
        last = now;
        let new = match config::load(&args)
            .and_then(|new| config::check_reload(&running, &new).map(|()| new))
        {
            Ok(new) => new,
            Err(error) => {
                tracing::warn!(file = %path.display(), error = %crate::error_chain(&error), "configuration change not applied");
                continue;
            }
        };
        if !running.reloadable_differs(&new) {
            continue;
        }
        key = match key::for_config(&new, &client, key.take()).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(file = %path.display(), error = %crate::error_chain(&error), "configuration change not applied");
                continue;
            }
        };
        match new.redaction.redactor(key.as_deref()) {
            Ok(redactor) => {
                tracing::info!(file = %path.display(), "configuration changed: applying kinds, namespaces, filters and redaction rules");
                if reconfigure
                    .send((Selection::of(&new), Arc::new(redactor)))
                    .await
                    .is_err()
                {
                    return;
                }
                running = new;
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "configuration change not applied")
            }
        }
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested: shipping what is pending");
}

async fn kube_config(access: &ClusterAccess) -> anyhow::Result<kube::Config> {
    match access {
        ClusterAccess::Kubeconfig { path, context } => {
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            match path {
                Some(path) => {
                    let kubeconfig =
                        kube::config::Kubeconfig::read_from(path).with_context(|| {
                            format!("could not read the kubeconfig {}", path.display())
                        })?;
                    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?)
                }
                None => Ok(kube::Config::from_kubeconfig(&options).await?),
            }
        }
        _ => kube::Config::incluster()
            .context("not running in a cluster (no service account); give --kubeconfig"),
    }
}

/// Fills in who the cluster is: the kube-system namespace UID, the API server version and the CA
/// fingerprint. What cannot be read is left out (and logged).
async fn describe_cluster(client: &kube::Client, config: &kube::Config, identity: &mut Identity) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get("kube-system").await {
        Ok(ns) => identity.kube_system_uid = ns.metadata.uid,
        Err(error) => {
            tracing::warn!(error = %ApiError(error), "could not read the kube-system namespace for identity.json")
        }
    }
    match client.apiserver_version().await {
        Ok(info) => identity.server_version = Some(info.git_version),
        Err(error) => {
            tracing::warn!(error = %ApiError(error), "could not read the API server version")
        }
    }
    identity.ca_fingerprint = config
        .root_cert
        .as_ref()
        .and_then(|certs| certs.first())
        .map(|der| crate::format::sha256_hex(der));
}

/// One scope per kind of the simulated cluster that the configuration selects (`kinds`,
/// `omitKinds`); like a real cluster's, configured kinds it does not have are not watched.
fn simulated_scopes(churn: &Churn, selection: &Selection) -> BTreeSet<Scope> {
    churn
        .initial()
        .iter()
        .filter_map(|o| Some(kind_name(o["apiVersion"].as_str()?, o["kind"].as_str()?)))
        .filter(|kind| selection.kinds.contains(kind))
        .map(|kind| Scope {
            kind,
            namespace: None,
        })
        .collect()
}

/// Whether a simulated object is selected: its kind is watched and its namespace is not
/// excluded (`namespaces`, `omitNamespaces`).
fn simulated_selected(
    object: &serde_json::Value,
    scopes: &BTreeSet<Scope>,
    selection: &Selection,
) -> bool {
    let kind = kind_name(
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
    );
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    scopes.iter().any(|s| s.kind == kind)
        && (namespace.is_empty() || selection.namespaces.selects(namespace))
}

/// Feeds a simulated cluster's initial list, then its churn once a second, as watch events.
async fn simulate(
    mut churn: Churn,
    rate: f64,
    redactor: Arc<Redactor>,
    scopes: BTreeSet<Scope>,
    selection: Selection,
    events: mpsc::Sender<SourceEvent>,
) {
    let scope_of = |object: &serde_json::Value| Scope {
        kind: kind_name(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        ),
        namespace: None,
    };
    for scope in &scopes {
        if events
            .send(SourceEvent::RelistStarted(scope.clone()))
            .await
            .is_err()
        {
            return;
        }
    }
    for object in churn.initial() {
        if !simulated_selected(&object, &scopes, &selection) {
            continue;
        }
        let scope = scope_of(&object);
        if let Some(entry) = redacted_entry(object, &scope, &redactor)
            && events.send(SourceEvent::Apply(entry)).await.is_err()
        {
            return;
        }
    }
    for scope in scopes.clone() {
        if events.send(SourceEvent::RelistDone(scope)).await.is_err() {
            return;
        }
    }
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        ticker.tick().await;
        for event in churn.step(1.0, rate) {
            let (ChurnEvent::Apply(object) | ChurnEvent::Delete(object)) = &event;
            if !simulated_selected(object, &scopes, &selection) {
                continue;
            }
            let event = match event {
                ChurnEvent::Apply(object) => {
                    let scope = scope_of(&object);
                    redacted_entry(object, &scope, &redactor).map(SourceEvent::Apply)
                }
                ChurnEvent::Delete(object) => {
                    let scope = scope_of(&object);
                    redacted_entry(object, &scope, &redactor)
                        .map(|e| SourceEvent::Delete(e.target.key()))
                }
            };
            if let Some(event) = event
                && events.send(event).await.is_err()
            {
                return;
            }
        }
    }
}
