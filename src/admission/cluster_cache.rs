//! The server's [`ClusterView`]: watch caches of FlinkDeployments and
//! FlinkSessionJobs in every namespace, which each webhook replica keeps for
//! itself. Until a cache's first full list has arrived it answers
//! "unchecked", so nothing is judged against a cache that may be missing
//! the resource.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::cluster_view::{ClusterView, Presence, SessionCluster};
use crate::flink::crd::{FlinkDeployment, FlinkSessionJob};
use crate::flink::state_snapshot::KIND_FLINK_DEPLOYMENT;
use crate::k8s::{Watchable, reflect};
use crate::tasks::Tasks;

pub struct ClusterCache {
    deployments: Watched<FlinkDeployment>,
    session_jobs: Watched<FlinkSessionJob>,
}

/// One resource kind's store and whether its first list has arrived.
struct Watched<K: kube::Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    synced: Arc<AtomicBool>,
}

impl<K: Watchable> Watched<K> {
    fn start(
        client: Client,
        stop: CancellationToken,
        what: &'static str,
        tasks: &mut Tasks,
    ) -> Self {
        let api: Api<K> = Api::all(client);
        let (store, driver) = reflect(api, watcher::Config::default(), stop.clone(), what);
        let synced = Arc::new(AtomicBool::new(false));
        let (ready, flag) = (store.clone(), synced.clone());
        let mark_synced = async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = ready.wait_until_ready() => if r.is_ok() {
                    flag.store(true, Ordering::Release);
                    tracing::info!(watch = what, "watch cache synced; the rules that need it use it");
                }
            }
        };
        tasks.spawn(what, async move {
            futures::join!(driver, mark_synced);
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
    /// Starts the watches as tasks in `tasks`; they end with `stop`.
    pub fn start(client: Client, stop: CancellationToken, tasks: &mut Tasks) -> Arc<Self> {
        Arc::new(Self {
            deployments: Watched::start(
                client.clone(),
                stop.clone(),
                "FlinkDeployment cache",
                tasks,
            ),
            session_jobs: Watched::start(client, stop, "FlinkSessionJob cache", tasks),
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
