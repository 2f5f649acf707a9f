//! Building a Kubernetes client (an explicit kubeconfig, else in-cluster,
//! else none), and the watches built on it.

use std::path::Path;

use anyhow::Context;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::policy::source::ConfigMapRef;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Option<Client>> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        }
        None => match Config::incluster() {
            Ok(c) => c,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(
        Client::try_from(config).context("building the Kubernetes client")?,
    ))
}

/// What happened to a watched ConfigMap.
pub enum ConfigMapChange {
    Applied(Box<ConfigMap>),
    Deleted,
}

/// Every version of one ConfigMap, as it changes. Watch errors are logged and
/// retried with kube's backoff, so a dead API server never spins a caller.
pub fn configmap_changes(
    client: Client,
    cm: &ConfigMapRef,
) -> impl Stream<Item = ConfigMapChange> + Send + 'static {
    let api: Api<ConfigMap> = Api::namespaced(client, &cm.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", cm.name));
    let source = cm.to_string();
    watcher(api, config).default_backoff().filter_map(move |event| {
        let change = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => Some(ConfigMapChange::Applied(Box::new(o))),
            Ok(watcher::Event::Delete(_)) => Some(ConfigMapChange::Deleted),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => {
                tracing::warn!(configmap = %source, error = %e, "ConfigMap watch error; retrying");
                None
            }
        };
        std::future::ready(change)
    })
}

/// A store of `api`'s objects matching `config`, kept current by a task
/// until `stop` (watch errors are logged and retried with backoff). `what`
/// names the watch in logs.
pub fn spawn_store<K>(
    api: Api<K>,
    config: watcher::Config,
    stop: tokio_util::sync::CancellationToken,
    what: &'static str,
) -> kube::runtime::reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.next() => match next {
                    None => return,
                    Some(Err(e)) => tracing::warn!(watch = what, error = %e, "watch error; retrying"),
                    Some(Ok(_)) => {}
                }
            }
        }
    });
    store
}
