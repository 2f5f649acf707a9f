//! Where policies come from: the built-in one, a file (polled), or a
//! ConfigMap watched through the API server. Each new document is checked
//! first; a bad one is reported and the last good policy stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use tokio_util::sync::CancellationToken;

use super::document::Policy;
use super::store::PolicyStore;
use crate::k8s::{ConfigMapChange, NamespacedName, configmap_changes};
use crate::watch::poll_files;

/// The ConfigMap key holding the policy document.
pub const POLICY_KEY: &str = "policy.yaml";

/// Parses a document and installs it, or reports why not. Returns the error text.
pub fn apply_document(store: &PolicyStore, yaml: &str, source: &str) -> Result<u64, String> {
    match Policy::parse(yaml, source) {
        Ok(policy) => {
            let generation = store.install(policy);
            tracing::info!(source, generation, "policy in force");
            Ok(generation)
        }
        Err(e) => {
            store.record_rejection();
            tracing::error!(source, error = %e, "policy rejected; the last good policy stays in force");
            Err(e.to_string())
        }
    }
}

/// Polls a policy file and installs each new valid version.
pub async fn watch_file(
    store: Arc<PolicyStore>,
    path: PathBuf,
    interval: Duration,
    stop: CancellationToken,
) {
    let source = path.display().to_string();
    // The caller loaded the first version; start from what is on disk now.
    poll_files([&path], interval, stop, true, |read| {
        match read.map(|mut files| String::from_utf8(files.pop().unwrap_or_default())) {
            Ok(Ok(text)) => {
                let _ = apply_document(&store, &text, &source);
            }
            Ok(Err(_)) => {
                store.record_rejection();
                tracing::error!(source, "policy file is not UTF-8; the last good policy stays in force");
            }
            Err(e) => {
                tracing::warn!(source, error = %e, "cannot read policy file; keeping the policy in force")
            }
        }
        true
    })
    .await;
}

/// Watches one ConfigMap and installs each new valid `policy.yaml`. A rejected
/// document also becomes a Warning Event on the ConfigMap, so `kubectl
/// describe configmap` shows why the edit did not take.
pub async fn watch_configmap(
    store: Arc<PolicyStore>,
    client: Client,
    cm: NamespacedName,
    stop: CancellationToken,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "flinkgate".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let source = format!("configmap {cm}");
    let mut changes = std::pin::pin!(configmap_changes(client, &cm));
    let mut last_seen: Option<String> = None;
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => return,
            n = changes.next() => n,
        };
        let obj = match change {
            None => return,
            Some(ConfigMapChange::Applied(o)) => o,
            Some(ConfigMapChange::Deleted) => {
                tracing::warn!(
                    source,
                    "policy ConfigMap deleted; the last good policy stays in force"
                );
                continue;
            }
        };
        let Some(doc) = obj.data.as_ref().and_then(|d| d.get(POLICY_KEY)) else {
            store.record_rejection();
            let msg =
                format!("ConfigMap has no key '{POLICY_KEY}'; the last good policy stays in force");
            tracing::error!(source, "{msg}");
            publish_rejection(&recorder, &obj, &msg).await;
            continue;
        };
        // Resyncs replay the same document: only act on a change.
        if last_seen.as_deref() == Some(doc.as_str()) {
            continue;
        }
        last_seen = Some(doc.clone());
        if let Err(msg) = apply_document(&store, doc, &source) {
            publish_rejection(
                &recorder,
                &obj,
                &format!("{msg}; the last good policy stays in force"),
            )
            .await;
        }
    }
}

async fn publish_rejection(recorder: &Recorder, cm: &ConfigMap, message: &str) {
    let event = Event {
        type_: EventType::Warning,
        reason: "PolicyRejected".into(),
        note: Some(message.chars().take(1000).collect()),
        action: "LoadPolicy".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &cm.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish the PolicyRejected event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_ref_parses() {
        let r: NamespacedName = "flinkgate-system/flinkgate-policy".parse().unwrap();
        assert_eq!(r.namespace, "flinkgate-system");
        assert_eq!(r.name, "flinkgate-policy");
        for bad in ["", "x", "/x", "x/", "a/b/c"] {
            assert!(bad.parse::<NamespacedName>().is_err(), "{bad}");
        }
    }
}
