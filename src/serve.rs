//! `flinkgate serve`: wires policy, TLS, metrics and the HTTPS server
//! together and runs until SIGTERM / SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::server::{AppState, router, serve_tls};
use crate::cli::ServeArgs;
use crate::leader::Leadership;
use crate::policy::source::{self, apply_document};
use crate::policy::{Policy, PolicyStore};
use crate::scheduler::scores::{self, ScoreBoard};
use crate::telemetry::Metrics;
use crate::tls::{self, ReloadingCert};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let stop = CancellationToken::new();
    let (metrics, registry) = Metrics::new();
    let store = Arc::new(PolicyStore::new(metrics.clone()));
    let interval = Duration::from_secs_f64(args.reload_interval.max(0.1));

    // A cluster is needed for ConfigMap sources and the controller; an
    // explicit --kubeconfig or a pod's service account provides it.
    let wants_cluster = args.policy_configmap.is_some()
        || args.scores_configmap.is_some()
        || args.kubeconfig.is_some()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let client = if wants_cluster {
        match crate::kubeclient::client(args.kubeconfig.as_deref()).await? {
            Some(c) => Some(c),
            None => bail!(
                "--policy-configmap and --scores-configmap need a cluster: pass --kubeconfig or run in a pod"
            ),
        }
    } else {
        None
    };

    // Policy: file, ConfigMap, or built-in.
    if let Some(path) = &args.policy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading policy {}", path.display()))?;
        if let Err(e) = apply_document(&store, &text, &path.display().to_string()) {
            bail!("policy {} is invalid: {e}", path.display());
        }
        tokio::spawn(source::watch_file(
            store.clone(),
            path.clone(),
            interval,
            stop.child_token(),
        ));
    } else if let (Some(cm), Some(client)) = (&args.policy_configmap, &client) {
        tracing::info!(configmap = %cm, "watching the policy ConfigMap; ready once it loads");
        tokio::spawn(source::watch_configmap(
            store.clone(),
            client.clone(),
            cm.clone(),
            stop.child_token(),
        ));
    } else {
        store.install(Policy::builtin());
        tracing::info!("using the built-in policy");
    }

    // Scores for the scheduler extender: ConfigMap, file, or none (all neutral).
    let scores = Arc::new(ScoreBoard::default());
    if let (Some(cm), Some(client)) = (&args.scores_configmap, &client) {
        tokio::spawn(scores::watch_configmap(
            scores.clone(),
            client.clone(),
            cm.clone(),
            stop.child_token(),
        ));
    } else if let Some(path) = &args.scores_file {
        tokio::spawn(scores::watch_file(
            scores.clone(),
            path.clone(),
            interval,
            stop.child_token(),
        ));
    }

    // Leader-elected work: the controller, and the collector that
    // publishes what the extenders read.
    if let (true, Some(client)) = (args.controller, &client) {
        let identity = replica_identity();
        let leadership = Leadership::start(
            client.clone(),
            &args.lease.namespace,
            &args.lease.name,
            &identity,
            stop.child_token(),
        );
        let gauge = metrics.leading.clone();
        let mut watch = leadership.clone();
        tokio::spawn(async move {
            loop {
                watch.until_leading().await;
                gauge.set(1);
                watch.until_not_leading().await;
                gauge.set(0);
            }
        });
        let jar_ca = match &args.jar_ca_file {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        let ctx = crate::controller::context::Context::new(
            client.clone(),
            store.clone(),
            metrics.clone(),
            crate::controller::context::ControllerConfig {
                namespaces: args.watch_namespaces.clone(),
                jobmanagers: args.jobmanager_urls.clone(),
                jar_ca,
                max_jar_bytes: args.max_jar_mib.saturating_mul(1 << 20),
                savepoint_timeout: Duration::from_secs_f64(args.savepoint_timeout.max(1.0)),
                identity: identity.clone(),
                fault: args.fault,
                concurrency: args.controller_concurrency,
                cluster_dns: cluster_dns_config(&args),
            },
        )?;
        tokio::spawn(crate::controller::run(
            Arc::new(ctx),
            leadership.clone(),
            stop.child_token(),
        ));
        if let Some(cm) = &args.scores_configmap {
            start_collector(
                client, cm, &args, &store, &scores, &metrics, leadership, &stop,
            )?;
        }
    }

    // TLS: the given files (watched), or a self-signed certificate in memory.
    let cert = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let cert_pem = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
            let key_pem = std::fs::read(k).with_context(|| format!("reading {}", k.display()))?;
            let key = tls::certified_key(&cert_pem, &key_pem)
                .context("loading the serving certificate")?;
            let cert = ReloadingCert::new(key);
            tokio::spawn(tls::watch_files(
                cert.clone(),
                c.clone(),
                k.clone(),
                interval,
                metrics.clone(),
                stop.child_token(),
            ));
            cert
        }
        _ => {
            let bundle = crate::certs::generate(
                &["localhost".into()],
                &[
                    "127.0.0.1"
                        .parse()
                        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                    std::net::Ipv6Addr::LOCALHOST.into(),
                ],
                365,
            )?;
            tracing::warn!(
                "no --tls-cert given: serving a self-signed certificate for localhost (local use only)"
            );
            ReloadingCert::new(tls::certified_key(
                bundle.cert.as_bytes(),
                bundle.key.as_bytes(),
            )?)
        }
    };
    let tls_config = Arc::new(tls::server_config(cert)?);

    let filter_events = match &client {
        Some(c) => crate::scheduler::filter_events::FilterEvents::start(
            c.clone(),
            replica_identity(),
            stop.child_token(),
        ),
        None => Default::default(),
    };
    let listening = Arc::new(AtomicBool::new(false));
    let cluster: Arc<dyn crate::admission::cluster_view::ClusterView> = match &client {
        Some(c) => {
            crate::admission::cluster_cache::ClusterCache::start(c.clone(), stop.child_token())
        }
        None => Arc::new(crate::admission::cluster_view::NoClusterView(
            "flinkgate runs without a cluster connection",
        )),
    };
    let app = router(AppState {
        policy: store.clone(),
        metrics,
        registry: Arc::new(registry),
        listening: listening.clone(),
        scores,
        filter_events,
        cluster,
    });
    shutdown_on_signal(stop.clone())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    listening.store(true, Ordering::Release);
    tracing::info!(
        address = %local,
        policy_loaded = store.is_loaded(),
        startup_ms = started.elapsed().as_secs_f64() * 1000.0,
        "listening on https://{local}"
    );

    serve_tls(
        listener,
        tls_config,
        app,
        stop.clone(),
        Duration::from_secs_f64(args.shutdown_timeout.max(0.0)),
    )
    .await;
    stop.cancel();
    tracing::info!("stopped");
    Ok(())
}

/// The collector gets its own thread and runtime: a slow JobManager walk
/// never competes with admission requests for the server's workers.
#[allow(clippy::too_many_arguments)]
fn start_collector(
    client: &kube::Client,
    cm: &crate::policy::source::ConfigMapRef,
    args: &ServeArgs,
    store: &Arc<PolicyStore>,
    scores: &Arc<ScoreBoard>,
    metrics: &Metrics,
    leadership: Leadership,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let cfg = crate::collector::CollectorConfig {
        scores: cm.clone(),
        jobmanagers: args.jobmanager_urls.clone(),
        concurrency: args.collect_concurrency.max(1),
        cluster_dns: cluster_dns_config(args),
    };
    let (client, store, scores, metrics, stop) = (
        client.clone(),
        store.clone(),
        scores.clone(),
        metrics.clone(),
        stop.child_token(),
    );
    std::thread::Builder::new()
        .name("collector".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(crate::collector::run(
                    client, cfg, store, scores, metrics, leadership, stop,
                )),
                Err(e) => tracing::error!(error = %e, "cannot start the collector runtime"),
            }
        })
        .context("starting the collector thread")?;
    Ok(())
}

fn cluster_dns_config(args: &ServeArgs) -> Option<crate::cluster_dns::ClusterDnsConfig> {
    args.cluster_dns
        .map(|server| crate::cluster_dns::ClusterDnsConfig {
            server,
            domain: args.cluster_domain.clone(),
        })
}

/// This replica's name in Leases and Events: its pod, else host and pid.
fn replica_identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "flinkgate".into())
}

/// Installs the SIGTERM / SIGINT handlers now (before the server reports
/// itself listening, so no early signal takes the default action) and
/// cancels `stop` on the first one.
fn shutdown_on_signal(stop: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
        stop.cancel();
    });
    Ok(())
}
