//! Kubernetes kinds as Clouddriver names them (`KubernetesKind`, `KubernetesApiGroup`,
//! `KubernetesApiVersion`) and the Spinnaker kind each one is shown as.

use std::fmt;
use std::str::FromStr;

/// Kinds Clouddriver registers, as (canonical spelling, alias). A manifest kind in a native group
/// that matches either case-insensitively takes the canonical spelling.
const REGISTERED_KINDS: &[(&str, Option<&str>)] = &[
    ("apiService", None),
    ("clusterRole", None),
    ("clusterRoleBinding", None),
    ("configMap", Some("cm")),
    ("controllerRevision", None),
    ("customResourceDefinition", Some("crd")),
    ("cronJob", None),
    ("csiDriver", None),
    ("csiNode", None),
    ("daemonSet", Some("ds")),
    ("deployment", Some("deploy")),
    ("event", None),
    ("horizontalpodautoscaler", Some("hpa")),
    ("ingress", None),
    ("job", None),
    ("limitRange", None),
    ("mutatingWebhookConfiguration", None),
    ("namespace", Some("ns")),
    ("networkPolicy", Some("netpol")),
    ("persistentVolume", Some("pv")),
    ("persistentVolumeClaim", Some("pvc")),
    ("pod", Some("po")),
    ("podPreset", None),
    ("podSecurityPolicy", None),
    ("podDisruptionBudget", None),
    ("replicaSet", Some("rs")),
    ("role", None),
    ("roleBinding", None),
    ("secret", None),
    ("service", Some("svc")),
    ("serviceAccount", Some("sa")),
    ("statefulSet", None),
    ("storageClass", Some("sc")),
    ("validatingWebhookConfiguration", None),
    ("none", None),
];

/// API groups Clouddriver treats as native: their kinds are named without a group suffix.
const NATIVE_GROUPS: &[&str] = &[
    "core",
    "batch",
    "apps",
    "extensions",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "autoscaling",
    "admissionregistration.k8s.io",
    "policy",
    "scheduling.k8s.io",
    "settings.k8s.io",
    "authorization.k8s.io",
    "authentication.k8s.io",
    "rbac.authorization.k8s.io",
    "certificates.k8s.io",
    "networking.k8s.io",
    "",
];

/// A kind as Clouddriver spells it in cache keys, table types and the `kind` attribute:
/// `replicaSet`, `Endpoints`, `Rollout.argoproj.io`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesKind(String);

impl KubernetesKind {
    /// The canonical kind of a manifest with this `apiVersion` and `kind` (`KubernetesManifest.
    /// computeKind`): the group is the lowercased part of `apiVersion` before its first `/`.
    pub fn from_manifest(api_version: &str, kind: &str) -> KubernetesKind {
        KubernetesKind::from_group(kind, &api_group(api_version))
    }

    /// The canonical kind of `kind` in API group `group` (`KubernetesKind.from`): registered
    /// names and aliases in native groups match case-insensitively and take the canonical
    /// spelling, other native kinds keep their spelling, non-native ones become `kind.group`, and
    /// an empty kind is `none`.
    pub fn from_group(kind: &str, group: &str) -> KubernetesKind {
        if kind.is_empty() {
            return KubernetesKind("none".to_string());
        }
        let group = group.to_lowercase();
        if !NATIVE_GROUPS.contains(&group.as_str()) {
            return KubernetesKind(format!("{kind}.{group}"));
        }
        let lower = kind.to_lowercase();
        let registered = REGISTERED_KINDS.iter().find(|(name, alias)| {
            name.to_lowercase() == lower || alias.is_some_and(|alias| alias == lower)
        });
        match registered {
            Some((name, _)) => KubernetesKind((*name).to_string()),
            None => KubernetesKind(kind.to_string()),
        }
    }

    /// Parses a qualified kind as written in configuration (`KubernetesKind.fromString`):
    /// `replicaSet`, `ReplicaSet`, `rs` or `Rollout.argoproj.io`; the group follows the first dot.
    pub fn from_qualified(qualified: &str) -> KubernetesKind {
        match qualified.split_once('.') {
            Some((kind, group)) => KubernetesKind::from_group(kind, group),
            None => KubernetesKind::from_group(qualified, ""),
        }
    }

    /// The kind's string: the cache type, the key segment and the `kind` attribute.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of the kinds Clouddriver registers (its core caching agent's kinds);
    /// `none` is not.
    pub fn is_registered(&self) -> bool {
        self.0 != "none" && REGISTERED_KINDS.iter().any(|(name, _)| *name == self.0)
    }

    /// Whether the kind belongs to a non-native API group (`Kind.group`), as custom resources do.
    pub fn is_custom(&self) -> bool {
        self.0.contains('.')
    }

    /// The Spinnaker kind Clouddriver's handlers give this kind (`spinnakerKind()`); every kind
    /// without a handler of its own, custom resources included, is `Unclassified`.
    pub fn spinnaker_kind(&self) -> SpinnakerKind {
        match self.0.as_str() {
            "deployment" => SpinnakerKind::ServerGroupManagers,
            "replicaSet" | "statefulSet" | "daemonSet" | "job" | "cronJob" => {
                SpinnakerKind::ServerGroups
            }
            "pod" => SpinnakerKind::Instances,
            "service" | "ingress" => SpinnakerKind::LoadBalancers,
            "networkPolicy" => SpinnakerKind::SecurityGroups,
            "configMap" | "secret" | "persistentVolume" | "persistentVolumeClaim" => {
                SpinnakerKind::Configs
            }
            _ => SpinnakerKind::Unclassified,
        }
    }
}

impl fmt::Display for KubernetesKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The API group of an `apiVersion`, lowercased: `apps` for `apps/v1`, `""` for `v1`
/// (`KubernetesApiVersion.parseApiGroup`: only a `/` after the first character counts).
pub fn api_group(api_version: &str) -> String {
    let lower = api_version.to_lowercase();
    match lower.find('/') {
        Some(index) if index > 0 => lower[..index].to_string(),
        _ => String::new(),
    }
}

/// The `apiVersion` attribute Clouddriver stores: the manifest's `apiVersion`, lowercased.
pub fn api_version_attribute(api_version: &str) -> String {
    api_version.to_lowercase()
}

/// How Spinnaker's UI classifies a kind (`SpinnakerKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpinnakerKind {
    /// `serverGroupManagers`: deployments.
    ServerGroupManagers,
    /// `serverGroups`: replica sets, stateful sets, daemon sets, jobs, cron jobs.
    ServerGroups,
    /// `instances`: pods.
    Instances,
    /// `loadBalancers`: services, ingresses.
    LoadBalancers,
    /// `securityGroups`: network policies.
    SecurityGroups,
    /// `configs`: config maps, secrets, persistent volumes and claims.
    Configs,
    /// `unclassified`: everything else.
    Unclassified,
}

impl SpinnakerKind {
    /// The identifier Clouddriver uses in configuration (`customResources[].spinnakerKind`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpinnakerKind::ServerGroupManagers => "serverGroupManagers",
            SpinnakerKind::ServerGroups => "serverGroups",
            SpinnakerKind::Instances => "instances",
            SpinnakerKind::LoadBalancers => "loadBalancers",
            SpinnakerKind::SecurityGroups => "securityGroups",
            SpinnakerKind::Configs => "configs",
            SpinnakerKind::Unclassified => "unclassified",
        }
    }

    /// Whether resources of this kind are linked to their application (and maybe cluster) rows.
    pub fn has_logical_relationships(self) -> bool {
        matches!(
            self,
            SpinnakerKind::LoadBalancers
                | SpinnakerKind::SecurityGroups
                | SpinnakerKind::ServerGroups
                | SpinnakerKind::ServerGroupManagers
        )
    }

    /// Whether resources of this kind are linked to their cluster row.
    pub fn has_cluster_relationships(self) -> bool {
        matches!(
            self,
            SpinnakerKind::ServerGroups | SpinnakerKind::ServerGroupManagers
        )
    }

    /// Whether Clouddriver caches this kind by default (`SPINNAKER_UI_KINDS`).
    pub fn is_cached_by_default(self) -> bool {
        !matches!(self, SpinnakerKind::Configs | SpinnakerKind::Unclassified)
    }
}

impl FromStr for SpinnakerKind {
    type Err = std::convert::Infallible;

    /// Case-insensitive, and like Clouddriver's `fromString` an unknown name is `Unclassified`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            SpinnakerKind::ServerGroupManagers,
            SpinnakerKind::ServerGroups,
            SpinnakerKind::Instances,
            SpinnakerKind::LoadBalancers,
            SpinnakerKind::SecurityGroups,
            SpinnakerKind::Configs,
        ];
        Ok(all
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s))
            .unwrap_or(SpinnakerKind::Unclassified))
    }
}

impl fmt::Display for SpinnakerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(api_version: &str, kind: &str) -> String {
        KubernetesKind::from_manifest(api_version, kind)
            .as_str()
            .to_string()
    }

    #[test]
    fn registered_kinds_take_their_canonical_spelling() {
        assert_eq!(kind("apps/v1", "ReplicaSet"), "replicaSet");
        assert_eq!(kind("extensions/v1beta1", "ReplicaSet"), "replicaSet");
        assert_eq!(kind("apps/v1", "Deployment"), "deployment");
        assert_eq!(kind("v1", "Pod"), "pod");
        assert_eq!(kind("v1", "Service"), "service");
        assert_eq!(kind("networking.k8s.io/v1", "Ingress"), "ingress");
        assert_eq!(
            kind("networking.k8s.io/v1", "NetworkPolicy"),
            "networkPolicy"
        );
        assert_eq!(kind("batch/v1", "CronJob"), "cronJob");
        assert_eq!(
            kind("autoscaling/v2", "HorizontalPodAutoscaler"),
            "horizontalpodautoscaler"
        );
        assert_eq!(kind("v1", "ConfigMap"), "configMap");
        assert_eq!(
            kind("rbac.authorization.k8s.io/v1", "ClusterRole"),
            "clusterRole"
        );
        // Aliases match too, and the group of a native kind does not matter.
        assert_eq!(kind("v1", "svc"), "service");
        assert_eq!(kind("apps/v1", "Pod"), "pod");
        assert_eq!(kind("v1", ""), "none");
        assert!(KubernetesKind::from_manifest("v1", "Pod").is_registered());
        assert!(!KubernetesKind::from_manifest("v1", "Endpoints").is_registered());
        assert!(!KubernetesKind::from_manifest("v1", "").is_registered());
        assert!(KubernetesKind::from_manifest("argoproj.io/v1alpha1", "Rollout").is_custom());
    }

    #[test]
    fn unregistered_and_custom_kinds() {
        assert_eq!(kind("v1", "Endpoints"), "Endpoints");
        assert_eq!(
            kind("scheduling.k8s.io/v1", "PriorityClass"),
            "PriorityClass"
        );
        assert_eq!(
            kind("argoproj.io/v1alpha1", "Rollout"),
            "Rollout.argoproj.io"
        );
        assert_eq!(
            kind("ArgoProj.IO/v1alpha1", "Rollout"),
            "Rollout.argoproj.io"
        );
        assert_eq!(
            kind("coordination.k8s.io/v1", "Lease"),
            "Lease.coordination.k8s.io"
        );
        assert_eq!(
            kind("discovery.k8s.io/v1", "EndpointSlice"),
            "EndpointSlice.discovery.k8s.io"
        );
        // A custom group's kind never matches a registered one.
        assert_eq!(kind("example.com/v1", "Service"), "Service.example.com");
    }

    #[test]
    fn api_versions() {
        assert_eq!(api_group("apps/v1"), "apps");
        assert_eq!(api_group("v1"), "");
        assert_eq!(api_group("/v1"), "");
        assert_eq!(api_group("Networking.K8s.io/V1"), "networking.k8s.io");
        assert_eq!(api_version_attribute("Apps/V1"), "apps/v1");
    }

    #[test]
    fn qualified_kinds() {
        assert_eq!(
            KubernetesKind::from_qualified("ReplicaSet").as_str(),
            "replicaSet"
        );
        assert_eq!(
            KubernetesKind::from_qualified("Rollout.argoproj.io").as_str(),
            "Rollout.argoproj.io"
        );
    }

    #[test]
    fn spinnaker_kinds() {
        let of = |api: &str, k: &str| KubernetesKind::from_manifest(api, k).spinnaker_kind();
        assert_eq!(
            of("apps/v1", "Deployment"),
            SpinnakerKind::ServerGroupManagers
        );
        assert_eq!(of("apps/v1", "ReplicaSet"), SpinnakerKind::ServerGroups);
        assert_eq!(of("batch/v1", "CronJob"), SpinnakerKind::ServerGroups);
        assert_eq!(of("v1", "Pod"), SpinnakerKind::Instances);
        assert_eq!(of("v1", "Service"), SpinnakerKind::LoadBalancers);
        assert_eq!(
            of("networking.k8s.io/v1", "NetworkPolicy"),
            SpinnakerKind::SecurityGroups
        );
        assert_eq!(of("v1", "Secret"), SpinnakerKind::Configs);
        assert_eq!(
            of("argoproj.io/v1alpha1", "Rollout"),
            SpinnakerKind::Unclassified
        );
        assert!(SpinnakerKind::LoadBalancers.has_logical_relationships());
        assert!(!SpinnakerKind::LoadBalancers.has_cluster_relationships());
        assert!(!SpinnakerKind::Instances.has_logical_relationships());
        assert!(SpinnakerKind::Instances.is_cached_by_default());
        assert!(!SpinnakerKind::Configs.is_cached_by_default());
        assert_eq!("SERVERGROUPS".parse(), Ok(SpinnakerKind::ServerGroups));
        assert_eq!("whatever".parse(), Ok(SpinnakerKind::Unclassified));
    }
}
