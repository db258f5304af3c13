//! Watching a real cluster: resolve the configured kinds through API discovery, run one
//! `kube::runtime::watcher` per kind (per namespace when namespaces are restricted), redact every
//! object, and send what happens to the agent's loop as [`SourceEvent`]s.
//!
//! A kind the agent may not list (RBAC) or that does not exist yet is reported and retried by the
//! watcher's backoff, never fatal: the other kinds go on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope as ApiScope};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::api_error::{ApiError, describe_watch_error};
use super::compressed::CompressedJson;
use super::config::{AgentConfig, Namespaces};
use super::discovery;
use super::redact::Redactor;
use super::state::{Entry, Scope, kind_name};
use crate::format::ServedResource;
use crate::format::segment::{ObjectKey, ObjectRef};
use crate::settings::selector::LabelSelector;

/// What a source of objects (a watch, or the simulator) tells the agent's loop.
#[derive(Debug)]
pub enum SourceEvent {
    /// A (re)list of a scope begins.
    RelistStarted(Scope),
    /// An object as it is now, redacted.
    Apply(Entry),
    /// An object is gone.
    Delete(ObjectKey),
    /// The (re)list of a scope is complete.
    RelistDone(Scope),
    /// A kind cannot be watched (RBAC, not served); the watch keeps retrying.
    Unavailable { kind: String, reason: String },
    /// A scope is no longer watched (the configuration changed): its objects are gone.
    ScopeRemoved(Scope),
    /// The redaction rules changed (whole rules compared, not only their ids): the objects held
    /// go through `apply_again` (the rules added or edited) before anything else is shipped, and
    /// segments from now on name `ids`.
    RedactionChanged {
        ids: Vec<String>,
        apply_again: Redactor,
    },
    /// The configured kinds changed (for identity.json).
    KindsChanged(Vec<String>),
    /// What the API server's discovery says of kinds about to be watched (for identity.json's
    /// `resources`): replaces what was known of the same kinds. Sent before their watches start.
    Discovered(Vec<ServedResource>),
}

/// What to watch and how to filter it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// `Kind` or `Kind.group` names.
    pub kinds: Vec<String>,
    /// Every namespace, only some (one watch per namespace and namespaced kind), or all but some.
    pub namespaces: Namespaces,
    /// A label selector passed to the API server.
    pub label_selector: Option<LabelSelector>,
    /// Keep only objects labelled `app.kubernetes.io/managed-by: spinnaker`.
    pub only_spinnaker_managed: bool,
}

impl Selection {
    /// What a configuration watches: its kinds minus its omitted kinds, and its filters.
    pub fn of(config: &AgentConfig) -> Self {
        Self {
            kinds: config.watch.effective_kinds(),
            namespaces: config.watch.namespaces.clone(),
            label_selector: config.watch.label_selector.clone(),
            only_spinnaker_managed: config.watch.only_spinnaker_managed,
        }
    }
}

/// The kinds the API server serves, by kind name, with the preferred version of each.
pub async fn discover(
    client: &kube::Client,
) -> Result<BTreeMap<String, (ApiResource, ApiCapabilities)>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut kinds = BTreeMap::new();
    // Built-in groups first, so that e.g. core `Event` wins over `events.k8s.io` `Event`.
    let mut groups: Vec<_> = discovery.groups().collect();
    groups.sort_by_key(|g| {
        (
            g.name() != "",
            g.name().contains('.') && !g.name().ends_with(".k8s.io"),
            g.name().to_string(),
        )
    });
    for group in groups {
        // Each kind at the group's preferred version when it is served there, else at its most
        // stable version: e.g. CronJob, served only as batch/v1beta1 by API servers before
        // 1.21, whose batch group prefers v1.
        let preferred = group.recommended_resources();
        let others = group.resources_by_stability();
        for (resource, capabilities) in preferred.into_iter().chain(others) {
            let name = kind_name(&resource.api_version, &resource.kind);
            kinds.entry(name).or_insert((resource, capabilities));
        }
    }
    Ok(kinds)
}

/// Running watches; dropping it stops them.
pub struct Watches {
    running: BTreeMap<Scope, JoinHandle<()>>,
    /// Configured kinds the API server does not serve (yet), already reported.
    missing: BTreeSet<String>,
    client: kube::Client,
    selection: Selection,
    redactor: Arc<Redactor>,
    events: mpsc::Sender<SourceEvent>,
}

impl Watches {
    /// Starts one watch per kind (per namespace when the selection restricts namespaces) for the
    /// kinds that discovery found; the others are reported as unavailable.
    pub fn start(
        client: &kube::Client,
        served: &BTreeMap<String, (ApiResource, ApiCapabilities)>,
        selection: &Selection,
        redactor: Arc<Redactor>,
        events: mpsc::Sender<SourceEvent>,
    ) -> Self {
        let mut watches = Self {
            running: BTreeMap::new(),
            missing: BTreeSet::new(),
            client: client.clone(),
            selection: selection.clone(),
            redactor,
            events,
        };
        watches.extend(served);
        watches
    }

    /// Starts the watches of configured kinds that are served now and not watched yet (a CRD
    /// installed after the agent started).
    fn extend(&mut self, served: &BTreeMap<String, (ApiResource, ApiCapabilities)>) {
        for kind in &self.selection.kinds {
            let Some((resource, capabilities)) = served.get(kind) else {
                if self.missing.insert(kind.clone()) {
                    let event = SourceEvent::Unavailable {
                        kind: kind.clone(),
                        reason:
                            "the API server does not serve this kind (yet); discovery is retried"
                                .into(),
                    };
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        let _ = events.send(event).await;
                    });
                }
                continue;
            };
            self.missing.remove(kind);
            let namespaces: Vec<Option<String>> = match self.selection.namespaces.only() {
                Some(only) if capabilities.scope != ApiScope::Cluster => {
                    only.iter().cloned().map(Some).collect()
                }
                _ => vec![None],
            };
            for namespace in namespaces {
                let scope = Scope {
                    kind: kind.clone(),
                    namespace: namespace.clone(),
                };
                if self.running.contains_key(&scope) {
                    continue;
                }
                let api: Api<DynamicObject> = match &namespace {
                    Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
                    None => Api::all_with(self.client.clone(), resource),
                };
                let task = tokio::spawn(watch_one(
                    api,
                    resource.clone(),
                    scope.clone(),
                    self.selection.clone(),
                    self.redactor.clone(),
                    self.events.clone(),
                ));
                tracing::info!(kind = %scope.kind, namespace = ?scope.namespace, "watching");
                self.running.insert(scope, task);
            }
        }
    }

    /// Sends the loop what the API server's discovery says of the configured kinds that are
    /// served and not watched yet, before [`Watches::extend`] starts their watches: so the loop
    /// never holds a watched kind it could not describe in identity.json.
    async fn announce(&self, served: &BTreeMap<String, (ApiResource, ApiCapabilities)>) {
        let starting = self.selection.kinds.iter().filter(|kind| {
            served.contains_key(*kind) && !self.running.keys().any(|scope| &scope.kind == *kind)
        });
        let resources =
            discovery::served_resources(&self.client, served, starting.map(String::as_str)).await;
        if !resources.is_empty() {
            let _ = self.events.send(SourceEvent::Discovered(resources)).await;
        }
    }

    /// The scopes being watched.
    pub fn scopes(&self) -> impl Iterator<Item = &Scope> {
        self.running.keys()
    }

    /// Kinds configured but not served, as reported.
    pub fn missing(&self) -> &BTreeSet<String> {
        &self.missing
    }

    /// Runs discovery again every `period` while some configured kind is not served, and starts
    /// watching it once it is (a CRD installed later). Discovery failures are logged and retried.
    pub async fn rediscover(self, period: std::time::Duration) {
        let (_keep, reconfigure) = mpsc::channel(1);
        self.supervise(period, reconfigure).await;
    }

    /// [`Watches::rediscover`], and applies new selections and redactors as they arrive (a
    /// changed configuration file): scopes no longer selected stop (their objects become
    /// deletions), new ones start; a change of filters or redaction rules restarts every watch,
    /// so that every object is listed again through the new rules. The watches stop before the
    /// agent's loop hears of new rules, so every object it receives after
    /// [`SourceEvent::RedactionChanged`] was redacted by them.
    pub async fn supervise(
        mut self,
        period: std::time::Duration,
        mut reconfigure: mpsc::Receiver<(Selection, Arc<Redactor>)>,
    ) {
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        // Without a configuration file nobody sends changes: once the channel is closed it is
        // no longer polled (a closed channel is always ready and would spin this loop).
        let mut reconfigurable = true;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if self.missing.is_empty() {
                        continue;
                    }
                    match discover(&self.client).await {
                        Ok(served) => {
                            self.announce(&served).await;
                            self.extend(&served);
                        }
                        Err(error) => tracing::warn!(error = %ApiError(error), "API discovery failed; retrying"),
                    }
                }
                change = reconfigure.recv(), if reconfigurable => {
                    let Some((selection, redactor)) = change else {
                        reconfigurable = false;
                        continue;
                    };
                    match discover(&self.client).await {
                        Ok(served) => self.reconfigure(selection, redactor, &served).await,
                        Err(error) => tracing::warn!(error = %ApiError(error), "API discovery failed; the new configuration is applied at the next change"),
                    }
                }
            }
        }
    }

    async fn reconfigure(
        &mut self,
        selection: Selection,
        redactor: Arc<Redactor>,
        served: &BTreeMap<String, (ApiResource, ApiCapabilities)>,
    ) {
        // Whole rules: a rule edited in place keeps its id.
        let rules_changed = redactor.rules() != self.redactor.rules();
        let filters_changed = selection.label_selector != self.selection.label_selector
            || selection.namespaces.omitted() != self.selection.namespaces.omitted()
            || selection.only_spinnaker_managed != self.selection.only_spinnaker_managed;
        let kept = |scope: &Scope| {
            selection.kinds.contains(&scope.kind)
                && match &scope.namespace {
                    None => true,
                    Some(ns) => selection
                        .namespaces
                        .only()
                        .is_some_and(|only| only.contains(ns)),
                }
        };
        let removed: Vec<Scope> = self.running.keys().filter(|s| !kept(s)).cloned().collect();
        for scope in removed {
            if let Some(task) = self.running.remove(&scope) {
                task.abort();
            }
            tracing::info!(kind = %scope.kind, namespace = ?scope.namespace, "no longer watched");
            let _ = self.events.send(SourceEvent::ScopeRemoved(scope)).await;
        }
        // Also a cluster-wide watch replaced by per-namespace ones (or the reverse).
        let namespaced_now = selection.namespaces.only().is_some();
        let stale: Vec<Scope> = self
            .running
            .keys()
            .filter(|s| {
                s.namespace.is_none()
                    && namespaced_now
                    && served
                        .get(&s.kind)
                        .is_some_and(|(_, c)| c.scope != ApiScope::Cluster)
            })
            .cloned()
            .collect();
        for scope in stale {
            if let Some(task) = self.running.remove(&scope) {
                task.abort();
            }
            let _ = self.events.send(SourceEvent::ScopeRemoved(scope)).await;
        }
        if rules_changed || filters_changed {
            for (_, task) in std::mem::take(&mut self.running) {
                task.abort();
            }
        }
        if rules_changed {
            let event = SourceEvent::RedactionChanged {
                ids: redactor.rule_ids(),
                apply_again: redactor.rules_not_in(&self.redactor),
            };
            let _ = self.events.send(event).await;
        }
        self.missing.retain(|kind| selection.kinds.contains(kind));
        let _ = self
            .events
            .send(SourceEvent::KindsChanged(selection.kinds.clone()))
            .await;
        self.selection = selection;
        self.redactor = redactor;
        self.announce(served).await;
        self.extend(served);
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

/// Objects per list page (kube-runtime's default is 500).
const LIST_PAGE_SIZE: u32 = 100;

async fn watch_one(
    api: Api<DynamicObject>,
    resource: ApiResource,
    scope: Scope,
    selection: Selection,
    redactor: Arc<Redactor>,
    events: mpsc::Sender<SourceEvent>,
) {
    // Small list pages: every kind lists at once at start (and after a 410), and each page is
    // held parsed until it is redacted, so the page size bounds the agent's peak memory.
    let mut config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    if let Some(selector) = &selection.label_selector {
        config = config.labels(selector.as_str());
    }
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(Event::Init) => SourceEvent::RelistStarted(scope.clone()),
            Ok(Event::InitDone) => SourceEvent::RelistDone(scope.clone()),
            Ok(Event::Apply(object) | Event::InitApply(object)) => {
                match to_entry(object, &resource, &scope, &selection, &redactor) {
                    Some(entry) => SourceEvent::Apply(entry),
                    None => continue,
                }
            }
            Ok(Event::Delete(object)) => {
                match to_entry(object, &resource, &scope, &selection, &redactor) {
                    Some(entry) => SourceEvent::Delete(entry.target.key()),
                    None => continue,
                }
            }
            Err(error) => {
                tracing::warn!(kind = %scope.kind, namespace = ?scope.namespace, error = %describe_watch_error(&error), "watch failed; retrying with backoff");
                SourceEvent::Unavailable {
                    kind: scope.kind.clone(),
                    reason: describe(&error),
                }
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

/// A watch error in a user's terms: RBAC refusals say so, and the API server's message is
/// given as it said it.
fn describe(error: &watcher::Error) -> String {
    let inner = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => Some(e),
        _ => None,
    };
    match inner {
        Some(kube::Error::Api(status)) if status.code == 403 => {
            format!("forbidden: {}", status.message)
        }
        _ => describe_watch_error(error),
    }
}

/// The redacted entry of a watched object, or `None` if the selection filters it out.
fn to_entry(
    object: DynamicObject,
    resource: &ApiResource,
    scope: &Scope,
    selection: &Selection,
    redactor: &Redactor,
) -> Option<Entry> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    if selection.namespaces.omitted().contains(&namespace) {
        return None;
    }
    if selection.only_spinnaker_managed {
        let managed = object
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .is_some_and(|v| v == "spinnaker");
        if !managed {
            return None;
        }
    }
    let mut value = serde_json::to_value(&object).ok()?;
    // List items come without apiVersion and kind: set them from discovery.
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version.clone().into());
        map.insert("kind".into(), resource.kind.clone().into());
    }
    redacted_entry(value, scope, redactor)
}

/// The entry of an object given as JSON (with `apiVersion` and `kind`), after redaction; `None`
/// if it has no name (or, which does not happen short of a zstd bug, its JSON cannot be
/// compressed: logged).
pub fn redacted_entry(
    mut value: serde_json::Value,
    scope: &Scope,
    redactor: &Redactor,
) -> Option<Entry> {
    redactor.redact(&scope.kind, &mut value);
    let target = ObjectRef::of_object(&value)?;
    let resource_version = value
        .pointer("/metadata/resourceVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let object = match CompressedJson::compress(&value.to_string()) {
        Ok(object) => object,
        Err(error) => {
            tracing::warn!(kind = %scope.kind, name = %target.name, %error, "object dropped");
            return None;
        }
    };
    Some(Entry {
        target,
        resource_version,
        object,
        scope: scope.clone(),
    })
}
