//! Command-line interface. Every `serve` flag can also come from the
//! environment (`FLINKGATE_*`), which is how the Deployment sets them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::k8s::NamespacedName;

#[derive(Debug, Parser)]
#[command(
    name = "flinkgate",
    version,
    about = "Admission webhook and scheduler extender for Apache Flink on Kubernetes"
)]
pub struct Cli {
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long, global = true, env = "FLINKGATE_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at start-up; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the HTTPS admission webhook. With no flags: 127.0.0.1:8443, an
    /// in-memory self-signed certificate and the built-in policy.
    Serve(ServeArgs),
    /// Validate and mutate manifests offline, as the webhook would.
    Check(CheckArgs),
    /// Write a CA and a serving certificate for the webhook into a directory.
    Certs(CertsArgs),
    /// Print (or write) the FlinkDeployment and FlinkSessionJob CRDs.
    Crds(CrdsArgs),
    /// Create or update the webhook configurations (cluster-admin step).
    Register(RegisterArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailurePolicy {
    /// Refuse objects when flinkgate cannot be reached (nothing slips through without defaults).
    Fail,
    /// Admit objects unmutated when flinkgate cannot be reached (validation still guards).
    Ignore,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        }
    }
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// kubeconfig of a cluster admin; else in-cluster config.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// CA certificate (PEM) that signed the webhook's serving certificate.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Webhook base URL for a local run, e.g. https://127.0.0.1:8443.
    #[arg(long, conflicts_with = "service")]
    pub url: Option<String>,
    /// The webhook's Service as NAMESPACE/NAME, for an in-cluster deployment.
    #[arg(long)]
    pub service: Option<NamespacedName>,
    #[arg(long, default_value_t = 443)]
    pub service_port: i32,
    /// flinkgate's own namespace, excluded from admission (with kube-system).
    #[arg(long, default_value = "flinkgate-system")]
    pub namespace: String,
    /// Name of both webhook configurations.
    #[arg(long, default_value = "flinkgate")]
    pub name: String,
    /// What kube-apiserver does with mutation when flinkgate is unreachable.
    /// Validation always fails closed.
    #[arg(long, value_enum, default_value = "fail")]
    pub mutation_failure_policy: FailurePolicy,
    /// Seconds kube-apiserver waits for each call (1-30).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..=30))]
    pub timeout_seconds: i32,
    /// Delete the two configurations (only if flinkgate created them).
    #[arg(long)]
    pub uninstall: bool,
}

#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// `flinkgate crds`.
pub fn crds(args: CrdsArgs) -> anyhow::Result<()> {
    let files = crate::flink::crd_gen::crd_files().context("rendering the CRDs")?;
    match args.out_dir {
        None => {
            for (_, yaml) in files {
                println!("---\n{yaml}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, yaml) in files {
                let path = dir.join(name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// `flinkgate serve`, in groups; [`crate::server::Config`] validates them.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub listener: ListenerArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub controller: ControllerArgs,
    #[command(flatten)]
    pub collector: CollectorArgs,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Listener and TLS")]
pub struct ListenerArgs {
    /// Address to listen on.
    #[arg(long, env = "FLINKGATE_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Serving certificate (PEM). Re-read when it changes on disk.
    #[arg(long, env = "FLINKGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the serving certificate.
    #[arg(long, env = "FLINKGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates alone may call /scheduler/*
    /// (kube-scheduler's extender tlsConfig certFile/keyFile). Without it
    /// the extender is open to any client that reaches the port.
    #[arg(long, env = "FLINKGATE_EXTENDER_CLIENT_CA")]
    pub extender_client_ca: Option<PathBuf>,
    /// Seconds between checks of the certificate and policy files (at least 0.1).
    #[arg(long, env = "FLINKGATE_RELOAD_INTERVAL", default_value = "2", value_parser = seconds_from(0.1))]
    pub reload_interval: Duration,
    /// Seconds shutdown may take after SIGTERM: in-flight requests drain,
    /// then the controllers finish their reconciles, within this together.
    #[arg(long, env = "FLINKGATE_SHUTDOWN_TIMEOUT", default_value = "25", value_parser = seconds_from(0.0))]
    pub shutdown_timeout: Duration,
}

/// Limits that keep slow or numerous clients from holding the server.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Connection and request limits")]
pub struct ConnectionArgs {
    /// Open connections at most; more wait in the listen backlog until one
    /// closes. Lowered to fit the open-file limit.
    #[arg(long, env = "FLINKGATE_MAX_CONNECTIONS", default_value = "4096", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client may take for the TLS handshake.
    #[arg(long, env = "FLINKGATE_HANDSHAKE_TIMEOUT", default_value = "10", value_parser = seconds_from(0.1))]
    pub handshake_timeout: Duration,
    /// Seconds to receive an HTTP/1.1 request head, counted from when the
    /// connection starts waiting for it (so also while kept alive).
    #[arg(long, env = "FLINKGATE_HEADER_READ_TIMEOUT", default_value = "10", value_parser = seconds_from(0.1))]
    pub header_read_timeout: Duration,
    /// Seconds to receive a whole request body; later: 408.
    #[arg(long, env = "FLINKGATE_BODY_READ_TIMEOUT", default_value = "10", value_parser = seconds_from(0.1))]
    pub body_read_timeout: Duration,
    /// Seconds from a request's head to its answer; later: 503.
    #[arg(long, env = "FLINKGATE_REQUEST_TIMEOUT", default_value = "30", value_parser = seconds_from(0.1))]
    pub request_timeout: Duration,
    /// Seconds a connection may stay open with no request in flight or
    /// started; then it is closed.
    #[arg(long, env = "FLINKGATE_IDLE_TIMEOUT", default_value = "90", value_parser = seconds_from(0.1))]
    pub idle_timeout: Duration,
    /// Seconds between HTTP/2 keepalive pings to the client.
    #[arg(long, env = "FLINKGATE_HTTP2_KEEPALIVE_INTERVAL", default_value = "30", value_parser = seconds_from(0.1))]
    pub http2_keepalive_interval: Duration,
    /// Seconds to wait for a ping's answer before closing the connection.
    #[arg(long, env = "FLINKGATE_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10", value_parser = seconds_from(0.1))]
    pub http2_keepalive_timeout: Duration,
    /// MiB of request bodies held in memory at once, across all requests;
    /// a request waits for its share before its body is read. Must exceed
    /// the largest body (3 MiB admission, 32 MiB extender) to take it whole.
    #[arg(long, env = "FLINKGATE_BODY_MEMORY_MIB", default_value = "48", value_parser = clap::value_parser!(u32).range(4..))]
    pub body_memory_mib: u32,
    /// Scheduler-extender requests handled at once; more wait, unread.
    #[arg(long, env = "FLINKGATE_EXTENDER_CONCURRENCY", default_value = "2", value_parser = clap::value_parser!(u32).range(1..))]
    pub extender_concurrency: u32,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Policy")]
pub struct PolicyArgs {
    /// Policy file (YAML). Re-read when it changes.
    #[arg(long, env = "FLINKGATE_POLICY", conflicts_with = "policy_configmap")]
    pub policy: Option<PathBuf>,
    /// Policy ConfigMap as NAMESPACE/NAME, key `policy.yaml`, watched live.
    #[arg(long, env = "FLINKGATE_POLICY_CONFIGMAP")]
    pub policy_configmap: Option<NamespacedName>,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// kubeconfig for the API server; else in-cluster config; else no cluster.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// DNS server (IP:PORT, or IP for port 53) that resolves Kubernetes
    /// Service names (`*.svc`, `*.svc.<cluster domain>`) for the controller
    /// and collector, when flinkgate runs outside the cluster's pod network
    /// but can route to it (the local cluster passes its CoreDNS). Other
    /// names use the system resolver. Unset: the system resolver for all.
    #[arg(long, env = "FLINKGATE_CLUSTER_DNS", value_parser = parse_dns_server)]
    pub cluster_dns: Option<std::net::SocketAddr>,
    /// The cluster domain Service names are completed with, for --cluster-dns.
    #[arg(long, env = "FLINKGATE_CLUSTER_DOMAIN", default_value = crate::cluster_dns::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Controller")]
pub struct ControllerArgs {
    /// Run the leader-elected controller part: the FlinkDeployment and
    /// FlinkSessionJob controllers, and the score collector (with
    /// --scores-configmap). Needs a cluster. `--controller=false` where the
    /// Apache Flink Kubernetes Operator runs (webhook and extender stay).
    #[arg(long, env = "FLINKGATE_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub controller: bool,
    /// Lease NAMESPACE/NAME for leader election.
    #[arg(
        long,
        env = "FLINKGATE_LEASE",
        default_value = "flinkgate-system/flinkgate-leader"
    )]
    pub lease: NamespacedName,
    /// Namespaces whose FlinkDeployments and FlinkSessionJobs the controller
    /// reconciles (comma-separated); all namespaces when empty.
    #[arg(long, env = "FLINKGATE_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Extra CA certificates (PEM) trusted when downloading a session job's
    /// jarURI, besides the system's.
    #[arg(long, env = "FLINKGATE_JAR_CA_FILE")]
    pub jar_ca_file: Option<PathBuf>,
    /// Networks (comma-separated CIDRs) the jar downloader may reach although
    /// they are private, loopback or link-local, for clusters that serve
    /// jars internally. Names are resolved once and checked before the
    /// connection, which uses the same addresses.
    #[arg(long, env = "FLINKGATE_JAR_ALLOW_PRIVATE_CIDRS", value_delimiter = ',')]
    pub jar_allow_private_cidrs: Vec<ipnet::IpNet>,
    /// Largest jar the controller downloads, in MiB.
    #[arg(long, env = "FLINKGATE_MAX_JAR_MIB", default_value_t = 512)]
    pub max_jar_mib: u64,
    /// Seconds a savepoint (suspend, upgrade, trigger) may take before the
    /// reconcile is retried (at least 1).
    #[arg(long, env = "FLINKGATE_SAVEPOINT_TIMEOUT", default_value = "300", value_parser = seconds_from(1.0))]
    pub savepoint_timeout: Duration,
    /// Reconciles in flight at once, per resource kind.
    #[arg(long, env = "FLINKGATE_CONTROLLER_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub controller_concurrency: u16,
    /// Test-only crash point of the controller (proves crash recovery).
    /// Only in builds with the `test-support` feature, never in a release.
    #[cfg(feature = "test-support")]
    #[arg(long, hide = true, value_enum)]
    pub fault: Option<crate::controller::fault::Fault>,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Scores and collector")]
pub struct CollectorArgs {
    /// ConfigMap NAMESPACE/NAME (key scores.json) the extender reads per-node
    /// scores from, and the leader's collector writes.
    #[arg(
        long,
        env = "FLINKGATE_SCORES_CONFIGMAP",
        conflicts_with = "scores_file"
    )]
    pub scores_configmap: Option<NamespacedName>,
    /// A scores file (JSON, same format) instead of the ConfigMap, for local runs.
    #[arg(long, env = "FLINKGATE_SCORES_FILE")]
    pub scores_file: Option<PathBuf>,
    /// JobManager REST endpoints to poll instead of discovering them, as
    /// NAMESPACE/NAME=URL (repeatable; a controller-side flag, for JobManagers
    /// outside the cluster and for tests).
    #[arg(
        long = "jobmanager-url",
        env = "FLINKGATE_JOBMANAGER_URLS",
        value_delimiter = ','
    )]
    pub jobmanager_urls: Vec<crate::collector::JobManagerTarget>,
    /// Concurrent requests per JobManager while collecting.
    #[arg(long, env = "FLINKGATE_COLLECT_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub collect_concurrency: u16,
}

/// A parser of seconds (a decimal number, at least `min`) into a Duration.
fn seconds_from(
    min: f64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let secs: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number of seconds"))?;
        if !secs.is_finite() || secs < min {
            return Err(format!("{text:?}: must be at least {min} seconds"));
        }
        Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[clap(rename_all = "UPPER")]
pub enum CheckOperation {
    Create,
    Update,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifest files (multi-document YAML or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<String>,
    /// Policy file; the built-in policy when absent.
    #[arg(long, env = "FLINKGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Namespace for objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The admission operation to simulate.
    #[arg(long, value_enum, default_value = "CREATE")]
    pub operation: CheckOperation,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt, tls.key into.
    #[arg(long, default_value = "certs")]
    pub out_dir: PathBuf,
    /// DNS names for the serving certificate (repeatable).
    #[arg(long = "dns", default_values_t = default_dns())]
    pub dns: Vec<String>,
    /// IP addresses for the serving certificate (repeatable).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Also write a client certificate with this common name (NAME.crt,
    /// NAME.key), e.g. `kube-scheduler` for `--extender-client-ca`.
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
}

fn default_dns() -> Vec<String> {
    [
        "flinkgate",
        "flinkgate.flinkgate-system",
        "flinkgate.flinkgate-system.svc",
        "flinkgate.flinkgate-system.svc.cluster.local",
    ]
    .map(String::from)
    .to_vec()
}

/// `flinkgate certs`.
pub fn certs(args: CertsArgs) -> anyhow::Result<()> {
    let bundle = crate::certs::generate(&args.dns, &args.ips, args.days)
        .context("generating certificates")?;
    crate::certs::write(&bundle, &args.out_dir)?;
    println!(
        "wrote ca.crt, ca.key, tls.crt, tls.key to {}",
        args.out_dir.display()
    );
    if let Some(name) = &args.client {
        crate::certs::write_client(&bundle, name, args.days, &args.out_dir)
            .context("writing the client certificate")?;
        println!(
            "wrote {name}.crt, {name}.key (client certificate) to {}",
            args.out_dir.display()
        );
    }
    Ok(())
}

/// `IP:PORT`, or a bare IP for port 53.
fn parse_dns_server(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not IP:PORT or IP (e.g. 10.96.0.10 or 10.96.0.10:53)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_checked_not_clamped() {
        let parse = seconds_from(0.1);
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["0.05", "-1", "NaN", "inf", "two"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serve_defaults_parse() {
        let cli = Cli::try_parse_from(["flinkgate", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.listener.reload_interval, Duration::from_secs(2));
        assert_eq!(
            args.controller.lease.to_string(),
            "flinkgate-system/flinkgate-leader"
        );
        assert!(
            Cli::try_parse_from(["flinkgate", "serve", "--lease", "no-slash"]).is_err(),
            "NAMESPACE/NAME flags are checked"
        );
    }
}
