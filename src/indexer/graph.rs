//! The relationship graph of a whole account built in memory from one pass over a snapshot: the
//! links `outpost_links` stores (each with the key that declares it and its origin) and every
//! key's neighbours, so a snapshot loads without querying its own rows back (pure, no I/O).
//!
//! It builds exactly the graph of [`crate::cache::relationships::account_links`] (a property test
//! checks it), but streaming: each object contributes what its links need — its owners and
//! logical rows, a Service's selector, a ReplicaSet's template labels, an Ingress's or
//! StatefulSet's service names — and partners are matched per namespace at the end. Keys are
//! interned, so memory is one copy of each key plus a few integers per link.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::cache::{CacheKey, CacheOptions, Resource, selector_matches};

/// Labels or a selector, by key.
type Labels = BTreeMap<String, String>;

/// Why a link exists (the `origin` column of `outpost_links`), which decides when it is
/// recomputed: see the module documentation of [`super::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A cached object → an owner it names (declared by the object).
    Owner,
    /// A cached object → its application or cluster row, and that application ↔ cluster
    /// (declared by the object).
    Logical,
    /// A cached Service → a listed ReplicaSet its selector matches (declared by the Service).
    Selector,
    /// A cached Ingress or StatefulSet → a listed Service it names (declared by the referrer).
    Reference,
}

impl Origin {
    /// The value stored in the `origin` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Owner => "owner",
            Origin::Logical => "logical",
            Origin::Selector => "selector",
            Origin::Reference => "reference",
        }
    }
}

/// One link as stored in `outpost_links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkRow<'g> {
    pub declarer: &'g str,
    pub a: &'g str,
    pub b: &'g str,
    pub origin: Origin,
}

/// A link between interned keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    declarer: u32,
    a: u32,
    b: u32,
    origin: Origin,
}

/// Each key stored once, numbered in order of first appearance.
#[derive(Debug, Default)]
struct Keys {
    names: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

impl Keys {
    fn intern(&mut self, key: &str) -> u32 {
        if let Some(&number) = self.numbers.get(key) {
            return number;
        }
        let number = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(key);
        self.names.push(Arc::clone(&name));
        self.numbers.insert(name, number);
        number
    }

    fn number(&self, key: &str) -> Option<u32> {
        self.numbers.get(key).copied()
    }

    fn name(&self, number: u32) -> &str {
        &self.names[number as usize]
    }
}

/// Collects an account's objects one at a time; [`GraphBuilder::finish`] matches the partners.
#[derive(Debug)]
pub struct GraphBuilder {
    account: String,
    options: CacheOptions,
    keys: Keys,
    edges: Vec<Edge>,
    /// How many objects had each key (by key number; 0 for keys only linked to).
    objects: Vec<u8>,
    /// Listed ReplicaSets' template labels, by namespace.
    replica_sets: HashMap<String, Vec<(u32, Labels)>>,
    /// Cached Services' selectors, by namespace.
    selectors: HashMap<String, Vec<(u32, Labels)>>,
    /// Listed Services.
    services: HashSet<u32>,
    /// Cached Ingresses and StatefulSets with the Service keys they name.
    referrers: Vec<(u32, Vec<u32>)>,
    /// The database's longest cache id: a longer key is in no link (its object is not stored).
    max_id: Option<usize>,
}

impl GraphBuilder {
    /// An empty graph for `account`'s objects under `options`.
    pub fn new(account: &str, options: &CacheOptions) -> Self {
        Self {
            account: account.to_string(),
            options: options.clone(),
            keys: Keys::default(),
            edges: Vec::new(),
            objects: Vec::new(),
            replica_sets: HashMap::new(),
            selectors: HashMap::new(),
            services: HashSet::new(),
            referrers: Vec::new(),
            max_id: None,
        }
    }

    /// Leaves out of the graph every key longer than `max_id` (the database's longest cache id).
    pub fn max_id_length(mut self, max_id: Option<usize>) -> Self {
        self.max_id = max_id;
        self
    }

    fn too_long(&self, number: u32) -> bool {
        self.max_id
            .is_some_and(|limit| self.keys.name(number).len() > limit)
    }

    fn key(&mut self, key: &CacheKey) -> u32 {
        let number = self.keys.intern(&key.to_string());
        if self.objects.len() <= number as usize {
            self.objects.resize(number as usize + 1, 0);
        }
        number
    }

    fn link(&mut self, declarer: u32, a: u32, b: u32, origin: Origin) {
        if self.too_long(a) || self.too_long(b) {
            return;
        }
        self.edges.push(Edge {
            declarer,
            a,
            b,
            origin,
        });
    }

    /// Adds one object of the account.
    pub fn add(&mut self, resource: &Resource) {
        if !self.options.lists_kind(resource.kind()) {
            return;
        }
        let key = self.key(&resource.key(&self.account));
        if self.too_long(key) {
            return;
        }
        let seen = &mut self.objects[key as usize];
        *seen = seen.saturating_add(1);
        if let Some(labels) = resource.template_labels() {
            self.replica_sets
                .entry(resource.namespace().to_string())
                .or_default()
                .push((key, labels.clone()));
        }
        if resource.kind().as_str() == "service" {
            self.services.insert(key);
        }
        if !self.options.caches(resource) {
            return;
        }
        for owner in resource.owner_references() {
            let owner = self.key(&CacheKey::Infrastructure {
                kind: owner.kind.as_str().to_string(),
                account: self.account.clone(),
                namespace: resource.namespace().to_string(),
                name: owner.name.clone(),
            });
            self.link(key, key, owner, Origin::Owner);
        }
        let logical = resource.logical_links(&self.account, &self.options);
        let application = logical.application.as_ref().map(|k| self.key(k));
        let cluster = logical.cluster.as_ref().map(|k| self.key(k));
        for target in application.iter().chain(cluster.iter()) {
            self.link(key, key, *target, Origin::Logical);
        }
        if let (Some(application), Some(cluster)) = (application, cluster) {
            self.link(key, cluster, application, Origin::Logical);
        }
        if let Some(selector) = resource.selector() {
            self.selectors
                .entry(resource.namespace().to_string())
                .or_default()
                .push((key, selector.clone()));
        }
        let named: Vec<u32> = resource
            .service_reference_keys(&self.account)
            .iter()
            .map(|service| self.key(service))
            .collect();
        if !named.is_empty() {
            self.referrers.push((key, named));
        }
    }

    /// Matches the partners (selectors against template labels in each namespace, service
    /// references against the listed Services) and indexes every key's neighbours.
    pub fn finish(mut self) -> AccountGraph {
        let mut partners = Vec::new();
        let mut cut = Vec::new();
        for (namespace, services) in &self.selectors {
            let Some(replica_sets) = self.replica_sets.get(namespace) else {
                continue;
            };
            for (service, selector) in services {
                let mut matched: Vec<&str> = replica_sets
                    .iter()
                    .filter(|(_, labels)| selector_matches(selector, labels))
                    .map(|(replica_set, _)| self.keys.name(*replica_set))
                    .collect();
                matched.sort_unstable();
                matched.dedup();
                let bound = self.options.max_selector_links.0;
                if matched.len() > bound {
                    cut.push((*service, matched.len() - bound));
                }
                for replica_set in matched.into_iter().take(bound) {
                    if let Some(replica_set) = self.keys.number(replica_set) {
                        partners.push(Edge {
                            declarer: *service,
                            a: *service,
                            b: replica_set,
                            origin: Origin::Selector,
                        });
                    }
                }
            }
        }
        for (referrer, named) in &self.referrers {
            for service in named {
                if self.services.contains(service) {
                    partners.push(Edge {
                        declarer: *referrer,
                        a: *referrer,
                        b: *service,
                        origin: Origin::Reference,
                    });
                }
            }
        }
        self.edges.extend(partners);
        self.edges.sort_unstable();
        self.edges.dedup();
        let mut neighbours: Vec<Vec<u32>> = vec![Vec::new(); self.keys.names.len()];
        for edge in &self.edges {
            if edge.a != edge.b {
                neighbours[edge.a as usize].push(edge.b);
                neighbours[edge.b as usize].push(edge.a);
            }
        }
        for list in &mut neighbours {
            list.sort_unstable();
            list.dedup();
            list.shrink_to_fit();
        }
        AccountGraph {
            keys: self.keys,
            edges: self.edges,
            neighbours,
            objects: self.objects,
            cut,
        }
    }
}

/// An account's complete graph.
#[derive(Debug)]
pub struct AccountGraph {
    keys: Keys,
    edges: Vec<Edge>,
    neighbours: Vec<Vec<u32>>,
    objects: Vec<u8>,
    /// Services whose selector matched more ReplicaSets than the bound, with how many links
    /// were cut.
    cut: Vec<(u32, usize)>,
}

impl AccountGraph {
    /// Each Service whose selector links were cut to the bound, with how many were cut.
    pub fn cut_links(&self) -> impl Iterator<Item = (&str, usize)> {
        self.cut
            .iter()
            .map(|(service, count)| (self.keys.name(*service), *count))
    }

    /// Every link, once each, as `outpost_links` stores them.
    pub fn links(&self) -> impl ExactSizeIterator<Item = LinkRow<'_>> {
        self.edges.iter().map(|edge| LinkRow {
            declarer: self.keys.name(edge.declarer),
            a: self.keys.name(edge.a),
            b: self.keys.name(edge.b),
            origin: edge.origin,
        })
    }

    /// The keys `key`'s row lists (empty for a key the graph does not know).
    pub fn related(&self, key: &str) -> Vec<CacheKey> {
        self.keys
            .number(key)
            .map(|number| {
                self.neighbours[number as usize]
                    .iter()
                    .filter_map(|n| CacheKey::parse(self.keys.name(*n)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether more than one object of the account has `key` (e.g. one Ingress under two API
    /// versions): their row is built from one of them.
    pub fn is_shared(&self, key: &str) -> bool {
        self.keys
            .number(key)
            .is_some_and(|n| self.objects[n as usize] > 1)
    }

    /// The application and cluster keys some object links to (each gets a row), sorted.
    pub fn logical_keys(&self) -> Vec<CacheKey> {
        let mut keys: Vec<CacheKey> = self
            .keys
            .names
            .iter()
            .enumerate()
            .filter(|(n, _)| !self.neighbours[*n].is_empty())
            .filter_map(|(_, name)| CacheKey::parse(name))
            .filter(CacheKey::is_logical)
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::cache::relationships::account_links;

    const ACCOUNT: &str = "acct";

    fn graph_of(resources: &[Resource], options: &CacheOptions) -> AccountGraph {
        let mut builder = GraphBuilder::new(ACCOUNT, options);
        for resource in resources {
            builder.add(resource);
        }
        builder.finish()
    }

    /// Every key's neighbours, as `account_links` gives them.
    fn neighbour_map(graph: &AccountGraph) -> BTreeMap<String, BTreeSet<String>> {
        graph
            .keys
            .names
            .iter()
            .map(|name| {
                let related: BTreeSet<String> = graph
                    .related(name)
                    .iter()
                    .map(CacheKey::to_string)
                    .collect();
                (name.to_string(), related)
            })
            .filter(|(_, related)| !related.is_empty())
            .collect()
    }

    fn oracle(
        resources: &[Resource],
        options: &CacheOptions,
    ) -> BTreeMap<String, BTreeSet<String>> {
        account_links(ACCOUNT, resources, options)
            .into_iter()
            .map(|(key, related)| {
                let related: BTreeSet<String> = related
                    .iter()
                    .filter(|r| **r != key)
                    .map(CacheKey::to_string)
                    .collect();
                (key.to_string(), related)
            })
            .filter(|(_, related)| !related.is_empty())
            .collect()
    }

    fn parse(value: Value) -> Resource {
        Resource::parse(value).unwrap()
    }

    fn account() -> Vec<Resource> {
        let managed = |app: &str, cluster: &str| json!({"moniker.spinnaker.io/application": app, "moniker.spinnaker.io/cluster": cluster});
        vec![
            parse(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "prod", "annotations": managed("shop", "deployment web")}})),
            parse(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-1", "namespace": "prod", "annotations": managed("shop", "deployment web"),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]},
                "spec": {"template": {"metadata": {"labels": {"app": "web", "v": "1"}}}}})),
            parse(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1-a", "namespace": "prod",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1"}]}})),
            parse(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "prod"}, "spec": {"selector": {"app": "web"}}})),
            parse(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "other", "namespace": "dev"}, "spec": {"selector": {"app": "web"}}})),
            parse(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "prod"},
                "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                    "rules": [{"http": {"paths": [{"backend": {"service": {"name": "missing", "port": {"number": 80}}}}]}}]}}),
            ),
        ]
    }

    #[test]
    fn links_carry_their_declarer_and_origin() {
        let graph = graph_of(&account(), &CacheOptions::default());
        let links: BTreeSet<(String, String, String, &str)> = graph
            .links()
            .map(|l| {
                (
                    l.declarer.to_string(),
                    l.a.to_string(),
                    l.b.to_string(),
                    l.origin.as_str(),
                )
            })
            .collect();
        let infra = |kind: &str, name: &str| {
            format!("kubernetes.v2:infrastructure:{kind}:acct:prod:{name}")
        };
        let service = infra("service", "web");
        let replica_set = infra("replicaSet", "web-1");
        let ingress = infra("ingress", "web");
        assert!(links.contains(&(
            service.clone(),
            service.clone(),
            replica_set.clone(),
            "selector"
        )));
        assert!(links.contains(&(
            ingress.clone(),
            ingress.clone(),
            service.clone(),
            "reference"
        )));
        assert!(links.contains(&(
            infra("pod", "web-1-a"),
            infra("pod", "web-1-a"),
            replica_set.clone(),
            "owner"
        )));
        let cluster = "kubernetes.v2:logical:clusters:acct:shop:deployment web".to_string();
        let application = "kubernetes.v2:logical:applications:shop".to_string();
        assert!(links.contains(&(
            replica_set.clone(),
            cluster.clone(),
            application.clone(),
            "logical"
        )));
        // The service named by the ingress but absent links nothing; the dev service has no
        // replica set in its namespace (its only link is to its application, from its name).
        assert!(!links.iter().any(|l| l.2.contains("missing")));
        assert!(
            !links
                .iter()
                .any(|l| l.0.contains(":dev:") && l.3 != "logical")
        );
        let logical: Vec<String> = graph
            .logical_keys()
            .iter()
            .map(CacheKey::to_string)
            .collect();
        assert!(logical.contains(&application) && logical.contains(&cluster));
        assert!(logical.contains(&"kubernetes.v2:logical:applications:other".to_string()));
        assert!(
            logical
                .iter()
                .all(|k| k.starts_with("kubernetes.v2:logical:"))
        );
        assert_eq!(
            neighbour_map(&graph),
            oracle(&account(), &CacheOptions::default())
        );
        assert!(!graph.is_shared(&service));
    }

    #[test]
    fn one_key_for_two_objects_is_shared() {
        let mut resources = account();
        resources.push(parse(json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "prod"}, "spec": {"backend": {"serviceName": "web"}}})));
        let graph = graph_of(&resources, &CacheOptions::default());
        assert!(graph.is_shared("kubernetes.v2:infrastructure:ingress:acct:prod:web"));
        assert_eq!(
            neighbour_map(&graph),
            oracle(&resources, &CacheOptions::default())
        );
    }

    /// Manifests drawn from a small vocabulary, so that selectors, owners, services named by
    /// ingresses and monikers often meet.
    fn arbitrary_manifest() -> impl Strategy<Value = Value> {
        let name = prop::sample::select(vec!["a", "b", "c"]);
        let namespace = prop::sample::select(vec!["n1", "n2"]);
        let labels = prop::collection::btree_map(
            prop::sample::select(vec!["app", "tier"]),
            prop::sample::select(vec!["x", "y"]),
            0..3,
        );
        let kind = prop::sample::select(vec![
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "StatefulSet"),
            ("v1", "Pod"),
            ("v1", "Service"),
            ("networking.k8s.io/v1", "Ingress"),
            ("v1", "ConfigMap"),
        ]);
        let owner = prop::option::of((
            prop::sample::select(vec!["Deployment", "ReplicaSet"]),
            prop::sample::select(vec!["a", "b"]),
        ));
        let app = prop::option::of(prop::sample::select(vec!["shop", ""]));
        let ignored = prop::bool::weighted(0.1);
        (kind, name, namespace, labels.clone(), labels, owner, app, ignored).prop_map(
            |((api_version, kind), name, namespace, selector, template, owner, app, ignored)| {
                let mut annotations = serde_json::Map::new();
                if let Some(app) = app {
                    annotations.insert("moniker.spinnaker.io/application".into(), app.into());
                }
                if ignored {
                    annotations.insert("caching.spinnaker.io/ignore".into(), "true".into());
                }
                let mut metadata = json!({"name": name, "namespace": namespace, "annotations": annotations});
                if let Some((owner_kind, owner_name)) = owner {
                    metadata["ownerReferences"] =
                        json!([{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name}]);
                }
                let spec = match kind {
                    "Service" => json!({"selector": selector}),
                    "ReplicaSet" => json!({"template": {"metadata": {"labels": template}}}),
                    "StatefulSet" => json!({"serviceName": name}),
                    "Ingress" => json!({"defaultBackend": {"service": {"name": name}}}),
                    _ => json!({}),
                };
                json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec})
            },
        )
    }

    proptest! {
        /// The streaming graph is the reference builder's graph, for any account, in any order,
        /// with or without `onlySpinnakerManaged`.
        #[test]
        fn same_neighbours_as_the_reference_builder(
            manifests in prop::collection::vec(arbitrary_manifest(), 0..30),
            only_managed in any::<bool>(),
        ) {
            let resources: Vec<Resource> = manifests.into_iter().map(parse).collect();
            let options = CacheOptions { only_spinnaker_managed: only_managed, ..CacheOptions::default() };
            let graph = graph_of(&resources, &options);
            prop_assert_eq!(neighbour_map(&graph), oracle(&resources, &options));
            let mut reversed = resources.clone();
            reversed.reverse();
            prop_assert_eq!(neighbour_map(&graph_of(&reversed, &options)), oracle(&resources, &options));
            // Every link's declarer is one of its ends.
            for link in graph.links() {
                prop_assert!(link.declarer == link.a || link.origin == Origin::Logical);
            }
        }
    }
}
