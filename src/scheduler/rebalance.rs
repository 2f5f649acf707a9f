//! Healing running jobs (policy `scheduling.rebalance`, off by default):
//! which TaskManager pod, if any, the leader moves off a node whose F_n has
//! stayed below the floor. A move deletes the pod; Flink restores the job
//! from its latest checkpoint and the extender places the replacement.
//!
//! Pure decisions over what the collector observed; it carries them out.

use std::collections::BTreeMap;

use super::score::NodeScore;
use crate::policy::SchedulingRules;

/// A node as the guards see it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub name: String,
    /// Ready and schedulable: it may take a replacement pod.
    pub schedulable: bool,
    /// Allocatable minus what its pods request.
    pub free_cpu_millis: i64,
    pub free_memory_bytes: i64,
}

/// One TaskManager pod of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskManagerView {
    pub pod: String,
    pub node: String,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

/// A job and the facts its guards need.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// `namespace/name` of its FlinkDeployment.
    pub id: String,
    /// It has completed a checkpoint to restore from.
    pub checkpointed: bool,
    /// RUNNING with every subtask running (not restarting).
    pub running: bool,
    /// A savepoint, upgrade or suspend is in flight.
    pub changing: bool,
    /// Unix seconds of its last move, if any.
    pub last_move: Option<f64>,
    pub taskmanagers: Vec<TaskManagerView>,
}

/// A TaskManager to move, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub job: String,
    pub pod: String,
    pub node: String,
    pub reason: String,
}

/// Why a job is left where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stay {
    Disabled,
    NoCheckpoint,
    NotRunning,
    Changing,
    CoolingDown,
    /// None of its TaskManagers is on a node that stayed below the floor.
    NoSlowNode,
    /// No other node is faster, above the floor and has room for the pod.
    NoBetterNode,
}

/// Nodes below the floor (with enough samples) -> since when, in unix
/// seconds: the earliest time kept while a node stays below, dropped once it
/// recovers or its figures expire.
pub fn below_floor_since(
    previous: &BTreeMap<String, f64>,
    scores: &BTreeMap<String, NodeScore>,
    now: f64,
    rules: &SchedulingRules,
) -> BTreeMap<String, f64> {
    scores
        .iter()
        .filter(|(_, s)| below_floor(s, rules))
        .map(|(node, _)| (node.clone(), previous.get(node).copied().unwrap_or(now)))
        .collect()
}

fn below_floor(score: &NodeScore, rules: &SchedulingRules) -> bool {
    rules.floor > 0.0
        && score.weight >= f64::from(rules.min_samples)
        && score.performance(rules) < rules.floor
}

/// At most one move for `job`: a TaskManager on the node that has stayed
/// below the floor longest (at least `belowFloorSeconds`), when a better node
/// with room for it exists and every guard passes.
pub fn decide(
    job: &JobView,
    nodes: &[NodeView],
    scores: &BTreeMap<String, NodeScore>,
    since: &BTreeMap<String, f64>,
    now: f64,
    rules: &SchedulingRules,
) -> Result<Move, Stay> {
    let rb = &rules.rebalance;
    if !rb.enabled {
        return Err(Stay::Disabled);
    }
    if !job.checkpointed {
        return Err(Stay::NoCheckpoint);
    }
    if !job.running {
        return Err(Stay::NotRunning);
    }
    if job.changing {
        return Err(Stay::Changing);
    }
    if job.last_move.is_some_and(|t| now - t < rb.cooldown_seconds) {
        return Err(Stay::CoolingDown);
    }
    let performance = |node: &str| scores.get(node).map(|s| s.performance(rules));
    // Slow nodes first: the longest below the floor, then the slowest.
    let mut candidates: Vec<(&TaskManagerView, f64, f64)> = job
        .taskmanagers
        .iter()
        .filter_map(|tm| {
            let since = *since.get(&tm.node)?;
            (now - since >= rb.below_floor_seconds).then_some((
                tm,
                since,
                performance(&tm.node).unwrap_or(1.0),
            ))
        })
        .collect();
    if candidates.is_empty() {
        return Err(Stay::NoSlowNode);
    }
    candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)));
    for (tm, since, slow) in candidates {
        let better = nodes.iter().any(|n| {
            let f = performance(&n.name).unwrap_or(1.0);
            n.name != tm.node
                && n.schedulable
                && !scores.get(&n.name).is_some_and(|s| below_floor(s, rules))
                && f > slow
                && n.free_cpu_millis >= tm.cpu_millis
                && n.free_memory_bytes >= tm.memory_bytes
        });
        if better {
            return Ok(Move {
                job: job.id.clone(),
                pod: tm.pod.clone(),
                node: tm.node.clone(),
                reason: format!(
                    "node {} has run tasks at {slow:.2} of their peers' speed for {:.0}s, below the floor {:.2}",
                    tm.node,
                    now - since,
                    rules.floor
                ),
            });
        }
    }
    Err(Stay::NoBetterNode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RebalanceRules;
    use proptest::prelude::*;

    const GIB: i64 = 1 << 30;

    fn rules() -> SchedulingRules {
        SchedulingRules {
            rebalance: RebalanceRules {
                enabled: true,
                below_floor_seconds: 120.0,
                cooldown_seconds: 600.0,
            },
            ..SchedulingRules::default()
        }
    }

    fn score(mean: f64, weight: f64) -> NodeScore {
        NodeScore {
            mean,
            weight,
            updated: 1000.0,
        }
    }

    fn node(name: &str) -> NodeView {
        NodeView {
            name: name.into(),
            schedulable: true,
            free_cpu_millis: 2000,
            free_memory_bytes: 8 * GIB,
        }
    }

    fn tm(pod: &str, node: &str) -> TaskManagerView {
        TaskManagerView {
            pod: pod.into(),
            node: node.into(),
            cpu_millis: 500,
            memory_bytes: GIB,
        }
    }

    fn job() -> JobView {
        JobView {
            id: "team/orders".into(),
            checkpointed: true,
            running: true,
            changing: false,
            last_move: None,
            taskmanagers: vec![tm("orders-tm-1", "fast"), tm("orders-tm-2", "slow")],
        }
    }

    /// `slow` at 0.3 with plenty of samples, `fast` at 1.2; `slow` below
    /// the floor since t=0.
    fn world() -> (
        Vec<NodeView>,
        BTreeMap<String, NodeScore>,
        BTreeMap<String, f64>,
    ) {
        let scores = BTreeMap::from([
            ("slow".to_owned(), score(0.3, 40.0)),
            ("fast".to_owned(), score(1.2, 40.0)),
        ]);
        let since = below_floor_since(&BTreeMap::new(), &scores, 0.0, &rules());
        (vec![node("slow"), node("fast")], scores, since)
    }

    #[test]
    fn the_taskmanager_on_a_node_long_below_the_floor_is_moved() {
        let (nodes, scores, since) = world();
        assert_eq!(since, BTreeMap::from([("slow".to_owned(), 0.0)]));
        let m = decide(&job(), &nodes, &scores, &since, 300.0, &rules()).expect("a move");
        assert_eq!(m.pod, "orders-tm-2");
        assert_eq!(m.node, "slow");
        assert_eq!(
            m.reason,
            "node slow has run tasks at 0.34 of their peers' speed for 300s, below the floor 0.60"
        );
    }

    #[test]
    fn every_guard_keeps_the_job_where_it_is() {
        let (nodes, scores, since) = world();
        let r = rules();
        let at =
            |j: &JobView, now: f64, r: &SchedulingRules| decide(j, &nodes, &scores, &since, now, r);
        let mut off = r.clone();
        off.rebalance.enabled = false;
        assert_eq!(at(&job(), 300.0, &off), Err(Stay::Disabled));
        let j = JobView {
            checkpointed: false,
            ..job()
        };
        assert_eq!(at(&j, 300.0, &r), Err(Stay::NoCheckpoint));
        let j = JobView {
            running: false,
            ..job()
        };
        assert_eq!(at(&j, 300.0, &r), Err(Stay::NotRunning));
        let j = JobView {
            changing: true,
            ..job()
        };
        assert_eq!(at(&j, 300.0, &r), Err(Stay::Changing));
        let j = JobView {
            last_move: Some(0.0),
            ..job()
        };
        assert_eq!(at(&j, 300.0, &r), Err(Stay::CoolingDown));
        assert!(at(&j, 601.0, &r).is_ok(), "the cooldown ends");
        assert_eq!(
            at(&job(), 60.0, &r),
            Err(Stay::NoSlowNode),
            "not below the floor for long enough yet"
        );
        let j = JobView {
            taskmanagers: vec![tm("orders-tm-1", "fast")],
            ..job()
        };
        assert_eq!(at(&j, 300.0, &r), Err(Stay::NoSlowNode));
    }

    #[test]
    fn no_move_without_a_better_node_with_room() {
        let (mut nodes, scores, since) = world();
        let r = rules();
        nodes[1].free_cpu_millis = 100;
        assert_eq!(
            decide(&job(), &nodes, &scores, &since, 300.0, &r),
            Err(Stay::NoBetterNode),
            "the fast node has no room"
        );
        nodes[1].free_cpu_millis = 2000;
        nodes[1].schedulable = false;
        assert_eq!(
            decide(&job(), &nodes, &scores, &since, 300.0, &r),
            Err(Stay::NoBetterNode),
            "the fast node is cordoned"
        );
        // Every other node is as slow: moving gains nothing.
        let slow_everywhere = BTreeMap::from([
            ("slow".to_owned(), score(0.3, 40.0)),
            ("fast".to_owned(), score(0.3, 40.0)),
        ]);
        let since = below_floor_since(&BTreeMap::new(), &slow_everywhere, 0.0, &r);
        assert_eq!(
            decide(&job(), &world().0, &slow_everywhere, &since, 300.0, &r),
            Err(Stay::NoBetterNode)
        );
        // A node nothing is known about counts as neutral (1.0): better.
        let unknown = vec![node("slow"), node("new")];
        let (_, scores, since) = world();
        assert!(decide(&job(), &unknown, &scores, &since, 300.0, &r).is_ok());
    }

    #[test]
    fn below_floor_tracking_keeps_the_first_time_and_forgets_recovered_nodes() {
        let r = rules();
        let few = BTreeMap::from([("slow".to_owned(), score(0.3, 3.0))]);
        assert!(
            below_floor_since(&BTreeMap::new(), &few, 0.0, &r).is_empty(),
            "too few samples"
        );
        let slow = BTreeMap::from([("slow".to_owned(), score(0.3, 40.0))]);
        let first = below_floor_since(&BTreeMap::new(), &slow, 10.0, &r);
        let later = below_floor_since(&first, &slow, 50.0, &r);
        assert_eq!(later["slow"], 10.0);
        let recovered = BTreeMap::from([("slow".to_owned(), score(0.9, 40.0))]);
        assert!(below_floor_since(&later, &recovered, 60.0, &r).is_empty());
    }

    proptest! {
        /// Whatever the figures: a move always takes a TaskManager of the
        /// job off a node below the floor for long enough, and only while
        /// some other schedulable node with room is faster.
        #[test]
        fn a_move_is_always_justified(
            perf in proptest::collection::vec(0.05f64..2.0, 2..6),
            weights in proptest::collection::vec(0.0f64..60.0, 6),
            placement in proptest::collection::vec(0usize..6, 1..6),
            free_cpu in proptest::collection::vec(0i64..3000, 6),
            since_at in 0.0f64..400.0,
        ) {
            let r = rules();
            let names: Vec<String> = (0..perf.len()).map(|i| format!("n{i}")).collect();
            let scores: BTreeMap<String, NodeScore> = names.iter().enumerate()
                .map(|(i, n)| (n.clone(), score(perf[i], weights[i]))).collect();
            let since = below_floor_since(&BTreeMap::new(), &scores, since_at, &r);
            let nodes: Vec<NodeView> = names.iter().enumerate().map(|(i, n)| NodeView {
                free_cpu_millis: free_cpu[i], ..node(n) }).collect();
            let j = JobView {
                taskmanagers: placement.iter().enumerate()
                    .map(|(k, i)| tm(&format!("tm-{k}"), &names[i % names.len()])).collect(),
                ..job()
            };
            if let Ok(m) = decide(&j, &nodes, &scores, &since, 500.0, &r) {
                let slow = scores[&m.node].performance(&r);
                prop_assert!(j.taskmanagers.iter().any(|t| t.pod == m.pod && t.node == m.node));
                prop_assert!(slow < r.floor && scores[&m.node].weight >= 10.0);
                prop_assert!(500.0 - since[&m.node] >= r.rebalance.below_floor_seconds);
                prop_assert!(nodes.iter().any(|n| n.name != m.node
                    && n.free_cpu_millis >= 500
                    && scores[&n.name].performance(&r) > slow));
            }
        }
    }
}
