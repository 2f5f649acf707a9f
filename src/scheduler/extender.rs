//! `POST /scheduler/filter` and `POST /scheduler/prioritize`.
//!
//! Only Flink TaskManager pods are steered; every other pod gets every node
//! back with the neutral score, so placement is then what kube-scheduler
//! does without the extender. Nodes without data are neutral too.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::filter_events::{FilterEvent, FilterEvents};
use super::protocol::{
    BadExtenderArgs, Candidates, ExtenderArgs, FilterResult, HostPriority, NamedNode, NodeItem,
    RawNode, filter_result_with_nodes, write_host_priorities,
};
use super::score::{NEUTRAL_SCORE, filter_reason, priority};
use super::scores::{ScoreBoard, ScoreTable, now_unix};
use crate::flink::pod::{Component, flink_component};
use crate::http::{BodyBudget, HttpError, json_pieces_response, json_response, read_body};
use crate::policy::{PolicyStore, SchedulingRules};
use crate::telemetry::{ExtenderLabels, ExtenderPhaseLabels, Metrics};

/// A full NodeList of 5,000 Nodes of about 5 KB (23 MiB) must fit, with
/// room for larger Nodes; a body is held once in memory, and a filter
/// answer points into it.
pub const MAX_EXTENDER_BODY: usize = 32 * 1024 * 1024;

/// What the extender handlers need.
pub struct ExtenderState {
    pub policy: Arc<PolicyStore>,
    pub metrics: Metrics,
    /// Per-node scores, as the collector last published them.
    pub scores: Arc<ScoreBoard>,
    /// Events on pods whose nodes the extender filtered out.
    pub filter_events: FilterEvents,
    /// Memory for request bodies, shared with admission.
    pub bodies: Arc<BodyBudget>,
    /// Extender requests handled at once; more wait (their bodies unread).
    pub max_concurrent: usize,
    /// Only clients with a certificate from `--extender-client-ca`.
    pub require_client_certificate: bool,
}

fn bad_request(s: &ExtenderState, verb: &'static str, e: HttpError) -> Response {
    s.metrics
        .extender_requests
        .get_or_create(&ExtenderLabels {
            verb,
            result: "bad_request",
        })
        .inc();
    tracing::warn!(verb, error = %e.message, "bad extender request");
    e.into_response()
}

/// Records how long the body took to arrive, and, when dropped (whichever
/// way the handler returns), how long the rest took.
struct PhaseTimer<'a> {
    metrics: &'a Metrics,
    verb: &'static str,
    body_read: Instant,
}

impl<'a> PhaseTimer<'a> {
    fn new(metrics: &'a Metrics, verb: &'static str, started: Instant) -> Self {
        let body_read = Instant::now();
        metrics
            .extender_seconds
            .get_or_create(&ExtenderPhaseLabels {
                verb,
                phase: "read_body",
            })
            .observe(body_read.duration_since(started).as_secs_f64());
        PhaseTimer {
            metrics,
            verb,
            body_read,
        }
    }
}

impl Drop for PhaseTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .extender_seconds
            .get_or_create(&ExtenderPhaseLabels {
                verb: self.verb,
                phase: "handle",
            })
            .observe(self.body_read.elapsed().as_secs_f64());
    }
}

/// The pod and the candidates, from either form, borrowed from `body`.
fn parse_args<'a, N>(body: &'a [u8]) -> Result<Candidates<'a, N>, BadExtenderArgs>
where
    N: Deserialize<'a> + NodeItem<'a>,
{
    serde_json::from_slice::<ExtenderArgs<'a, N>>(body)?.into_candidates()
}

fn steered<N>(c: &Candidates<'_, N>) -> bool {
    let labels = c.pod.as_ref().and_then(|p| p.metadata.labels.as_ref());
    flink_component(labels) == Some(Component::TaskManager)
}

fn scheduling_rules(s: &ExtenderState) -> SchedulingRules {
    s.policy
        .borrow()
        .as_deref()
        .map(|p| p.rules_for(None).scheduling.clone())
        .unwrap_or_default()
}

/// The candidates that fail, by their index in `names`, with the reason.
pub fn filter_nodes<S: AsRef<str>>(
    names: &[S],
    table: &ScoreTable,
    rules: &SchedulingRules,
    now: f64,
) -> Vec<(usize, String)> {
    names
        .iter()
        .map(AsRef::as_ref)
        .enumerate()
        .filter_map(|(i, n)| {
            let score = table.nodes.get(n)?.decayed(now, rules)?;
            filter_reason(n, &score, rules).map(|why| (i, why))
        })
        .collect()
}

/// One log line per call, not one per node: kube-scheduler calls filter for
/// every pod, and the full set goes back in `FailedNodes` anyway.
fn summary(failed: &[(usize, String)]) -> String {
    const SHOWN: usize = 3;
    let mut text = failed
        .iter()
        .take(SHOWN)
        .map(|(_, why)| why.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if failed.len() > SHOWN {
        text.push_str(&format!("; and {} more", failed.len() - SHOWN));
    }
    text
}

pub fn prioritize_nodes<'n, S: AsRef<str>>(
    names: &'n [S],
    table: &ScoreTable,
    rules: &SchedulingRules,
    now: f64,
) -> Vec<HostPriority<'n>> {
    names
        .iter()
        .map(AsRef::as_ref)
        .map(|host| HostPriority {
            host,
            score: table
                .nodes
                .get(host)
                .and_then(|s| s.decayed(now, rules))
                .map_or(NEUTRAL_SCORE, |s| priority(s.performance(rules), rules)),
        })
        .collect()
}

pub async fn filter(State(s): State<&'static ExtenderState>, body: Body) -> Response {
    let started = Instant::now();
    let bytes = match read_body(body, MAX_EXTENDER_BODY, &s.bodies).await {
        Ok(b) => b,
        Err(e) => return bad_request(s, "filter", e.into()),
    };
    let _timer = PhaseTimer::new(&s.metrics, "filter", started);
    let candidates = match parse_args::<RawNode>(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(s, "filter", HttpError::bad_request(e.to_string())),
    };
    let names = &candidates.names;
    let failed = if steered(&candidates) {
        filter_nodes(names, &s.scores.current(), &scheduling_rules(s), now_unix())
    } else {
        Vec::new()
    };
    let mut unfit = vec![false; names.len()];
    for (i, why) in &failed {
        unfit[*i] = true;
        tracing::debug!(node = names[*i].as_str(), reason = %why, "filtered out");
    }
    if !failed.is_empty() {
        tracing::info!(
            filtered = failed.len(),
            candidates = names.len(),
            reasons = %summary(&failed),
            "nodes filtered out"
        );
        if let Some(meta) = candidates.pod.as_ref().map(|p| &p.metadata)
            && let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name)
        {
            s.filter_events.send(FilterEvent {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: meta.uid.clone(),
                message: format!(
                    "flinkgate filtered out {} of {} nodes: {}",
                    failed.len(),
                    names.len(),
                    summary(&failed)
                ),
            });
        }
    }
    s.metrics
        .extender_requests
        .get_or_create(&ExtenderLabels {
            verb: "filter",
            result: "ok",
        })
        .inc();
    let failed_nodes = failed
        .into_iter()
        .map(|(i, why)| (names[i].as_str().to_string(), why))
        .collect();
    // Answer in the form asked; only nodes from the input come back.
    match &candidates.nodes {
        Some(items) => {
            let kept = items
                .iter()
                .zip(&unfit)
                .filter(|(_, out)| !**out)
                .map(|(raw, _)| bytes.bytes.slice_ref(raw.get().as_bytes()));
            let pieces = filter_result_with_nodes(kept, &failed_nodes);
            match pieces {
                Ok(pieces) => json_pieces_response(pieces, bytes),
                Err(e) => json_response(Err(e)),
            }
        }
        None => {
            let kept: Vec<&str> = names
                .iter()
                .zip(&unfit)
                .filter(|(_, out)| !**out)
                .map(|(n, _)| n.as_str())
                .collect();
            let size = kept.iter().map(|n| n.len() + 3).sum::<usize>();
            let result = FilterResult {
                node_names: Some(kept),
                failed_nodes,
                ..FilterResult::default()
            };
            json(&result, size + 256)
        }
    }
}

pub async fn prioritize(State(s): State<&'static ExtenderState>, body: Body) -> Response {
    let started = Instant::now();
    let bytes = match read_body(body, MAX_EXTENDER_BODY, &s.bodies).await {
        Ok(b) => b,
        Err(e) => return bad_request(s, "prioritize", e.into()),
    };
    let _timer = PhaseTimer::new(&s.metrics, "prioritize", started);
    // Only the names of full Nodes are read here; nothing is sent back.
    let candidates = match parse_args::<NamedNode>(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(s, "prioritize", HttpError::bad_request(e.to_string())),
    };
    let names = &candidates.names;
    let list = if steered(&candidates) {
        prioritize_nodes(names, &s.scores.current(), &scheduling_rules(s), now_unix())
    } else {
        names
            .iter()
            .map(|n| HostPriority {
                host: n.as_str(),
                score: NEUTRAL_SCORE,
            })
            .collect()
    };
    s.metrics
        .extender_requests
        .get_or_create(&ExtenderLabels {
            verb: "prioritize",
            result: "ok",
        })
        .inc();
    json_response(write_host_priorities(&list))
}

/// Serializes straight into a buffer sized for the answer, so large answers
/// are written without regrowing.
fn json(value: &impl serde::Serialize, size_hint: usize) -> Response {
    let mut body = Vec::with_capacity(size_hint);
    json_response(serde_json::to_writer(&mut body, value).map(|()| body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::score::NodeScore;

    fn table() -> ScoreTable {
        let mut t = ScoreTable::default();
        t.nodes.insert(
            "slow".into(),
            NodeScore {
                mean: 0.3,
                weight: 50.0,
                updated: 100.0,
            },
        );
        t.nodes.insert(
            "fast".into(),
            NodeScore {
                mean: 1.5,
                weight: 50.0,
                updated: 100.0,
            },
        );
        t.nodes.insert(
            "new".into(),
            NodeScore {
                mean: 0.1,
                weight: 1.0,
                updated: 100.0,
            },
        );
        t
    }

    #[test]
    fn filter_drops_only_known_slow_nodes() {
        let names: Vec<String> = ["slow", "fast", "new", "unknown"]
            .map(String::from)
            .to_vec();
        let failed = filter_nodes(&names, &table(), &SchedulingRules::default(), 100.0);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 0);
        assert!(failed[0].1.starts_with("node slow: "), "{}", failed[0].1);
    }

    #[test]
    fn one_log_line_shows_the_first_reasons_and_counts_the_rest() {
        let failed: Vec<(usize, String)> =
            (0..5).map(|i| (i, format!("node n{i}: slow"))).collect();
        assert_eq!(
            summary(&failed),
            "node n0: slow; node n1: slow; node n2: slow; and 2 more"
        );
        assert_eq!(summary(&failed[..1]), "node n0: slow");
    }

    #[test]
    fn prioritize_orders_by_performance_and_is_neutral_without_data() {
        let names: Vec<String> = ["slow", "fast", "new", "unknown"]
            .map(String::from)
            .to_vec();
        let p = prioritize_nodes(&names, &table(), &SchedulingRules::default(), 100.0);
        let score = |h: &str| p.iter().find(|x| x.host == h).unwrap().score;
        assert!(score("fast") > score("unknown") && score("unknown") > score("slow"));
        assert_eq!(score("unknown"), NEUTRAL_SCORE);
        assert!(
            score("new") >= 4 && score("new") > score("slow"),
            "one sample moves a node less than fifty"
        );
        let stale = prioritize_nodes(&names, &table(), &SchedulingRules::default(), 100.0 + 1e6);
        assert!(
            stale.iter().all(|h| h.score == NEUTRAL_SCORE),
            "expired data is no data"
        );
    }
}
