//! The policy document's schema. Every struct rejects unknown keys, so a typo
//! in the ConfigMap is an error naming the field, never a silently ignored rule.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a violation does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny the request.
    #[default]
    Enforce,
    /// Allow it, with AdmissionResponse warnings that kubectl prints.
    Warn,
    /// Allow it silently; log and count.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// One complete set of rules: the global one, or a namespace's after its
/// overrides are merged over the global one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub pods: PodRules,
    /// Placement by measured task performance (read from the global rules).
    #[serde(default)]
    pub scheduling: SchedulingRules,
}

/// How the scheduler extender turns per-node mean task performance F_n into
/// decisions, and how the collector measures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulingRules {
    /// Slope of the score: 5 + 5 * weight * (F_n - 1), clamped to 0..=10.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Nodes whose F_n is below this (with enough samples) are filtered out; 0 disables.
    #[serde(default = "default_floor")]
    pub floor: f64,
    /// Samples a node needs before the floor applies; a quarter of it is the
    /// strength of the shrinkage towards 1.0.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// Seconds after which an old sample counts half.
    #[serde(default = "default_half_life")]
    pub half_life_seconds: f64,
    /// Seconds without new samples after which a node's figures expire.
    #[serde(default = "default_window")]
    pub window_seconds: f64,
    /// Seconds between collection cycles.
    #[serde(default = "default_interval")]
    pub collection_interval_seconds: f64,
    /// Moving running jobs' TaskManagers off nodes that stay below the floor
    /// (opt-in).
    #[serde(default)]
    pub rebalance: RebalanceRules,
}

/// `scheduling.rebalance`: the leader deletes one TaskManager pod of a
/// checkpointed job from a node whose F_n stayed below the floor; Flink
/// restores the job from its latest checkpoint and the replacement pod is
/// placed by the extender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RebalanceRules {
    /// Off unless the platform team turns it on: a move restarts the job.
    #[serde(default)]
    pub enabled: bool,
    /// Seconds a node's F_n must stay below the floor (with enough samples)
    /// before its TaskManagers are moved.
    #[serde(default = "default_below_floor")]
    pub below_floor_seconds: f64,
    /// Seconds after a move before the same job is moved again.
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: f64,
}

impl Default for RebalanceRules {
    fn default() -> Self {
        Self {
            enabled: false,
            below_floor_seconds: default_below_floor(),
            cooldown_seconds: default_cooldown(),
        }
    }
}

fn default_below_floor() -> f64 {
    120.0
}
fn default_cooldown() -> f64 {
    600.0
}

impl Default for SchedulingRules {
    fn default() -> Self {
        Self {
            weight: default_weight(),
            floor: default_floor(),
            min_samples: default_min_samples(),
            half_life_seconds: default_half_life(),
            window_seconds: default_window(),
            collection_interval_seconds: default_interval(),
            rebalance: RebalanceRules::default(),
        }
    }
}

fn default_weight() -> f64 {
    1.0
}
fn default_floor() -> f64 {
    0.6
}
fn default_min_samples() -> u32 {
    10
}
fn default_half_life() -> f64 {
    300.0
}
fn default_window() -> f64 {
    900.0
}
fn default_interval() -> f64 {
    15.0
}

/// Values injected when the user left them out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    /// Flink configuration keys added to FlinkDeployments that do not set them.
    #[serde(default)]
    pub flink_configuration: BTreeMap<String, String>,
    /// `spec.job.parallelism` when absent, capped by `limits.maxParallelism`.
    #[serde(default)]
    pub parallelism: Option<i32>,
    /// `spec.job.upgradeMode` when absent.
    #[serde(default)]
    pub upgrade_mode: Option<String>,
    /// `spec.jobManager.resource` parts when no memory / cpu is given anywhere.
    #[serde(default)]
    pub job_manager: Option<ResourceDefaults>,
    #[serde(default)]
    pub task_manager: Option<ResourceDefaults>,
    /// Labels added to FlinkDeployments and FlinkSessionJobs.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceDefaults {
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Flink notation, e.g. `2048m`.
    #[serde(default)]
    pub memory: Option<String>,
}

/// Limits checked on every FlinkDeployment, FlinkSessionJob and Flink pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Allowed `flinkVersion`s; empty allows every supported version.
    #[serde(default)]
    pub flink_versions: Vec<String>,
    /// Allowed image registries or repository prefixes (`registry.example.com`,
    /// `ghcr.io/acme`); empty allows every image.
    #[serde(default)]
    pub image_registries: Vec<String>,
    #[serde(default = "one")]
    pub min_parallelism: i32,
    #[serde(default)]
    pub max_parallelism: Option<i32>,
    #[serde(default)]
    pub job_manager: ComponentLimits,
    #[serde(default)]
    pub task_manager: ComponentLimits,
    /// JobManager/TaskManager resources (and Flink pod container resources)
    /// must be given, by the user or by `defaults`.
    #[serde(default)]
    pub require_resources: bool,
    /// A checkpoint interval and directory must be configured.
    #[serde(default)]
    pub require_checkpointing: bool,
    /// Flink configuration keys nobody may set, on top of the operator's own.
    #[serde(default)]
    pub forbidden_config_keys: Vec<String>,
    /// Schemes a FlinkSessionJob's `jarURI` may use.
    #[serde(default = "https_only")]
    pub jar_uri_schemes: Vec<String>,
    /// The cluster's DNS domain: a `jarURI` host under it names something
    /// inside the cluster (a Service, a pod) and is refused.
    #[serde(default = "cluster_local")]
    pub cluster_domain: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            flink_versions: Vec::new(),
            image_registries: Vec::new(),
            min_parallelism: 1,
            max_parallelism: None,
            job_manager: ComponentLimits::default(),
            task_manager: ComponentLimits::default(),
            require_resources: false,
            require_checkpointing: false,
            forbidden_config_keys: Vec::new(),
            jar_uri_schemes: https_only(),
            cluster_domain: cluster_local(),
        }
    }
}

fn one() -> i32 {
    1
}

fn cluster_local() -> String {
    crate::cluster_dns::DEFAULT_CLUSTER_DOMAIN.to_string()
}

fn https_only() -> Vec<String> {
    vec!["https".to_string()]
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentLimits {
    /// Cores.
    #[serde(default)]
    pub max_cpu: Option<f64>,
    /// Kubernetes or Flink notation, e.g. `16Gi`.
    #[serde(default)]
    pub max_memory: Option<String>,
    /// `max_memory` in bytes, computed when the policy loads.
    #[serde(skip)]
    pub max_memory_bytes: Option<f64>,
}

/// What happens to Flink JobManager / TaskManager pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodRules {
    /// Labels added to every Flink pod.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub job_manager: PodComponentRules,
    #[serde(default)]
    pub task_manager: PodComponentRules,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodComponentRules {
    /// Set on the pod (Always, OnFailure or Never).
    #[serde(default)]
    pub restart_policy: Option<String>,
    /// Routes the pod to this scheduler profile (e.g. flinkgate's extender
    /// profile) unless the user picked a non-default scheduler.
    #[serde(default)]
    pub scheduler_name: Option<String>,
    /// Requests and limits for the Flink main container when it has none.
    #[serde(default)]
    pub resources: Option<PodResources>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodResources {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}
