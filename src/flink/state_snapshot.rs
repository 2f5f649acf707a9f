//! `FlinkStateSnapshot` (`flink.apache.org/v1beta1`), the operator's third
//! resource: a savepoint or checkpoint of a FlinkDeployment's or
//! FlinkSessionJob's job, taken on request or recorded when the operator
//! (here: flinkgate's controller) takes one itself. Shaped like the
//! operator's, with the same `extra` catch-all as the other two resources.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::crd::Extra;

pub const KIND_FLINK_DEPLOYMENT: &str = "FlinkDeployment";
pub const KIND_FLINK_SESSION_JOB: &str = "FlinkSessionJob";

/// Labels the operator puts on snapshots, for selecting them.
pub const LABEL_SNAPSHOT_TYPE: &str = "snapshot.type";
pub const LABEL_TRIGGER_TYPE: &str = "snapshot.trigger-type";
pub const LABEL_STATE: &str = "snapshot.state";
pub const LABEL_JOB_REFERENCE_KIND: &str = "job-reference.kind";
pub const LABEL_JOB_REFERENCE_NAME: &str = "job-reference.name";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flink.apache.org",
    version = "v1beta1",
    kind = "FlinkStateSnapshot",
    plural = "flinkstatesnapshots",
    shortname = "flinksnp",
    namespaced,
    status = "FlinkStateSnapshotStatus",
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".status.path"}"#,
    printcolumn = r#"{"name":"Result Timestamp","type":"string","jsonPath":".status.resultTimestamp"}"#,
    printcolumn = r#"{"name":"Snapshot State","type":"string","jsonPath":".status.state"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FlinkStateSnapshotSpec {
    /// The job to snapshot; not needed for a savepoint that already exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_reference: Option<JobReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<SavepointSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSpec>,
    /// Retries before FAILED: -1 (the default) without end, 0 none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    /// `FlinkDeployment` or `FlinkSessionJob`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::job_kind")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavepointSpec {
    /// Where to write it (else the job's savepoint directory); with
    /// `alreadyExists`, where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// CANONICAL (the default), NATIVE or UNKNOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::flink::schema::savepoint_format")]
    pub format_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispose_on_delete: Option<bool>,
    /// Record a savepoint taken elsewhere; nothing is triggered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already_exists: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CheckpointSpec {
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where a snapshot stands (`status.state`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SnapshotState {
    /// Not yet taken (the state of a new snapshot).
    TriggerPending,
    InProgress,
    Completed,
    Failed,
    /// The job stopped or changed before the snapshot was taken.
    Abandoned,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkStateSnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SnapshotState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub failures: i32,
    #[serde(flatten)]
    pub extra: Extra,
}

impl FlinkStateSnapshotSpec {
    pub fn is_savepoint(&self) -> bool {
        self.savepoint.is_some()
    }

    pub fn is_checkpoint(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// A savepoint to record, not to take.
    pub fn already_exists(&self) -> bool {
        self.savepoint
            .as_ref()
            .and_then(|s| s.already_exists)
            .unwrap_or(false)
    }
}
