//! What a Flink cluster's pods say about why it does not run: an image that
//! cannot be pulled, a container that keeps crashing, a configuration the
//! kubelet refuses. Pure functions over pods, so the rules are tested without
//! a cluster; the reconciler lists the pods and reports what these find.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};

/// Waiting reasons that do not fix themselves without a spec change.
const STUCK_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Restarts after which a container that exits with an error is crashing,
/// not starting up.
const CRASH_RESTARTS: i32 = 2;

/// How long a native TaskManager's exit counts towards a crash loop.
pub const TASKMANAGER_EXIT_WINDOW: Duration = Duration::from_secs(300);

/// Native TaskManager pods ended with an error within the window, after
/// which Flink's replacements are failing, not starting up.
const CRASHED_TASKMANAGERS: usize = 2;

/// Which part of the cluster a failing pod belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    JobManager,
    TaskManager,
}

impl Component {
    fn of(pod: &Pod) -> Option<Self> {
        match pod.metadata.labels.as_ref()?.get("component")?.as_str() {
            "jobmanager" => Some(Self::JobManager),
            "taskmanager" => Some(Self::TaskManager),
            _ => None,
        }
    }

    pub fn event_reason(self) -> &'static str {
        match self {
            Self::JobManager => "JobManagerPodsFailing",
            Self::TaskManager => "TaskManagerPodsFailing",
        }
    }
}

/// The first failure found, JobManager pods before TaskManager pods, as
/// (component, a message naming the pod, the container, the reason and the
/// kubelet's message).
pub fn failure(pods: &[Pod]) -> Option<(Component, String)> {
    let mut found: Vec<(Component, String)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((Component::of(p)?, pod_failure(p)?)))
        .collect();
    found.sort_by_key(|(c, msg)| (*c == Component::TaskManager, msg.clone()));
    found.into_iter().next()
}

fn pod_failure(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref()?;
    for cs in status.container_statuses.iter().flatten() {
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref()
            && STUCK_WAITING.contains(&reason)
        {
            let mut msg = format!("pod {name}: container {} is {reason}", cs.name);
            if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
                msg.push_str(": ");
                msg.push_str(first_line(m));
            }
            // A crash loop's cause is in the last termination.
            if let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                msg.push_str(&format!(" (last exit code {}", t.exit_code));
                if let Some(r) = t.reason.as_deref() {
                    msg.push_str(&format!(", {r}"));
                }
                msg.push(')');
            }
            return Some(msg);
        }
    }
    // A container the kubelet keeps restarting, caught between two
    // back-offs (running again, or just exited).
    for cs in status.container_statuses.iter().flatten() {
        let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let now = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        if let Some(t) = now.or(last).filter(|t| t.exit_code != 0)
            && cs.restart_count >= CRASH_RESTARTS
        {
            return Some(format!(
                "pod {name}: container {} keeps crashing: restarted {} times, last exit code {}{}",
                cs.name,
                cs.restart_count,
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
    }
    // A pod that will not restart (Flink's native TaskManagers) and failed.
    failed_pod(name, status)
}

/// A pod that ended with an error (phase Failed), with its exit code.
fn failed_pod(name: &str, status: &PodStatus) -> Option<String> {
    if status.phase.as_deref() != Some("Failed") {
        return None;
    }
    let exit = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|cs| cs.state.as_ref()?.terminated.as_ref())
        .map(|t| {
            format!(
                " (exit code {}{})",
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let why = status
        .message
        .as_deref()
        .or(status.reason.as_deref())
        .map(|m| format!(": {}", first_line(m)))
        .unwrap_or_default();
    Some(format!("pod {name} failed{exit}{why}"))
}

/// Why a native TaskManager pod ended, if it ended with an error on its own.
/// Flink takes a TaskManager for gone as soon as one of its containers has
/// terminated (whatever the pod's phase), deletes the pod and asks for a new
/// one, so a reconcile listing pods almost never sees it: the controller
/// watches them and remembers these in [`TaskManagerExits`]. Pods being
/// deleted (suspend, upgrade, Flink releasing an idle TaskManager) are
/// stopped, not failing.
pub fn taskmanager_exit(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some()
        || Component::of(pod) != Some(Component::TaskManager)
    {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref()?;
    let exited = status.container_statuses.iter().flatten().find_map(|cs| {
        let t = cs.state.as_ref()?.terminated.as_ref()?;
        (t.exit_code != 0).then_some((cs.name.as_str(), t))
    });
    match exited {
        Some((container, t)) => Some(format!(
            "pod {name}: container {container} exited with code {}{}",
            t.exit_code,
            t.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        None => failed_pod(name, status),
    }
}

/// The recent error exits of one cluster's native TaskManager pods.
#[derive(Debug, Default)]
pub struct TaskManagerExits {
    /// (when it was seen, pod name, why), oldest first, one per pod.
    exits: VecDeque<(Instant, String, String)>,
}

impl TaskManagerExits {
    /// Records a pod's exit once, however often its status is seen again;
    /// whether it was new.
    pub fn record(&mut self, now: Instant, pod: &str, why: String) -> bool {
        self.forget_before(now);
        let new = !self.exits.iter().any(|(_, p, _)| p == pod);
        if new {
            self.exits.push_back((now, pod.to_owned(), why));
        }
        new
    }

    /// A crash loop: enough TaskManager pods failed within the window.
    pub fn crash_loop(&mut self, now: Instant) -> Option<String> {
        self.forget_before(now);
        if self.exits.len() < CRASHED_TASKMANAGERS {
            return None;
        }
        let (_, _, last) = self.exits.back()?;
        Some(format!(
            "TaskManager pods keep failing: {} ended with an error in the last {} minutes; the last: {last}",
            self.exits.len(),
            TASKMANAGER_EXIT_WINDOW.as_secs() / 60
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.exits.is_empty()
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.exits.front() {
            if now.saturating_duration_since(*at) <= TASKMANAGER_EXIT_WINDOW {
                break;
            }
            self.exits.pop_front();
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(component: &str, name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "orders", "component": component}},
            "status": status,
        }))
        .expect("test pod")
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        json!({"phase": "Pending", "containerStatuses": [{
            "name": "flink-main-container", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_named_with_the_kubelets_message() {
        let pods = [pod(
            "jobmanager",
            "orders-abc",
            waiting("ErrImagePull", "pull access denied for flink:9.9\nmore"),
        )];
        let (c, msg) = failure(&pods).expect("a failure");
        assert_eq!(c, Component::JobManager);
        assert_eq!(
            msg,
            "pod orders-abc: container flink-main-container is ErrImagePull: pull access denied for flink:9.9"
        );
    }

    #[test]
    fn a_crash_loop_reports_the_last_exit() {
        let status = json!({"phase": "Running", "containerStatuses": [{
            "name": "flink-main-container", "image": "x", "imageID": "", "ready": false,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]});
        let (c, msg) = failure(&[pod("taskmanager", "orders-tm-1", status)]).unwrap();
        assert_eq!(c, Component::TaskManager);
        assert!(msg.ends_with("(last exit code 1, Error)"), "{msg}");
    }

    #[test]
    fn a_container_restarting_with_errors_is_crashing_even_between_back_offs() {
        let status = |restarts: i32| {
            json!({"phase": "Running", "containerStatuses": [{
                "name": "flink-main-container", "image": "x", "imageID": "", "ready": true,
                "restartCount": restarts, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]})
        };
        assert_eq!(
            failure(&[pod("jobmanager", "jm", status(1))]),
            None,
            "one restart may be a hiccup"
        );
        let (_, msg) = failure(&[pod("jobmanager", "jm", status(3))]).unwrap();
        assert_eq!(
            msg,
            "pod jm: container flink-main-container keeps crashing: restarted 3 times, last exit code 1 (Error)"
        );
        let clean = json!({"phase": "Running", "containerStatuses": [{
            "name": "flink-main-container", "image": "x", "imageID": "", "ready": true,
            "restartCount": 5, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(
            failure(&[pod("jobmanager", "jm", clean)]),
            None,
            "clean exits are no crash"
        );
    }

    #[test]
    fn a_failed_native_taskmanager_pod_is_reported() {
        let status = json!({"phase": "Failed", "containerStatuses": [{
            "name": "flink-main-container", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
        let (_, msg) = failure(&[pod("taskmanager", "orders-taskmanager-1-3", status)]).unwrap();
        assert_eq!(
            msg,
            "pod orders-taskmanager-1-3 failed (exit code 137, OOMKilled)"
        );
    }

    #[test]
    fn native_taskmanager_exits_become_a_crash_loop_within_the_window() {
        let exited = |name: &str, code: i32| {
            pod(
                "taskmanager",
                name,
                json!({"phase": "Failed", "containerStatuses": [{
                    "name": "flink-main-container", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": "Error"}}}]}),
            )
        };
        let first = taskmanager_exit(&exited("orders-taskmanager-1-1", 1)).expect("an exit");
        assert_eq!(
            first,
            "pod orders-taskmanager-1-1: container flink-main-container exited with code 1 (Error)"
        );
        let mut being_deleted = exited("orders-taskmanager-1-9", 143);
        being_deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            taskmanager_exit(&being_deleted),
            None,
            "stopped, not failing"
        );
        // Flink reacts to the container's end before the phase says Failed.
        let still_running = pod(
            "taskmanager",
            "orders-taskmanager-1-4",
            json!({"phase": "Running", "containerStatuses": [{
                "name": "flink-main-container", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 1}}}]}),
        );
        assert_eq!(
            taskmanager_exit(&still_running).as_deref(),
            Some("pod orders-taskmanager-1-4: container flink-main-container exited with code 1")
        );
        let evicted = pod(
            "taskmanager",
            "orders-taskmanager-1-5",
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        );
        assert_eq!(
            taskmanager_exit(&evicted).as_deref(),
            Some("pod orders-taskmanager-1-5 failed: low on memory")
        );
        let jm = pod("jobmanager", "orders-jm", json!({"phase": "Failed"}));
        assert_eq!(
            taskmanager_exit(&jm),
            None,
            "JobManagers are not TaskManagers"
        );

        let t0 = Instant::now();
        let mut exits = TaskManagerExits::default();
        exits.record(t0, "orders-taskmanager-1-1", first.clone());
        exits.record(t0 + Duration::from_secs(1), "orders-taskmanager-1-1", first);
        assert_eq!(
            exits.crash_loop(t0 + Duration::from_secs(2)),
            None,
            "one pod, seen twice"
        );
        let second = taskmanager_exit(&exited("orders-taskmanager-1-2", 1)).unwrap();
        exits.record(
            t0 + Duration::from_secs(10),
            "orders-taskmanager-1-2",
            second,
        );
        let msg = exits
            .crash_loop(t0 + Duration::from_secs(11))
            .expect("a crash loop");
        assert_eq!(
            msg,
            "TaskManager pods keep failing: 2 ended with an error in the last 5 minutes; \
             the last: pod orders-taskmanager-1-2: container flink-main-container exited with code 1 (Error)"
        );
        let later = t0 + TASKMANAGER_EXIT_WINDOW + Duration::from_secs(5);
        assert_eq!(exits.crash_loop(later), None, "the first exit is forgotten");
        assert!(!exits.is_empty());
        assert_eq!(exits.crash_loop(later + Duration::from_secs(10)), None);
        assert!(exits.is_empty(), "every exit is forgotten");
    }

    #[test]
    fn jobmanager_failures_come_first_and_healthy_or_starting_pods_are_none() {
        let running = json!({"phase": "Running", "containerStatuses": [{
            "name": "flink-main-container", "image": "x", "imageID": "", "ready": true,
            "restartCount": 0, "state": {"running": {}}}]});
        let creating = waiting("ContainerCreating", "");
        assert_eq!(
            failure(&[
                pod("jobmanager", "jm", running.clone()),
                pod("taskmanager", "tm", creating)
            ]),
            None
        );
        let pods = [
            pod("taskmanager", "tm", waiting("ImagePullBackOff", "back-off")),
            pod(
                "jobmanager",
                "jm",
                waiting("CreateContainerConfigError", "no key"),
            ),
        ];
        assert_eq!(failure(&pods).unwrap().0, Component::JobManager);
    }

    #[test]
    fn pods_being_deleted_or_of_no_component_are_ignored() {
        let mut p = pod("jobmanager", "old", waiting("ErrImagePull", ""));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(failure(&[p]), None);
        assert_eq!(
            failure(&[pod("sidecar", "x", waiting("ErrImagePull", ""))]),
            None
        );
    }
}
