//! Follow-ups the churn schedules for later (pods starting, becoming ready, exiting; statuses arriving; deletions completing) and how each is carried out.

use rand::RngExt;
use serde_json::{Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::store::Key;
use crate::sim::json::{Fields, condition_time, parse_ts, set, terminating};
use crate::sim::kinds::jobs::job_pod_running;
use crate::sim::kinds::pods::{fresh_pod_status, set_pod_condition};
use crate::sim::managed::set_status_managed;

/// What happens later. Every action names its object by key and uid and does nothing if that object is
/// gone (or was replaced) meanwhile.
pub(in crate::sim) enum Action {
    /// The kubelet reports a new pod's containers running (and, but for Job pods, ready); `status` is the
    /// status the factory generated for it.
    PodStarted {
        pod: Key,
        uid: String,
        status: Box<Value>,
    },
    /// A Job's pod has run to completion.
    PodSucceeded {
        pod: Key,
        uid: String,
        status: Box<Value>,
    },
    /// A crashed container is started again after its back-off.
    ContainerStarted {
        pod: Key,
        uid: String,
        container: String,
    },
    /// Readiness probes pass again.
    PodReady { pod: Key, uid: String },
    /// A terminating pod's containers have exited: the kubelet's last status, then the pod is gone.
    PodGone { pod: Key, uid: String },
    /// A controller fills in a status the object was created without (load-balancer addresses).
    StatusArrives {
        key: Key,
        uid: String,
        status: Box<Value>,
        manager: String,
    },
    /// Deletion completes (finalizers done, dependents gone): dependents left over go first, then the object.
    FinishDelete { key: Key, uid: String },
}

impl Churn {
    pub(in crate::sim) fn run(&mut self, action: Action) {
        let now = self.ts();
        match action {
            Action::PodStarted { pod, uid, status } => {
                let Some(p) = self.get_alive(&pod, &uid) else {
                    return;
                };
                if terminating(p) || p.str_at("/status/phase") != "Pending" {
                    return;
                }
                let job = p.str_at("/metadata/ownerReferences/0/kind") == "Job";
                let status = *status;
                let running = if job {
                    let finished = condition_time(&status, "Ready")
                        .and_then(parse_ts)
                        .unwrap_or(self.clock + 60);
                    self.schedule(
                        self.until(finished),
                        Action::PodSucceeded {
                            pod: pod.clone(),
                            uid,
                            status: Box::new(status.clone()),
                        },
                    );
                    job_pod_running(&status)
                } else {
                    fresh_pod_status(status)
                };
                self.modify(&pod, |p| {
                    set(p, "", "status", running);
                    set_status_managed(p, "kubelet", &now);
                });
                self.mark_owner(&pod);
            }
            Action::PodSucceeded { pod, uid, status } => {
                if self.get_alive(&pod, &uid).is_none_or(terminating) {
                    return;
                }
                self.modify(&pod, |p| {
                    set(p, "", "status", *status);
                    set_status_managed(p, "kubelet", &now);
                });
                self.mark_owner(&pod);
            }
            Action::ContainerStarted {
                pod,
                uid,
                container,
            } => {
                if self.get_alive(&pod, &uid).is_none_or(terminating) {
                    return;
                }
                let id = self.random_container_id();
                self.modify(&pod, |p| {
                    if let Some(cs) = p
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut)
                        .and_then(|c| c.iter_mut().find(|c| c.str_at("/name") == container))
                    {
                        set(cs, "", "containerID", json!(id));
                        set(cs, "", "started", json!(true));
                        set(cs, "", "state", json!({"running": {"startedAt": now}}));
                    }
                    set_status_managed(p, "kubelet", &now);
                });
                let delay = self.rng.random_range(5..=60);
                self.schedule(delay as f64, Action::PodReady { pod, uid });
            }
            Action::PodReady { pod, uid } => {
                let Some(p) = self.get_alive(&pod, &uid) else {
                    return;
                };
                if terminating(p) || p.str_at("/status/phase") != "Running" {
                    return;
                }
                self.modify(&pod, |p| {
                    for cs in p
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if cs.pointer("/state/running").is_some() {
                            set(cs, "", "ready", json!(true));
                        }
                    }
                    for ty in ["Ready", "ContainersReady"] {
                        set_pod_condition(p, ty, true, None, None, &now);
                    }
                    set_status_managed(p, "kubelet", &now);
                });
                self.mark_owner(&pod);
            }
            Action::PodGone { pod, uid } => {
                let Some(p) = self.get_alive(&pod, &uid) else {
                    return;
                };
                if p.str_at("/status/phase") == "Pending" {
                    // Never started: nothing for the kubelet to report.
                    let owner = self.owner_of(&pod);
                    self.delete(&pod);
                    if let Some(owner) = owner {
                        self.mark(&owner);
                    }
                    return;
                }
                let exit = if self.rng.random_bool(0.7) { 0 } else { 143 };
                self.modify(&pod, |p| {
                    let phase = if p.str_at("/status/phase") == "Succeeded" || exit == 0 {
                        "Succeeded"
                    } else {
                        "Failed"
                    };
                    for cs in p
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(started) = cs
                            .pointer("/state/running/startedAt")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                        {
                            let id = cs.str_at("/containerID").to_string();
                            set(
                                cs,
                                "",
                                "state",
                                json!({"terminated": {
                                    "containerID": id,
                                    "exitCode": exit,
                                    "finishedAt": now,
                                    "reason": if exit == 0 { "Completed" } else { "Error" },
                                    "startedAt": started,
                                }}),
                            );
                        }
                        set(cs, "", "ready", json!(false));
                        set(cs, "", "started", json!(false));
                    }
                    for ty in ["Ready", "ContainersReady"] {
                        set_pod_condition(p, ty, false, Some("PodCompleted"), None, &now);
                    }
                    set(p, "/status", "phase", json!(phase));
                    set_status_managed(p, "kubelet", &now);
                });
                let owner = self.owner_of(&pod);
                self.delete(&pod);
                if let Some(owner) = owner {
                    self.mark(&owner);
                }
            }
            Action::StatusArrives {
                key,
                uid,
                status,
                manager,
            } => {
                if self.get_alive(&key, &uid).is_none_or(terminating) {
                    return;
                }
                self.modify(&key, |o| {
                    set(o, "", "status", *status);
                    set_status_managed(o, &manager, &now);
                });
            }
            Action::FinishDelete { key, uid } => {
                if self.get_alive(&key, &uid).is_none() {
                    return;
                }
                let owner = self.owner_of(&key);
                self.delete_tree(&key);
                if let Some(owner) = owner {
                    self.mark(&owner);
                }
            }
        }
    }
}
