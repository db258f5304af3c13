//! The one place an agent is assembled from its configuration: its source (the cluster's watches
//! or a simulated cluster), its redactor, its shipper and its loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::discovery::{ApiCapabilities, ApiResource};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::api_error::ApiError;
use super::config::{self, AgentConfig, ClusterAccess, ShipTrigger};
use super::discovery;
use super::key;
use super::redact::{self, MIN_KEY_BYTES, Redactor};
use super::run::{Loop, SharedStatus};
use super::ship::{ShipOptions, Shipper};
use super::simulated::Simulated;
use super::state::{Scope, State};
use super::watch::{self, Selection, SourceEvent, Watches};
use crate::format::Identity;
use crate::settings::schedule::Trigger;
use crate::sim::Churn;
use crate::store::Store;

/// How often the configuration file is checked for changes.
const CONFIG_POLL_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// How often discovery runs again while a configured kind is not served, unless
/// [`Agent::rediscover_every`] says otherwise.
const REDISCOVERY_PERIOD: std::time::Duration = std::time::Duration::from_secs(60);

/// How many source events may wait for the loop.
const EVENT_QUEUE: usize = 4096;

/// Why an agent could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read the kubeconfig {}: {source}", .path.display())]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("could not load the kubeconfig: {0}")]
    LoadKubeconfig(#[source] kube::config::KubeconfigError),
    #[error("not running in a cluster (no service account); give --kubeconfig: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("could not build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("API discovery failed: {0}")]
    Discovery(#[source] ApiError),
    #[error(transparent)]
    Key(#[from] key::Error),
    #[error(transparent)]
    Redaction(#[from] redact::Error),
    #[error("{setting} {value:?} is too long for the shipper's clock")]
    Duration {
        setting: &'static str,
        value: String,
    },
}

/// An agent ready to run: its loop and where its events come from.
pub struct Agent {
    core: Loop,
    source: Source,
    /// How often discovery runs again while a configured kind is not served.
    rediscovery: std::time::Duration,
}

/// Where the agent's events come from.
enum Source {
    /// The cluster's watches, and what follows the configuration file.
    Watches {
        client: kube::Client,
        served: BTreeMap<String, (ApiResource, ApiCapabilities)>,
        redactor: Arc<Redactor>,
        /// The configuration, to follow its file when it has one, with the key found for it.
        config: AgentConfig,
        key: Option<Vec<u8>>,
    },
    /// A simulated cluster, churning at this many changes per second.
    Simulated {
        cluster: Simulated,
        changes_per_second: f64,
    },
}

/// Builds the agent `config` describes, shipping into `store`: reaches the cluster (or makes up
/// a simulated one), finds its redaction key, discovers what it serves and describes it for
/// `identity.json`. Nothing runs until [`Agent::run`].
pub async fn build(config: &AgentConfig, store: Store) -> Result<Agent, Error> {
    let mut identity = Identity::new(config.cluster.clone(), chrono::Utc::now());
    identity.kinds = config.watch.effective_kinds();
    identity.account = config.account.clone();
    let selection = Selection::of(config);
    let (redactor, source) = match &config.access {
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
            let cluster = Simulated::new(
                Churn::new(rand::random(), *approx_objects),
                redactor.clone(),
                selection,
            );
            cluster.describe(&mut identity);
            identity.server_version = Some("simulated".into());
            let source = Source::Simulated {
                cluster,
                changes_per_second: *changes_per_second,
            };
            (redactor, source)
        }
        access => {
            let kube_config = kube_config(access).await?;
            let client = kube::Client::try_from(kube_config.clone()).map_err(Error::Client)?;
            let key = key::for_config(config, &client, None).await?;
            let redactor = Arc::new(config.redaction.redactor(key.as_deref())?);
            describe_cluster(&client, &kube_config, &mut identity).await;
            let served = watch::discover(&client)
                .await
                .map_err(|e| Error::Discovery(ApiError(e)))?;
            identity.resources = discovery::served_resources(
                &client,
                &served,
                identity.kinds.iter().map(String::as_str),
            )
            .await;
            let source = Source::Watches {
                client,
                served,
                redactor: redactor.clone(),
                config: config.clone(),
                key,
            };
            (redactor, source)
        }
    };
    let duration = |setting: &'static str, value: std::time::Duration| {
        chrono::Duration::from_std(value).map_err(|_| Error::Duration {
            setting,
            value: crate::settings::duration::format_duration(value),
        })
    };
    let options = ShipOptions {
        zstd_level: config.zstd_level,
        snapshot: config.snapshot,
        heartbeat: duration("heartbeat", config.heartbeat)?,
        takeover_grace: duration("takeoverGrace", config.takeover_grace)?,
        redaction: redactor.rule_ids(),
    };
    let trigger = match &config.shipping {
        ShipTrigger::Interval(interval) => Trigger::Every(*interval),
        ShipTrigger::Schedule(schedule) => Trigger::Cron(schedule.clone()),
    };
    let shipper = Shipper::new(store.clone(), config.cluster.clone(), options);
    let core = Loop::new(store, shipper, identity, trigger, SharedStatus::default());
    Ok(Agent {
        core,
        source,
        rediscovery: REDISCOVERY_PERIOD,
    })
}

impl Agent {
    /// The status the agent keeps up to date (for `/healthz`, `/readyz` and `/metrics`).
    pub fn status(&self) -> SharedStatus {
        self.core.status()
    }

    /// Runs discovery again every `period` instead of every minute while a configured kind is
    /// not served (a CRD not installed yet); a simulated cluster serves every kind it has. For
    /// tests that install a CRD and cannot wait a minute for it to be watched.
    pub fn rediscover_every(mut self, period: std::time::Duration) -> Self {
        self.rediscovery = period;
        self
    }

    /// Starts the source and runs the loop until `shutdown` resolves (see [`Loop::run`]); the
    /// source stops with it. Returns what was held at the end.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> State {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (scopes, tasks) = self.source.start(events_tx, self.rediscovery);
        tracing::info!(cluster = %self.core.cluster(), scopes = scopes.len(), "agent started");
        let state = self.core.run(events, scopes, shutdown).await;
        for task in tasks {
            task.abort();
        }
        state
    }
}

impl Source {
    /// Starts sending events, running discovery again every `rediscovery` while a configured
    /// kind is not served: the scopes to wait for, and the tasks to stop at the end.
    fn start(
        self,
        events: mpsc::Sender<SourceEvent>,
        rediscovery: std::time::Duration,
    ) -> (BTreeSet<Scope>, Vec<JoinHandle<()>>) {
        match self {
            Source::Simulated {
                cluster,
                changes_per_second,
            } => {
                let scopes = cluster.scopes().clone();
                let task = tokio::spawn(cluster.feed(changes_per_second, events));
                (scopes, vec![task])
            }
            Source::Watches {
                client,
                served,
                redactor,
                config,
                key,
            } => {
                let selection = Selection::of(&config);
                let watches = Watches::start(&client, &served, &selection, redactor, events);
                let scopes: BTreeSet<Scope> = watches.scopes().cloned().collect();
                // Configured kinds not served yet (CRDs installed later) are picked up by
                // rediscovery; changes of the configuration file are applied without a restart.
                let (reconfigure_tx, reconfigure) = mpsc::channel(4);
                let mut tasks = vec![tokio::spawn(watches.supervise(rediscovery, reconfigure))];
                if let Some(path) = config.config_file.clone() {
                    tasks.push(tokio::spawn(follow_config_file(
                        path,
                        config,
                        (client, key),
                        reconfigure_tx,
                    )));
                }
                (scopes, tasks)
            }
        }
    }
}

/// Re-reads the configuration file when it changes and hands the reloadable parts (kinds,
/// namespaces, filters, redaction rules) to the watch supervisor. A change that needs a restart,
/// or an invalid file, is logged and the running configuration kept; so is a change that starts
/// watching Secrets when no key can be had (the message says what to grant or give).
async fn follow_config_file(
    path: PathBuf,
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
        let new = match config::reload(&running) {
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

async fn kube_config(access: &ClusterAccess) -> Result<kube::Config, Error> {
    match access {
        ClusterAccess::Kubeconfig { path, context } => {
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            match path {
                Some(path) => {
                    let kubeconfig =
                        kube::config::Kubeconfig::read_from(path).map_err(|source| {
                            Error::ReadKubeconfig {
                                path: path.clone(),
                                source,
                            }
                        })?;
                    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                        .await
                        .map_err(Error::LoadKubeconfig)
                }
                None => kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(Error::LoadKubeconfig),
            }
        }
        _ => kube::Config::incluster().map_err(Error::InCluster),
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
