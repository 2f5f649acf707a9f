//! The published per-node scores: written by the elected collector into a
//! ConfigMap (key `scores.json`), read by every replica's extender, so all
//! replicas score alike and scores survive restarts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use kube::Client;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::score::NodeScore;
use crate::k8s::NamespacedName;
use crate::k8s::{ConfigMapChange, configmap_changes};
use crate::watch::poll_files;

pub const SCORES_KEY: &str = "scores.json";

/// Per-node F_n inputs, plus per-job health, as published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreTable {
    /// Unix seconds when the collector wrote it.
    pub generated: f64,
    /// Hashed for the extender's per-node lookups; written sorted.
    #[serde(serialize_with = "sorted")]
    pub nodes: HashMap<String, NodeScore>,
    /// `namespace/name` -> F(x) over the job's subtasks.
    #[serde(default)]
    pub jobs: BTreeMap<String, f64>,
}

/// Writes a map with its keys in order, so the published ConfigMap only
/// changes where a value does.
fn sorted<S: serde::Serializer, V: Serialize>(
    map: &HashMap<String, V>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    let ordered: BTreeMap<&String, &V> = map.iter().collect();
    ordered.serialize(ser)
}

/// The table the extender scores with; swapped whole on every update.
#[derive(Default)]
pub struct ScoreBoard {
    table: ArcSwap<ScoreTable>,
}

impl ScoreBoard {
    pub fn current(&self) -> Arc<ScoreTable> {
        self.table.load_full()
    }

    pub fn replace(&self, table: ScoreTable) {
        self.table.store(Arc::new(table));
    }

    fn load(&self, text: &str, source: &str) {
        match serde_json::from_str::<ScoreTable>(text) {
            Ok(t) => {
                tracing::debug!(source, nodes = t.nodes.len(), "scores loaded");
                self.replace(t);
            }
            Err(e) => {
                tracing::warn!(source, error = %e, "unreadable scores; keeping the previous ones")
            }
        }
    }
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Follows the scores ConfigMap.
pub async fn watch_configmap(
    board: Arc<ScoreBoard>,
    client: Client,
    cm: NamespacedName,
    stop: CancellationToken,
) {
    let source = format!("configmap {cm}");
    let mut changes = std::pin::pin!(configmap_changes(client, &cm));
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => return,
            n = changes.next() => n,
        };
        match change {
            None => return,
            Some(ConfigMapChange::Applied(o)) => {
                if let Some(text) = o.data.as_ref().and_then(|d| d.get(SCORES_KEY)) {
                    board.load(text, &source);
                }
            }
            // Scores survive the ConfigMap: the leader writes it again.
            Some(ConfigMapChange::Deleted) => {}
        }
    }
}

/// Follows a scores file (local runs and benchmarks).
pub async fn watch_file(
    board: Arc<ScoreBoard>,
    path: PathBuf,
    interval: Duration,
    stop: CancellationToken,
) {
    let source = path.display().to_string();
    poll_files([&path], interval, stop, false, |read| {
        match read {
            Ok(files) => board.load(&String::from_utf8_lossy(&files[0]), &source),
            Err(e) => tracing::warn!(source, error = %e, "cannot read the scores file"),
        }
        true
    })
    .await;
}
