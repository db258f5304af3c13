//! CronJobs and their Jobs: how they are built, how a scheduled run happens under churn, and the Job and CronJob controllers' status.

use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::store::{Key, POOL_CRON_JOBS};
use crate::sim::factory::{DAY, HOUR, ObjectFactory};
use crate::sim::json::{Fields, condition_time, labels_of, set, set_or_remove, terminating, ts};
use crate::sim::managed::{
    Flavor, KCM, fields_of, managed_entry, remove_status_managed, retime_managed,
    set_status_managed,
};
use crate::sim::vocabulary::{CRON_SCHEDULES, CRON_TASKS, DOMAINS};

/// A Job pod's status while it runs, derived from its final (Succeeded) status.
pub(in crate::sim) fn job_pod_running(done: &Value) -> Value {
    let mut status = done.clone();
    let started = done
        .str_at("/containerStatuses/0/state/terminated/startedAt")
        .to_string();
    for cs in status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let t = cs
            .pointer("/state/terminated/startedAt")
            .cloned()
            .unwrap_or_else(|| json!(started));
        set(cs, "", "state", json!({"running": {"startedAt": t}}));
        set(cs, "", "ready", json!(true));
        set(cs, "", "started", json!(true));
    }
    let initialized = condition_time(done, "Initialized")
        .unwrap_or(&started)
        .to_string();
    let scheduled = condition_time(done, "PodScheduled")
        .unwrap_or(&started)
        .to_string();
    let condition = |ty: &str, t: &str| json!({"lastProbeTime": null, "lastTransitionTime": t, "status": "True", "type": ty});
    set(
        &mut status,
        "",
        "conditions",
        json!([
            condition("PodReadyToStartContainers", &started),
            condition("Initialized", &initialized),
            condition("Ready", &started),
            condition("ContainersReady", &started),
            condition("PodScheduled", &scheduled),
        ]),
    );
    set(&mut status, "", "phase", json!("Running"));
    status
}

impl ObjectFactory {
    /// A Job of `cron_job` for its run scheduled at `scheduled` (Unix seconds), named as the CronJob
    /// controller names it, with the status of a completed run.
    pub fn job_for(&mut self, cron_job: &Value, scheduled: i64) -> Value {
        self.job(cron_job, scheduled)
    }

    /// A CronJob with its recent Jobs, each with one Succeeded pod.
    pub(in crate::sim) fn cron_job_bundle(&mut self, ns: &str, floor: i64) -> Vec<Value> {
        let mut app = self.new_app(ns, floor);
        let task = self.pick(CRON_TASKS);
        let mut name = format!("{}-{task}", self.pick(DOMAINS));
        while !self.reserve("CronJob", ns, &name) {
            name = format!("{}-{task}-{}", self.pick(DOMAINS), self.range(2, 99));
        }
        app.name = name.clone();
        app.flavor = if app.flavor.spinnaker() {
            app.flavor
        } else {
            Flavor::Kubectl
        };
        app.labels = labels_of(&[("app", name.as_str())]);
        app.selector = labels_of(&[("app", name.as_str())]);
        app.template_labels = Map::new();
        let schedule = self.pick(CRON_SCHEDULES);
        let mut template = self.pod_template(&app);
        template["spec"]["restartPolicy"] = json!(self.pick(&["Never", "OnFailure"]));
        if let Some(m) = template
            .pointer_mut("/spec/containers/0")
            .and_then(Value::as_object_mut)
        {
            for key in ["livenessProbe", "readinessProbe", "startupProbe", "ports"] {
                m.remove(key);
            }
        }
        let (labels, annotations) = self.app_metadata(&app, "CronJob", &name);
        let mut meta = self.metadata(Some(ns), &name, app.created, labels, annotations);
        meta.insert("generation".into(), json!(self.range(1, 5)));
        let runs = self.range(1, 3);
        let interval = self.pick(&[HOUR, 6 * HOUR, DAY, 15 * 60]);
        let last = (self.now - self.range(60, interval as u64) as i64) / 60 * 60;
        let mut cron = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta,
            "spec": {
                "concurrencyPolicy": self.pick(&["Forbid", "Allow", "Replace"]),
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": {
                    "backoffLimit": self.pick(&[0, 1, 3, 6]),
                    "template": template,
                }},
                "schedule": schedule,
                "successfulJobsHistoryLimit": 3,
                "suspend": false,
            },
            "status": {"lastScheduleTime": ts(last), "lastSuccessfulTime": ts(last + self.range(20, 600) as i64)},
        });
        if self.chance(0.4) {
            cron["spec"]["timeZone"] =
                json!(self.pick(&["Etc/UTC", "America/New_York", "Europe/London"]));
        }
        self.applied(&mut cron, app.flavor, app.created);
        Self::status_managed(&mut cron, "kube-controller-manager", last + 30);
        let mut out = vec![cron.clone()];
        for i in (0..runs).rev() {
            let scheduled = last - i as i64 * interval;
            let job = self.job(&cron, scheduled);
            out.push(job.clone());
            let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
            out.push(self.pod_at(&job, node, scheduled + 1));
        }
        out
    }

    pub(in crate::sim) fn job(&mut self, cron: &Value, scheduled: i64) -> Value {
        let ns = cron.str_at("/metadata/namespace").to_string();
        let name = format!("{}-{}", cron.str_at("/metadata/name"), scheduled / 60);
        self.reserve("Job", &ns, &name);
        let uid = self.uid();
        let mut template = cron
            .pointer("/spec/jobTemplate/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let job_labels = labels_of(&[
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid.as_str()),
            ("job-name", name.as_str()),
        ]);
        for (k, v) in &job_labels {
            template["metadata"]["labels"][k] = v.clone();
        }
        let scheduled_at = ts(scheduled);
        let annotations = labels_of(&[(
            "batch.kubernetes.io/cronjob-scheduled-timestamp",
            scheduled_at.as_str(),
        )]);
        let mut meta = self.metadata(Some(&ns), &name, scheduled, job_labels, annotations);
        meta.insert("uid".into(), Value::String(uid.clone()));
        meta.insert("generation".into(), json!(1));
        meta.insert(
            "ownerReferences".into(),
            json!([Self::owner_reference(cron)]),
        );
        let finished = scheduled + self.range(15, 900) as i64;
        let mut job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": {
                "backoffLimit": cron.pointer("/spec/jobTemplate/spec/backoffLimit").cloned().unwrap_or(json!(6)),
                "completionMode": "NonIndexed",
                "completions": 1,
                "manualSelector": false,
                "parallelism": 1,
                "podReplacementPolicy": "TerminatingOrFailed",
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                "suspend": false,
                "template": template,
            },
            "status": {
                "completionTime": ts(finished),
                "conditions": [
                    {"lastProbeTime": ts(finished), "lastTransitionTime": ts(finished), "message": "Reached expected number of succeeded pods", "reason": "CompletionsReached", "status": "True", "type": "SuccessCriteriaMet"},
                    {"lastProbeTime": ts(finished), "lastTransitionTime": ts(finished), "message": "Reached expected number of succeeded pods", "reason": "CompletionsReached", "status": "True", "type": "Complete"},
                ],
                "ready": 0,
                "startTime": ts(scheduled),
                "succeeded": 1,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            },
        });
        let owned = json!({
            "metadata": {
                "annotations": job["metadata"]["annotations"].clone(),
                "labels": job["metadata"]["labels"].clone(),
                "ownerReferences": job["metadata"]["ownerReferences"].clone(),
            },
            "spec": job["spec"].clone(),
        });
        Self::push_managed(
            &mut job,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "batch/v1",
                scheduled,
                fields_of(&owned),
                None,
            ),
        );
        Self::status_managed(&mut job, "kube-controller-manager", finished);
        job
    }
}

impl Churn {
    pub(in crate::sim) fn cron_job_run(&mut self) -> bool {
        let minute = self.clock - self.clock.rem_euclid(60);
        for _ in 0..6 {
            let Some(key) = self.pools[POOL_CRON_JOBS].pick(&mut self.rng) else {
                return false;
            };
            let Some(cron) = self.get(&key) else { continue };
            // Runs may overlap only under `concurrencyPolicy: Allow`.
            let busy = cron.str_at("/spec/concurrencyPolicy") != "Allow"
                && cron
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
            let job_name = format!("{}-{}", key.name, minute / 60);
            if busy
                || terminating(cron)
                || self
                    .objects
                    .contains_key(&Key::new("Job", &key.ns, &job_name))
            {
                continue;
            }
            let cron = cron.clone();
            let now = self.ts();
            let mut job = self.factory.job_for(&cron, minute);
            set(&mut job, "", "status", json!({}));
            set(&mut job, "/metadata", "creationTimestamp", json!(now));
            remove_status_managed(&mut job);
            retime_managed(&mut job, &now);
            let job_key = self.create(job);
            let Some(job) = self.get(&job_key) else {
                return false;
            };
            let reference = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job_key.name,
                "namespace": job_key.ns,
                "resourceVersion": job.str_at("/metadata/resourceVersion"),
                "uid": job.str_at("/metadata/uid"),
            });
            let scheduled = ObjectFactory::timestamp(minute);
            self.modify(&key, |c| {
                let mut active = c
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                active.push(reference);
                set(c, "/status", "active", Value::Array(active));
                set(c, "/status", "lastScheduleTime", json!(scheduled));
                set_status_managed(c, KCM, &now);
            });
            self.mark(&job_key);
            return true;
        }
        false
    }

    pub(in crate::sim) fn reconcile_job(&mut self, key: &Key) {
        let Some(job) = self.get(key) else { return };
        if terminating(job) || job.pointer("/status/completionTime").is_some() {
            return;
        }
        let uid = job.str_at("/metadata/uid").to_string();
        if !self.dependents.contains_key(&uid) {
            let owner = job.clone();
            self.create_pod(&owner);
        }
        let Some(job) = self.get(key) else { return };
        let (active, ready, succeeded) = self.pod_counts(&uid);
        let now = self.ts();
        let start = job
            .pointer("/status/startTime")
            .cloned()
            .unwrap_or_else(|| json!(now));
        let status = if succeeded >= job.u64_or("/spec/completions", 1) {
            let condition = |ty: &str| {
                json!({
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                    "message": "Reached expected number of succeeded pods",
                    "reason": "CompletionsReached",
                    "status": "True",
                    "type": ty,
                })
            };
            json!({
                "completionTime": now,
                "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
                "ready": 0,
                "startTime": start,
                "succeeded": succeeded,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            })
        } else {
            let mut status = json!({
                "ready": ready,
                "startTime": start,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            });
            set_or_remove(&mut status, "active", active.len() as u64);
            status
        };
        if job.get("status") != Some(&status) {
            self.modify(key, |j| {
                set(j, "", "status", status);
                set_status_managed(j, KCM, &now);
            });
            self.mark_owner(key);
        }
    }

    pub(in crate::sim) fn reconcile_cron_job(&mut self, key: &Key) {
        let Some(cron) = self.get(key) else { return };
        if terminating(cron) {
            return;
        }
        let uid = cron.str_at("/metadata/uid").to_string();
        let limit = cron.u64_or("/spec/successfulJobsHistoryLimit", 3) as usize;
        let mut active = Vec::new();
        let mut finished: Vec<(String, Key)> = Vec::new();
        let mut last_success = cron.str_at("/status/lastSuccessfulTime").to_string();
        for k in self.dependents.get(&uid).into_iter().flatten() {
            let Some(job) = self.get(k) else { continue };
            if k.kind != "Job" || terminating(job) {
                continue;
            }
            match job
                .pointer("/status/completionTime")
                .and_then(Value::as_str)
            {
                Some(done) => {
                    if done > last_success.as_str() {
                        last_success = done.to_string();
                    }
                    finished.push((
                        job.str_at("/metadata/creationTimestamp").to_string(),
                        k.clone(),
                    ));
                }
                None => active.push(json!({
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": k.name,
                    "namespace": k.ns,
                    "resourceVersion": job.str_at("/metadata/resourceVersion"),
                    "uid": job.str_at("/metadata/uid"),
                })),
            }
        }
        let mut status = cron.get("status").cloned().unwrap_or_else(|| json!({}));
        // The CronJob controller keeps an active reference as it was recorded.
        let recorded: Vec<Value> = status
            .get("active")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut refs: Vec<Value> = recorded
            .iter()
            .filter(|r| active.iter().any(|a| a.str_at("/uid") == r.str_at("/uid")))
            .cloned()
            .collect();
        for a in active {
            if !refs.iter().any(|r| r.str_at("/uid") == a.str_at("/uid")) {
                refs.push(a);
            }
        }
        if refs != recorded
            && let Some(m) = status.as_object_mut()
        {
            if refs.is_empty() {
                m.remove("active");
            } else {
                m.insert("active".into(), Value::Array(refs));
            }
        }
        if !last_success.is_empty() {
            set(&mut status, "", "lastSuccessfulTime", json!(last_success));
        }
        if cron.get("status") != Some(&status) {
            let now = self.ts();
            self.modify(key, |c| {
                set(c, "", "status", status);
                set_status_managed(c, KCM, &now);
            });
        }
        finished.sort();
        let excess = finished.len().saturating_sub(limit);
        for (_, job) in finished.into_iter().take(excess) {
            self.delete_tree(&job);
        }
    }
}
