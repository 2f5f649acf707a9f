//! Small checks shared by the FlinkDeployment, FlinkSessionJob and pod rules.

use std::net::IpAddr;

use crate::address::internal_address_reason;
use crate::admission::violation::Violation;

/// The operator's cluster name rule: a DNS-1035 label of at most 45
/// characters (Flink derives longer Service names from it).
pub const MAX_NAME_LEN: usize = 45;

pub fn is_valid_cluster_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub fn cluster_name(path: &str, name: &str) -> Option<Violation> {
    if is_valid_cluster_name(name) {
        return None;
    }
    Some(Violation::new(
        path,
        format!(
            "'{name}' is not a valid Flink cluster name: it must be lower case letters, digits and '-', \
             start with a letter, end with a letter or digit, and be at most {MAX_NAME_LEN} characters"
        ),
        "choose a name such as 'my-flink-job'",
    ))
}

/// Whether an image reference is allowed by a list of registries or
/// repository prefixes. An empty list allows everything.
pub fn image_allowed(image: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let repo = normalized_repository(image);
    allowed.iter().any(|a| {
        let a = a.trim_end_matches('/');
        repo == a
            || repo
                .strip_prefix(a)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// `flink:1.20` -> `docker.io/library/flink`, as the container runtime reads it.
pub fn normalized_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    // A tag is a ':' after the last '/', not a registry port.
    let name = match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    };
    match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

/// Why a jarURI host must not be fetched from: it points inside the
/// cluster or at the node itself (SSRF through the JobManager).
pub fn internal_host_reason(host: &url::Host<&str>, cluster_domain: &str) -> Option<&'static str> {
    match host {
        url::Host::Domain(d) => domain_reason(
            &d.trim_end_matches('.').to_ascii_lowercase(),
            cluster_domain,
        ),
        url::Host::Ipv4(ip) => internal_address_reason(&IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => internal_address_reason(&IpAddr::V6(*ip)),
    }
}

/// Names that resolve inside the cluster: Services (`<svc>.<ns>.svc`, and
/// `<svc>.<ns>.svc.<domain>` whatever the domain), the API server's
/// `kubernetes.default`, and anything under the cluster's own domain
/// (`limits.clusterDomain`; pods have names there too).
fn domain_reason(d: &str, cluster_domain: &str) -> Option<&'static str> {
    let in_cluster_domain = d == cluster_domain
        || d.strip_suffix(cluster_domain)
            .is_some_and(|rest| rest.ends_with('.'));
    if d == "localhost" || d.ends_with(".localhost") {
        Some("is localhost")
    } else if d.ends_with(".svc") || d.contains(".svc.") {
        Some("is a Kubernetes Service name")
    } else if in_cluster_domain {
        Some("is in the cluster's DNS domain")
    } else if d == "kubernetes" || d == "kubernetes.default" || d.starts_with("kubernetes.default.")
    {
        Some("is the Kubernetes API server")
    } else {
        None
    }
}

/// Why `java.net.URI`, which the operator and Flink parse a jarURI with,
/// would refuse `raw` where the WHATWG parser (`url`) quietly repairs it:
/// characters RFC 2396 never allows unescaped, and broken `%` escapes.
pub fn java_uri_problem(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    for (i, c) in raw.char_indices() {
        if c.is_ascii_control() || c == ' ' || "<>\"{}|\\^`".contains(c) {
            return Some(format!(
                "character {c:?} at index {i} must be percent-encoded"
            ));
        }
        if c == '%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Some(format!(
                "'%' at index {i} does not start an escape like %20"
            ));
        }
    }
    None
}

/// The host of a hierarchical http(s) URI as `java.net.URI` sees it:
/// `None` for `https:///job.jar` or `https:job.jar`, where `url` would
/// take the first path segment for the host.
pub fn java_uri_host(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        for ok in ["a", "my-job", "a1", &"a".repeat(45)] {
            assert!(is_valid_cluster_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-a",
            "a-",
            "My-job",
            "a_b",
            "a.b",
            &"a".repeat(46),
        ] {
            assert!(!is_valid_cluster_name(bad), "{bad}");
        }
    }

    #[test]
    fn image_normalisation_and_allow_list() {
        assert_eq!(
            normalized_repository("flink:1.20"),
            "docker.io/library/flink"
        );
        assert_eq!(
            normalized_repository("apache/flink:1.20"),
            "docker.io/apache/flink"
        );
        assert_eq!(
            normalized_repository("registry.example.com:5000/team/flink:1"),
            "registry.example.com:5000/team/flink"
        );
        assert_eq!(
            normalized_repository("localhost/flink@sha256:abc"),
            "localhost/flink"
        );
        let allowed = vec![
            "registry.example.com".to_string(),
            "ghcr.io/acme".to_string(),
        ];
        assert!(image_allowed("registry.example.com/flink:1.20", &allowed));
        assert!(image_allowed("ghcr.io/acme/flink:1.20", &allowed));
        assert!(!image_allowed("ghcr.io/acme-evil/flink:1.20", &allowed));
        assert!(!image_allowed("flink:1.20", &allowed));
        assert!(image_allowed("flink:1.20", &[]));
    }

    #[test]
    fn internal_hosts() {
        let reason = |u: &str| {
            let url = url::Url::parse(u).unwrap();
            internal_host_reason(&url.host().unwrap(), "cluster.local")
        };
        assert_eq!(
            reason("https://127.0.0.1/x.jar"),
            Some("is a loopback address")
        );
        assert_eq!(reason("https://localhost/x.jar"), Some("is localhost"));
        assert_eq!(
            reason("https://10.1.2.3/x.jar"),
            Some("is a private address")
        );
        assert_eq!(
            reason("https://192.168.0.1/x.jar"),
            Some("is a private address")
        );
        assert_eq!(
            reason("https://169.254.169.254/x.jar"),
            Some("is a link-local address")
        );
        assert_eq!(reason("https://[::1]/x.jar"), Some("is a loopback address"));
        assert_eq!(
            reason("https://[::ffff:10.0.0.1]/x.jar"),
            Some("is a private address")
        );
        assert_eq!(
            reason("https://[fd00::1]/x.jar"),
            Some("is a private address")
        );
        assert_eq!(
            reason("https://[fec0::1]/x.jar"),
            Some("is a site-local address")
        );
        assert_eq!(
            reason("https://224.0.0.1/x.jar"),
            Some("is a multicast or broadcast address")
        );
        assert_eq!(
            reason("https://[ff02::1]/x.jar"),
            Some("is a multicast or broadcast address")
        );
        assert_eq!(reason("https://repo.example.com/x.jar"), None);
        assert_eq!(reason("https://8.8.8.8/x.jar"), None);
        // Cluster names, whatever the cluster domain.
        for svc in [
            "https://kubernetes.default.svc/x.jar",
            "https://jars.team-a.svc/x.jar",
            "https://jars.team-a.svc.cluster.local/x.jar",
            "https://jars.team-a.svc.corp.example/x.jar",
            "https://JARS.TEAM-A.SVC.CLUSTER.LOCAL./x.jar",
        ] {
            assert_eq!(reason(svc), Some("is a Kubernetes Service name"), "{svc}");
        }
        assert_eq!(
            reason("https://kubernetes.default/x.jar"),
            Some("is the Kubernetes API server")
        );
        assert_eq!(
            reason("https://kubernetes:443/x.jar"),
            Some("is the Kubernetes API server"),
            "the name pods resolve through their search domains"
        );
        assert_eq!(
            reason("https://198.18.0.9/x.jar"),
            Some("is a benchmarking address (198.18.0.0/15)")
        );
        assert_eq!(
            reason("https://svc.example.com/x.jar"),
            None,
            "svc as a first label is a name like any"
        );
        assert_eq!(
            reason("https://0.0.0.0/x.jar"),
            Some("is in 0.0.0.0/8 (this host)")
        );
        assert_eq!(
            reason("https://0.1.2.3/x.jar"),
            Some("is in 0.0.0.0/8 (this host)")
        );
        assert_eq!(
            reason("https://100.64.0.1/x.jar"),
            Some("is a shared (carrier-grade NAT) address")
        );
        assert_eq!(
            reason("https://100.127.255.254/x.jar"),
            Some("is a shared (carrier-grade NAT) address")
        );
        assert_eq!(reason("https://100.128.0.1/x.jar"), None);
        assert_eq!(
            reason("https://[64:ff9b::a00:1]/x.jar"),
            Some("is a private address"),
            "NAT64 of 10.0.0.1"
        );
        assert_eq!(
            reason("https://[64:ff9b::808:808]/x.jar"),
            None,
            "NAT64 of 8.8.8.8"
        );
    }

    #[test]
    fn names_in_the_cluster_domain() {
        let reason = |u: &str, domain: &str| {
            let url = url::Url::parse(u).unwrap();
            internal_host_reason(&url.host().unwrap(), domain)
        };
        let in_domain = Some("is in the cluster's DNS domain");
        // A pod's own DNS name, under the default domain.
        assert_eq!(
            reason(
                "https://10-1-2-3.team-a.pod.cluster.local/x.jar",
                "cluster.local"
            ),
            in_domain
        );
        assert_eq!(
            reason("https://cluster.local/x.jar", "cluster.local"),
            in_domain
        );
        // Another domain: its names are refused, cluster.local is a name like any.
        assert_eq!(
            reason(
                "https://10-1-2-3.team-a.pod.corp.internal/x.jar",
                "corp.internal"
            ),
            in_domain
        );
        assert_eq!(
            reason("https://jars.example.com/x.jar", "corp.internal"),
            None
        );
        assert_eq!(
            reason("https://notcorp.internal/x.jar", "corp.internal"),
            None,
            "a suffix that is not a whole label"
        );
        assert_eq!(
            reason("https://x.pod.cluster.local/x.jar", "corp.internal"),
            None
        );
    }

    #[test]
    fn java_uri_rules() {
        assert_eq!(java_uri_problem("https://repo.example.com/a%20b.jar"), None);
        assert!(java_uri_problem("https://repo.example.com/a b.jar").is_some());
        assert!(java_uri_problem("https://repo.example.com/a%2.jar").is_some());
        assert!(java_uri_problem("https://repo.example.com/{x}.jar").is_some());
        assert_eq!(
            java_uri_host("https://repo.example.com/x.jar"),
            Some("repo.example.com")
        );
        assert_eq!(
            java_uri_host("https://u:p@repo.example.com:8443/x"),
            Some("repo.example.com")
        );
        assert_eq!(java_uri_host("https://[::1]:8443/x"), Some("[::1]"));
        assert_eq!(java_uri_host("https:///job.jar"), None);
        assert_eq!(java_uri_host("https:job.jar"), None);
        assert_eq!(java_uri_host("https://:443/job.jar"), None);
    }
}
