//! F(x) where users look: the collector writes a job's F(x) and the F_n of
//! the nodes its TaskManagers run on into its FlinkDeployment's
//! `status.taskPerformance` (shown by `kubectl get flinkdep` as the `F(x)`
//! column), only when a figure moved by at least 0.01.

use std::collections::{BTreeMap, HashMap};

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::flink::crd::FlinkDeployment;

/// `status.taskPerformance`: figures rounded to two decimals.
pub fn task_performance(job: f64, nodes: &BTreeMap<String, f64>) -> Value {
    let round = |v: f64| (v * 100.0).round() / 100.0;
    json!({
        "job": round(job),
        "nodes": nodes.iter().map(|(n, f)| (n.clone(), json!(round(*f)))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Publishes what changed since the last cycle; `published` remembers what
/// was written per FlinkDeployment (a new leader writes everything once).
pub async fn publish(
    client: &Client,
    figures: BTreeMap<String, Value>,
    published: &mut HashMap<String, Value>,
) {
    published.retain(|cluster, _| figures.contains_key(cluster));
    for (cluster, value) in figures {
        if published.get(&cluster) == Some(&value) {
            continue;
        }
        let Some((ns, name)) = cluster.split_once('/') else {
            continue;
        };
        let api: Api<FlinkDeployment> = Api::namespaced(client.clone(), ns);
        let patch = json!({"status": {"taskPerformance": value}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                published.insert(cluster, value);
            }
            // Not a FlinkDeployment (a JobManager found by its pod labels).
            Err(kube::Error::Api(e)) if e.code == 404 => {
                published.insert(cluster, value);
            }
            Err(e) => {
                tracing::debug!(flinkdeployment = %cluster, error = %e, "cannot write the task performance")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_rounded_so_noise_does_not_rewrite_status() {
        let nodes = BTreeMap::from([("n1".to_owned(), 1.2345), ("n2".to_owned(), 0.4)]);
        let v = task_performance(0.81234, &nodes);
        assert_eq!(v, json!({"job": 0.81, "nodes": {"n1": 1.23, "n2": 0.4}}));
        assert_eq!(v, task_performance(0.8149, &nodes), "below 0.01 apart");
    }
}
