//! One collection cycle's arithmetic: subtask metrics -> f(x_i) -> per-node
//! samples and per-job F(x). Pure, so it is tested without Flink.

use std::collections::BTreeMap;

use crate::flink::rest::ClusterSnapshot;
use crate::scheduler::score::{RateSample, mean_performance, relative_performance, true_rate};

/// What one JobManager's snapshot says.
#[derive(Debug, Default, PartialEq)]
pub struct CycleResult {
    /// node -> f values of the subtasks that ran there.
    pub per_node: BTreeMap<String, Vec<f64>>,
    /// job name -> F(x) over its subtasks (jobs without any usable sample absent).
    pub per_job: BTreeMap<String, f64>,
    /// Subtasks with a usable f whose node could not be found.
    pub unplaced: usize,
}

/// Turns a snapshot into samples; `node_of(taskmanager_id, host)` places a subtask.
pub fn compute(
    snapshot: &ClusterSnapshot,
    node_of: impl Fn(Option<&str>, Option<&str>) -> Option<String>,
) -> CycleResult {
    let mut out = CycleResult::default();
    for job in &snapshot.jobs {
        let mut job_f = Vec::new();
        for vertex in &job.vertices {
            let rates: Vec<Option<f64>> = vertex
                .subtasks
                .iter()
                .map(|s| {
                    let m = &s.metrics;
                    true_rate(
                        &RateSample {
                            records_in_per_second: m.records_in_per_second,
                            records_out_per_second: m.records_out_per_second,
                            busy_time_ms_per_second: m.busy_time_ms_per_second,
                        },
                        vertex.is_source,
                    )
                })
                .collect();
            for (subtask, f) in vertex.subtasks.iter().zip(relative_performance(&rates)) {
                let Some(f) = f else { continue };
                job_f.push(f);
                match node_of(subtask.taskmanager_id.as_deref(), subtask.host.as_deref()) {
                    Some(node) => out.per_node.entry(node).or_default().push(f),
                    None => out.unplaced += 1,
                }
            }
        }
        if let Some(f) = mean_performance(job_f) {
            out.per_job.insert(job.name.clone(), f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::rest::{JobSnapshot, SubtaskMetrics, SubtaskSample, VertexSnapshot};

    fn subtask(i: u32, tm: &str, rate_in: f64, busy: f64) -> SubtaskSample {
        SubtaskSample {
            index: i,
            taskmanager_id: Some(tm.into()),
            host: None,
            metrics: SubtaskMetrics {
                records_in_per_second: Some(rate_in),
                records_out_per_second: Some(rate_in),
                busy_time_ms_per_second: Some(busy),
            },
        }
    }

    #[test]
    fn slow_taskmanager_shows_on_its_node() {
        let snapshot = ClusterSnapshot {
            jobs: vec![JobSnapshot {
                jid: "j".into(),
                name: "top-speed".into(),
                vertices: vec![VertexSnapshot {
                    id: "v".into(),
                    name: "Window".into(),
                    parallelism: 3,
                    is_source: false,
                    // Same traffic; tm-c needs twice the busy time: half as fast.
                    subtasks: vec![
                        subtask(0, "tm-a", 100.0, 200.0),
                        subtask(1, "tm-b", 100.0, 200.0),
                        subtask(2, "tm-c", 100.0, 400.0),
                    ],
                }],
            }],
            requests: 0,
        };
        let node_of = |tm: Option<&str>, _: Option<&str>| match tm {
            Some("tm-a") | Some("tm-b") => Some("fast-node".to_string()),
            Some("tm-c") => Some("slow-node".to_string()),
            _ => None,
        };
        let r = compute(&snapshot, node_of);
        assert_eq!(r.per_node["slow-node"], vec![0.5]);
        assert_eq!(r.per_node["fast-node"], vec![500.0 / 375.0, 500.0 / 375.0]);
        assert!((r.per_job["top-speed"] - (0.5 + 2.0 * 500.0 / 375.0) / 3.0).abs() < 1e-9);
        assert_eq!(r.unplaced, 0);
        let none = compute(&snapshot, |_, _| None);
        assert_eq!(none.unplaced, 3);
        assert!(none.per_node.is_empty());
    }
}
