//! Resolving Kubernetes Service names from outside the cluster network.
//!
//! In a pod, `http://<name>-rest.<ns>.svc:8081` resolves through the pod's
//! cluster DNS. A flinkgate run on a host beside the cluster (the local test
//! cluster, a developer's machine with a routed pod network) has no such
//! resolver. `--cluster-dns ADDR` sends Service names (`*.svc`,
//! `*.svc.<cluster domain>`) to that DNS server and every other name to the
//! system resolver, for every HTTP client the controller and collector use
//! (JobManager REST, jar downloads).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long a JobManager REST connection is kept idle for reuse: a
/// collection cycle reuses it, the next reconcile (seconds later) does not.
const IDLE_CONNECTIONS_KEPT: std::time::Duration = std::time::Duration::from_secs(3);

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

/// Which addresses a jar download may connect to: public ones, and those in
/// the networks an operator allowed (`--jar-allow-private-cidrs`).
#[derive(Clone, Debug, Default)]
pub struct AddressGuard {
    allowed: Arc<Vec<ipnet::IpNet>>,
}

impl AddressGuard {
    pub fn new(allowed: Vec<ipnet::IpNet>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// Why a connection to `ip` is refused, or `None`.
    pub fn refusal(&self, ip: &IpAddr) -> Option<String> {
        if self.allowed.iter().any(|net| net.contains(ip)) {
            return None;
        }
        crate::address::internal_address_reason(ip)
            .map(|why| format!("{ip} {why}; --jar-allow-private-cidrs allows internal networks"))
    }

    /// Why an address written as a URL's host is refused; names are left
    /// to the resolver.
    pub fn refusal_of_host(&self, host: &url::Host<String>) -> Option<String> {
        match host {
            url::Host::Domain(_) => None,
            url::Host::Ipv4(ip) => self.refusal(&IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => self.refusal(&IpAddr::V6(*ip)),
        }
    }
}

/// Resolves like [`client_builder`]'s resolver, then hands out only the
/// addresses the guard allows. The connection uses exactly these, so a
/// name cannot pass the check and then be looked up again to an internal
/// address (DNS rebinding).
struct Guarded {
    cluster: Option<ClusterDns>,
    guard: AddressGuard,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let cluster = self.cluster.clone();
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = match cluster {
                Some(dns) => dns.resolve(name).await?.collect(),
                None => system_lookup(&host).await?,
            };
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.refusal(&a.ip()) {
                    None => true,
                    Some(why) => {
                        refused.get_or_insert(why);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(why)) => Err(format!("{host} resolves to {why}").into()),
                _ => {
                    let addrs: Addrs = Box::new(allowed.into_iter());
                    Ok(addrs)
                }
            }
        })
    }
}

/// A client for jar downloads: names resolved as [`client_builder`] does,
/// then checked by `guard`; redirects followed at most 5 times, never to
/// a refused address.
pub fn guarded_client_builder(
    dns: Option<&ClusterDns>,
    guard: AddressGuard,
) -> reqwest::ClientBuilder {
    let redirects = guard.clone();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Guarded {
            cluster: dns.cloned(),
            guard,
        }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            let refused = attempt
                .url()
                .host()
                .map(|h| h.to_owned())
                .and_then(|h| redirects.refusal_of_host(&h));
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if let Some(why) = refused {
                attempt.error(format!("redirected to {why}"))
            } else {
                attempt.follow()
            }
        }))
}

/// `host` through the system's resolver (what a name outside the cluster
/// domain gets).
async fn system_lookup(host: &str) -> Result<Vec<SocketAddr>, String> {
    tokio::net::lookup_host((host, 0))
        .await
        .map(Iterator::collect)
        .map_err(|e| format!("lookup of {host}: {e}"))
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
                None => system_lookup(&host).await?,
            };
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest client builder that resolves through `dns` when one is given.
pub fn client_builder(dns: Option<&ClusterDns>) -> reqwest::ClientBuilder {
    // Idle connections are dropped after a few seconds: a connection opened
    // while a Service's routing was still being set up can reach something
    // that is not the JobManager, and a pool would reuse it for minutes
    // (seen on real nodes: empty 404s from /overview while Flink ran).
    let builder = reqwest::Client::builder().pool_idle_timeout(IDLE_CONNECTIONS_KEPT);
    match dns {
        Some(d) => builder.dns_resolver(Arc::new(d.clone())),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_unless_allowed() {
        let resolve = |allowed: Vec<ipnet::IpNet>| {
            Guarded {
                cluster: None,
                guard: AddressGuard::new(allowed),
            }
            .resolve("localhost".parse().unwrap())
        };
        let err = match resolve(Vec::new()).await {
            Ok(addrs) => panic!("localhost was allowed: {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("localhost resolves to "), "{err}");
        assert!(
            err.contains("is a loopback address; --jar-allow-private-cidrs"),
            "{err}"
        );
        let allowed = resolve(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
        .await
        .unwrap()
        .collect::<Vec<_>>();
        assert!(!allowed.is_empty() && allowed.iter().all(|a| a.ip().is_loopback()));
        let guard = AddressGuard::new(Vec::new());
        assert!(
            guard
                .refusal_of_host(&url::Host::Ipv4("10.0.0.1".parse().unwrap()))
                .is_some()
        );
        assert!(
            guard
                .refusal_of_host(&url::Host::Ipv4("8.8.8.8".parse().unwrap()))
                .is_none()
        );
    }

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
