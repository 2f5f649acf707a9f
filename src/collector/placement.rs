//! Subtask -> TaskManager pod -> node, from a watched cache of TaskManager pods.
//! Native mode names the TaskManager after its pod; standalone mode only
//! gives its address, matched against the pod IP.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::flink::pod::{COMPONENT_LABEL, FLINKGATE_COMPONENT_LABEL};

/// Node lookup built from pods: by pod name, and by pod IP.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PodIndex {
    by_name: HashMap<String, String>,
    by_ip: HashMap<String, String>,
}

impl PodIndex {
    pub fn from_pods<'p>(pods: impl IntoIterator<Item = &'p Pod>) -> Self {
        let mut idx = PodIndex::default();
        for pod in pods {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            if let Some(name) = &pod.metadata.name {
                idx.by_name.insert(name.clone(), node.clone());
            }
            if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                idx.by_ip.insert(ip, node);
            }
        }
        idx
    }

    /// The node a subtask ran on: by TaskManager id (pod name), else by the
    /// address's host part (pod IP).
    pub fn node_of(&self, taskmanager_id: Option<&str>, host: Option<&str>) -> Option<String> {
        if let Some(node) = taskmanager_id.and_then(|id| self.by_name.get(id)) {
            return Some(node.clone());
        }
        let host = host?;
        let ip = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .trim_matches(|c| c == '[' || c == ']');
        self.by_ip.get(ip).cloned()
    }
}

/// Watches TaskManager pods (by Flink's label and by flinkgate's) into two stores.
pub struct PodCache {
    stores: Vec<Store<Pod>>,
}

impl PodCache {
    pub fn start(client: Client, stop: CancellationToken) -> Arc<PodCache> {
        let mut stores = Vec::new();
        for selector in [
            format!("{COMPONENT_LABEL}=taskmanager"),
            format!("{FLINKGATE_COMPONENT_LABEL}=taskmanager"),
        ] {
            let api: Api<Pod> = Api::all(client.clone());
            let reader = crate::k8s::spawn_store(
                api,
                watcher::Config::default().labels(&selector),
                stop.clone(),
                "TaskManager pods",
            );
            stores.push(reader);
        }
        Arc::new(PodCache { stores })
    }

    /// Every watched TaskManager pod, once (a pod may carry both labels).
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        let mut seen = std::collections::HashSet::new();
        self.stores
            .iter()
            .flat_map(|s| s.state())
            .filter(|p| seen.insert((p.metadata.namespace.clone(), p.metadata.name.clone())))
            .collect()
    }

    pub fn index(&self) -> PodIndex {
        let pods: Vec<Arc<Pod>> = self.stores.iter().flat_map(|s| s.state()).collect();
        PodIndex::from_pods(pods.iter().map(|p| p.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, ip: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": []},
            "status": {"podIP": ip}
        }))
        .unwrap()
    }

    #[test]
    fn finds_nodes_by_pod_name_or_ip() {
        let pods = [
            pod("tm-a", "n1", "10.244.0.5"),
            pod("tm-b", "n2", "10.244.0.6"),
        ];
        let idx = PodIndex::from_pods(pods.iter());
        assert_eq!(idx.node_of(Some("tm-a"), None).as_deref(), Some("n1"));
        assert_eq!(
            idx.node_of(Some("unknown-id"), Some("10.244.0.6:34567"))
                .as_deref(),
            Some("n2")
        );
        assert_eq!(idx.node_of(None, Some("10.244.0.6")).as_deref(), Some("n2"));
        assert_eq!(idx.node_of(Some("x"), Some("10.9.9.9:1")), None);
    }
}
