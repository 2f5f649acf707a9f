//! With no data, placement is what kube-scheduler does without the extender.
//!
//! Two identical sets of three kwok nodes, each node of a set with its own
//! cpu/memory shape, so kube-scheduler's built-in scores (LeastAllocated +
//! BalancedAllocation) have one winner per pod and never a random tie. A
//! sequence of TaskManager pods of different sizes goes to each set: one copy
//! through `default-scheduler`, the identical copy through the `flinkgate`
//! profile (the extender). No node of either set has scores, so each
//! extender-scheduled pod must land on the node of the same shape as its
//! twin, step after step as the nodes fill up.

use std::time::Duration;

use serde_json::Value;

use super::{Cluster, wait};

const NAMESPACE: &str = "e2e";
/// Marks the nodes of this scenario (value: the set) and its pods.
const LABEL: &str = "flinkgate.io/e2e-no-data";
/// Keeps every other pod off these nodes; NoSchedule taints do not score.
const TAINT: &str = "flinkgate.io/e2e-no-data";

/// (shape, allocatable cpu, allocatable memory). Asymmetric on purpose: a
/// node that mirrored another would tie with it.
const SHAPES: [(&str, &str, &str); 3] =
    [("a", "8", "16Gi"), ("b", "4", "32Gi"), ("c", "12", "6Gi")];

/// TaskManager sizes (cpu, memory), in order. kube-scheduler 1.33's default
/// scoring sends them to a, b, c, a, c, b, c, each by 8 points or more (of
/// 200; one extender point at weight 5 is worth 50), so winners vary and
/// any non-neutral extender score would move a pod.
const PODS: [(&str, &str); 7] = [
    ("2", "2Gi"),
    ("1", "6Gi"),
    ("4", "1Gi"),
    ("2", "4Gi"),
    ("1", "1Gi"),
    ("500m", "8Gi"),
    ("3", "2Gi"),
];

/// The two schedulers under comparison: (node set, schedulerName).
const DEFAULT: (&str, &str) = ("default", "default-scheduler");
const EXTENDER: (&str, &str) = ("extender", "flinkgate");

fn node_name(set: &str, shape: &str) -> String {
    format!("no-data-{set}-{shape}")
}

fn node(set: &str, shape: &str, cpu: &str, memory: &str) -> String {
    let name = node_name(set, shape);
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}}
  labels: {{type: kwok, kubernetes.io/hostname: {name}, kubernetes.io/os: linux, kubernetes.io/arch: amd64, {LABEL}: {set}}}
spec:
  taints: [{{key: {TAINT}, value: "true", effect: NoSchedule}}]
status:
  capacity: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  allocatable: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  nodeInfo: {{architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}}
"#
    )
}

/// A TaskManager pod as Flink native mode labels it (so the extender steers
/// it), pinned to one node set, with requests = limits.
fn taskmanager(name: &str, set: &str, scheduler: &str, cpu: &str, memory: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {NAMESPACE}
  labels: {{type: flink-native-kubernetes, component: taskmanager, app: no-data, {LABEL}: pod}}
spec:
  schedulerName: {scheduler}
  nodeSelector: {{{LABEL}: {set}}}
  tolerations: [{{key: {TAINT}, operator: Exists, effect: NoSchedule}}]
  containers:
  - name: flink-main-container
    image: flink:1.20
    resources:
      requests: {{cpu: "{cpu}", memory: {memory}}}
      limits: {{cpu: "{cpu}", memory: {memory}}}
"#
    )
}

/// Removes this scenario's pods and nodes, before (leftovers of an
/// interrupted run) and after, also when an assertion fails.
struct Cleanup<'c>(&'c Cluster);

impl Cleanup<'_> {
    fn run(&self) {
        let _ = self.0.kubectl(
            &[
                "delete",
                "pods",
                "-n",
                NAMESPACE,
                "-l",
                LABEL,
                "--grace-period=0",
                "--force",
                "--ignore-not-found",
                "--wait=true",
            ],
            None,
        );
        let _ = self.0.kubectl(
            &[
                "delete",
                "nodes",
                "-l",
                LABEL,
                "--ignore-not-found",
                "--wait=true",
            ],
            None,
        );
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.run();
    }
}

fn nodes_ready(c: &Cluster) -> bool {
    let (ok, out, _) = c.kubectl(&["get", "nodes", "-l", LABEL, "-o", "json"], None);
    let Ok(list) = serde_json::from_str::<Value>(&out) else {
        return false;
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    ok && items.len() == 2 * SHAPES.len()
        && items.iter().all(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            // Only our own taint: kwok has lifted node.kubernetes.io/not-ready.
            let foreign_taint = n["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["key"] != TAINT);
            ready && !foreign_taint
        })
}

/// The shape of the node `pod` was bound to, once it is bound.
fn bound_shape(c: &Cluster, pod: &str, set: &str) -> String {
    let mut node = String::new();
    wait(&format!("{pod} is bound"), Duration::from_secs(30), || {
        let p = c.get_json("pod", NAMESPACE, pod);
        match p["spec"]["nodeName"].as_str() {
            Some(n) => {
                node = n.to_string();
                true
            }
            None => false,
        }
    });
    let prefix = format!("no-data-{set}-");
    node.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{pod} left its node set: bound to {node}"))
        .to_string()
}

fn extender_calls(c: &Cluster, verb: &str) -> f64 {
    c.metric(&format!(
        "flinkgate_scheduler_extender_requests_total{{verb=\"{verb}\",result=\"ok\"}}"
    ))
    .unwrap_or(0.0)
}

pub fn placement_without_data_is_kube_schedulers(c: &Cluster) {
    let cleanup = Cleanup(c);
    cleanup.run();
    let nodes: String = [DEFAULT.0, EXTENDER.0]
        .iter()
        .flat_map(|set| {
            SHAPES
                .iter()
                .map(move |(shape, cpu, mem)| node(set, shape, cpu, mem))
        })
        .collect::<Vec<_>>()
        .join("---\n");
    c.must(&["create", "-f", "-"], Some(&nodes));
    wait(
        "the six no-data nodes are Ready",
        Duration::from_secs(30),
        || nodes_ready(c),
    );
    let prioritized = extender_calls(c, "prioritize");

    let mut history = Vec::new();
    let mut chosen = std::collections::BTreeSet::new();
    for (i, (cpu, memory)) in PODS.iter().enumerate() {
        let mut placed = Vec::new();
        for (set, scheduler) in [DEFAULT, EXTENDER] {
            let name = format!("no-data-{set}-{i}");
            c.must(
                &["create", "-f", "-"],
                Some(&taskmanager(&name, set, scheduler, cpu, memory)),
            );
            placed.push((name, set, scheduler));
        }
        let mut shapes = Vec::new();
        for (name, set, scheduler) in &placed {
            let shape = bound_shape(c, name, set);
            let pod = c.get_json("pod", NAMESPACE, name);
            assert_eq!(
                pod["spec"]["schedulerName"], *scheduler,
                "the webhook left the scheduler alone: {pod}"
            );
            shapes.push(shape);
        }
        history.push(format!("{cpu}/{memory}: {} vs {}", shapes[0], shapes[1]));
        chosen.insert(shapes[0].clone());
        assert_eq!(
            shapes[0], shapes[1],
            "pod {i} ({cpu} cpu, {memory}): default-scheduler chose node shape {}, the extender profile {}; so far (default vs extender): {history:?}",
            shapes[0], shapes[1]
        );
    }
    eprintln!("e2e: no-data placements (default vs extender): {history:?}");

    // The comparison means something only if the pods went to different nodes.
    assert!(
        chosen.len() >= 2,
        "the built-in scores sent every pod to one node; the scenario proves nothing: {history:?}"
    );
    // kube-scheduler skips scoring when one node is feasible; every step has two or more.
    let calls = extender_calls(c, "prioritize") - prioritized;
    assert!(
        calls >= PODS.len() as f64,
        "the extender scored each extender-scheduled pod ({calls} prioritize calls for {} pods)",
        PODS.len()
    );
    // And it scored without data: none of these nodes is in the published table.
    let scores = c.scores_table().to_string();
    assert!(
        !scores.contains("no-data-"),
        "no scores for the no-data nodes: {scores}"
    );
    drop(cleanup);
}
