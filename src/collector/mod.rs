//! The score collector: reads per-subtask metrics from running Flink
//! JobManagers, maps each subtask to the node it ran on, and publishes per-node
//! mean task performance for the scheduler extender.

pub mod flink_rest;
