//! `flinkgate serve`'s flags, checked and turned into what the server
//! runs on. Pure: no file is read and no cluster is called here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::cluster_dns::ClusterDnsConfig;
use crate::collector::JobManagerTarget;
use crate::http::ConnectionLimits;
use crate::k8s::NamespacedName;

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    File(PathBuf),
    ConfigMap(NamespacedName),
    Builtin,
}

/// Where the extender's node scores come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoresSource {
    ConfigMap(NamespacedName),
    File(PathBuf),
    /// Every node neutral.
    None,
}

/// The serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, re-read when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for localhost, made in memory (local use).
    SelfSigned,
}

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAccess {
    Kubeconfig(PathBuf),
    InCluster,
    /// Local use: the webhook and extender alone.
    None,
}

/// The leader-elected part: controllers, and the collector with a scores
/// ConfigMap to publish to.
#[derive(Debug, Clone)]
pub struct LeaderWork {
    pub lease: NamespacedName,
    pub watch_namespaces: Vec<String>,
    pub jar_ca_file: Option<PathBuf>,
    pub jar_allow_private: Vec<ipnet::IpNet>,
    pub max_jar_bytes: u64,
    pub savepoint_timeout: Duration,
    pub concurrency: u16,
    pub jobmanagers: Vec<JobManagerTarget>,
    pub collect_concurrency: u16,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: TlsSource,
    /// Client CA required on /scheduler/*.
    pub extender_client_ca: Option<PathBuf>,
    pub policy: PolicySource,
    pub scores: ScoresSource,
    pub cluster: ClusterAccess,
    /// `None` with `--controller=false` or without a cluster.
    pub leader_work: Option<LeaderWork>,
    pub cluster_dns: Option<ClusterDnsConfig>,
    pub reload_interval: Duration,
    pub connections: ConnectionLimits,
    /// Bytes of request bodies held at once.
    pub body_memory: usize,
    pub extender_concurrency: usize,
    /// The whole shutdown after SIGTERM: draining requests, then stopping
    /// the controllers.
    pub shutdown_timeout: Duration,
    /// A deliberate crash point (test builds only).
    #[cfg(feature = "test-support")]
    pub fault: Option<crate::controller::fault::Fault>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} needs a cluster: pass --kubeconfig or run in a pod")]
    NeedsCluster(&'static str),
}

impl Config {
    /// `in_cluster`: whether this process runs in a pod (its service
    /// account then gives the cluster when no kubeconfig is passed).
    pub fn from_args(args: ServeArgs, in_cluster: bool) -> Result<Self, ConfigError> {
        let ServeArgs {
            listener,
            connections,
            policy,
            cluster,
            controller,
            collector,
        } = args;
        let access = match (cluster.kubeconfig, in_cluster) {
            (Some(path), _) => ClusterAccess::Kubeconfig(path),
            (None, true) => ClusterAccess::InCluster,
            (None, false) => ClusterAccess::None,
        };
        let has_cluster = access != ClusterAccess::None;
        let policy_source = match (policy.policy, policy.policy_configmap) {
            (Some(path), _) => PolicySource::File(path),
            (None, Some(_)) if !has_cluster => {
                return Err(ConfigError::NeedsCluster("--policy-configmap"));
            }
            (None, Some(cm)) => PolicySource::ConfigMap(cm),
            (None, None) => PolicySource::Builtin,
        };
        let scores = match (collector.scores_configmap, collector.scores_file) {
            (Some(_), _) if !has_cluster => {
                return Err(ConfigError::NeedsCluster("--scores-configmap"));
            }
            (Some(cm), _) => ScoresSource::ConfigMap(cm),
            (None, Some(path)) => ScoresSource::File(path),
            (None, None) => ScoresSource::None,
        };
        let tls = match (listener.tls_cert, listener.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            _ => TlsSource::SelfSigned,
        };
        #[cfg(feature = "test-support")]
        let fault = controller.fault;
        let leader_work = (controller.controller && has_cluster).then(|| LeaderWork {
            lease: controller.lease,
            watch_namespaces: controller.watch_namespaces,
            jar_ca_file: controller.jar_ca_file,
            jar_allow_private: controller.jar_allow_private_cidrs,
            max_jar_bytes: controller.max_jar_mib.saturating_mul(1 << 20),
            savepoint_timeout: controller.savepoint_timeout,
            concurrency: controller.controller_concurrency,
            jobmanagers: collector.jobmanager_urls,
            collect_concurrency: collector.collect_concurrency,
        });
        let cluster_dns = cluster.cluster_dns.map(|server| ClusterDnsConfig {
            server,
            domain: cluster.cluster_domain,
        });
        Ok(Self {
            listen: listener.listen,
            tls,
            extender_client_ca: listener.extender_client_ca,
            policy: policy_source,
            scores,
            cluster: access,
            leader_work,
            cluster_dns,
            reload_interval: listener.reload_interval,
            connections: ConnectionLimits {
                max_connections: connections.max_connections as usize,
                handshake_timeout: connections.handshake_timeout,
                header_read_timeout: connections.header_read_timeout,
                body_read_timeout: connections.body_read_timeout,
                request_timeout: connections.request_timeout,
                idle_timeout: connections.idle_timeout,
                http2_keepalive_interval: connections.http2_keepalive_interval,
                http2_keepalive_timeout: connections.http2_keepalive_timeout,
            },
            body_memory: connections.body_memory_mib as usize * (1 << 20),
            extender_concurrency: connections.extender_concurrency as usize,
            shutdown_timeout: listener.shutdown_timeout,
            #[cfg(feature = "test-support")]
            fault,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(flags: &[&str], in_cluster: bool) -> Result<Config, ConfigError> {
        let mut argv = vec!["flinkgate", "serve"];
        argv.extend_from_slice(flags);
        let cli = crate::cli::Cli::try_parse_from(argv).expect("flags parse");
        let crate::cli::Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        Config::from_args(args, in_cluster)
    }

    #[test]
    fn the_embedded_default_needs_nothing() {
        let c = config(&[], false).unwrap();
        assert_eq!(c.policy, PolicySource::Builtin);
        assert_eq!(c.scores, ScoresSource::None);
        assert_eq!(c.tls, TlsSource::SelfSigned);
        assert_eq!(c.cluster, ClusterAccess::None);
        assert!(c.leader_work.is_none(), "no cluster, no controller");
        assert_eq!(c.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(
            c.connections,
            ConnectionLimits::default(),
            "the flags' defaults are the library's"
        );
    }

    #[test]
    fn connection_limits_come_from_their_flags() {
        let c = config(
            &[
                "--max-connections",
                "10",
                "--idle-timeout",
                "1.5",
                "--body-read-timeout",
                "2",
            ],
            false,
        )
        .unwrap();
        assert_eq!(c.connections.max_connections, 10);
        assert_eq!(c.connections.idle_timeout, Duration::from_millis(1500));
        assert_eq!(c.connections.body_read_timeout, Duration::from_secs(2));
        for bad in [["--max-connections", "0"], ["--request-timeout", "0"]] {
            let mut argv = vec!["flinkgate", "serve"];
            argv.extend_from_slice(&bad);
            assert!(
                crate::cli::Cli::try_parse_from(argv).is_err(),
                "{bad:?} is refused"
            );
        }
    }

    #[test]
    fn configmaps_without_a_cluster_are_refused_up_front() {
        assert_eq!(
            config(&["--policy-configmap", "a/b"], false).unwrap_err(),
            ConfigError::NeedsCluster("--policy-configmap")
        );
        assert_eq!(
            config(&["--scores-configmap", "a/b"], false).unwrap_err(),
            ConfigError::NeedsCluster("--scores-configmap")
        );
        let c = config(&["--policy-configmap", "a/b"], true).unwrap();
        assert_eq!(c.cluster, ClusterAccess::InCluster);
        assert!(c.leader_work.is_some(), "the controller runs by default");
    }

    #[test]
    fn the_controller_can_be_turned_off() {
        let c = config(&["--kubeconfig", "/k", "--controller=false"], false).unwrap();
        assert_eq!(c.cluster, ClusterAccess::Kubeconfig("/k".into()));
        assert!(c.leader_work.is_none());
    }
}
