//! What flinkgate knows about Flink: the operator's resources, Flink
//! configuration keys, its memory model, how Flink pods are recognised, and
//! the JobManager REST client.

pub mod config;
pub mod crd;
pub mod crd_gen;
pub mod memory;
pub mod pod;
pub mod reconciled;
pub mod rest;
pub mod schema;
pub mod state_snapshot;
pub mod status;
pub mod version;
