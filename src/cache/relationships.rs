//! The relationship graph between cache rows that Clouddriver's `KubernetesCacheDataConverter`
//! and its handlers build, split into what one object determines alone and what needs partners.
//!
//! Every relationship is bidirectional: if row A lists key B, row B (when it exists) lists A.
//! The edges are:
//! - **owner references**: a cached object ↔ each owner, keyed with the owner's canonical kind
//!   and the *child's* namespace; the owner need not exist (its key is then dangling);
//! - **logical**: a cached object whose Spinnaker kind is a load balancer, security group, server
//!   group or server group manager (or any kind with `cache_all_application_relationships`) and
//!   whose moniker has a non-empty app ↔ its application row; server groups and their managers
//!   with a non-empty moniker cluster also ↔ their cluster row, and that application ↔ cluster;
//! - **service ↔ replicaSet**: a cached `v1` Service ↔ each *listed* `apps/v1` ReplicaSet in its
//!   namespace whose pod-template labels contain every pair of the service's selector. An empty
//!   selector matches nothing (`KubernetesServiceHandler.intersectLabels` returns an empty set);
//! - **ingress ↔ service** and **statefulSet ↔ service**: a cached Ingress or StatefulSet ↔ each
//!   *listed* Service of its namespace that its backends or `spec.serviceName` name.
//!
//! "Listed" means the kind is cached (see [`CacheOptions::lists_kind`]) even if the object itself
//! is ignored or unmanaged: Clouddriver computes partners before filtering, so a cached Service
//! lists an ignored ReplicaSet it selects, while an ignored Service links to nothing. Event ↔
//! involved-object links are not built: events are not among the kinds Outpost ships.
//!
//! **Incremental use.** When object X is added, changed or removed, the rows whose body may
//! change are exactly: X's own row (if X is cached before or after); every row X was linked to
//! before and every row it is linked to after, in both directions (children whose owner is X,
//! selector partners, services named by ingresses or stateful sets, and for a listed but uncached
//! X the rows that list its key); and the logical (application and cluster) rows among those
//! links, which may also gain or lose their own application ↔ cluster link. A logical row exists
//! only while at least one cached object links to it, so one that loses its last link is deleted.
//! An indexer finds X's links from [`Resource::direct_links`] and
//! [`Resource::service_reference_keys`] (checked against the listed services), plus queries in
//! X's namespace: owners' reverse links (cached objects whose owner references name X),
//! [`Resource::selector`] against listed ReplicaSets' [`Resource::template_labels`] (or the
//! reverse for a ReplicaSet) with [`selector_matches`], and cached ingresses or stateful sets
//! whose [`Resource::service_names`] contain X's name (for a Service). A logical row lists every
//! object linked to it, across the whole account, so it is rebuilt from those links.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::CacheKey;
use super::resource::{CacheOptions, Resource};

/// Whether a Service selector selects an object with `labels`: every selector pair is among the
/// labels. An empty selector selects nothing, as in Clouddriver.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// The logical keys a cached object links to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogicalLinks {
    /// The application row's key, if the object has one.
    pub application: Option<CacheKey>,
    /// The cluster row's key, if the object has one (then `application` is set too, and the
    /// application and cluster rows also link to each other).
    pub cluster: Option<CacheKey>,
}

impl Resource {
    /// The application and cluster keys this object links to when cached in `account`
    /// (`addLogicalRelationships`).
    pub fn logical_links(&self, account: &str, options: &CacheOptions) -> LogicalLinks {
        let spinnaker = options.spinnaker_kind(self.kind());
        if !(options.cache_all_application_relationships || spinnaker.has_logical_relationships()) {
            return LogicalLinks::default();
        }
        let moniker = self.moniker();
        let Some(app) = moniker.app.as_deref().filter(|app| !app.is_empty()) else {
            return LogicalLinks::default();
        };
        let cluster = moniker
            .cluster
            .as_deref()
            .filter(|cluster| spinnaker.has_cluster_relationships() && !cluster.is_empty())
            .map(|cluster| CacheKey::Cluster {
                account: account.to_string(),
                application: app.to_string(),
                name: cluster.to_string(),
            });
        LogicalLinks {
            application: Some(CacheKey::Application {
                name: app.to_string(),
            }),
            cluster,
        }
    }

    /// The keys a cached object links to by itself, whatever else exists: its owners (with the
    /// object's own namespace) and its application and cluster rows. Sorted, no duplicates.
    pub fn direct_links(&self, account: &str, options: &CacheOptions) -> Vec<CacheKey> {
        let mut links: BTreeSet<CacheKey> = self
            .owner_references()
            .iter()
            .map(|owner| CacheKey::Infrastructure {
                kind: owner.kind.as_str().to_string(),
                account: account.to_string(),
                namespace: self.namespace().to_string(),
                name: owner.name.clone(),
            })
            .collect();
        let logical = self.logical_links(account, options);
        links.extend(logical.application);
        links.extend(logical.cluster);
        links.into_iter().collect()
    }

    /// The Service keys an Ingress or StatefulSet would link to: a link holds only while that
    /// Service is listed (exists in the account and its kind is cached).
    pub fn service_reference_keys(&self, account: &str) -> Vec<CacheKey> {
        self.service_names()
            .iter()
            .map(|name| CacheKey::Infrastructure {
                kind: "service".to_string(),
                account: account.to_string(),
                namespace: self.namespace().to_string(),
                name: name.clone(),
            })
            .collect()
    }
}

/// Every relationship among the rows of an account, from scratch: for each key, the keys its row
/// lists (symmetric). Keys of objects that are not cached may appear (dangling links) but never
/// as the source of a link of their own.
pub fn account_links(
    account: &str,
    resources: &[Resource],
    options: &CacheOptions,
) -> BTreeMap<CacheKey, BTreeSet<CacheKey>> {
    let mut links: BTreeMap<CacheKey, BTreeSet<CacheKey>> = BTreeMap::new();
    let mut link = |a: &CacheKey, b: &CacheKey| {
        links.entry(a.clone()).or_default().insert(b.clone());
        links.entry(b.clone()).or_default().insert(a.clone());
    };
    let listed: Vec<&Resource> = resources
        .iter()
        .filter(|r| options.lists_kind(r.kind()))
        .collect();
    let mut replica_sets: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    let mut services: BTreeSet<CacheKey> = BTreeSet::new();
    for resource in &listed {
        if resource.template_labels().is_some() {
            replica_sets
                .entry(resource.namespace())
                .or_default()
                .push(resource);
        }
        if resource.kind().as_str() == "service" {
            services.insert(resource.key(account));
        }
    }

    for resource in listed.iter().filter(|r| options.caches(r)) {
        let key = resource.key(account);
        for target in resource.direct_links(account, options) {
            link(&key, &target);
        }
        let logical = resource.logical_links(account, options);
        if let (Some(application), Some(cluster)) = (&logical.application, &logical.cluster) {
            link(application, cluster);
        }
        if let Some(selector) = resource.selector() {
            let candidates = replica_sets.get(resource.namespace());
            let matched: BTreeSet<String> = candidates
                .into_iter()
                .flatten()
                .filter(|replica_set| {
                    replica_set
                        .template_labels()
                        .is_some_and(|labels| selector_matches(selector, labels))
                })
                .map(|replica_set| replica_set.key(account).to_string())
                .collect();
            for replica_set in matched.iter().take(options.max_selector_links.0) {
                if let Some(replica_set) = CacheKey::parse(replica_set) {
                    link(&key, &replica_set);
                }
            }
        }
        for service in resource.service_reference_keys(account) {
            if services.contains(&service) {
                link(&key, &service);
            }
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let pod_labels = labels(&[("app", "web"), ("tier", "front")]);
        assert!(selector_matches(&labels(&[("app", "web")]), &pod_labels));
        assert!(selector_matches(&pod_labels, &pod_labels));
        assert!(!selector_matches(&labels(&[("app", "db")]), &pod_labels));
        assert!(!selector_matches(
            &labels(&[("app", "web"), ("x", "y")]),
            &pod_labels
        ));
        assert!(!selector_matches(&BTreeMap::new(), &pod_labels));
        assert!(!selector_matches(&BTreeMap::new(), &BTreeMap::new()));
    }

    fn resource(value: serde_json::Value) -> Resource {
        Resource::parse(value).unwrap()
    }

    #[test]
    fn direct_and_logical_links() {
        let rs = resource(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-v003", "namespace": "prod",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]}}));
        let options = CacheOptions::default();
        let keys: Vec<String> = rs
            .direct_links("acct", &options)
            .iter()
            .map(CacheKey::to_string)
            .collect();
        assert_eq!(
            keys,
            [
                "kubernetes.v2:logical:applications:web",
                "kubernetes.v2:logical:clusters:acct:web:web",
                "kubernetes.v2:infrastructure:deployment:acct:prod:web",
            ]
        );
        // Services get an application link but no cluster link; pods get neither.
        let service = resource(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"}}));
        let links = service.logical_links("acct", &options);
        assert!(links.application.is_some() && links.cluster.is_none());
        let pod = resource(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-v003-abcde", "namespace": "prod"}}));
        assert_eq!(pod.logical_links("acct", &options), LogicalLinks::default());
        let all = CacheOptions {
            cache_all_application_relationships: true,
            ..CacheOptions::default()
        };
        let links = pod.logical_links("acct", &all);
        assert!(links.application.is_some() && links.cluster.is_none());
    }

    #[test]
    fn partners_must_be_listed_and_sources_cached() {
        let options = CacheOptions::default();
        let service = |name: &str, ignored: bool| {
            resource(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "prod",
                    "annotations": {"caching.spinnaker.io/ignore": ignored.to_string()}},
                "spec": {"selector": {"app": "web"}}}))
        };
        let rs = |ignored: bool| {
            resource(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-abc", "namespace": "prod",
                    "annotations": {"caching.spinnaker.io/ignore": ignored.to_string()}},
                "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}))
        };
        let rs_key = rs(false).key("a");
        // A cached service lists an ignored replica set it selects.
        let links = account_links("a", &[service("web", false), rs(true)], &options);
        assert!(links[&service("web", false).key("a")].contains(&rs_key));
        // An ignored service links to nothing.
        let links = account_links("a", &[service("web", true), rs(false)], &options);
        assert!(
            !links
                .get(&rs_key)
                .is_some_and(|l| l.contains(&service("web", true).key("a")))
        );
        // An ingress links only to services that exist.
        let ingress = resource(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "in", "namespace": "prod"},
            "spec": {"rules": [{"http": {"paths": [
                {"backend": {"service": {"name": "web"}}},
                {"backend": {"service": {"name": "missing"}}}]}}]}}),
        );
        let links = account_links("a", &[ingress.clone(), service("web", false)], &options);
        let linked: Vec<String> = links[&ingress.key("a")]
            .iter()
            .filter(|k| !k.is_logical())
            .map(CacheKey::to_string)
            .collect();
        assert_eq!(linked, ["kubernetes.v2:infrastructure:service:a:prod:web"]);
    }
}
