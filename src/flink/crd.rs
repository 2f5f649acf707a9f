//! `flink.apache.org/v1beta1` custom resources, shaped exactly like the Apache
//! Flink Kubernetes Operator's, so existing manifests work unchanged.
//!
//! Every struct carries an `extra` map: fields these types do not know (a newer
//! operator's, a vendor's) survive a round trip instead of being dropped.
//! Enumerated fields (`flinkVersion`, `upgradeMode`, ...) are plain strings so
//! that a wrong value becomes a validation message naming the field, not a
//! parse failure that hides every other problem.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;

use super::status::{JobManagerDeploymentStatus, JobState, Lifecycle, Reported};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fields a type does not model, kept verbatim.
pub type Extra = BTreeMap<String, Value>;

/// A JSON value kept as its text, for `podTemplate`: admission reads past
/// it without building a tree (that was a sixth of a review's cost), and
/// the controller parses it when it builds pods. Two are equal when their
/// JSON values are, whatever the spacing or key order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PreservedJson(Box<serde_json::value::RawValue>);

impl PreservedJson {
    /// Keeps a parsed value as text.
    pub fn from_value(value: &Value) -> Self {
        // A Value has string keys only, so writing it cannot fail; the
        // fallback is never taken.
        Self(
            serde_json::value::to_raw_value(value)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        )
    }

    /// The value as a tree.
    pub fn value(&self) -> Value {
        // The text was read as JSON when this was made, under the same
        // nesting limit, so it reads again; Null is never returned.
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for PreservedJson {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text() || self.value() == other.value()
    }
}

/// `flinkConfiguration`: Flink config keys. The operator accepts flat string
/// values and, since 1.11, nested YAML; values are kept as JSON.
pub type FlinkConfiguration = serde_json::Map<String, Value>;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flink.apache.org",
    version = "v1beta1",
    kind = "FlinkDeployment",
    plural = "flinkdeployments",
    shortname = "flinkdep",
    namespaced,
    status = "FlinkDeploymentStatus",
    scale(
        spec_replicas_path = ".spec.taskManager.replicas",
        status_replicas_path = ".status.taskManager.replicas",
        label_selector_path = ".status.taskManager.labelSelector"
    ),
    printcolumn = r#"{"name":"Job Status","type":"string","jsonPath":".status.jobStatus.state"}"#,
    printcolumn = r#"{"name":"Lifecycle State","type":"string","jsonPath":".status.lifecycleState"}"#,
    printcolumn = r#"{"name":"F(x)","type":"number","jsonPath":".status.taskPerformance.job","description":"flinkgate: mean per-task performance of the job (1.0 = as fast as peers)"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FlinkDeploymentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::flink_configuration")]
    pub flink_configuration: Option<FlinkConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::flink_version")]
    pub flink_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::preserved_object")]
    pub pod_template: Option<PreservedJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_manager: Option<JobManagerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<TaskManagerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::deployment_mode")]
    pub mode: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flink.apache.org",
    version = "v1beta1",
    kind = "FlinkSessionJob",
    plural = "flinksessionjobs",
    shortname = "sessionjob",
    namespaced,
    status = "FlinkSessionJobStatus",
    printcolumn = r#"{"name":"Job Status","type":"string","jsonPath":".status.jobStatus.state"}"#,
    printcolumn = r#"{"name":"Lifecycle State","type":"string","jsonPath":".status.lifecycleState"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FlinkSessionJobSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::flink_configuration")]
    pub flink_configuration: Option<FlinkConfiguration>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec.job` of both resources.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    #[serde(default, rename = "jarURI", skip_serializing_if = "Option::is_none")]
    pub jar_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::job_state")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_savepoint_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_trigger_nonce: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::upgrade_mode")]
    pub upgrade_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_non_restored_state: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_redeploy_nonce: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_reset_nonce: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state_reference: Option<StateReference>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A FlinkStateSnapshot to start from (`spec.job.initialStateReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `spec.ingress.tls` entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec.ingress`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Vec<IngressTls>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `resource` of a JobManager or TaskManager: Flink's own notation
/// (`cpu: 1.5`, `memory: "2048m"`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `resources` of a JobManager or TaskManager: Kubernetes requests and limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::quantity_map")]
    pub requests: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::quantity_map")]
    pub limits: Option<BTreeMap<String, Value>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResourceRequirements {
    /// True when it names no request and no limit; the operator then falls
    /// back to `resource`.
    pub fn is_empty(&self) -> bool {
        self.requests.as_ref().is_none_or(BTreeMap::is_empty)
            && self.limits.as_ref().is_none_or(BTreeMap::is_empty)
    }

    /// The request for `key`, else its limit (Kubernetes defaults a request
    /// to its limit), with where it was found: `"requests"` or `"limits"`.
    pub fn request_or_limit(&self, key: &str) -> Option<(&'static str, &Value)> {
        self.requests
            .as_ref()
            .and_then(|m| m.get(key))
            .map(|v| ("requests", v))
            .or_else(|| {
                self.limits
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .map(|v| ("limits", v))
            })
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobManagerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::preserved_object")]
    pub pod_template: Option<PreservedJson>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::preserved_object")]
    pub pod_template: Option<PreservedJson>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Status as the operator writes it. Only the parts flinkgate reads or
/// writes are typed; the rest is kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkDeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub lifecycle_state: Option<Reported<Lifecycle>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub job_manager_deployment_status: Option<Reported<JobManagerDeploymentStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<TaskManagerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::preserved_object")]
    pub reconciliation_status: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkSessionJobStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub lifecycle_state: Option<Reported<Lifecycle>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::preserved_object")]
    pub reconciliation_status: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub state: Option<Reported<JobState>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_savepoint_path: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(flatten)]
    pub extra: Extra,
}
