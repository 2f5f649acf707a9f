//! Which JobManagers the collector polls: the operator's `<name>-rest`
//! Service of every FlinkDeployment, and every running JobManager pod that no
//! FlinkDeployment accounts for (Flink native clusters started with
//! `kubernetes-session.sh` or `flink run-application`, standalone clusters).
//! The selection is a pure function of the two lists; only [`discover`]
//! talks to the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use thiserror::Error;

use crate::flink::crd::FlinkDeployment;
use crate::flink::pod::{APP_LABEL, COMPONENT_LABEL, FLINK_POD_TYPES, TYPE_LABEL};

/// A JobManager to poll: an id (`namespace/name`) and its REST base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobManagerTarget {
    pub id: String,
    pub url: String,
}

impl std::str::FromStr for JobManagerTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, url) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not NAMESPACE/NAME=URL"))?;
        if !id.contains('/') || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("'{s}' is not NAMESPACE/NAME=http(s)://HOST:PORT"));
        }
        Ok(Self {
            id: id.into(),
            url: url.into(),
        })
    }
}

/// Flink's default `rest.port`.
pub const DEFAULT_REST_PORT: i32 = 8081;
/// The name Flink gives the JobManager container's REST port.
pub const REST_PORT_NAME: &str = "rest";

#[derive(Debug, Error)]
pub enum DiscoveryError {
    #[error("cannot list FlinkDeployments: {0}")]
    FlinkDeployments(#[source] kube::Error),
    #[error("cannot list JobManager pods: {0}")]
    Pods(#[source] kube::Error),
}

/// What one discovery round found. A list that failed contributes nothing
/// and its error, so one missing source (say, no FlinkDeployment CRD) does
/// not hide the other.
#[derive(Debug, Default)]
pub struct Discovered {
    pub targets: Vec<JobManagerTarget>,
    pub errors: Vec<DiscoveryError>,
}

/// Lists FlinkDeployments and JobManager pods in all namespaces and selects
/// the targets. Both lists are served from the API server's watch cache
/// (`resourceVersion=0`): they run every cycle, and a slightly stale list
/// only delays a new cluster by a cycle.
pub async fn discover(client: &Client) -> Discovered {
    let deployments: Api<FlinkDeployment> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let pod_params = ListParams::default()
        .labels(&format!("{COMPONENT_LABEL}=jobmanager"))
        .match_any();
    let deployment_params = ListParams::default().match_any();
    let (deployments, pods) =
        futures::join!(deployments.list(&deployment_params), pods.list(&pod_params));
    let mut errors = Vec::new();
    let deployments = deployments.map(|l| l.items).unwrap_or_else(|e| {
        errors.push(DiscoveryError::FlinkDeployments(e));
        Vec::new()
    });
    let pods = pods.map(|l| l.items).unwrap_or_else(|e| {
        errors.push(DiscoveryError::Pods(e));
        Vec::new()
    });
    Discovered {
        targets: targets(&deployments, &pods),
        errors,
    }
}

/// The JobManagers to poll, one per Flink cluster, sorted by id:
/// - each FlinkDeployment as `namespace/name` at `http://<name>-rest.<ns>.svc:8081`;
/// - each running JobManager pod (Flink's `component=jobmanager` and a Flink
///   `type` label, phase Running, a pod IP, not terminating) as
///   `namespace/<app label, else pod name>` at its pod IP and REST port,
///   unless that id is already a FlinkDeployment's (its pods are behind the
///   Service). Several pods of one cluster (HA standbys, a rollout) yield one
///   target: the first by pod name.
pub fn targets(deployments: &[FlinkDeployment], jobmanager_pods: &[Pod]) -> Vec<JobManagerTarget> {
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for d in deployments {
        let (Some(name), Some(ns)) = (d.metadata.name.as_deref(), d.metadata.namespace.as_deref())
        else {
            continue;
        };
        by_id.insert(
            format!("{ns}/{name}"),
            format!("http://{name}-rest.{ns}.svc:{DEFAULT_REST_PORT}"),
        );
    }
    let mut pods: Vec<(&str, String, String)> = jobmanager_pods
        .iter()
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            pod_target(p).map(|(id, url)| (name, id, url))
        })
        .collect();
    pods.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, id, url) in pods {
        by_id.entry(id).or_insert(url);
    }
    by_id
        .into_iter()
        .map(|(id, url)| JobManagerTarget { id, url })
        .collect()
}

/// `(id, url)` of a JobManager pod worth polling, or `None`.
fn pod_target(pod: &Pod) -> Option<(String, String)> {
    let meta = &pod.metadata;
    let labels = meta.labels.as_ref()?;
    let is_jobmanager = labels.get(COMPONENT_LABEL).map(String::as_str) == Some("jobmanager")
        && labels
            .get(TYPE_LABEL)
            .is_some_and(|t| FLINK_POD_TYPES.contains(&t.as_str()));
    // A terminating pod's replacement (same app label) is the one to poll.
    if !is_jobmanager || meta.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let ns = meta.namespace.as_deref()?;
    let cluster = labels
        .get(APP_LABEL)
        .map(String::as_str)
        .filter(|a| !a.is_empty())
        .or(meta.name.as_deref())?;
    let port = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(REST_PORT_NAME))
        .map_or(DEFAULT_REST_PORT, |p| p.container_port);
    // An IPv6 address needs brackets in a URL.
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Some((format!("{ns}/{cluster}"), format!("http://{host}:{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn deployment(ns: &str, name: &str) -> FlinkDeployment {
        serde_json::from_value(json!({
            "apiVersion": "flink.apache.org/v1beta1",
            "kind": "FlinkDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {}
        }))
        .unwrap()
    }

    /// A native-mode JobManager pod of cluster `app`, Running at `ip`.
    fn jm_pod(ns: &str, name: &str, app: &str, ip: &str) -> Value {
        json!({
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"app": app, "component": "jobmanager", "type": "flink-native-kubernetes"}
            },
            "spec": {"containers": [{
                "name": "flink-main-container",
                "ports": [{"name": "rest", "containerPort": 8081}]
            }]},
            "status": {"phase": "Running", "podIP": ip}
        })
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn found(deployments: &[FlinkDeployment], pods: &[Pod]) -> Vec<(String, String)> {
        targets(deployments, pods)
            .into_iter()
            .map(|t| (t.id, t.url))
            .collect()
    }

    fn pair(id: &str, url: &str) -> (String, String) {
        (id.to_string(), url.to_string())
    }

    #[test]
    fn flinkdeployments_are_polled_through_their_rest_service() {
        assert_eq!(
            found(&[deployment("team-a", "top-speed")], &[]),
            [pair(
                "team-a/top-speed",
                "http://top-speed-rest.team-a.svc:8081"
            )]
        );
    }

    #[test]
    fn a_jobmanager_pod_without_a_flinkdeployment_is_polled_at_its_ip() {
        let pods = [pod(jm_pod(
            "team-a",
            "session-7d9f-abcde",
            "session",
            "10.244.1.7",
        ))];
        assert_eq!(
            found(&[], &pods),
            [pair("team-a/session", "http://10.244.1.7:8081")]
        );
    }

    #[test]
    fn a_flinkdeployments_own_jobmanager_pod_is_not_polled_twice() {
        let pods = [
            pod(jm_pod(
                "team-a",
                "top-speed-5c8-xyz",
                "top-speed",
                "10.244.1.8",
            )),
            // Same cluster name in another namespace: a different cluster.
            pod(jm_pod(
                "team-b",
                "top-speed-77f-qrs",
                "top-speed",
                "10.244.2.9",
            )),
        ];
        assert_eq!(
            found(&[deployment("team-a", "top-speed")], &pods),
            [
                pair("team-a/top-speed", "http://top-speed-rest.team-a.svc:8081"),
                pair("team-b/top-speed", "http://10.244.2.9:8081"),
            ]
        );
    }

    #[test]
    fn several_pods_of_one_cluster_give_one_target_chosen_by_pod_name() {
        let pods = [
            pod(jm_pod("ns", "ha-b", "ha", "10.0.0.2")),
            pod(jm_pod("ns", "ha-a", "ha", "10.0.0.1")),
        ];
        assert_eq!(found(&[], &pods), [pair("ns/ha", "http://10.0.0.1:8081")]);
    }

    #[test]
    fn only_running_pods_with_an_ip_count() {
        let mut pending = jm_pod("ns", "p", "pending", "10.0.0.1");
        pending["status"]["phase"] = json!("Pending");
        let mut no_ip = jm_pod("ns", "n", "no-ip", "10.0.0.2");
        no_ip["status"].as_object_mut().unwrap().remove("podIP");
        let mut empty_ip = jm_pod("ns", "e", "empty-ip", "");
        empty_ip["status"]["phase"] = json!("Running");
        let mut no_status = jm_pod("ns", "s", "no-status", "10.0.0.3");
        no_status.as_object_mut().unwrap().remove("status");
        let mut terminating = jm_pod("ns", "t", "terminating", "10.0.0.4");
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods: Vec<Pod> = [pending, no_ip, empty_ip, no_status, terminating]
            .into_iter()
            .map(pod)
            .collect();
        assert_eq!(found(&[], &pods), []);
    }

    #[test]
    fn only_flink_jobmanagers_count() {
        let mut taskmanager = jm_pod("ns", "tm", "c1", "10.0.0.1");
        taskmanager["metadata"]["labels"]["component"] = json!("taskmanager");
        let mut not_flink = jm_pod("ns", "other", "c2", "10.0.0.2");
        not_flink["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("type");
        let mut standalone = jm_pod("ns", "sa", "c3", "10.0.0.3");
        standalone["metadata"]["labels"]["type"] = json!("flink-standalone-kubernetes");
        let pods: Vec<Pod> = [taskmanager, not_flink, standalone]
            .into_iter()
            .map(pod)
            .collect();
        assert_eq!(found(&[], &pods), [pair("ns/c3", "http://10.0.0.3:8081")]);
    }

    #[test]
    fn rest_port_is_the_port_named_rest_else_8081() {
        let mut custom = jm_pod("ns", "custom", "custom", "10.0.0.1");
        custom["spec"]["containers"][0]["ports"] = json!([
            {"name": "blobserver", "containerPort": 6124},
            {"name": "rest", "containerPort": 9091}
        ]);
        let mut unnamed = jm_pod("ns", "unnamed", "unnamed", "10.0.0.2");
        unnamed["spec"]["containers"][0]["ports"] = json!([{"containerPort": 9999}]);
        let mut none = jm_pod("ns", "none", "none", "10.0.0.3");
        none["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("ports");
        let pods: Vec<Pod> = [custom, unnamed, none].into_iter().map(pod).collect();
        assert_eq!(
            found(&[], &pods),
            [
                pair("ns/custom", "http://10.0.0.1:9091"),
                pair("ns/none", "http://10.0.0.3:8081"),
                pair("ns/unnamed", "http://10.0.0.2:8081"),
            ]
        );
    }

    #[test]
    fn id_falls_back_to_the_pod_name_and_ipv6_is_bracketed() {
        let mut v = jm_pod("ns", "lonely-jm", "", "fd00::5");
        v["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        assert_eq!(
            found(&[], &[pod(v)]),
            [pair("ns/lonely-jm", "http://[fd00::5]:8081")]
        );
        let empty_app = jm_pod("ns", "jm-2", "", "10.0.0.9");
        assert_eq!(
            found(&[], &[pod(empty_app)]),
            [pair("ns/jm-2", "http://10.0.0.9:8081")]
        );
    }

    #[test]
    fn targets_are_returned_sorted_by_id() {
        let pods = [
            pod(jm_pod("b", "x", "zeta", "10.0.0.1")),
            pod(jm_pod("a", "y", "alpha", "10.0.0.2")),
        ];
        let ids: Vec<String> = targets(&[deployment("a", "mid")], &pods)
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["a/alpha", "a/mid", "b/zeta"]);
    }
}
