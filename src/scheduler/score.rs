//! The F(x) model of architecture.md, as pure functions.
//!
//! - f(x_i): a subtask's true processing rate (records in per busy second;
//!   records out for sources) divided by the mean true rate of the *other*
//!   subtasks of its vertex. 1.0 = as fast as its peers.
//! - F_n: per node, the mean of f over the subtasks that ran there, smoothed
//!   over time (exponential decay with a half-life) and shrunk towards 1.0
//!   while the node has few samples.
//! - prioritize: 5 + 5 * weight * (F_n - 1), clamped to 0..=10.
//! - filter: F_n below the floor, with at least `min_samples`, fails the node.

use serde::{Deserialize, Serialize};

use super::protocol::MAX_EXTENDER_PRIORITY;
use crate::policy::SchedulingRules;

/// The score of a node nothing is known about: changes nothing.
pub const NEUTRAL_SCORE: i64 = 5;

/// One subtask's metrics as Flink reports them (absent or NaN: `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateSample {
    pub records_in_per_second: Option<f64>,
    pub records_out_per_second: Option<f64>,
    pub busy_time_ms_per_second: Option<f64>,
}

/// Records a subtask processes per second of busy time; `None` when it had
/// no traffic or no busy time (skipped, not counted as zero).
pub fn true_rate(s: &RateSample, is_source: bool) -> Option<f64> {
    let records = if is_source {
        s.records_out_per_second
    } else {
        s.records_in_per_second
    }?;
    let busy_ms = s.busy_time_ms_per_second?;
    if !(records.is_finite() && busy_ms.is_finite()) || records <= 0.0 || busy_ms <= 0.0 {
        return None;
    }
    Some(records * 1000.0 / busy_ms)
}

/// f(x_i) for each subtask of one vertex: its rate over the mean rate of the
/// others. `None` where the subtask has no rate, or no peer has one.
pub fn relative_performance(rates: &[Option<f64>]) -> Vec<Option<f64>> {
    let (sum, count) = rates
        .iter()
        .flatten()
        .fold((0.0, 0usize), |(s, c), r| (s + r, c + 1));
    rates
        .iter()
        .map(|r| {
            let r = (*r)?;
            let peers = count - 1;
            if peers == 0 {
                return None;
            }
            let peer_mean = (sum - r) / peers as f64;
            (peer_mean > 0.0).then(|| r / peer_mean)
        })
        .collect()
}

/// F(x) = (1/N) Σ f(x_i) over the known values; `None` without any.
pub fn mean_performance(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// What is known about one node, as published for the extender.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeScore {
    /// Time-weighted mean of f over the node's samples.
    pub mean: f64,
    /// Effective number of samples after decay.
    pub weight: f64,
    /// Unix seconds of the last sample.
    pub updated: f64,
}

impl NodeScore {
    /// Folds one collection cycle's f values for this node in at time `now`.
    pub fn update(
        previous: Option<NodeScore>,
        samples: &[f64],
        now: f64,
        rules: &SchedulingRules,
    ) -> Option<NodeScore> {
        let fresh = mean_performance(samples.iter().copied());
        let kept = previous.and_then(|p| p.decayed(now, rules));
        match (kept, fresh) {
            (None, None) => None,
            (Some(p), None) => Some(p),
            (None, Some(m)) => Some(NodeScore {
                mean: m,
                weight: samples.len() as f64,
                updated: now,
            }),
            (Some(p), Some(m)) => {
                let n = samples.len() as f64;
                let weight = p.weight + n;
                Some(NodeScore {
                    mean: (p.mean * p.weight + m * n) / weight,
                    weight,
                    updated: now,
                })
            }
        }
    }

    /// The score as seen at `now`: its weight halved every half-life, and
    /// gone once older than the window.
    pub fn decayed(self, now: f64, rules: &SchedulingRules) -> Option<NodeScore> {
        let age = (now - self.updated).max(0.0);
        if age > rules.window_seconds {
            return None;
        }
        let factor = 0.5f64.powf(age / rules.half_life_seconds);
        Some(NodeScore {
            weight: self.weight * factor,
            ..self
        })
    }

    /// F_n: the mean shrunk towards 1.0 by `min_samples / 4` pseudo-samples
    /// of 1.0, so a node with little data is neither favoured nor punished,
    /// while one with `min_samples` real samples is mostly its own mean.
    pub fn performance(&self, rules: &SchedulingRules) -> f64 {
        let prior = prior_strength(rules);
        if self.weight + prior <= 0.0 {
            return 1.0;
        }
        (self.mean * self.weight + prior) / (self.weight + prior)
    }
}

fn prior_strength(rules: &SchedulingRules) -> f64 {
    f64::from(rules.min_samples) / 4.0
}

/// prioritize: F_n mapped linearly onto 0..=10 with 1.0 -> 5.
pub fn priority(performance: f64, rules: &SchedulingRules) -> i64 {
    if !performance.is_finite() {
        return NEUTRAL_SCORE;
    }
    let raw = 5.0 + 5.0 * rules.weight * (performance - 1.0);
    (raw.round() as i64).clamp(0, MAX_EXTENDER_PRIORITY)
}

/// filter: why a node is unfit, or `None` when it may take the pod.
pub fn filter_reason(node: &str, score: &NodeScore, rules: &SchedulingRules) -> Option<String> {
    if rules.floor <= 0.0 || score.weight < f64::from(rules.min_samples) {
        return None;
    }
    let f = score.performance(rules);
    (f < rules.floor).then(|| {
        format!(
            "node {node}: mean task performance {f:.2} over {} tasks is below the floor {:.2}",
            score.weight.round() as u64,
            rules.floor
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> SchedulingRules {
        SchedulingRules::default()
    }

    fn sample(r_in: f64, r_out: f64, busy: f64) -> RateSample {
        RateSample {
            records_in_per_second: Some(r_in),
            records_out_per_second: Some(r_out),
            busy_time_ms_per_second: Some(busy),
        }
    }

    #[test]
    fn true_rate_uses_busy_time_and_skips_idle() {
        assert_eq!(true_rate(&sample(100.0, 0.0, 500.0), false), Some(200.0));
        assert_eq!(true_rate(&sample(0.0, 50.0, 250.0), true), Some(200.0));
        assert_eq!(
            true_rate(&sample(0.0, 0.0, 500.0), false),
            None,
            "no traffic"
        );
        assert_eq!(
            true_rate(&sample(100.0, 0.0, 0.0), false),
            None,
            "no busy time"
        );
        assert_eq!(true_rate(&sample(f64::NAN, 0.0, 10.0), false), None);
        assert_eq!(true_rate(&RateSample::default(), false), None);
    }

    #[test]
    fn relative_performance_against_the_other_subtasks() {
        let f = relative_performance(&[Some(100.0), Some(100.0), Some(50.0), None]);
        assert_eq!(f[0], Some(100.0 / 75.0));
        assert_eq!(f[2], Some(0.5));
        assert_eq!(f[3], None);
        assert_eq!(
            relative_performance(&[Some(10.0)]),
            vec![None],
            "no peers, no comparison"
        );
    }

    #[test]
    fn node_scores_smooth_decay_and_expire() {
        let r = rules();
        let s = NodeScore::update(None, &[0.5, 0.5], 0.0, &r).unwrap();
        assert_eq!((s.mean, s.weight), (0.5, 2.0));
        let half = s.decayed(r.half_life_seconds, &r).unwrap();
        assert!((half.weight - 1.0).abs() < 1e-9);
        let s2 = NodeScore::update(Some(s), &[1.0, 1.0], r.half_life_seconds, &r).unwrap();
        assert!((s2.mean - (0.5 * 1.0 + 1.0 * 2.0) / 3.0).abs() < 1e-9);
        assert!(s.decayed(r.window_seconds + 1.0, &r).is_none(), "expired");
        assert_eq!(NodeScore::update(None, &[], 0.0, &r), None);
    }

    #[test]
    fn filter_message_names_the_node_and_figures() {
        let r = rules();
        let s = NodeScore {
            mean: 0.3,
            weight: 12.0,
            updated: 0.0,
        };
        let msg = filter_reason("worker-3", &s, &r).unwrap();
        assert!(
            msg.starts_with("node worker-3: mean task performance 0.42"),
            "{msg}"
        );
        assert!(
            msg.contains("over 12 tasks is below the floor 0.60"),
            "{msg}"
        );
        let few = NodeScore { weight: 3.0, ..s };
        assert_eq!(filter_reason("worker-3", &few, &r), None, "too few samples");
    }

    #[test]
    fn priority_maps_one_to_five() {
        let r = rules();
        assert_eq!(priority(1.0, &r), 5);
        assert_eq!(priority(2.0, &r), 10);
        assert_eq!(priority(0.0, &r), 0);
        assert_eq!(priority(f64::NAN, &r), NEUTRAL_SCORE);
    }

    proptest! {
        #[test]
        fn priority_is_bounded_and_monotone(a in -1e6f64..1e6, b in -1e6f64..1e6, w in 0.0f64..100.0) {
            let r = SchedulingRules { weight: w, ..rules() };
            let (pa, pb) = (priority(a, &r), priority(b, &r));
            prop_assert!((0..=MAX_EXTENDER_PRIORITY).contains(&pa));
            if a <= b { prop_assert!(pa <= pb); }
        }

        #[test]
        fn shrinkage_stays_between_mean_and_one(mean in 0.0f64..10.0, weight in 0.0f64..1000.0) {
            let r = rules();
            let f = NodeScore { mean, weight, updated: 0.0 }.performance(&r);
            let (lo, hi) = if mean < 1.0 { (mean, 1.0) } else { (1.0, mean) };
            prop_assert!(f >= lo - 1e-9 && f <= hi + 1e-9);
        }

        #[test]
        fn no_data_is_neutral(weight in 0.0f64..1e-12) {
            let r = rules();
            let f = NodeScore { mean: 0.1, weight, updated: 0.0 }.performance(&r);
            prop_assert!((f - 1.0).abs() < 1e-6);
            prop_assert_eq!(priority(f, &r), NEUTRAL_SCORE);
        }

        #[test]
        fn equal_peers_are_all_one(rate in 1.0f64..1e6, n in 2usize..20) {
            let f = relative_performance(&vec![Some(rate); n]);
            for v in f { prop_assert!((v.unwrap() - 1.0).abs() < 1e-9); }
        }

        #[test]
        fn faster_subtask_scores_higher(base in 1.0f64..1e4, extra in 0.0f64..1e4, n in 2usize..10) {
            let mut rates = vec![Some(base); n];
            rates[0] = Some(base + extra);
            let f = relative_performance(&rates);
            prop_assert!(f[0].unwrap() >= f[1].unwrap() - 1e-12);
        }
    }
}
