//! Kubernetes plumbing shared by every part: building a client (an explicit
//! kubeconfig, else in-cluster, else none), the `NAMESPACE/NAME` type every
//! such flag parses into, and the watches built on the client.

use std::path::Path;

use anyhow::Context;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// An object's `NAMESPACE/NAME`, as every flag naming one spells it
/// (`--policy-configmap`, `--scores-configmap`, `--lease`, `--service`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

/// Why a flag value is not `NAMESPACE/NAME`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not NAMESPACE/NAME")]
pub struct NotNamespacedName(String);

impl std::str::FromStr for NamespacedName {
    type Err = NotNamespacedName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(NotNamespacedName(s.to_string())),
        }
    }
}

impl std::fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

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
    cm: &NamespacedName,
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

/// What a watch cache can hold: a typed, namespaced-or-not Kubernetes object.
pub trait Watchable:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watchable for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A store of `api`'s objects matching `config`, and the future that keeps
/// it current until `stop` (watch errors are logged and retried with
/// backoff). `what` names the watch in logs. The caller runs the future.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    stop: tokio_util::sync::CancellationToken,
    what: &'static str,
) -> (
    kube::runtime::reflector::Store<K>,
    impl std::future::Future<Output = ()> + Send + 'static,
)
where
    K: Watchable,
{
    let (store, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects();
    let driver = async move {
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
    };
    (store, driver)
}

/// [`reflect`], with the future spawned on the current runtime.
pub fn spawn_store<K>(
    api: Api<K>,
    config: watcher::Config,
    stop: tokio_util::sync::CancellationToken,
    what: &'static str,
) -> kube::runtime::reflector::Store<K>
where
    K: Watchable,
{
    let (store, driver) = reflect(api, config, stop, what);
    tokio::spawn(driver);
    store
}
