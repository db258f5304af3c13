//! What the API server's own discovery documents (`APIResourceList`s) say of each kind the agent
//! watches, for `identity.json`'s `resources`: kube's `Discovery` keeps the plural, the scope and
//! the verbs, but not the short names, singular name or categories a reader needs to serve the
//! cluster's API back as the cluster served it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList};
use kube::discovery::{ApiCapabilities, ApiResource, Scope as ApiScope};

use super::api_error::ApiError;
use super::state::kind_name;
use crate::format::ServedResource;

/// The resources of `kinds` that `served` (as [`super::watch::discover`] returns it) holds, at
/// the version served there, as the API server's discovery documents describe them; sorted, one
/// per kind. Each group-version is fetched once. One whose document cannot be read is logged and
/// its kinds described from `served` alone (no short names, singular name or categories): a
/// reader then knows less, and the agent goes on.
pub async fn served_resources<'a>(
    client: &kube::Client,
    served: &BTreeMap<String, (ApiResource, ApiCapabilities)>,
    kinds: impl IntoIterator<Item = &'a str>,
) -> Vec<ServedResource> {
    let mut by_group_version: BTreeMap<&str, Vec<&(ApiResource, ApiCapabilities)>> =
        BTreeMap::new();
    for kind in kinds {
        if let Some(entry) = served.get(kind) {
            by_group_version
                .entry(entry.0.api_version.as_str())
                .or_default()
                .push(entry);
        }
    }
    let mut resources = Vec::new();
    for (api_version, entries) in by_group_version {
        let list = match api_version.split_once('/') {
            None => client.list_core_api_resources(api_version).await,
            Some(_) => client.list_api_group_resources(api_version).await,
        };
        match list {
            Ok(list) => resources.extend(entries.iter().map(|(r, c)| described(&list, r, c))),
            Err(error) => {
                tracing::warn!(%api_version, error = %ApiError(error), "could not read the API server's discovery of this group-version; identity.json describes its kinds without short names or categories");
                resources.extend(entries.iter().map(|(r, c)| known(r, c)));
            }
        }
    }
    sorted(resources)
}

/// `resource` as `list` (its group-version's discovery document) describes it; as kube's
/// discovery knew it when the list does not name it (it changed in between).
pub fn described(
    list: &APIResourceList,
    resource: &ApiResource,
    capabilities: &ApiCapabilities,
) -> ServedResource {
    list.resources
        .iter()
        .find(|listed| listed.name == resource.plural)
        .map_or_else(
            || known(resource, capabilities),
            |listed| from_listed(resource, listed),
        )
}

/// An entry of a discovery document, listed under `resource`'s group-version. Lists keep the
/// API server's order: a reader serves them as they were served.
fn from_listed(resource: &ApiResource, listed: &APIResource) -> ServedResource {
    ServedResource {
        group: resource.group.clone(),
        version: resource.version.clone(),
        name: listed.name.clone(),
        singular_name: listed.singular_name.clone(),
        kind: listed.kind.clone(),
        namespaced: listed.namespaced,
        short_names: listed.short_names.clone().unwrap_or_default(),
        categories: listed.categories.clone().unwrap_or_default(),
        verbs: listed.verbs.clone(),
    }
}

/// What kube's discovery kept of a resource: its names, scope and verbs.
pub fn known(resource: &ApiResource, capabilities: &ApiCapabilities) -> ServedResource {
    ServedResource {
        group: resource.group.clone(),
        version: resource.version.clone(),
        name: resource.plural.clone(),
        singular_name: String::new(),
        kind: resource.kind.clone(),
        namespaced: capabilities.scope == ApiScope::Namespaced,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: capabilities.operations.clone(),
    }
}

/// The kind name (`Kind` or `Kind.group`, as `identity.json`'s `kinds` names it) a resource is
/// watched as.
pub fn kind_of(resource: &ServedResource) -> String {
    if resource.group.is_empty() {
        kind_name(&resource.version, &resource.kind)
    } else {
        kind_name(
            &format!("{}/{}", resource.group, resource.version),
            &resource.kind,
        )
    }
}

/// `resources` in `identity.json`'s order, at most one per kind name (the last given wins): an
/// unchanged cluster writes the same bytes.
pub fn sorted(resources: impl IntoIterator<Item = ServedResource>) -> Vec<ServedResource> {
    let by_kind: BTreeMap<String, ServedResource> = resources
        .into_iter()
        .map(|resource| (kind_of(&resource), resource))
        .collect();
    let mut resources: Vec<ServedResource> = by_kind.into_values().collect();
    resources.sort();
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> (ApiResource, ApiCapabilities) {
        (
            ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            ApiCapabilities {
                scope: ApiScope::Namespaced,
                subresources: Vec::new(),
                operations: vec!["get".into(), "list".into(), "watch".into()],
            },
        )
    }

    fn list() -> APIResourceList {
        serde_json::from_value(serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments/scale", "singularName": "", "namespaced": true,
                 "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
                {"name": "deployments", "singularName": "deployment", "namespaced": true,
                 "kind": "Deployment", "verbs": ["watch", "list", "get"],
                 "shortNames": ["deploy"], "categories": ["all"], "storageVersionHash": "8aSe+NMegvE="}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_listed_resource_keeps_what_the_api_server_said_in_its_order() {
        let (resource, capabilities) = deployments();
        assert_eq!(
            described(&list(), &resource, &capabilities),
            ServedResource {
                group: "apps".into(),
                version: "v1".into(),
                name: "deployments".into(),
                singular_name: "deployment".into(),
                kind: "Deployment".into(),
                namespaced: true,
                short_names: vec!["deploy".into()],
                categories: vec!["all".into()],
                verbs: vec!["watch".into(), "list".into(), "get".into()],
            }
        );
    }

    #[test]
    fn a_resource_the_list_does_not_name_is_described_from_kubes_discovery() {
        let (resource, capabilities) = deployments();
        let mut list = list();
        list.resources.retain(|r| r.name != "deployments");
        let described = described(&list, &resource, &capabilities);
        assert_eq!(described, known(&resource, &capabilities));
        assert_eq!(
            (described.name.as_str(), described.namespaced),
            ("deployments", true)
        );
        assert!(described.short_names.is_empty());
        assert_eq!(described.verbs, ["get", "list", "watch"]);
    }

    #[test]
    fn kind_names_are_those_of_identity_kinds() {
        let (resource, capabilities) = deployments();
        let mut served = known(&resource, &capabilities);
        assert_eq!(kind_of(&served), "Deployment");
        served.group = String::new();
        served.kind = "Pod".into();
        assert_eq!(kind_of(&served), "Pod");
        served.group = "example.com".into();
        served.kind = "Widget".into();
        assert_eq!(kind_of(&served), "Widget.example.com");
    }

    #[test]
    fn sorted_keeps_one_resource_per_kind_the_last_given() {
        let (resource, capabilities) = deployments();
        let old = known(&resource, &capabilities);
        let new = described(&list(), &resource, &capabilities);
        let mut pods = old.clone();
        pods.group = String::new();
        pods.kind = "Pod".into();
        pods.name = "pods".into();
        let resources = sorted([old, pods.clone(), new.clone()]);
        assert_eq!(resources, vec![pods, new]);
    }
}
