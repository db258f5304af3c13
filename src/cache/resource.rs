//! A parsed view of one Kubernetes manifest with what caching needs, and the rules (from
//! Clouddriver's `KubernetesCachingAgent`) that decide whether it is cached at all.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::Error;
use super::keys::CacheKey;
use super::kinds::{KubernetesKind, SpinnakerKind, api_version_attribute};
use super::moniker::{APPLICATION_ANNOTATION, Moniker, annotation_boolean, annotation_string};

/// `caching.spinnaker.io/ignore`: an object whose value reads as true is not cached.
pub const IGNORE_ANNOTATION: &str = "caching.spinnaker.io/ignore";

/// Which kinds of an account get rows (Clouddriver's `kubernetes.cache.*` kind settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KindFilter {
    /// Clouddriver's default: the kinds shown in Spinnaker's infrastructure screens (server group
    /// managers, server groups, instances, load balancers, security groups), counting custom
    /// mappings.
    #[default]
    Default,
    /// `cacheAll`: every registered kind and every custom-resource (`Kind.group`) kind. Native
    /// kinds Clouddriver does not register (e.g. `Endpoints`) have no caching agent and are never
    /// cached.
    All,
    /// `cacheKinds`: only these kinds, matched case-insensitively against the kind string
    /// (`replicaSet`, `Rollout.argoproj.io`).
    Only(BTreeSet<String>),
}

/// Account and provider settings that change which rows exist and what they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOptions {
    /// Which kinds are cached.
    pub kinds: KindFilter,
    /// `onlySpinnakerManaged`: skip objects without a `moniker.spinnaker.io/application`.
    pub only_spinnaker_managed: bool,
    /// `cacheAllApplicationRelationships`: link every kind, not only load balancers, security
    /// groups, server groups and their managers, to its application.
    pub cache_all_application_relationships: bool,
    /// `customResources[].spinnakerKind`: Spinnaker kinds for custom kinds, keyed by kind string
    /// and matched case-insensitively.
    pub spinnaker_kinds: BTreeMap<String, SpinnakerKind>,
    /// The most ReplicaSets one Service's selector links (see [`SelectorBound`]).
    pub max_selector_links: SelectorBound,
}

/// The default of [`SelectorBound`]: far above what a real Service selects, far below the
/// quadratic fan-out of many Services sharing one label with many ReplicaSets.
pub const DEFAULT_MAX_SELECTOR_LINKS: usize = 500;

/// The most selector links (Service → ReplicaSet) one Service keeps: the ReplicaSets it matches
/// sorted by cache key, the first ones kept (so every path to the same state keeps the same
/// links). Without it S Services and R ReplicaSets sharing one label cost S × R links and rows
/// listing thousands of keys; with it the cost grows with the account's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorBound(pub usize);

impl Default for SelectorBound {
    fn default() -> Self {
        Self(DEFAULT_MAX_SELECTOR_LINKS)
    }
}

impl CacheOptions {
    /// The Spinnaker kind of `kind`: a custom mapping if one matches, else Clouddriver's own.
    pub fn spinnaker_kind(&self, kind: &KubernetesKind) -> SpinnakerKind {
        self.spinnaker_kinds
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(kind.as_str()))
            .map_or_else(|| kind.spinnaker_kind(), |(_, spinnaker)| *spinnaker)
    }

    /// Whether objects of `kind` are listed at all: only listed objects are cached, and only
    /// listed objects can be found as selector or service-name partners.
    pub fn lists_kind(&self, kind: &KubernetesKind) -> bool {
        let agent_exists = kind.is_registered() || kind.is_custom();
        agent_exists
            && match &self.kinds {
                KindFilter::Default => self.spinnaker_kind(kind).is_cached_by_default(),
                KindFilter::All => true,
                KindFilter::Only(kinds) => kinds.iter().any(|k| {
                    KubernetesKind::from_qualified(k)
                        .as_str()
                        .eq_ignore_ascii_case(kind.as_str())
                }),
            }
    }

    /// Whether `resource` gets a row: its kind is listed, it is not ignored, and (with
    /// `only_spinnaker_managed`) it names an application.
    pub fn caches(&self, resource: &Resource) -> bool {
        self.lists_kind(resource.kind())
            && !resource.is_ignored()
            && (!self.only_spinnaker_managed || resource.is_spinnaker_managed())
    }
}

/// One entry of `metadata.ownerReferences`, reduced to what the owner's cache key needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerReference {
    /// The owner's kind, canonicalized from the reference's `apiVersion` and `kind`.
    pub kind: KubernetesKind,
    /// The owner's name (empty if the reference has none).
    pub name: String,
}

/// A Kubernetes object as the cache sees it: identity, moniker, the stored manifest, and the
/// fields relationships are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    kind: KubernetesKind,
    api_version: String,
    name: String,
    namespace: String,
    generate_name: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner_references: Vec<OwnerReference>,
    moniker: Moniker,
    selector: Option<BTreeMap<String, String>>,
    template_labels: Option<BTreeMap<String, String>>,
    service_names: Vec<String>,
    manifest: Value,
}

impl Resource {
    /// Parses a manifest as the agent ships it (an object with `apiVersion`, `kind` and
    /// `metadata.name`), like Clouddriver reading `kubectl get -o json` output. The stored
    /// manifest is the input with a Secret's top-level `data` removed
    /// (`removeSensitiveKeys`) and `metadata.annotations: {}` added when missing (Clouddriver's
    /// `getAnnotations()` inserts it while reading the moniker). Annotation and label values that
    /// are not strings are ignored [inferred: Clouddriver's unchecked casts would fail later].
    pub fn parse(manifest: Value) -> Result<Resource, Error> {
        let Value::Object(mut object) = manifest else {
            return Err(parse_error("?", "the manifest is not a JSON object"));
        };
        let text = |object: &Map<String, Value>, field: &str| {
            object
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let kind_name = text(&object, "kind");
        let api_version = text(&object, "apiVersion");
        let identity = {
            let metadata = object.get("metadata");
            let field = |f: &str| metadata.and_then(|m| m.get(f)).and_then(Value::as_str);
            format!(
                "{} {}/{}",
                kind_name.as_deref().unwrap_or("?"),
                field("namespace").unwrap_or(""),
                field("name").unwrap_or("?")
            )
        };
        let (Some(kind_name), Some(api_version)) = (kind_name, api_version) else {
            return Err(parse_error(
                &identity,
                "apiVersion and kind must be strings",
            ));
        };
        let kind = KubernetesKind::from_manifest(&api_version, &kind_name);
        if kind.as_str() == "secret" {
            object.remove("data");
        }

        let Some(Value::Object(metadata)) = object.get_mut("metadata") else {
            return Err(parse_error(&identity, "metadata must be an object"));
        };
        let Some(name) = text(metadata, "name") else {
            return Err(parse_error(&identity, "metadata.name must be a string"));
        };
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(namespace)) => namespace.clone(),
            Some(_) => {
                return Err(parse_error(
                    &identity,
                    "metadata.namespace must be a string",
                ));
            }
        };
        let generate_name = text(metadata, "generateName");
        let labels = string_map(metadata.get("labels"));
        if metadata.get("annotations").is_none_or(Value::is_null) {
            metadata.insert("annotations".to_string(), Value::Object(Map::new()));
        }
        let annotations = string_map(metadata.get("annotations"));
        let owner_references = owner_references(metadata.get("ownerReferences"))
            .map_err(|reason| parse_error(&identity, &reason))?;

        let manifest = Value::Object(object);
        let moniker = Moniker::derive(Some(&name), &annotations, kind.as_str() == "replicaSet");
        let api = api_version_attribute(&api_version);
        let selector = (kind.as_str() == "service" && api == "v1")
            .then(|| string_map(pointer(&manifest, &["spec", "selector"])));
        let template_labels = (kind.as_str() == "replicaSet" && api == "apps/v1")
            .then(|| pointer(&manifest, &["spec", "template", "metadata", "labels"]))
            .flatten()
            .filter(|labels| labels.is_object())
            .map(|labels| string_map(Some(labels)));
        let service_names = match kind.as_str() {
            "ingress" => ingress_service_names(&api, &manifest),
            "statefulSet" => pointer(&manifest, &["spec", "serviceName"])
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
                .map(|name| vec![name.to_string()])
                .unwrap_or_default(),
            _ => Vec::new(),
        };

        Ok(Resource {
            kind,
            api_version,
            name,
            namespace,
            generate_name,
            labels,
            annotations,
            owner_references,
            moniker,
            selector,
            template_labels,
            service_names,
            manifest,
        })
    }

    /// The canonical kind.
    pub fn kind(&self) -> &KubernetesKind {
        &self.kind
    }

    /// The manifest's `apiVersion` as written (the attribute stores it lowercased).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.namespace`, empty for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `metadata.generateName`, if any.
    pub fn generate_name(&self) -> Option<&str> {
        self.generate_name.as_deref()
    }

    /// `metadata.labels` (string values only).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// `metadata.annotations` (string values only).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// `metadata.ownerReferences`, with canonical owner kinds.
    pub fn owner_references(&self) -> &[OwnerReference] {
        &self.owner_references
    }

    /// The moniker Clouddriver derives for this object.
    pub fn moniker(&self) -> &Moniker {
        &self.moniker
    }

    /// The manifest as stored in the `manifest` attribute.
    pub fn manifest(&self) -> &Value {
        &self.manifest
    }

    /// Takes the stored manifest out, leaving `null` (for building a row without a copy).
    pub fn take_manifest(&mut self) -> Value {
        std::mem::take(&mut self.manifest)
    }

    /// The object's cache key in `account`.
    pub fn key(&self, account: &str) -> CacheKey {
        CacheKey::Infrastructure {
            kind: self.kind.as_str().to_string(),
            account: account.to_string(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Whether `caching.spinnaker.io/ignore` reads as true (JSON `true`, a non-zero integer, or
    /// the string `"true"`; see `annotation_boolean`).
    pub fn is_ignored(&self) -> bool {
        self.annotations
            .get(IGNORE_ANNOTATION)
            .and_then(|value| annotation_boolean(value))
            == Some(true)
    }

    /// Whether the object names a non-empty `moniker.spinnaker.io/application`; an unreadable
    /// value counts as none [inferred: Clouddriver would fail on it].
    pub fn is_spinnaker_managed(&self) -> bool {
        self.annotations
            .get(APPLICATION_ANNOTATION)
            .and_then(|value| annotation_string(value))
            .is_some_and(|app| !app.is_empty())
    }

    /// A `v1` Service's `spec.selector` (empty if it has none); `None` for every other object,
    /// services of other API versions included (Clouddriver rejects those).
    pub fn selector(&self) -> Option<&BTreeMap<String, String>> {
        self.selector.as_ref()
    }

    /// An `apps/v1` ReplicaSet's `spec.template.metadata.labels`; `None` for every other object
    /// or when the template has no labels.
    pub fn template_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.template_labels.as_ref()
    }

    /// Names of the Services (in this object's namespace) an Ingress's backends or a
    /// StatefulSet's `spec.serviceName` refer to, sorted and without duplicates.
    pub fn service_names(&self) -> &[String] {
        &self.service_names
    }
}

/// The manifest in `json` with only the fields [`Resource::parse`] derives anything from:
/// `apiVersion`, `kind`, the identity, labels, annotations and owners in `metadata`, and in
/// `spec` the selector, `serviceName`, the Ingress backends and the template's labels.
/// Everything else (a Pod's containers, every `status`, a ConfigMap's data) is skipped while
/// parsing, never allocated: `Resource::parse(manifest_outline(json)?)` derives exactly what
/// `Resource::parse` of the whole manifest does (a property test checks it), at a fraction of
/// the cost, for the indexer's work that needs keys and relationships but not the body.
pub fn manifest_outline(json: &str) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = Outline(Part::Manifest).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Where [`Outline`] is in a manifest, which decides the fields it keeps.
#[derive(Debug, Clone, Copy)]
enum Part {
    Manifest,
    Metadata,
    Spec,
    Template,
    TemplateMetadata,
}

impl Part {
    /// What to do with `field` of an object at this part.
    fn field(self, field: &str) -> Option<Option<Part>> {
        const WHOLE: Option<Option<Part>> = Some(None);
        match (self, field) {
            (Part::Manifest, "apiVersion" | "kind") => WHOLE,
            (Part::Manifest, "metadata") => Some(Some(Part::Metadata)),
            (Part::Manifest, "spec") => Some(Some(Part::Spec)),
            (
                Part::Metadata,
                "name" | "namespace" | "generateName" | "labels" | "annotations"
                | "ownerReferences",
            ) => WHOLE,
            (Part::Spec, "selector" | "serviceName" | "backend" | "defaultBackend" | "rules") => {
                WHOLE
            }
            (Part::Spec, "template") => Some(Some(Part::Template)),
            (Part::Template, "metadata") => Some(Some(Part::TemplateMetadata)),
            (Part::TemplateMetadata, "labels") => WHOLE,
            _ => None,
        }
    }
}

/// Deserializes the value at one [`Part`] of a manifest: an object keeps the part's fields
/// (whole, or outlined in turn) and skips the rest; any other value is kept as it is.
struct Outline(Part);

impl<'de> serde::de::DeserializeSeed<'de> for Outline {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Outline {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.field(&field) {
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Some(None) => {
                    let value = map.next_value::<Value>()?;
                    object.insert(field.into_owned(), value);
                }
                Some(Some(part)) => {
                    let value = map.next_value_seed(Outline(part))?;
                    object.insert(field.into_owned(), value);
                }
            }
        }
        Ok(Value::Object(object))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

fn parse_error(object: &str, reason: &str) -> Error {
    Error::ParseManifest {
        object: object.to_string(),
        reason: reason.to_string(),
    }
}

/// The value at `path` (object fields only), if every step exists.
fn pointer<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, field| value.get(field))
}

/// The string entries of a JSON object; anything else gives an empty map.
fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|object| {
            object
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.ownerReferences` as Clouddriver converts it: a missing or null list is empty; the
/// kind comes from each reference's `apiVersion` (none means the core group) and `kind` (none
/// means `none`); a missing name is empty.
fn owner_references(value: Option<&Value>) -> Result<Vec<OwnerReference>, String> {
    let references = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(references)) => references,
        Some(_) => return Err("metadata.ownerReferences must be a list".to_string()),
    };
    references
        .iter()
        .map(|reference| {
            let field = |name: &str| match reference.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.as_str())),
                Some(_) => Err(format!("ownerReferences[].{name} must be a string")),
            };
            if !reference.is_object() {
                return Err("ownerReferences entries must be objects".to_string());
            }
            let api_version = field("apiVersion")?.unwrap_or("");
            Ok(OwnerReference {
                kind: KubernetesKind::from_manifest(api_version, field("kind")?.unwrap_or("")),
                name: field("name")?.unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The backend service names of an Ingress, as `KubernetesIngressHandler.attachedServices` finds
/// them: `spec.backend` / `defaultBackend` plus every `rules[].http.paths[].backend`, using
/// `serviceName` in `extensions/v1beta1` and `networking.k8s.io/v1beta1` and `service.name` in
/// `networking.k8s.io/v1`. Where Clouddriver would hit a null (no `spec`, a `v1` backend without
/// `service`) or an unsupported version, the whole Ingress has no services, as there; a missing
/// `paths` list counts as empty [inferred from the Kubernetes Java models].
fn ingress_service_names(api: &str, manifest: &Value) -> Vec<String> {
    let v1 = match api {
        "networking.k8s.io/v1" => true,
        "extensions/v1beta1" | "networking.k8s.io/v1beta1" => false,
        _ => return Vec::new(),
    };
    let Some(spec) = manifest.get("spec").filter(|spec| spec.is_object()) else {
        return Vec::new();
    };
    let mut backends: Vec<&Value> = Vec::new();
    let default_backend = spec.get(if v1 { "defaultBackend" } else { "backend" });
    backends.extend(default_backend.filter(|b| !b.is_null()));
    let rules = spec.get("rules").and_then(Value::as_array);
    for rule in rules.into_iter().flatten() {
        let paths = rule
            .get("http")
            .filter(|http| !http.is_null())
            .and_then(|http| http.get("paths"))
            .and_then(Value::as_array);
        for path in paths.into_iter().flatten() {
            backends.extend(path.get("backend").filter(|b| !b.is_null()));
        }
    }
    let mut names = BTreeSet::new();
    for backend in backends {
        let name = if v1 {
            match backend.get("service").filter(|s| !s.is_null()) {
                Some(service) => service.get("name"),
                None => return Vec::new(),
            }
        } else {
            backend.get("serviceName")
        };
        if let Some(name) = name.and_then(Value::as_str) {
            names.insert(name.to_string());
        }
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(value: Value) -> Resource {
        Resource::parse(value).unwrap()
    }

    #[test]
    fn parses_identity_and_adds_empty_annotations() {
        let pod = parse(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "prod",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc"}]},
        }));
        assert_eq!(pod.kind().as_str(), "pod");
        assert_eq!(pod.namespace(), "prod");
        assert_eq!(pod.manifest()["metadata"]["annotations"], json!({}));
        assert_eq!(
            pod.owner_references(),
            [OwnerReference {
                kind: KubernetesKind::from_manifest("apps/v1", "ReplicaSet"),
                name: "web-abc".to_string()
            }]
        );
        assert_eq!(
            pod.key("acct").to_string(),
            "kubernetes.v2:infrastructure:pod:acct:prod:web-1"
        );
    }

    #[test]
    fn rejects_malformed_manifests() {
        for bad in [
            json!([]),
            json!({"kind": "Pod", "metadata": {"name": "x"}}),
            json!({"apiVersion": "v1", "kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "ownerReferences": {}}}),
        ] {
            assert!(matches!(
                Resource::parse(bad),
                Err(Error::ParseManifest { .. })
            ));
        }
    }

    #[test]
    fn secret_data_is_removed() {
        let secret = parse(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "creds", "namespace": "prod"},
            "data": {"password": "aHVudGVyMg=="}, "stringData": {"a": "b"},
        }));
        assert_eq!(secret.manifest().get("data"), None);
        assert_eq!(secret.manifest()["stringData"], json!({"a": "b"}));
        // Only Secrets lose `data`.
        let config = parse(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"k": "v"}}));
        assert_eq!(config.manifest()["data"], json!({"k": "v"}));
    }

    #[test]
    fn inclusion_rules() {
        let with = |annotations: Value| {
            parse(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "annotations": annotations}}))
        };
        let default = CacheOptions::default();
        assert!(default.caches(&with(json!({}))));
        assert!(!default.caches(&with(json!({IGNORE_ANNOTATION: "true"}))));
        assert!(default.caches(&with(json!({IGNORE_ANNOTATION: "false"}))));
        let managed = CacheOptions {
            only_spinnaker_managed: true,
            ..CacheOptions::default()
        };
        assert!(!managed.caches(&with(json!({}))));
        assert!(!managed.caches(&with(json!({APPLICATION_ANNOTATION: "\"\""}))));
        assert!(managed.caches(&with(json!({APPLICATION_ANNOTATION: "shop"}))));

        let kind = |api: &str, kind: &str| KubernetesKind::from_manifest(api, kind);
        assert!(default.lists_kind(&kind("v1", "Pod")));
        assert!(!default.lists_kind(&kind("v1", "Secret")));
        assert!(!default.lists_kind(&kind("argoproj.io/v1alpha1", "Rollout")));
        let mapped = CacheOptions {
            spinnaker_kinds: [(
                "rollout.ARGOPROJ.io".to_string(),
                SpinnakerKind::ServerGroups,
            )]
            .into(),
            ..CacheOptions::default()
        };
        assert!(mapped.lists_kind(&kind("argoproj.io/v1alpha1", "Rollout")));
        let all = CacheOptions {
            kinds: KindFilter::All,
            ..CacheOptions::default()
        };
        assert!(all.lists_kind(&kind("v1", "Secret")));
        assert!(all.lists_kind(&kind("argoproj.io/v1alpha1", "Rollout")));
        assert!(!all.lists_kind(&kind("v1", "Endpoints")));
        let only = CacheOptions {
            kinds: KindFilter::Only(["ReplicaSet".to_string()].into()),
            ..CacheOptions::default()
        };
        assert!(only.lists_kind(&kind("apps/v1", "ReplicaSet")));
        assert!(!only.lists_kind(&kind("v1", "Pod")));
    }

    #[test]
    fn service_selector_and_replica_set_labels() {
        let service = parse(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}));
        assert_eq!(
            service.selector(),
            Some(&[("app".into(), "web".into())].into())
        );
        let bare = parse(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
            "spec": {"type": "ExternalName"}}),
        );
        assert_eq!(bare.selector(), Some(&BTreeMap::new()));
        let rs = parse(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "labels": {"x": "y"}},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}}}}));
        assert_eq!(rs.template_labels().map(BTreeMap::len), Some(2));
        assert_eq!(rs.labels().get("x").map(String::as_str), Some("y"));
        assert_eq!(rs.selector(), None);
        let old = parse(
            json!({"apiVersion": "extensions/v1beta1", "kind": "ReplicaSet",
            "metadata": {"name": "old"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}),
        );
        assert_eq!(old.template_labels(), None);
    }

    #[test]
    fn ingress_and_stateful_set_service_names() {
        let v1 = parse(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "in"}, "spec": {
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                "rules": [{"http": {"paths": [
                    {"path": "/", "backend": {"service": {"name": "web"}}},
                    {"path": "/b", "backend": {"service": {"name": "web"}}}]}},
                    {"host": "no-http"}]}}),
        );
        assert_eq!(v1.service_names(), ["fallback", "web"]);
        let resource_backend = parse(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "in"}, "spec": {"rules": [{"http": {"paths": [
                {"backend": {"service": {"name": "web"}}},
                {"backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}]}}),
        );
        assert!(resource_backend.service_names().is_empty());
        let beta = parse(
            json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
            "metadata": {"name": "in"}, "spec": {"backend": {"serviceName": "a"},
                "rules": [{"http": {"paths": [{"backend": {"serviceName": "b"}}]}}]}}),
        );
        assert_eq!(beta.service_names(), ["a", "b"]);
        let sts = parse(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"}, "spec": {"serviceName": "db-headless"}}));
        assert_eq!(sts.service_names(), ["db-headless"]);
    }

    /// Derived fields and the error, if any, of parsing `value` whole; the manifest is left out.
    fn derived(value: Value) -> Result<Resource, String> {
        Resource::parse(value)
            .map(|mut resource| {
                resource.take_manifest();
                resource
            })
            .map_err(|e| e.to_string())
    }

    /// A JSON value of any shape, small.
    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\\\\\"é ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Either `value` or, now and then, something of another shape at its place.
    fn or_odd(value: Value) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            6 => Just(Some(value)),
            1 => Just(None),
            1 => arbitrary_json().prop_map(Some),
        ]
    }

    /// An object with `fields` (each perhaps missing or odd) and some unrelated fields.
    fn object_with(fields: Vec<(&'static str, Value)>) -> impl Strategy<Value = Value> {
        let chosen: Vec<_> = fields
            .into_iter()
            .map(|(name, value)| or_odd(value).prop_map(move |v| (name, v)))
            .collect();
        (
            chosen,
            prop::collection::btree_map("[a-z]{1,12}", arbitrary_json(), 0..3),
        )
            .prop_map(|(chosen, extra)| {
                let mut object: Map<String, Value> = extra.into_iter().collect();
                for (name, value) in chosen {
                    if let Some(value) = value {
                        object.insert(name.to_string(), value);
                    }
                }
                Value::Object(object)
            })
    }

    /// A manifest of a kind whose derived fields read its spec, with odd shapes and unrelated
    /// fields at every level.
    fn arbitrary_manifest() -> impl Strategy<Value = Value> {
        let kinds = prop::sample::select(vec![
            ("v1", "Pod"),
            ("v1", "Secret"),
            ("v1", "Service"),
            ("v2", "Service"),
            ("apps/v1", "ReplicaSet"),
            ("extensions/v1beta1", "ReplicaSet"),
            ("apps/v1", "StatefulSet"),
            ("networking.k8s.io/v1", "Ingress"),
            ("networking.k8s.io/v1beta1", "Ingress"),
            ("extensions/v1beta1", "Ingress"),
            ("example.com/v1", "Widget"),
        ]);
        let labels = json!({"app": "web", "tier": "front"});
        let metadata = object_with(vec![
            ("name", json!("web-v002-abcde")),
            ("namespace", json!("prod")),
            ("generateName", json!("web-")),
            ("labels", labels.clone()),
            (
                "annotations",
                json!({"moniker.spinnaker.io/application": "shop",
                "caching.spinnaker.io/ignore": "false"}),
            ),
            (
                "ownerReferences",
                json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]),
            ),
        ]);
        let template = object_with(vec![("metadata", json!({"labels": labels.clone()}))]);
        let spec = (
            template,
            object_with(vec![
                ("selector", labels),
                ("serviceName", json!("web-headless")),
                ("backend", json!({"serviceName": "web"})),
                ("defaultBackend", json!({"service": {"name": "web"}})),
                (
                    "rules",
                    json!([{"http": {"paths": [
                    {"backend": {"serviceName": "api", "service": {"name": "api"}}}]}}]),
                ),
            ]),
        )
            .prop_map(|(template, mut spec)| {
                if let Value::Object(spec) = &mut spec {
                    spec.insert("template".into(), template);
                }
                spec
            });
        (kinds, metadata, spec).prop_flat_map(|((api, kind), metadata, spec)| {
            object_with(vec![
                ("apiVersion", json!(api)),
                ("kind", json!(kind)),
                ("metadata", metadata),
                ("spec", spec),
                ("data", json!({"password": "c2VjcmV0"})),
                ("status", json!({"phase": "Running"})),
            ])
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn an_outline_derives_what_the_whole_manifest_does(manifest in arbitrary_manifest()) {
            let text = serde_json::to_string(&manifest).unwrap();
            let outline = manifest_outline(&text).unwrap();
            prop_assert_eq!(derived(outline), derived(manifest));
        }
    }

    #[test]
    fn an_outline_skips_the_bulk_and_rejects_what_json_rejects() {
        let outline = manifest_outline(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","managedFields":[{}]},
               "spec":{"containers":[{"name":"c"}]},"status":{"phase":"Running"}}"#,
        )
        .unwrap();
        assert_eq!(
            outline,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {}})
        );
        assert!(manifest_outline(r#"{"kind": "Pod", "status": {"phase": }}"#).is_err());
        assert!(manifest_outline(r#"{"kind": "Pod"} trailing"#).is_err());
        assert_eq!(manifest_outline("[1, null]").unwrap(), json!([1, null]));
    }
}
