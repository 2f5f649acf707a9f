//! Building a Kubernetes client: an explicit kubeconfig, else in-cluster, else none.

use std::path::Path;

use anyhow::Context;
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
