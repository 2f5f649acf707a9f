//! The Flink JobManager REST client, one for the whole crate: the reads
//! (jobs, vertices, subtasks, per-subtask rate metrics), the collector's
//! whole-JobManager `snapshot` (in `snapshot`), and the controller's
//! operations: jars, runs, savepoints, checkpoints, cancel (in `control`).
//!
//! Parsing is lenient on purpose: Flink adds, renames and removes fields
//! between versions (`host` became `endpoint` in 1.19 and was later removed),
//! so only the fields we use are read and most of them are optional.

mod client;
mod control;
mod snapshot;

pub use client::{
    FlinkRestClient, FlinkRestError, FlinkRestOptions, JobDetails, JobPlan, JobSummary, JobVertex,
    METRIC_BUSY_TIME, METRIC_RECORDS_IN, METRIC_RECORDS_OUT, PlanInput, PlanNode, SubtaskDetails,
    SubtaskMetrics, VertexDetails,
};
pub use control::{ClusterOverview, FlinkJob, RunRequest, SavepointProgress};
pub use snapshot::{ClusterSnapshot, JobSnapshot, SubtaskSample, VertexSnapshot};
