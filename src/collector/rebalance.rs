//! Carries out `scheduling.rebalance` on the leader: gathers what the pure
//! decision ([`crate::scheduler::rebalance`]) needs, only for jobs with a
//! TaskManager on a node that stayed below the floor, and moves at most one
//! TaskManager per job: deletes the pod, records an Event on the
//! FlinkDeployment and counts the move.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::flink::crd::FlinkDeployment;
use crate::flink::rest::FlinkRestClient;
use crate::policy::SchedulingRules;
use crate::quantity::parse_quantity;
use crate::scheduler::rebalance::{self, JobView, Move, NodeView, TaskManagerView};
use crate::scheduler::score::NodeScore;
use crate::telemetry::{JobLabels, Metrics};

/// A running job seen in this cycle: its FlinkDeployment (`namespace/name`),
/// its JobManager and whether every subtask runs.
pub struct RunningJob {
    pub cluster: String,
    pub rest: FlinkRestClient,
    pub jid: String,
    pub all_running: bool,
}

/// What the leader remembers between cycles.
#[derive(Debug, Default)]
pub struct RebalanceState {
    /// Nodes below the floor -> since (unix seconds).
    pub below_since: BTreeMap<String, f64>,
    /// FlinkDeployment `namespace/name` -> its last move (unix seconds). A
    /// new leader starts empty: at worst one early move after a failover.
    pub last_moves: HashMap<String, f64>,
}

/// One pass: updates the below-floor times, then moves what the decision says.
#[allow(clippy::too_many_arguments)]
pub async fn heal(
    client: &Client,
    jobs: &[RunningJob],
    taskmanager_pods: &[impl Borrow<Pod>],
    scores: &BTreeMap<String, NodeScore>,
    state: &mut RebalanceState,
    now: f64,
    rules: &SchedulingRules,
    metrics: &Metrics,
) {
    state.below_since = rebalance::below_floor_since(&state.below_since, scores, now, rules);
    if !rules.rebalance.enabled {
        return;
    }
    let long_below = |node: &str| {
        state
            .below_since
            .get(node)
            .is_some_and(|t| now - t >= rules.rebalance.below_floor_seconds)
    };
    let mut nodes: Option<Vec<NodeView>> = None;
    for job in jobs {
        let (ns, name) = job.cluster.split_once('/').unwrap_or(("", &job.cluster));
        let tms = taskmanagers_of(taskmanager_pods, ns, name);
        if !tms.iter().any(|tm| long_below(&tm.node)) {
            continue;
        }
        // Only now the facts that cost requests.
        let view = match job_view(client, job, ns, name, tms, state).await {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(flinkdeployment = %job.cluster, error = %e, "rebalance: cannot read the job's state");
                continue;
            }
        };
        if nodes.is_none() {
            match node_views(client).await {
                Ok(v) => nodes = Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "rebalance: cannot list nodes and pods");
                    return;
                }
            }
        }
        let node_list = nodes.as_deref().unwrap_or_default();
        match rebalance::decide(&view, node_list, scores, &state.below_since, now, rules) {
            Ok(m) => {
                if let Err(e) = carry_out(client, ns, name, &m, metrics).await {
                    tracing::warn!(flinkdeployment = %job.cluster, pod = %m.pod, error = %e, "rebalance: cannot move the TaskManager");
                    continue;
                }
                state.last_moves.insert(job.cluster.clone(), now);
            }
            Err(stay) => {
                tracing::debug!(flinkdeployment = %job.cluster, ?stay, "rebalance: the job stays")
            }
        }
    }
    state
        .last_moves
        .retain(|_, t| now - *t < rules.rebalance.cooldown_seconds);
}

async fn job_view(
    client: &Client,
    job: &RunningJob,
    ns: &str,
    name: &str,
    taskmanagers: Vec<TaskManagerView>,
    state: &RebalanceState,
) -> Result<Option<JobView>, String> {
    let api: Api<FlinkDeployment> = Api::namespaced(client.clone(), ns);
    // Only FlinkDeployments: a move is recorded as an Event on one.
    let Some(d) = api.get_opt(name).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let checkpoints = job
        .rest
        .completed_checkpoints(&job.jid)
        .await
        .map_err(|e| e.to_string())?;
    let status = serde_json::to_value(&d.status).unwrap_or_default();
    Ok(Some(JobView {
        id: job.cluster.clone(),
        checkpointed: checkpoints > 0,
        running: job.all_running,
        changing: change_in_flight(&status),
        last_move: state.last_moves.get(&job.cluster).copied(),
        taskmanagers,
    }))
}

/// A FlinkDeployment status that is not STABLE, or has a savepoint pending.
fn change_in_flight(status: &serde_json::Value) -> bool {
    let stable = status.get("lifecycleState").and_then(|v| v.as_str()) == Some("STABLE");
    let savepoint = status
        .pointer("/jobStatus/savepointInfo/triggerId")
        .and_then(|v| v.as_str())
        .is_some_and(|t| !t.is_empty());
    !stable || savepoint
}

async fn carry_out(
    client: &Client,
    ns: &str,
    name: &str,
    m: &Move,
    metrics: &Metrics,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.delete(&m.pod, &DeleteParams::default()).await?;
    tracing::info!(flinkdeployment = %m.job, pod = %m.pod, node = %m.node, reason = %m.reason, "rebalance: moved a TaskManager");
    metrics
        .rebalance_moves
        .get_or_create(&JobLabels {
            namespace: ns.into(),
            name: name.into(),
        })
        .inc();
    let api: Api<FlinkDeployment> = Api::namespaced(client.clone(), ns);
    if let Ok(d) = api.get(name).await {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "flinkgate-collector".into(),
                instance: None,
            },
        );
        let event = Event {
            type_: EventType::Normal,
            reason: "TaskManagerMoved".into(),
            note: Some(format!(
                "deleted TaskManager pod {} on {}: {}; Flink restores the job from its latest checkpoint and the replacement is placed by measured performance",
                m.pod, m.node, m.reason
            )),
            action: "Rebalance".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &d.object_ref(&())).await {
            tracing::warn!(error = %e, "rebalance: cannot publish the Event");
        }
    }
    Ok(())
}

async fn node_views(client: &Client) -> Result<Vec<NodeView>, kube::Error> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
        .await?;
    Ok(free_capacity(&nodes.items, &pods.items))
}

/// Each node's room: allocatable minus what its pods request; cordoned or
/// not Ready nodes take nothing.
pub fn free_capacity(nodes: &[Node], pods: &[Pod]) -> Vec<NodeView> {
    let mut requested: HashMap<&str, (i64, i64)> = HashMap::new();
    for pod in pods {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let (cpu, mem) = requests(pod);
        let e = requested.entry(node).or_default();
        e.0 += cpu;
        e.1 += mem;
    }
    nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            let status = n.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let cordoned = n
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false);
            let alloc = status.and_then(|s| s.allocatable.as_ref());
            let quantity = |k: &str| {
                alloc
                    .and_then(|a| a.get(k))
                    .and_then(|q| parse_quantity(&q.0).ok())
                    .unwrap_or(0.0)
            };
            let (used_cpu, used_mem) = requested.get(name.as_str()).copied().unwrap_or_default();
            Some(NodeView {
                free_cpu_millis: (quantity("cpu") * 1000.0).round() as i64 - used_cpu,
                free_memory_bytes: quantity("memory").round() as i64 - used_mem,
                schedulable: ready && !cordoned,
                name,
            })
        })
        .collect()
}

/// CPU (millis) and memory (bytes) a pod requests: its containers' sum, or
/// an init container's if larger, as the scheduler counts.
fn requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let q = |k: &str| {
            r.and_then(|r| r.get(k))
                .and_then(|q| parse_quantity(&q.0).ok())
                .unwrap_or(0.0)
        };
        (
            (q("cpu") * 1000.0).round() as i64,
            q("memory").round() as i64,
        )
    };
    let (mut cpu, mut mem) = spec
        .containers
        .iter()
        .map(of)
        .fold((0, 0), |(a, b), (c, m)| (a + c, b + m));
    for init in spec.init_containers.iter().flatten() {
        let (c, m) = of(init);
        cpu = cpu.max(c);
        mem = mem.max(m);
    }
    (cpu, mem)
}

/// The TaskManager pods of the cluster `ns/name` that are placed and not
/// being deleted.
pub fn taskmanagers_of(pods: &[impl Borrow<Pod>], ns: &str, name: &str) -> Vec<TaskManagerView> {
    pods.iter()
        .map(Borrow::borrow)
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .is_some_and(|a| a == name)
        })
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let (cpu_millis, memory_bytes) = requests(p);
            Some(TaskManagerView {
                pod: p.metadata.name.clone()?,
                node,
                cpu_millis,
                memory_bytes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, app: &str, node: &str, cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "component": "taskmanager"}},
            "spec": {"nodeName": node, "containers": [
                {"name": "flink-main-container", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]},
        }))
        .expect("test pod")
    }

    fn node(name: &str, ready: bool, cordoned: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": cordoned},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi"},
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        }))
        .expect("test node")
    }

    #[test]
    fn free_capacity_subtracts_requests_and_marks_unusable_nodes() {
        let pods = [
            pod("a", "tm-1", "orders", "n1", "500m", "1Gi"),
            pod("a", "tm-2", "orders", "n1", "250m", "512Mi"),
            pod("b", "x", "other", "n2", "1", "1Gi"),
        ];
        let views = free_capacity(
            &[
                node("n1", true, false),
                node("n2", true, true),
                node("n3", false, false),
            ],
            &pods,
        );
        assert_eq!(views[0].free_cpu_millis, 1250);
        assert_eq!(views[0].free_memory_bytes, (4 << 30) - (3 << 29));
        assert!(views[0].schedulable);
        assert!(!views[1].schedulable, "cordoned");
        assert!(!views[2].schedulable, "not Ready");
        assert_eq!(views[2].free_cpu_millis, 2000);
    }

    #[test]
    fn taskmanagers_of_one_cluster_only() {
        let mut leaving = pod("a", "tm-3", "orders", "n2", "1", "1Gi");
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let pods = [
            pod("a", "tm-1", "orders", "n1", "500m", "1Gi"),
            pod("b", "tm-1", "orders", "n1", "500m", "1Gi"),
            pod("a", "tm-2", "payments", "n1", "500m", "1Gi"),
            leaving,
        ];
        let tms = taskmanagers_of(&pods, "a", "orders");
        assert_eq!(tms.len(), 1);
        assert_eq!(tms[0].pod, "tm-1");
        assert_eq!(tms[0].cpu_millis, 500);
        assert_eq!(tms[0].memory_bytes, 1 << 30);
    }

    #[test]
    fn only_a_stable_deployment_without_a_pending_savepoint_may_move() {
        assert!(!change_in_flight(&json!({"lifecycleState": "STABLE"})));
        assert!(change_in_flight(&json!({"lifecycleState": "UPGRADING"})));
        assert!(change_in_flight(&json!({})));
        assert!(change_in_flight(
            &json!({"lifecycleState": "STABLE", "jobStatus": {"savepointInfo": {"triggerId": "abc"}}})
        ));
    }
}
