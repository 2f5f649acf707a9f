//! The kube-scheduler extender: steers Flink TaskManager pods by measured
//! mean per-task performance F_n (see score.rs).

pub mod extender;
pub mod filter_events;
pub mod protocol;
pub mod rebalance;
pub mod score;
pub mod scores;
