//! The Kubernetes API as the gateway speaks it (pure, no I/O): which request a path names (as the
//! API server's own request-info parser reads it), the discovery documents of a cluster from what
//! its agent reported, `Status` errors, and the `Table` form `kubectl get` asks for.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::printers;
use crate::format::ServedResource;

/// What a request under `/clusters/<account>` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    Resources { group: String, version: String },
    /// An object, a list of objects, or a subresource.
    Object(ObjectRequest),
    /// A path the Kubernetes API does not have.
    NotFound,
}

/// A request for objects of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRequest {
    pub group: String,
    pub version: String,
    /// The plural resource name, e.g. `deployments`.
    pub resource: String,
    /// The namespace the path names, if any.
    pub namespace: Option<String>,
    /// The object's name: a get, or else a list.
    pub name: Option<String>,
    /// `log`, `exec`, `status`, … after the name.
    pub subresource: Option<String>,
    /// The `/watch/` form of the path (long gone from clients, still routed by the API server).
    pub watch: bool,
}

/// Subresources of a namespace, which `namespaces/<name>/<x>` names instead of a resource in it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Which request `path` (what follows `/clusters/<account>`, starting with `/`) names, as the
/// API server's request-info parser reads it.
pub fn route(path: &str) -> Route {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::Resources {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group, version] => Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => object_route("", version, rest),
        ["apis", group, version, rest @ ..] => object_route(group, version, rest),
        _ => Route::NotFound,
    }
}

fn object_route(group: &str, version: &str, mut parts: &[&str]) -> Route {
    let watch = parts.first() == Some(&"watch");
    if watch {
        parts = &parts[1..];
    }
    let mut namespace = None;
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts = &parts[2..];
        }
    }
    let (resource, name, subresource) = match parts {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return Route::NotFound,
    };
    // `namespaces/<name>` is the namespace itself, not a scope.
    if resource == "namespaces" {
        namespace = None;
    }
    Route::Object(ObjectRequest {
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        namespace,
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
        watch,
    })
}

/// The `apiVersion` of objects of `group`/`version`.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// A Kubernetes `Status` error: what every failure answers, as clients expect it.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The `Status` of an object that is not there, as the API server words it.
pub fn not_found(request: &ObjectRequest, name: &str) -> Value {
    let resource = if request.group.is_empty() {
        request.resource.clone()
    } else {
        format!("{}.{}", request.resource, request.group)
    };
    let mut body = status(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    body["details"] = json!({"name": name, "group": request.group, "kind": request.resource});
    body
}

/// `/version`, from the `gitVersion` the agent reported (`v1.31.4`, `v1.20.2-gke.1`).
pub fn version(git_version: Option<&str>) -> Value {
    let git = git_version.unwrap_or("v0.0.0-unknown");
    let numbers: Vec<&str> = git
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(2)
        .collect();
    let part = |i: usize| numbers.get(i).copied().unwrap_or("0").to_string();
    json!({
        "major": part(0),
        "minor": part(1),
        "gitVersion": git,
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "",
        "platform": "",
    })
}

/// `/api`.
pub fn core_versions(resources: &[ServedResource]) -> Value {
    let mut versions: Vec<&str> = resources
        .iter()
        .filter(|r| r.group.is_empty())
        .map(|r| r.version.as_str())
        .collect();
    versions.sort();
    versions.dedup();
    if versions.is_empty() {
        versions.push("v1");
    }
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [],
    })
}

/// The groups other than core, each with its versions, sorted.
fn groups(resources: &[ServedResource]) -> Vec<(&str, Vec<&str>)> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for resource in resources.iter().filter(|r| !r.group.is_empty()) {
        let versions = groups.entry(resource.group.as_str()).or_default();
        if !versions.contains(&resource.version.as_str()) {
            versions.push(resource.version.as_str());
        }
    }
    groups
        .into_iter()
        .map(|(group, mut versions)| {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
            (group, versions)
        })
        .collect()
}

/// Kubernetes' version order: GA above beta above alpha, higher numbers first.
fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (level, major, minor)
}

fn group_document(group: &str, versions: &[&str]) -> Value {
    let entry =
        |version: &str| json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions.iter().map(|v| entry(v)).collect::<Vec<_>>(),
        "preferredVersion": entry(versions.first().copied().unwrap_or("v1")),
    })
}

/// `/apis`.
pub fn group_list(resources: &[ServedResource]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .map(|(group, versions)| {
            let mut document = group_document(group, versions);
            if let Some(object) = document.as_object_mut() {
                object.remove("kind");
                object.remove("apiVersion");
            }
            document
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if the cluster serves that group.
pub fn group(resources: &[ServedResource], name: &str) -> Option<Value> {
    groups(resources)
        .iter()
        .find(|(group, _)| *group == name)
        .map(|(group, versions)| group_document(group, versions))
}

/// `/api/v1` or `/apis/<group>/<version>`, if the cluster serves it. Each resource is listed
/// as the API server listed it, with only the verbs the gateway answers (it is read-only).
pub fn resource_list(resources: &[ServedResource], group: &str, version: &str) -> Option<Value> {
    let listed: Vec<Value> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let verbs: Vec<&str> = ["get", "list"]
                .into_iter()
                .filter(|verb| r.verbs.is_empty() || r.verbs.iter().any(|v| v == verb))
                .collect();
            let mut entry = json!({
                "name": r.name,
                "singularName": r.singular_name,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            entry
        })
        .collect();
    if listed.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": listed,
    }))
}

/// The resources the gateway serves for a cluster: those its agent reported, and core `events`
/// always, since Clouddriver and `kubectl describe` ask for the events of what they show. When
/// the agent does not ship Events, their list is empty.
pub fn served_resources(reported: &[ServedResource]) -> Vec<ServedResource> {
    let mut resources = reported.to_vec();
    if !resources
        .iter()
        .any(|r| r.group.is_empty() && r.name == "events")
    {
        resources.push(ServedResource {
            group: String::new(),
            version: "v1".into(),
            name: "events".into(),
            singular_name: "event".into(),
            kind: "Event".into(),
            namespaced: true,
            short_names: vec!["ev".into()],
            categories: vec![],
            verbs: vec!["get".into(), "list".into()],
        });
    }
    resources
}

/// The resource `request` names, if the cluster's agent watches it.
pub fn served<'a>(
    resources: &'a [ServedResource],
    request: &ObjectRequest,
) -> Option<&'a ServedResource> {
    resources.iter().find(|r| {
        r.group == request.group && r.version == request.version && r.name == request.resource
    })
}

/// The age of an object as the API server prints it in a `Table`: `42s`, `5m30s`, `3h`, `4d`,
/// `2y`; `<unknown>` without a creation time.
pub fn age(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    printers::since(created, now)
}

/// What a `Table` row carries of its object: `includeObject=Object` (the object),
/// `Metadata` (the default: its metadata) or `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    /// From the `includeObject` parameter.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The `Table` of `objects` of `kind` in API group `group` (`meta.k8s.io/v1`), as the API server
/// answers `kubectl get`: the kind's own columns where the API server has a printer for it
/// ([`printers`]), else the name and the age.
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    list_metadata: Value,
    now: DateTime<Utc>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let printed = printers::row(group, kind, object, now);
            let mut row = json!({"cells": printed.cells});
            if let Some(conditions) = printed.conditions {
                row["conditions"] = conditions;
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object["metadata"],
                    });
                }
                IncludeObject::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    let columns: Vec<Value> = printers::columns(group, kind)
        .iter()
        .map(printers::Column::definition)
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// What the `Accept` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Json,
    Yaml,
    Table,
}

/// The first of the `Accept` header's media types the gateway can give (kubectl lists the
/// `Table` forms first, then plain JSON). Protobuf, which kubectl never requires, is not given.
pub fn wanted(accept: Option<&str>) -> Wanted {
    let Some(accept) = accept else {
        return Wanted::Json;
    };
    for media in accept.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let kind = parts.next().unwrap_or_default();
        let params: Vec<&str> = parts.collect();
        match kind {
            "application/json" | "*/*" | "application/*" => {
                if params.contains(&"as=Table") {
                    if params
                        .iter()
                        .all(|p| !p.starts_with("g=") || *p == "g=meta.k8s.io")
                    {
                        return Wanted::Table;
                    }
                    continue;
                }
                return Wanted::Json;
            }
            "application/yaml" => return Wanted::Yaml,
            _ => {}
        }
    }
    Wanted::Json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(group: &str, version: &str, rest: &str) -> ObjectRequest {
        let path = if group.is_empty() {
            format!("/api/{version}/{rest}")
        } else {
            format!("/apis/{group}/{version}/{rest}")
        };
        match route(&path) {
            Route::Object(request) => request,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_are_read_as_the_api_server_reads_them() {
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis/"), Route::Groups);
        assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            route("/apis/apps/v1"),
            Route::Resources {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        let pods = object("", "v1", "namespaces/shop/pods");
        assert_eq!(
            (pods.resource.as_str(), pods.namespace.as_deref(), pods.name),
            ("pods", Some("shop"), None)
        );
        let log = object("", "v1", "namespaces/shop/pods/web-1/log");
        assert_eq!(log.name.as_deref(), Some("web-1"));
        assert_eq!(log.subresource.as_deref(), Some("log"));
        let all = object("apps", "v1", "deployments");
        assert_eq!((all.namespace, all.name), (None, None));
        // The namespace itself, and its own subresources.
        let ns = object("", "v1", "namespaces/shop");
        assert_eq!(
            (ns.resource.as_str(), ns.namespace, ns.name.as_deref()),
            ("namespaces", None, Some("shop"))
        );
        let finalize = object("", "v1", "namespaces/shop/finalize");
        assert_eq!(
            (finalize.resource.as_str(), finalize.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );
        let node = object("", "v1", "nodes/n1");
        assert_eq!((node.namespace, node.name.as_deref()), (None, Some("n1")));
        let watched = object("apps", "v1", "watch/namespaces/shop/deployments");
        assert!(watched.watch);
        assert_eq!(route("/healthz"), Route::NotFound);
        assert_eq!(
            route("/api/v1/namespaces/a/pods/b/log/extra"),
            Route::NotFound
        );
    }

    fn deployments() -> Vec<ServedResource> {
        let resource =
            |group: &str, version: &str, name: &str, kind: &str, namespaced: bool| ServedResource {
                group: group.into(),
                version: version.into(),
                name: name.into(),
                singular_name: String::new(),
                kind: kind.into(),
                namespaced,
                short_names: vec![],
                categories: vec![],
                verbs: vec!["create".into(), "get".into(), "list".into(), "watch".into()],
            };
        let mut deploy = resource("apps", "v1", "deployments", "Deployment", true);
        deploy.short_names = vec!["deploy".into()];
        vec![
            deploy,
            resource("", "v1", "pods", "Pod", true),
            resource("", "v1", "namespaces", "Namespace", false),
            resource(
                "autoscaling",
                "v2beta2",
                "horizontalpodautoscalers",
                "HPA",
                true,
            ),
            resource("autoscaling", "v1", "horizontalpodautoscalers", "HPA", true),
            resource(
                "autoscaling",
                "v2beta1",
                "horizontalpodautoscalers",
                "HPA",
                true,
            ),
        ]
    }

    #[test]
    fn discovery_lists_what_the_agent_watches_as_read_only() {
        let resources = deployments();
        let apps = resource_list(&resources, "apps", "v1").unwrap();
        assert_eq!(apps["groupVersion"], "apps/v1");
        assert_eq!(apps["resources"][0]["shortNames"], json!(["deploy"]));
        assert_eq!(apps["resources"][0]["verbs"], json!(["get", "list"]));
        assert!(resource_list(&resources, "apps", "v1beta1").is_none());
        let core = resource_list(&resources, "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        assert_eq!(core_versions(&resources)["versions"], json!(["v1"]));
        let autoscaling = group(&resources, "autoscaling").unwrap();
        assert_eq!(
            autoscaling["preferredVersion"]["version"], "v1",
            "GA is preferred over beta"
        );
        assert_eq!(
            autoscaling["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["v1", "v2beta2", "v2beta1"]
        );
        let groups = group_list(&resources);
        assert_eq!(groups["groups"].as_array().unwrap().len(), 2);
        assert!(group(&resources, "batch").is_none());
    }

    #[test]
    fn events_are_always_served_once() {
        let resources = served_resources(&deployments());
        let events: Vec<_> = resources.iter().filter(|r| r.name == "events").collect();
        assert_eq!(events.len(), 1);
        assert!(events[0].namespaced && events[0].group.is_empty());
        assert_eq!(served_resources(&resources).len(), resources.len());
    }

    #[test]
    fn versions_and_ages_read_as_kubectl_prints_them() {
        assert_eq!(version(Some("v1.20.2"))["minor"], "20");
        assert_eq!(version(Some("v1.31.4-gke.100"))["major"], "1");
        assert_eq!(version(None)["gitVersion"], "v0.0.0-unknown");
        let now = Utc::now();
        let ago = |s: i64| age(Some(now - chrono::Duration::seconds(s)), now);
        assert_eq!(
            [
                ago(5),
                ago(600),
                ago(3 * 3600),
                ago(4 * 86400),
                ago(800 * 86400)
            ],
            ["5s", "10m", "3h", "4d", "2y70d"]
        );
    }

    #[test]
    fn accept_headers_choose_table_json_or_yaml() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(wanted(Some(kubectl)), Wanted::Table);
        assert_eq!(wanted(Some("application/json")), Wanted::Json);
        assert_eq!(wanted(Some("application/yaml")), Wanted::Yaml);
        assert_eq!(
            wanted(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            )),
            Wanted::Json
        );
        assert_eq!(
            wanted(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io"
            )),
            Wanted::Json
        );
        assert_eq!(wanted(None), Wanted::Json);
    }
}
