//! Mutation: fills what the user left out from the policy's defaults. It
//! edits the object as JSON, so fields no type knows are never touched, and
//! the caller turns the difference into an RFC 6902 patch. Only absent values
//! are filled: the user's explicit value wins (limits, not mutation, say
//! whether it is allowed). Applying it twice changes nothing the second time.

use serde_json::{Map, Value};

use crate::admission::component_memory;
use crate::flink::config;
use crate::flink::crd::{FlinkDeploymentSpec, FlinkSessionJobSpec, Resource, ResourceRequirements};
use crate::flink::pod::{Component, MAIN_CONTAINER};
use crate::policy::{PodComponentRules, ResourceDefaults, Rules};

/// Marks objects flinkgate admitted (and mutated where it had to).
pub const ADMITTED_LABEL: &str = "flinkgate.io/admitted";
/// The label the operator puts on session jobs, naming their cluster.
pub const TARGET_SESSION_LABEL: &str = "target.session";
const DEFAULT_SCHEDULER: &str = "default-scheduler";

pub fn flink_deployment(obj: &mut Value, spec: &FlinkDeploymentSpec, rules: &Rules) {
    let d = &rules.defaults;
    add_labels(obj, d.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let Some(spec_obj) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let cfg = spec.flink_configuration.as_ref();
    let missing: Vec<(&String, &String)> = d
        .flink_configuration
        .iter()
        .filter(|(k, _)| !config::contains(cfg, k))
        .collect();
    if !missing.is_empty() {
        let target = child_object(spec_obj, "flinkConfiguration");
        for (k, v) in missing {
            target.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if let Some(job) = spec_obj.get_mut("job").and_then(Value::as_object_mut) {
        job_defaults(job, rules);
    }
    // The configuration as it will be, the policy's additions included:
    // where it sizes a process by itself (even with only finer keys such as
    // jobmanager.memory.heap.size), a default pod memory would override
    // that, and possibly with a total smaller than its parts.
    let mut flat = config::flatten(cfg);
    for (k, v) in &d.flink_configuration {
        flat.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let jm = spec.job_manager.as_ref();
    let tm = spec.task_manager.as_ref();
    component_resource(
        spec_obj,
        "jobManager",
        jm.and_then(|j| j.resource.as_ref()),
        jm.and_then(|j| j.resources.as_ref()),
        component_memory::sized_by_configuration(Component::JobManager, &flat),
        d.job_manager.as_ref(),
    );
    component_resource(
        spec_obj,
        "taskManager",
        tm.and_then(|t| t.resource.as_ref()),
        tm.and_then(|t| t.resources.as_ref()),
        component_memory::sized_by_configuration(Component::TaskManager, &flat),
        d.task_manager.as_ref(),
    );
}

pub fn flink_session_job(obj: &mut Value, spec: &FlinkSessionJobSpec, rules: &Rules) {
    add_labels(
        obj,
        rules
            .defaults
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    // The operator finds a session's jobs by this label, so it follows
    // deploymentName, overwriting a stale value.
    if let Some(session) = spec.deployment_name.as_deref().filter(|n| !n.is_empty())
        && let Some(labels) = obj
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
    {
        labels.insert(
            TARGET_SESSION_LABEL.into(),
            Value::String(session.to_string()),
        );
    }
    if let Some(job) = obj.pointer_mut("/spec/job").and_then(Value::as_object_mut) {
        job_defaults(job, rules);
    }
}

pub fn flink_pod(obj: &mut Value, component: Component, rules: &Rules) {
    let pr: &PodComponentRules = match component {
        Component::JobManager => &rules.pods.job_manager,
        Component::TaskManager => &rules.pods.task_manager,
    };
    add_labels(
        obj,
        rules
            .pods
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(rp) = &pr.restart_policy {
        spec.insert("restartPolicy".into(), Value::String(rp.clone()));
    }
    if let Some(scheduler) = &pr.scheduler_name {
        let current = spec.get("schedulerName").and_then(Value::as_str);
        // The API server defaults schedulerName before admission, so the
        // default value cannot be told from an explicit one; anything else
        // was the user's choice and stays.
        if current.is_none_or(|s| s == DEFAULT_SCHEDULER) {
            spec.insert("schedulerName".into(), Value::String(scheduler.clone()));
        }
    }
    if let Some(res) = &pr.resources
        && let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut)
    {
        let idx = containers
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(MAIN_CONTAINER))
            .unwrap_or(0);
        if let Some(container) = containers.get_mut(idx).and_then(Value::as_object_mut) {
            let empty = container
                .get("resources")
                .is_none_or(|r| r.as_object().is_none_or(|m| m.values().all(is_empty)));
            if empty {
                let mut r = Map::new();
                for (kind, map) in [("requests", &res.requests), ("limits", &res.limits)] {
                    if !map.is_empty() {
                        r.insert(kind.into(), serde_json::to_value(map).unwrap_or_default());
                    }
                }
                if !r.is_empty() {
                    container.insert("resources".into(), Value::Object(r));
                }
            }
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn job_defaults(job: &mut Map<String, Value>, rules: &Rules) {
    if !job.contains_key("parallelism")
        && let Some(p) = rules.defaults.parallelism
    {
        let capped = rules
            .limits
            .max_parallelism
            .map_or(p, |max| p.min(max))
            .max(rules.limits.min_parallelism);
        job.insert("parallelism".into(), Value::from(capped));
    }
    if !job.contains_key("upgradeMode")
        && let Some(m) = &rules.defaults.upgrade_mode
    {
        job.insert("upgradeMode".into(), Value::String(m.clone()));
    }
}

/// Fills `spec.<name>.resource.cpu|memory` when no cpu / memory is given by
/// any of the operator's means.
fn component_resource(
    spec: &mut Map<String, Value>,
    name: &str,
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
    memory_in_config: bool,
    defaults: Option<&ResourceDefaults>,
) {
    let Some(defaults) = defaults else { return };
    let in_resources = |key: &str| {
        resources.is_some_and(|r| {
            [&r.requests, &r.limits]
                .into_iter()
                .any(|m| m.as_ref().is_some_and(|m| m.contains_key(key)))
        })
    };
    let cpu_given = resource.is_some_and(|r| r.cpu.is_some()) || in_resources("cpu");
    let memory_given =
        resource.is_some_and(|r| r.memory.is_some()) || in_resources("memory") || memory_in_config;
    let cpu = defaults.cpu.filter(|_| !cpu_given);
    let memory = defaults.memory.as_ref().filter(|_| !memory_given);
    if cpu.is_none() && memory.is_none() {
        return;
    }
    let target = child_object(child_object(spec, name), "resource");
    if let Some(cpu) = cpu {
        target.insert("cpu".into(), Value::from(cpu));
    }
    if let Some(memory) = memory {
        target.insert("memory".into(), Value::String(memory.clone()));
    }
}

/// Adds labels the object does not have yet, plus flinkgate's own.
fn add_labels<'a>(obj: &mut Value, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = child_object(root, "metadata");
    let target = child_object(meta, "labels");
    for (k, v) in labels.chain(std::iter::once((ADMITTED_LABEL, "true"))) {
        if !target.contains_key(k) {
            target.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
}

/// The object under `key`, created when absent or null.
fn child_object<'m>(parent: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}
