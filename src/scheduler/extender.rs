//! `POST /scheduler/filter` and `POST /scheduler/prioritize`.
//!
//! Only Flink TaskManager pods are steered; every other pod gets every node
//! back with the neutral score, so placement is then what kube-scheduler
//! does without the extender. Nodes without data are neutral too.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};

use super::protocol::{ExtenderArgs, FilterResult, HostPriority, NodeListOut};
use super::score::{NEUTRAL_SCORE, filter_reason, priority};
use super::scores::{ScoreTable, now_unix};
use crate::admission::server::AppState;
use crate::flink::pod::{Component, flink_component};
use crate::policy::SchedulingRules;
use crate::telemetry::ExtenderLabels;

/// A full NodeList of thousands of 5 KB Nodes must fit.
pub const MAX_EXTENDER_BODY: usize = 64 * 1024 * 1024;

fn bad_request(s: &AppState, verb: &'static str, msg: &str) -> Response {
    s.metrics
        .extender_requests
        .get_or_create(&ExtenderLabels {
            verb,
            result: "bad_request",
        })
        .inc();
    tracing::warn!(verb, error = msg, "bad extender request");
    let body = serde_json::json!({ "error": msg, "code": 400 });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The arguments and the candidate node names, from either form.
async fn read_args(body: Body) -> Result<(ExtenderArgs, Vec<String>), String> {
    let bytes = Limited::new(body, MAX_EXTENDER_BODY)
        .collect()
        .await
        .map_err(|e| {
            format!("request body could not be read (limit {MAX_EXTENDER_BODY} bytes): {e}")
        })?
        .to_bytes();
    let args: ExtenderArgs =
        serde_json::from_slice(&bytes).map_err(|e| format!("body is not ExtenderArgs: {e}"))?;
    let names = args.candidate_names()?;
    Ok((args, names))
}

fn steered(args: &ExtenderArgs) -> bool {
    let labels = args.pod.as_ref().and_then(|p| p.metadata.labels.as_ref());
    flink_component(labels) == Some(Component::TaskManager)
}

fn scheduling_rules(s: &AppState) -> SchedulingRules {
    s.policy
        .current()
        .map(|p| p.rules_for(None).scheduling.clone())
        .unwrap_or_default()
}

/// Why each candidate fails, if it does.
pub fn filter_nodes(
    names: &[String],
    table: &ScoreTable,
    rules: &SchedulingRules,
    now: f64,
) -> BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|n| {
            let score = table.nodes.get(n)?.decayed(now, rules)?;
            filter_reason(n, &score, rules).map(|why| (n.clone(), why))
        })
        .collect()
}

pub fn prioritize_nodes(
    names: &[String],
    table: &ScoreTable,
    rules: &SchedulingRules,
    now: f64,
) -> Vec<HostPriority> {
    names
        .iter()
        .map(|n| HostPriority {
            host: n.clone(),
            score: table
                .nodes
                .get(n)
                .and_then(|s| s.decayed(now, rules))
                .map_or(NEUTRAL_SCORE, |s| priority(s.performance(rules), rules)),
        })
        .collect()
}

pub async fn filter(State(s): State<AppState>, body: Body) -> Response {
    let (args, names) = match read_args(body).await {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(&s, "filter", &e),
    };
    let failed = if steered(&args) {
        filter_nodes(
            &names,
            &s.scores.current(),
            &scheduling_rules(&s),
            now_unix(),
        )
    } else {
        BTreeMap::new()
    };
    for (node, why) in &failed {
        tracing::info!(node, reason = %why, "filtered out");
    }
    let result = FilterResult {
        // Answer in the form asked; only nodes from the input come back.
        nodes: match (&args.node_names, &args.nodes) {
            (None, Some(list)) => Some(NodeListOut {
                api_version: "v1",
                kind: "NodeList",
                metadata: serde_json::Map::new(),
                items: list
                    .items
                    .iter()
                    .zip(&names)
                    .filter(|(_, n)| !failed.contains_key(*n))
                    .map(|(raw, _)| raw.as_ref())
                    .collect(),
            }),
            _ => None,
        },
        node_names: args.node_names.as_ref().map(|ns| {
            ns.iter()
                .filter(|n| !failed.contains_key(*n))
                .cloned()
                .collect()
        }),
        failed_nodes: failed,
        ..FilterResult::default()
    };
    s.metrics
        .extender_requests
        .get_or_create(&ExtenderLabels {
            verb: "filter",
            result: "ok",
        })
        .inc();
    json(&result)
}

pub async fn prioritize(State(s): State<AppState>, body: Body) -> Response {
    let (args, names) = match read_args(body).await {
        Ok(parsed) => parsed,
        Err(e) => return bad_request(&s, "prioritize", &e),
    };
    let list = if steered(&args) {
        prioritize_nodes(
            &names,
            &s.scores.current(),
            &scheduling_rules(&s),
            now_unix(),
        )
    } else {
        names
            .into_iter()
            .map(|host| HostPriority {
                host,
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
    json(&list)
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding failed: {e}"),
        )
            .into_response(),
    }
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
        assert_eq!(failed.keys().collect::<Vec<_>>(), ["slow"]);
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
