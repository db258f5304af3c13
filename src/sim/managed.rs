//! Metadata and `managedFields` as the API server records them: who applied an object, which fields each manager owns, and re-timing them when an object changes.

use serde_json::{Map, Value, json};

use crate::sim::factory::ObjectFactory;
use crate::sim::json::{Fields, set, ts};

/// How an app's manifests reach the cluster: decides labels, annotations and field managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sim) enum Flavor {
    /// Deployed by Spinnaker (`kubectl apply` under the hood): moniker and artifact annotations.
    Spinnaker,
    /// Deployed by Spinnaker with `strategy.spinnaker.io/server-side-apply`: an `Apply` entry, no
    /// last-applied annotation.
    SpinnakerServerSide,
    /// Installed by Helm: chart labels, release annotations, manager `helm`.
    Helm,
    /// `kubectl apply` (client-side): `last-applied-configuration` annotation.
    Kubectl,
    /// `kubectl apply --server-side`: an `Apply` managed-fields entry owning only the manifest's fields.
    ServerSide,
    /// Created by the control plane or an add-on installer (system objects).
    System,
}

impl Flavor {
    pub(in crate::sim) fn spinnaker(self) -> bool {
        matches!(self, Flavor::Spinnaker | Flavor::SpinnakerServerSide)
    }
}

/// One `metadata.managedFields` entry.
pub(in crate::sim) fn managed_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    time: i64,
    fields: Value,
    subresource: Option<&str>,
) -> Value {
    let mut e = json!({
        "apiVersion": api_version,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        "manager": manager,
        "operation": operation,
        "time": ts(time),
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    e
}

/// Fields whose value is a struct (not a pointer or map): their FieldsV1 set has no `.` entry.
pub(in crate::sim) const STRUCT_FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "resources",
    "jobTemplate",
    "loadBalancer",
];

/// Maps the API treats as atomic: owned as a whole.
pub(in crate::sim) const ATOMIC_FIELDS: &[&str] = &[
    "selector",
    "podSelector",
    "namespaceSelector",
    "labelSelector",
];

/// The FieldsV1 set of `owned`, a partial object holding exactly the fields a manager owns.
pub(in crate::sim) fn fields_of(owned: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = owned {
        for (k, v) in m {
            out.insert(format!("f:{k}"), field_set(k, v));
        }
    }
    Value::Object(out)
}

pub(in crate::sim) fn field_set(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() && !ATOMIC_FIELDS.contains(&key) => {
            let mut out = Map::new();
            if !STRUCT_FIELDS.contains(&key) {
                out.insert(".".into(), json!({}));
            }
            for (k, child) in m {
                out.insert(format!("f:{k}"), field_set(k, child));
            }
            Value::Object(out)
        }
        Value::Array(items) if !items.is_empty() => list_set(key, items),
        _ => json!({}),
    }
}

/// Keyed lists become `k:{…}` entries, sets of strings `v:"…"` entries, everything else is atomic.
pub(in crate::sim) fn list_set(key: &str, items: &[Value]) -> Value {
    let mut out = Map::new();
    if key == "finalizers" {
        out.insert(".".into(), json!({}));
        for item in items {
            out.insert(format!("v:{item}"), json!({}));
        }
        return Value::Object(out);
    }
    let keys: &[&str] = match key {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" => &["name"],
        "ports" if items[0].get("containerPort").is_some() => &["containerPort", "protocol"],
        "ports" if items[0].get("port").is_some() && items[0].get("targetPort").is_some() => {
            &["port", "protocol"]
        }
        "volumeMounts" => &["mountPath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "podIPs" | "hostIPs" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        _ => return json!({}),
    };
    out.insert(".".into(), json!({}));
    for item in items {
        let id: Map<String, Value> = keys
            .iter()
            .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let entry = if key == "ownerReferences" {
            json!({})
        } else {
            let mut entry = Map::new();
            entry.insert(".".into(), json!({}));
            for (k, child) in item.as_object().into_iter().flatten() {
                entry.insert(format!("f:{k}"), field_set(k, child));
            }
            Value::Object(entry)
        };
        out.insert(format!("k:{}", Value::Object(id)), entry);
    }
    Value::Object(out)
}

/// Whether `v` is the value the API server would have defaulted `key` to (so a manifest omits it).
pub(in crate::sim) fn is_default(key: &str, v: &Value) -> bool {
    match key {
        "terminationMessagePath" => *v == "/dev/termination-log",
        "terminationMessagePolicy" => *v == "File",
        "dnsPolicy" => *v == "ClusterFirst",
        "restartPolicy" => *v == "Always",
        "schedulerName" => *v == "default-scheduler",
        "terminationGracePeriodSeconds" => *v == 30,
        "progressDeadlineSeconds" => *v == 600,
        "revisionHistoryLimit" => *v == 10,
        "timeoutSeconds" | "successThreshold" => *v == 1,
        "periodSeconds" => *v == 10,
        "failureThreshold" => *v == 3,
        "scheme" => *v == "HTTP",
        "sessionAffinity" => *v == "None",
        "internalTrafficPolicy" | "externalTrafficPolicy" => *v == "Cluster",
        "ipFamilyPolicy" => *v == "SingleStack",
        "ipFamilies"
        | "clusterIPs"
        | "nodePort"
        | "allocateLoadBalancerNodePorts"
        | "persistentVolumeClaimRetentionPolicy" => true,
        "clusterIP" => *v != "None",
        "type" => *v == "ClusterIP",
        "securityContext" | "resources" => v.as_object().is_some_and(Map::is_empty),
        "creationTimestamp" => v.is_null(),
        "defaultMode" => *v == 420,
        "imagePullPolicy" => *v == "IfNotPresent",
        "serviceAccount" => true,
        "podManagementPolicy" => *v == "OrderedReady",
        "volumeMode" => *v == "Filesystem",
        "suspend" => *v == false,
        "successfulJobsHistoryLimit" => *v == 3,
        "failedJobsHistoryLimit" => *v == 1,
        "concurrencyPolicy" => *v == "Allow",
        "backoffLimit" => *v == 6,
        "status" => true,
        _ => false,
    }
}

/// `v` (the value of `key`) without the fields the API server defaults.
pub(in crate::sim) fn strip_defaults(key: &str, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                if !is_default(k, child) {
                    out.insert(k.clone(), strip_defaults(k, child));
                }
            }
            if key == "strategy"
                && out.get("type").is_some_and(|t| t == "RollingUpdate")
                && out.get("rollingUpdate")
                    == Some(&json!({"maxSurge": "25%", "maxUnavailable": "25%"}))
            {
                return json!({});
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| strip_defaults(key, i)).collect()),
        _ => v.clone(),
    }
}

pub(in crate::sim) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub(in crate::sim) const KCM: &str = "kube-controller-manager";

/// Points the `status` managed-fields entry of `manager` at the object's current status, written `now`.
pub(in crate::sim) fn set_status_managed(obj: &mut Value, manager: &str, now: &str) {
    let fields = ObjectFactory::fields_v1(
        &json!({"status": obj.get("status").cloned().unwrap_or(json!({}))}),
    );
    let api = obj.str_at("/apiVersion").to_string();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let entries = meta.entry("managedFields").or_insert_with(|| json!([]));
    let Some(entries) = entries.as_array_mut() else {
        return;
    };
    match entries
        .iter_mut()
        .find(|e| e.str_at("/manager") == manager && e.opt_str_at("/subresource") == Some("status"))
    {
        Some(e) => {
            set(e, "", "fieldsV1", fields);
            set(e, "", "time", json!(now));
        }
        None => entries.push(json!({
            "apiVersion": api,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
            "manager": manager,
            "operation": "Update",
            "subresource": "status",
            "time": now,
        })),
    }
}

/// Drops the `status` subresource entries (for objects created before any controller reported).
pub(in crate::sim) fn remove_status_managed(obj: &mut Value) {
    if let Some(entries) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        entries.retain(|e| e.opt_str_at("/subresource") != Some("status"));
    }
}

/// Re-times every managed-fields entry (an object written as a whole, now).
pub(in crate::sim) fn retime_managed(obj: &mut Value, now: &str) {
    for e in obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        set(e, "", "time", json!(now));
    }
}

/// Re-times the main (non-subresource) entry of `manager`.
pub(in crate::sim) fn retime_manager(obj: &mut Value, manager: &str, now: &str) {
    for e in obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if e.str_at("/manager") == manager && e.get("subresource").is_none() {
            set(e, "", "time", json!(now));
        }
    }
}

/// Re-times the applier's entry: the first main entry that is not a controller's.
pub(in crate::sim) fn retime_applier(obj: &mut Value, now: &str) {
    if let Some(e) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .and_then(|entries| {
            entries
                .iter_mut()
                .find(|e| e.get("subresource").is_none() && e.str_at("/manager") != KCM)
        })
    {
        set(e, "", "time", json!(now));
    }
}

/// Brings the `last-applied-configuration` annotation (client-side apply) in line with a re-applied
/// object's `data` and container images.
pub(in crate::sim) fn refresh_last_applied(obj: &mut Value) {
    let pointer = "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";
    let Some(mut manifest) = obj
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    else {
        return;
    };
    if manifest.get("data").is_some()
        && let Some(data) = obj.get("data")
    {
        set(&mut manifest, "", "data", data.clone());
    }
    let images: Vec<(String, Value)> = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.str_at("/name").to_string(),
                c.get("image").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    for c in manifest
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some((_, image)) = images.iter().find(|(n, _)| n == c.str_at("/name")) {
            set(c, "", "image", image.clone());
        }
    }
    set(
        obj,
        "/metadata/annotations",
        LAST_APPLIED,
        Value::String(format!("{manifest}\n")),
    );
}

impl ObjectFactory {
    pub(in crate::sim) fn metadata(
        &mut self,
        ns: Option<&str>,
        name: &str,
        created: i64,
        labels: Map<String, Value>,
        annotations: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        if !annotations.is_empty() {
            m.insert("annotations".into(), Value::Object(annotations));
        }
        m.insert("creationTimestamp".into(), Value::String(ts(created)));
        if !labels.is_empty() {
            m.insert("labels".into(), Value::Object(labels));
        }
        m.insert("name".into(), Value::String(name.to_string()));
        if let Some(ns) = ns {
            m.insert("namespace".into(), Value::String(ns.to_string()));
        }
        m.insert(
            "resourceVersion".into(),
            Value::String(self.next_resource_version()),
        );
        m.insert("uid".into(), Value::String(self.uid()));
        m
    }

    /// Records how `flavor` applied `obj` at `time`: the last-applied annotation for client-side apply and the
    /// applier's managed-fields entry (replacing any existing entries).
    pub(in crate::sim) fn applied(&mut self, obj: &mut Value, flavor: Flavor, time: i64) {
        let api = obj.str_at("/apiVersion").to_string();
        let mut manifest = Map::new();
        let mut owned = Map::new();
        let mut meta = Map::new();
        let mut owned_meta = Map::new();
        for key in ["annotations", "labels"] {
            if let Some(Value::Object(m)) = obj.pointer(&format!("/metadata/{key}")) {
                let user: Map<String, Value> = m
                    .iter()
                    .filter(|(k, _)| !k.starts_with("deployment.kubernetes.io/"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !user.is_empty() {
                    meta.insert(key.to_string(), Value::Object(user.clone()));
                    owned_meta.insert(key.to_string(), Value::Object(user));
                }
            }
        }
        meta.insert(
            "name".into(),
            Value::String(obj.str_at("/metadata/name").to_string()),
        );
        if let Some(ns) = obj.pointer("/metadata/namespace") {
            meta.insert("namespace".into(), ns.clone());
        }
        manifest.insert("apiVersion".into(), Value::String(api.clone()));
        manifest.insert(
            "kind".into(),
            Value::String(obj.str_at("/kind").to_string()),
        );
        manifest.insert("metadata".into(), Value::Object(meta));
        if let Value::Object(o) = &*obj {
            for (k, v) in o {
                if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                    manifest.insert(k.clone(), strip_defaults(k, v));
                    owned.insert(
                        k.clone(),
                        if matches!(
                            flavor,
                            Flavor::ServerSide | Flavor::SpinnakerServerSide | Flavor::System
                        ) {
                            strip_defaults(k, v)
                        } else {
                            v.clone()
                        },
                    );
                }
            }
        }
        let (manager, operation) = match flavor {
            Flavor::Helm => ("helm", "Update"),
            Flavor::ServerSide | Flavor::SpinnakerServerSide => ("kubectl", "Apply"),
            Flavor::Spinnaker | Flavor::Kubectl => ("kubectl-client-side-apply", "Update"),
            Flavor::System => ("eks", "Apply"),
        };
        if matches!(flavor, Flavor::Spinnaker | Flavor::Kubectl) {
            let last = format!("{}\n", Value::Object(manifest));
            let annotations = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
            if let Some(a) = annotations {
                a["kubectl.kubernetes.io/last-applied-configuration"] = Value::String(last);
            }
            let a = owned_meta.entry("annotations").or_insert_with(|| json!({}));
            a["kubectl.kubernetes.io/last-applied-configuration"] = json!("");
        }
        if !owned_meta.is_empty() {
            owned.insert("metadata".into(), Value::Object(owned_meta));
        }
        let entry = managed_entry(
            manager,
            operation,
            &api,
            time,
            fields_of(&Value::Object(owned)),
            None,
        );
        obj["metadata"]["managedFields"] = json!([entry]);
    }

    pub(in crate::sim) fn push_managed(obj: &mut Value, entry: Value) {
        match obj
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            Some(list) => list.push(entry),
            None => obj["metadata"]["managedFields"] = json!([entry]),
        }
    }

    /// Adds a controller's `status` subresource entry covering the object's whole status.
    pub(in crate::sim) fn status_managed(obj: &mut Value, manager: &str, time: i64) {
        let api = obj.str_at("/apiVersion").to_string();
        let status = json!({"status": obj.get("status").cloned().unwrap_or(Value::Null)});
        Self::push_managed(
            obj,
            managed_entry(
                manager,
                "Update",
                &api,
                time,
                fields_of(&status),
                Some("status"),
            ),
        );
    }

    pub(in crate::sim) fn owner_reference(owner: &Value) -> Value {
        json!({
            "apiVersion": owner.str_at("/apiVersion").to_string(),
            "blockOwnerDeletion": true,
            "controller": true,
            "kind": owner.str_at("/kind").to_string(),
            "name": owner.str_at("/metadata/name").to_string(),
            "uid": owner.str_at("/metadata/uid").to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::ObjectFactory;
    use crate::sim::json::Fields;

    #[test]
    fn managed_fields_mirror_the_object() {
        let mut f = ObjectFactory::new(9);
        let app = f.app("web");
        let pod = app
            .iter()
            .find(|o| o["kind"] == "Pod")
            .expect("an app has pods");
        let name = pod.str_at("/spec/containers/0/name");
        let kcm = &pod["metadata"]["managedFields"][0]["fieldsV1"];
        assert!(
            kcm["f:spec"]["f:containers"]
                .get(format!("k:{{\"name\":\"{name}\"}}"))
                .is_some(),
            "{kcm}"
        );
        assert_eq!(pod["metadata"]["managedFields"][1]["subresource"], "status");
    }
}
