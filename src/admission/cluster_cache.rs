//! The server's [`ClusterView`]: watch caches of FlinkDeployments and
//! FlinkSessionJobs in every namespace, which each webhook replica keeps for
//! itself. Until a cache's first full list has arrived it answers
//! "unchecked", so nothing is judged against a cache that may be missing
//! the resource.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::cluster_view::{ClusterView, Presence, SessionCluster};
use crate::flink::crd::{FlinkDeployment, FlinkSessionJob};
use crate::flink::state_snapshot::KIND_FLINK_DEPLOYMENT;

pub struct ClusterCache {
    deployments: Watched<FlinkDeployment>,
    session_jobs: Watched<FlinkSessionJob>,
}

/// One resource kind's store and whether its first list has arrived.
struct Watched<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    synced: Arc<AtomicBool>,
}

impl<K> Watched<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    fn start(client: Client, stop: CancellationToken) -> Self {
        let kind = K::kind(&()).to_string();
        let (store, writer) = reflector::store();
        let api: Api<K> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        let synced = Arc::new(AtomicBool::new(false));
        let ready = store.clone();
        let flag = synced.clone();
        let ready_stop = stop.clone();
        let ready_kind = kind.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = ready_stop.cancelled() => {}
                r = ready.wait_until_ready() => if r.is_ok() {
                    flag.store(true, Ordering::Release);
                    tracing::info!(kind = %ready_kind, "watch cache synced; the rules that need it use it");
                }
            }
        });
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    next = stream.next() => match next {
                        None => return,
                        Some(Err(e)) => tracing::warn!(kind = %kind, error = %e, "watch error; retrying"),
                        Some(Ok(_)) => {}
                    }
                }
            }
        });
        Self { store, synced }
    }

    /// The object, `Ok(None)` when absent, `Err` while not synced.
    fn get(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, String> {
        if !self.synced.load(Ordering::Acquire) {
            return Err(format!(
                "the webhook's {} cache is not synced yet",
                K::kind(&())
            ));
        }
        Ok(self.store.get(&ObjectRef::new(name).within(namespace)))
    }
}

impl ClusterCache {
    pub fn start(client: Client, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            deployments: Watched::start(client.clone(), stop.clone()),
            session_jobs: Watched::start(client, stop),
        })
    }
}

impl ClusterView for ClusterCache {
    fn session(&self, namespace: &str, name: &str) -> SessionCluster {
        match self.deployments.get(namespace, name) {
            Err(why) => SessionCluster::Unchecked(why),
            Ok(Some(d)) => SessionCluster::Found(Arc::new(d.spec.clone())),
            Ok(None) => SessionCluster::Missing,
        }
    }

    fn presence(&self, kind: &str, namespace: &str, name: &str) -> Presence {
        let found = match kind {
            KIND_FLINK_DEPLOYMENT => self.deployments.get(namespace, name).map(|o| o.is_some()),
            _ => self.session_jobs.get(namespace, name).map(|o| o.is_some()),
        };
        match found {
            Err(why) => Presence::Unchecked(why),
            Ok(true) => Presence::Found,
            Ok(false) => Presence::Missing,
        }
    }
}
