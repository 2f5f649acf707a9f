//! Flink's Kubernetes HA metadata of a cluster: the ConfigMaps its
//! JobManager writes (leader, job graph, checkpoint pointers). A `last-state`
//! suspend or upgrade keeps them and the job id, so the next JobManager
//! resumes the job from its latest checkpoint without a savepoint, as the
//! operator does. The stored job graph is dropped first, so that the new
//! spec (parallelism, configuration) takes effect. Deletion removes them.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::context::{Context, ReconcileError};
use super::flink_config::FlatConfig;
use crate::flink::config::HA_KEYS;

/// Flink < 1.15 named the Kubernetes HA services by their factory class.
const KUBERNETES_HA_FACTORY: &str =
    "org.apache.flink.kubernetes.highavailability.KubernetesHaServicesFactory";
/// Key prefixes Flink's Kubernetes HA services write.
const JOB_GRAPH_KEY_PREFIX: &str = "jobGraph-";
const CHECKPOINT_KEY_PREFIX: &str = "checkpointID-";

/// How a running application job is carried over a suspend or an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarryOver {
    /// Cancelled: the next job starts without state (`stateless`).
    Cancel,
    /// Stopped with a savepoint, which the next job restores.
    Savepoint,
    /// Left to the HA metadata: the next JobManager, under the same job id,
    /// restores the latest checkpoint (`last-state`).
    HaMetadata,
}

/// The carry-over for `upgrade_mode`. `last-state` needs Kubernetes HA with
/// at least one checkpoint recorded; without, a savepoint (taken while the
/// JobManager still runs) keeps the state instead of losing it.
pub fn carry_over(upgrade_mode: &str, kubernetes_ha: bool, has_checkpoints: bool) -> CarryOver {
    match upgrade_mode {
        "stateless" => CarryOver::Cancel,
        "last-state" if kubernetes_ha && has_checkpoints => CarryOver::HaMetadata,
        _ => CarryOver::Savepoint,
    }
}

/// Whether the configuration turns on Flink's Kubernetes HA services.
pub fn kubernetes_ha(conf: &FlatConfig) -> bool {
    HA_KEYS.iter().find_map(|k| conf.get(*k)).is_some_and(|v| {
        v.trim().eq_ignore_ascii_case("kubernetes") || v.trim() == KUBERNETES_HA_FACTORY
    })
}

/// Labels of the HA ConfigMaps of the cluster `name` (Flink sets them).
pub fn selector(name: &str) -> String {
    format!("app={name},configmap-type=high-availability")
}

/// Whether any of these ConfigMaps records a completed checkpoint.
pub fn has_checkpoints(config_maps: &[ConfigMap]) -> bool {
    data_keys(config_maps).any(|k| k.starts_with(CHECKPOINT_KEY_PREFIX))
}

/// A merge patch per ConfigMap that removes its stored job graphs:
/// (ConfigMap name, patch), only for those that hold one.
pub fn job_graph_removals(config_maps: &[ConfigMap]) -> Vec<(String, Value)> {
    config_maps
        .iter()
        .filter_map(|cm| {
            let keys: Map<String, Value> = cm
                .data
                .iter()
                .flatten()
                .map(|(k, _)| k)
                .filter(|k| k.starts_with(JOB_GRAPH_KEY_PREFIX))
                .map(|k| (k.clone(), Value::Null))
                .collect();
            if keys.is_empty() {
                return None;
            }
            Some((cm.metadata.name.clone()?, json!({"data": keys})))
        })
        .collect()
}

fn data_keys(config_maps: &[ConfigMap]) -> impl Iterator<Item = &String> {
    config_maps
        .iter()
        .flat_map(|cm| cm.data.iter().flatten().map(|(k, _)| k))
}

/// The HA ConfigMaps of the cluster `ns/name`.
pub async fn list(ctx: &Context, ns: &str, name: &str) -> Result<Vec<ConfigMap>, ReconcileError> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api
        .list(&ListParams::default().labels(&selector(name)))
        .await?
        .items)
}

/// Drops the stored job graph, keeping leader and checkpoint records.
pub async fn remove_job_graphs(ctx: &Context, ns: &str, name: &str) -> Result<(), ReconcileError> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for (cm, patch) in job_graph_removals(&list(ctx, ns, name).await?) {
        api.patch(&cm, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(configmap = %format!("{ns}/{cm}"), "removed the stored job graph, so the new spec takes effect");
    }
    Ok(())
}

/// Deletes the cluster's HA ConfigMaps (the FlinkDeployment is gone). One by
/// one: the controller's RBAC has `delete`, not `deletecollection`.
pub async fn delete_all(ctx: &Context, ns: &str, name: &str) -> Result<(), ReconcileError> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for cm in list(ctx, ns, name).await? {
        let Some(cm_name) = cm.metadata.name else {
            continue;
        };
        match api.delete(&cm_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, keys: &[&str]) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "data": keys.iter().map(|k| (k.to_string(), json!("x"))).collect::<Map<_, _>>(),
        }))
        .expect("test ConfigMap")
    }

    #[test]
    fn last_state_uses_ha_only_with_a_checkpoint_to_resume_from() {
        assert_eq!(carry_over("stateless", true, true), CarryOver::Cancel);
        assert_eq!(carry_over("savepoint", true, true), CarryOver::Savepoint);
        assert_eq!(carry_over("last-state", true, true), CarryOver::HaMetadata);
        assert_eq!(carry_over("last-state", true, false), CarryOver::Savepoint);
        assert_eq!(carry_over("last-state", false, true), CarryOver::Savepoint);
    }

    #[test]
    fn kubernetes_ha_by_type_or_legacy_factory_name() {
        let conf = |k: &str, v: &str| FlatConfig::from([(k.to_owned(), v.to_owned())]);
        assert!(kubernetes_ha(&conf("high-availability.type", "kubernetes")));
        assert!(kubernetes_ha(&conf("high-availability.type", "KUBERNETES")));
        assert!(kubernetes_ha(&conf(
            "high-availability",
            KUBERNETES_HA_FACTORY
        )));
        assert!(!kubernetes_ha(&conf("high-availability.type", "zookeeper")));
        assert!(!kubernetes_ha(&conf("high-availability.type", "NONE")));
        assert!(!kubernetes_ha(&FlatConfig::new()));
    }

    #[test]
    fn only_job_graphs_are_removed_and_checkpoints_are_found() {
        let cluster = cm(
            "orders-cluster-config-map",
            &["jobGraph-0123", "org.apache.flink.k8s.leader.restserver"],
        );
        let job = cm(
            "orders-0123-config-map",
            &["counter", "checkpointID-0000000000000000007"],
        );
        let maps = [cluster, job];
        assert!(has_checkpoints(&maps));
        assert!(!has_checkpoints(&maps[..1]));
        assert_eq!(
            job_graph_removals(&maps),
            vec![(
                "orders-cluster-config-map".to_owned(),
                json!({"data": {"jobGraph-0123": null}})
            )]
        );
        assert_eq!(
            selector("orders"),
            "app=orders,configmap-type=high-availability"
        );
    }
}
