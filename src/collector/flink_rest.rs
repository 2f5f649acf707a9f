//! Flink JobManager REST client (being written).
