//! Whether a JobManager or TaskManager gets a memory model Flink can start
//! with. The operator writes the pod's memory (`resource.memory`, or
//! `resources` requests-or-limits) into Flink's total process size; Flink
//! then divides it, together with any finer keys in `flinkConfiguration`.
//! Without a pod memory, the configuration alone must size the process
//! (for example `jobmanager.memory.heap.size`, or task heap plus managed
//! memory).

use crate::admission::violation::Violation;
use crate::flink::config::Flat;
use crate::flink::crd::{Resource, ResourceRequirements};
use crate::flink::memory::{self, MemoryModelError};
use crate::flink::pod::Component;
use crate::quantity::{parse_flink_memory, quantity_text};

/// The key the operator writes a component's pod memory to.
pub fn process_size_key(component: Component) -> &'static str {
    match component {
        Component::JobManager => "jobmanager.memory.process.size",
        Component::TaskManager => "taskmanager.memory.process.size",
    }
}

/// Flink's derivation for `component`, keeping only the total process size.
/// `process_size` is the pod memory the operator writes to
/// [`process_size_key`], over any value the configuration has.
fn derive_uncached(
    component: Component,
    flat: &Flat,
    process_size: Option<u64>,
) -> Result<u64, MemoryModelError> {
    let with_pod;
    let flat = match process_size {
        Some(bytes) => {
            let mut f = flat.clone();
            f.insert(process_size_key(component).to_string(), bytes.to_string());
            with_pod = f;
            &with_pod
        }
        None => flat,
    };
    match component {
        Component::JobManager => memory::job_manager(flat).map(|m| m.total_process),
        Component::TaskManager => memory::task_manager(flat).map(|m| m.total_process),
    }
}

/// Configurations remembered per thread by [`derive`].
const REMEMBERED: usize = 32;

type Remembered = (
    Component,
    Option<u64>,
    Vec<(String, String)>,
    Result<u64, MemoryModelError>,
);

/// [`derive_uncached`], remembered: the derivation is pure and cost as much
/// as the rest of a FlinkDeployment's validation (each review derives both
/// components, mutation once more), while the reviews of one deployment
/// repeat its configuration. A hit compares the whole configuration and the
/// pod memory, so it can never answer for another one.
fn derive(
    component: Component,
    flat: &Flat,
    process_size: Option<u64>,
) -> Result<u64, MemoryModelError> {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<Remembered>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let same = |entries: &[(String, String)]| {
        entries.len() == flat.len()
            && entries
                .iter()
                .zip(flat)
                .all(|((k, v), (fk, fv))| k == fk && v == fv)
    };
    if let Some(known) = SEEN.with(|seen| {
        seen.borrow()
            .iter()
            .find(|(c, size, entries, _)| *c == component && *size == process_size && same(entries))
            .map(|(_, _, _, result)| result.clone())
    }) {
        return known;
    }
    let result = derive_uncached(component, flat, process_size);
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() >= REMEMBERED {
            drop(seen.remove(0)); // the oldest
        }
        let entries = flat.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        seen.push((component, process_size, entries, result.clone()));
    });
    result
}

/// True when the configuration sizes the process by itself, rightly or
/// wrongly; mutation then adds no memory of its own.
pub fn sized_by_configuration(component: Component, flat: &Flat) -> bool {
    !derive(component, flat, None).is_err_and(|e| e.is_not_configured())
}

/// The pod memory the operator would deploy with, and the field under the
/// component it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMemory {
    /// `resources.requests.memory`, `resources.limits.memory` or `resource.memory`.
    pub field: &'static str,
    pub bytes: u64,
}

impl PodMemory {
    /// The field's path under the component's path `base`.
    pub fn path(&self, base: &str) -> String {
        format!("{base}.{}", self.field)
    }
}

/// The pod memory: `resources` (request, else limit) when it has any entry,
/// else `resource.memory`. `None` when absent or unreadable (reported
/// elsewhere).
pub fn pod_memory(
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
) -> Option<PodMemory> {
    if let Some(r) = resources.filter(|r| !r.is_empty()) {
        let (kind, q) = r.request_or_limit("memory")?;
        let bytes = parse_flink_memory(&quantity_text(q)).ok()?;
        let field = if kind == "requests" {
            "resources.requests.memory"
        } else {
            "resources.limits.memory"
        };
        return Some(PodMemory { field, bytes });
    }
    let text = resource?.memory.as_ref()?;
    let bytes = parse_flink_memory(text).ok()?;
    Some(PodMemory {
        field: "resource.memory",
        bytes,
    })
}

/// The memory rule for one component. `pod` is [`pod_memory`];
/// `memory_written` says whether the user wrote a pod memory at all (an
/// unreadable one is reported by its own rule). Returns the total process
/// size Flink derives, for the policy's maximum.
pub fn check(
    base: &str,
    component: Component,
    flat: &Flat,
    pod: Option<&PodMemory>,
    memory_written: bool,
    v: &mut Vec<Violation>,
) -> Option<u64> {
    let key = process_size_key(component);
    match derive(component, flat, pod.map(|p| p.bytes)) {
        Ok(total) => Some(total),
        Err(e) if e.is_not_configured() => {
            if !memory_written {
                v.push(Violation::new(
                    format!("{base}.resource.memory"),
                    format!("no {} memory is given, and spec.flinkConfiguration does not size it either", component.title()),
                    format!("set {base}.resource.memory (e.g. 2048m) or {base}.resources.limits.memory, or size it in spec.flinkConfiguration ({key}, or the finer keys Flink accepts)"),
                ));
            }
            None
        }
        Err(e) => {
            let (path, message) = match pod {
                Some(pod) => (
                    pod.path(base),
                    format!(
                        "{} becomes {key}, which Flink cannot divide: {e}",
                        memory::size(pod.bytes)
                    ),
                ),
                None => (
                    "spec.flinkConfiguration".to_string(),
                    format!("Flink cannot size the {} from it: {e}", component.title()),
                ),
            };
            v.push(Violation::new(
                path,
                message,
                "change the sizes named above so the parts fit in the total",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_derivations_equal_computed_ones() {
        let configs = [
            flat(&[]),
            flat(&[("taskmanager.memory.process.size", "2g")]),
            flat(&[("jobmanager.memory.process.size", "1600m")]),
            flat(&[("taskmanager.memory.process.size", "64m")]),
            flat(&[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.memory.managed.fraction", "0.6"),
            ]),
            flat(&[
                ("taskmanager.memory.task.heap.size", "512m"),
                ("taskmanager.memory.managed.size", "256m"),
            ]),
        ];
        // Twice round, more configurations than are remembered: first
        // computed, then (for some) remembered, always equal.
        for _ in 0..2 {
            for i in 0..REMEMBERED + 5 {
                let mut f = configs[i % configs.len()].clone();
                f.insert("pipeline.name".into(), format!("job-{}", i / configs.len()));
                for c in [Component::JobManager, Component::TaskManager] {
                    for pod in [None, Some(2u64 << 30), Some(64 << 20)] {
                        assert_eq!(
                            derive(c, &f, pod),
                            derive_uncached(c, &f, pod),
                            "{c:?} {pod:?} {f:?}"
                        );
                    }
                }
            }
        }
    }

    fn flat(pairs: &[(&str, &str)]) -> Flat {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fine_grained_keys_size_a_process() {
        let jm = flat(&[("jobmanager.memory.heap.size", "1g")]);
        assert!(sized_by_configuration(Component::JobManager, &jm));
        let mut v = Vec::new();
        assert!(
            check(
                "spec.jobManager",
                Component::JobManager,
                &jm,
                None,
                false,
                &mut v
            )
            .is_some()
        );
        assert!(v.is_empty(), "{v:?}");
        let tm = flat(&[
            ("taskmanager.memory.task.heap.size", "1g"),
            ("taskmanager.memory.managed.size", "512m"),
        ]);
        assert!(sized_by_configuration(Component::TaskManager, &tm));
        assert!(!sized_by_configuration(Component::TaskManager, &flat(&[])));
    }

    #[test]
    fn pod_memory_too_small_for_its_parts() {
        let mut v = Vec::new();
        let pod = PodMemory {
            field: "resource.memory",
            bytes: 64 << 20,
        };
        check(
            "spec.taskManager",
            Component::TaskManager,
            &flat(&[]),
            Some(&pod),
            true,
            &mut v,
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].path, "spec.taskManager.resource.memory");
        assert!(
            v[0].message.contains("taskmanager.memory.process.size"),
            "{v:?}"
        );
    }

    #[test]
    fn configuration_that_cannot_work() {
        let mut v = Vec::new();
        let cfg = flat(&[("taskmanager.memory.process.size", "64m")]);
        check(
            "spec.taskManager",
            Component::TaskManager,
            &cfg,
            None,
            false,
            &mut v,
        );
        assert_eq!(v[0].path, "spec.flinkConfiguration");
        let mut v = Vec::new();
        check(
            "spec.taskManager",
            Component::TaskManager,
            &flat(&[]),
            None,
            false,
            &mut v,
        );
        assert!(v[0].message.contains("no TaskManager memory"), "{v:?}");
    }

    #[test]
    fn requirements_win_over_resource() {
        let resource = Resource {
            memory: Some("1g".into()),
            ..Resource::default()
        };
        let reqs: ResourceRequirements =
            serde_json::from_value(serde_json::json!({"limits": {"memory": "2Gi"}})).unwrap();
        let pod = pod_memory(Some(&resource), Some(&reqs)).unwrap();
        assert_eq!(
            (pod.path("spec.taskManager").as_str(), pod.bytes),
            ("spec.taskManager.resources.limits.memory", 2 << 30)
        );
        let pod = pod_memory(Some(&resource), None).unwrap();
        assert_eq!(
            pod.path("spec.taskManager"),
            "spec.taskManager.resource.memory"
        );
        let reqs: ResourceRequirements =
            serde_json::from_value(serde_json::json!({"requests": {"memory": "1Gi"}})).unwrap();
        let pod = pod_memory(None, Some(&reqs)).unwrap();
        assert_eq!(pod.field, "resources.requests.memory");
    }
}
