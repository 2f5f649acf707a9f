//! Events on TaskManager pods for which the extender filtered nodes out, so
//! `kubectl describe pod` says which node was skipped and why. The request
//! path only hands them to a bounded channel (never waiting, dropping when
//! full); one task publishes them with the API client.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::tasks::Tasks;

/// Events waiting to be published; beyond this they are dropped (logged).
const QUEUE: usize = 256;

/// One pod and the filter's reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterEvent {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub message: String,
}

/// The request path's handle; without a cluster (local use) it drops all.
#[derive(Clone, Default)]
pub struct FilterEvents(Option<mpsc::Sender<FilterEvent>>);

impl FilterEvents {
    /// Starts the publishing task in `tasks`; it ends with `stop`.
    pub fn start(
        client: Client,
        identity: String,
        stop: CancellationToken,
        tasks: &mut Tasks,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<FilterEvent>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "flinkgate-extender".into(),
                instance: Some(identity),
            },
        );
        tasks.spawn("filter Events", async move {
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = rx.recv() => match ev { Some(ev) => ev, None => return },
                };
                let reference = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    namespace: Some(ev.namespace.clone()),
                    name: Some(ev.name.clone()),
                    uid: ev.uid.clone(),
                    ..ObjectReference::default()
                };
                let event = Event {
                    type_: EventType::Normal,
                    reason: "NodesFiltered".into(),
                    note: Some(ev.message),
                    action: "Filter".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::debug!(pod = %format!("{}/{}", ev.namespace, ev.name), error = %e, "cannot publish a filter Event");
                }
            }
        });
        Self(Some(tx))
    }

    pub fn send(&self, event: FilterEvent) {
        if let Some(tx) = &self.0
            && let Err(e) = tx.try_send(event)
        {
            tracing::debug!(error = %e, "filter Event dropped");
        }
    }
}
