//! Resolving Kubernetes Service names from outside the cluster network.
//!
//! In a pod, `http://<name>-rest.<ns>.svc:8081` resolves through the pod's
//! cluster DNS. A flinkgate run on a host beside the cluster (the local test
//! cluster, a developer's machine with a routed pod network) has no such
//! resolver. `--cluster-dns ADDR` sends Service names (`*.svc`,
//! `*.svc.<cluster domain>`) to that DNS server and every other name to the
//! system resolver, for every HTTP client the controller and collector use
//! (JobManager REST, jar downloads).

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The cluster domain Kubernetes uses unless told otherwise.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Where Service names go: the DNS server and the cluster domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDnsConfig {
    pub server: SocketAddr,
    pub domain: String,
}

/// The absolute name to ask the cluster DNS for, or `None` when `host` is
/// not a Service name (those go to the system resolver).
pub fn cluster_query_name(host: &str, domain: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    let in_domain = format!(".svc.{domain}");
    if host.ends_with(&in_domain) {
        Some(format!("{host}."))
    } else if host.ends_with(".svc") && host.matches('.').count() >= 2 {
        Some(format!("{host}.{domain}."))
    } else {
        None
    }
}

/// A reqwest resolver: Service names through the cluster DNS, the rest
/// through the system's resolver.
#[derive(Clone)]
pub struct ClusterDns {
    domain: String,
    resolver: Arc<TokioResolver>,
}

impl ClusterDns {
    pub fn new(config: &ClusterDnsConfig) -> Self {
        let servers = NameServerConfigGroup::from_ips_clear(
            &[config.server.ip()],
            config.server.port(),
            true,
        );
        let mut opts = ResolverOpts::default();
        // Service IPs change when Services are re-created: do not keep them long.
        opts.positive_max_ttl = Some(std::time::Duration::from_secs(5));
        opts.negative_max_ttl = Some(std::time::Duration::from_secs(1));
        opts.timeout = std::time::Duration::from_secs(2);
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), servers),
            TokioConnectionProvider::default(),
        )
        .with_options(opts)
        .build();
        Self {
            domain: config.domain.clone(),
            resolver: Arc::new(resolver),
        }
    }
}

impl Resolve for ClusterDns {
    fn resolve(&self, name: Name) -> Resolving {
        let query = cluster_query_name(name.as_str(), &self.domain);
        let host = name.as_str().to_owned();
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match query {
                Some(q) => resolver
                    .lookup_ip(q.as_str())
                    .await
                    .map_err(|e| format!("cluster DNS lookup of {q}: {e}"))?
                    .iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect(),
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|e| format!("lookup of {host}: {e}"))?
                    .collect(),
            };
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest client builder that resolves through `dns` when one is given.
pub fn client_builder(dns: Option<&ClusterDns>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match dns {
        Some(d) => builder.dns_resolver(Arc::new(d.clone())),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_go_to_the_cluster_dns_as_absolute_names() {
        let q = |h| cluster_query_name(h, "cluster.local");
        assert_eq!(
            q("orders-rest.team-a.svc").as_deref(),
            Some("orders-rest.team-a.svc.cluster.local.")
        );
        assert_eq!(
            q("orders-rest.team-a.svc.cluster.local").as_deref(),
            Some("orders-rest.team-a.svc.cluster.local.")
        );
        assert_eq!(
            q("Jars.Team-A.SVC.").as_deref(),
            Some("jars.team-a.svc.cluster.local.")
        );
    }

    #[test]
    fn other_names_stay_with_the_system_resolver() {
        let q = |h| cluster_query_name(h, "cluster.local");
        assert_eq!(q("localhost"), None);
        assert_eq!(q("example.org"), None);
        assert_eq!(q("svc"), None);
        assert_eq!(q("team-a.svc"), None, "a namespace alone is no Service");
        assert_eq!(q("a.svc.other.domain"), None);
        assert_eq!(q("10.0.0.1"), None);
    }

    #[test]
    fn another_cluster_domain_is_honoured() {
        assert_eq!(
            cluster_query_name("x.ns.svc", "corp.internal.").as_deref(),
            Some("x.ns.svc.corp.internal.")
        );
        assert_eq!(
            cluster_query_name("x.ns.svc.cluster.local", "corp.internal"),
            None
        );
    }
}
