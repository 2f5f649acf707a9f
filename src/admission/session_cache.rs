//! The server's [`SessionLookup`]: a watch cache of FlinkDeployments in
//! every namespace, which each webhook replica keeps for itself. Until its
//! first full list has arrived it answers "unchecked", so a session job is
//! never judged against a cache that may be missing its cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::sessions::{SessionCluster, SessionLookup};
use crate::flink::crd::FlinkDeployment;

pub struct SessionCache {
    store: Store<FlinkDeployment>,
    synced: Arc<AtomicBool>,
}

impl SessionCache {
    pub fn start(client: Client, stop: CancellationToken) -> Arc<Self> {
        let (store, writer) = reflector::store();
        let api: Api<FlinkDeployment> = Api::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        let synced = Arc::new(AtomicBool::new(false));
        let ready = store.clone();
        let flag = synced.clone();
        let ready_stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = ready_stop.cancelled() => {}
                r = ready.wait_until_ready() => if r.is_ok() {
                    flag.store(true, Ordering::Release);
                    tracing::info!("FlinkDeployment cache synced; session job rules use it");
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
                        Some(Err(e)) => tracing::warn!(error = %e, "FlinkDeployment watch error; retrying"),
                        Some(Ok(_)) => {}
                    }
                }
            }
        });
        Arc::new(Self { store, synced })
    }
}

impl SessionLookup for SessionCache {
    fn session(&self, namespace: &str, name: &str) -> SessionCluster {
        if !self.synced.load(Ordering::Acquire) {
            return SessionCluster::Unchecked(
                "the webhook's FlinkDeployment cache is not synced yet".into(),
            );
        }
        match self.store.get(&ObjectRef::new(name).within(namespace)) {
            Some(d) => SessionCluster::Found(Arc::new(d.spec.clone())),
            None => SessionCluster::Missing,
        }
    }
}
