//! `flinkgate serve`: a [`Server`] built from a checked [`Config`] owns every
//! task it starts and stops them in order on SIGTERM / SIGINT:
//! 1. stop accepting connections;
//! 2. drain in-flight requests;
//! 3. stop the controllers and the collector, letting reconciles finish;
//! 4. release the leader Lease, so a standby takes over at once;
//! 5. exit 0.
//!
//! Steps 2 and 3 share the shutdown timeout. A task that ends on its own
//! fails readiness and shuts the process down with an error.

pub mod config;
pub mod router;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use config::{ClusterAccess, LeaderWork, PolicySource, ScoresSource, TlsSource};
use router::{AppState, Health, router};

use crate::admission::cluster_cache::ClusterCache;
use crate::admission::cluster_view::{ClusterView, NoClusterView};
use crate::admission::handler::AdmissionState;
use crate::http::{BodyBudget, ConnectionLimits, serve_tls};
use crate::leader::Leadership;
use crate::policy::source::{self, apply_document};
use crate::policy::{Policy, PolicyStore};
use crate::scheduler::extender::ExtenderState;
use crate::scheduler::filter_events::FilterEvents;
use crate::scheduler::scores::{self, ScoreBoard};
use crate::tasks::{Ended, Tasks};
use crate::telemetry::Metrics;
use crate::tls::{self, ReloadingCert};

/// How long the other tasks (watches, caches) get once the rest stopped.
const LAST_TASKS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Server {
    config: Config,
    store: Arc<PolicyStore>,
    metrics: Metrics,
    registry: prometheus_client::registry::Registry,
    cert: Arc<ReloadingCert>,
    jar_ca: Option<Vec<u8>>,
    extender_client_ca: Option<Vec<u8>>,
    /// This replica's name in the Lease and in Events.
    identity: String,
}

impl Server {
    /// Reads what must be readable before serving (policy file, certificate,
    /// jar CA) and fails with the reason when something is not.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let (metrics, registry) = Metrics::new();
        let store = Arc::new(PolicyStore::new(metrics.clone()));
        match &config.policy {
            PolicySource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading policy {}", path.display()))?;
                if let Err(e) = apply_document(&store, &text, &path.display().to_string()) {
                    bail!("policy {} is invalid: {e}", path.display());
                }
            }
            PolicySource::Builtin => {
                store.install(Policy::builtin());
                tracing::info!("using the built-in policy");
            }
            // Loaded by its watch; not ready until then.
            PolicySource::ConfigMap(_) => {}
        }
        let cert = serving_cert(&config.tls)?;
        let jar_ca = match config
            .leader_work
            .as_ref()
            .and_then(|w| w.jar_ca_file.as_ref())
        {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        let extender_client_ca = match &config.extender_client_ca {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        Ok(Self {
            config,
            store,
            metrics,
            registry,
            cert,
            jar_ca,
            extender_client_ca,
            identity: replica_identity(),
        })
    }

    /// Serves until SIGTERM / SIGINT, then shuts down in order. Errors when
    /// a task died on its own or a step could not start.
    pub async fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let cfg = &self.config;
        // Tokens in the order shutdown cancels them.
        let stop = CancellationToken::new();
        let leader_stop = CancellationToken::new();
        let lease_stop = CancellationToken::new();
        let rest_stop = CancellationToken::new();
        // Background tasks by when they stop: serving-side watches and
        // caches, the leader's work, and the elector.
        let mut services = Tasks::new();
        let mut leader_work = Tasks::new();
        let mut election = Tasks::new();
        install_signal_handlers(&stop)?;

        let client = match &cfg.cluster {
            ClusterAccess::None => None,
            ClusterAccess::Kubeconfig(path) => Some(
                crate::k8s::client(Some(path))
                    .await?
                    .context("no cluster")?,
            ),
            ClusterAccess::InCluster => Some(
                crate::k8s::client(None)
                    .await?
                    .context("running in a pod but without in-cluster configuration")?,
            ),
        };

        self.start_policy_source(client.as_ref(), &mut services, &rest_stop);
        let scores = Arc::new(ScoreBoard::default());
        match (&cfg.scores, &client) {
            (ScoresSource::ConfigMap(cm), Some(c)) => services.spawn(
                "scores ConfigMap watch",
                scores::watch_configmap(scores.clone(), c.clone(), cm.clone(), rest_stop.clone()),
            ),
            (ScoresSource::File(path), _) => services.spawn(
                "scores file watch",
                scores::watch_file(
                    scores.clone(),
                    path.clone(),
                    cfg.reload_interval,
                    rest_stop.clone(),
                ),
            ),
            _ => {}
        }
        if let (Some(work), Some(c)) = (&cfg.leader_work, &client) {
            let leadership = Leadership::start(
                c.clone(),
                &work.lease,
                &self.identity,
                lease_stop.clone(),
                &mut election,
            );
            self.start_leader_work(c, work, &scores, leadership, &leader_stop, &mut leader_work)?;
        }
        if let TlsSource::Files { cert, key } = &cfg.tls {
            services.spawn(
                "certificate watch",
                tls::watch_files(
                    self.cert.clone(),
                    cert.clone(),
                    key.clone(),
                    cfg.reload_interval,
                    self.metrics.clone(),
                    rest_stop.clone(),
                ),
            );
        }
        #[cfg(feature = "test-support")]
        if cfg.fault == Some(crate::controller::fault::Fault::PanicTask) {
            services.spawn("fault injection", async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                panic!("fault injection: a background task panicked");
            });
        }
        let tls_config = Arc::new(
            tls::server_config(self.cert.clone(), self.extender_client_ca.as_deref())
                .context("--extender-client-ca")?,
        );
        let filter_events = match &client {
            Some(c) => FilterEvents::start(
                c.clone(),
                self.identity.clone(),
                rest_stop.clone(),
                &mut services,
            ),
            None => FilterEvents::default(),
        };
        let cluster: Arc<dyn ClusterView> = match &client {
            Some(c) => ClusterCache::start(c.clone(), rest_stop.clone(), &mut services),
            None => Arc::new(NoClusterView("flinkgate runs without a cluster connection")),
        };
        let health = Arc::new(Health::default());
        let bodies = BodyBudget::new(cfg.body_memory);
        let app = router(AppState {
            admission: AdmissionState {
                policy: self.store.clone(),
                metrics: self.metrics.clone(),
                cluster,
                bodies: bodies.clone(),
            },
            extender: ExtenderState {
                policy: self.store.clone(),
                metrics: self.metrics.clone(),
                scores,
                filter_events,
                bodies,
                max_concurrent: cfg.extender_concurrency,
                require_client_certificate: self.extender_client_ca.is_some(),
            },
            registry: Arc::new(self.registry),
            health: health.clone(),
        });
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        let local = listener.local_addr()?;
        health.listening.store(true, Ordering::Release);
        tracing::info!(
            address = %local,
            policy_loaded = self.store.is_loaded(),
            startup_ms = started.elapsed().as_secs_f64() * 1000.0,
            "listening on https://{local}"
        );

        // 1 and 2: serve until stopped, then drain. A task ending on its own
        // starts the same shutdown.
        let serving = serve_tls(
            listener,
            tls_config,
            app,
            connection_limits(&cfg.connections),
            self.metrics.connections.clone(),
            stop.clone(),
            cfg.shutdown_timeout,
        );
        let mut serving = std::pin::pin!(serving);
        let mut failure: Option<Ended> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = &mut serving => break,
                () = stop.cancelled(), if deadline.is_none() => {}
                ended = services.next_ended(), if failure.is_none() => failure = Some(ended),
                ended = leader_work.next_ended(), if failure.is_none() => failure = Some(ended),
                ended = election.next_ended(), if failure.is_none() => failure = Some(ended),
            }
            if let Some(ended) = failure.as_ref().filter(|_| !stop.is_cancelled()) {
                tracing::error!(task = ended.name, "{ended}: shutting down");
                health.failed.store(true, Ordering::Release);
                stop.cancel();
            }
            if stop.is_cancelled() && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + cfg.shutdown_timeout);
            }
        }

        // 3: the leader's work, within what is left of the shutdown timeout.
        let left = shutdown_time_left(deadline, cfg.shutdown_timeout, tokio::time::Instant::now());
        leader_stop.cancel();
        let aborted = leader_work.join_all(left).await;
        if !aborted.is_empty() {
            tracing::warn!(tasks = ?aborted, "shutdown timeout: stopped without finishing");
        }
        // 4: only now may a standby lead.
        lease_stop.cancel();
        election.join_all(LAST_TASKS_TIMEOUT * 2).await;
        rest_stop.cancel();
        services.join_all(LAST_TASKS_TIMEOUT).await;
        tracing::info!("stopped");
        match failure {
            Some(ended) => bail!("{ended}"),
            None => Ok(()),
        }
    }

    fn start_policy_source(
        &self,
        client: Option<&Client>,
        tasks: &mut Tasks,
        stop: &CancellationToken,
    ) {
        match (&self.config.policy, client) {
            (PolicySource::File(path), _) => tasks.spawn(
                "policy file watch",
                source::watch_file(
                    self.store.clone(),
                    path.clone(),
                    self.config.reload_interval,
                    stop.clone(),
                ),
            ),
            (PolicySource::ConfigMap(cm), Some(c)) => {
                tracing::info!(configmap = %cm, "watching the policy ConfigMap; ready once it loads");
                tasks.spawn(
                    "policy ConfigMap watch",
                    source::watch_configmap(
                        self.store.clone(),
                        c.clone(),
                        cm.clone(),
                        stop.clone(),
                    ),
                );
            }
            _ => {}
        }
    }

    /// The controllers, the gauge of leadership, and the collector (when
    /// there is a scores ConfigMap to publish to).
    fn start_leader_work(
        &self,
        client: &Client,
        work: &LeaderWork,
        scores: &Arc<ScoreBoard>,
        leadership: Leadership,
        stop: &CancellationToken,
        tasks: &mut Tasks,
    ) -> anyhow::Result<()> {
        let gauge = self.metrics.leading.clone();
        let mut watch = leadership.clone();
        let gauge_stop = stop.clone();
        tasks.spawn("leadership gauge", async move {
            loop {
                tokio::select! {
                    _ = gauge_stop.cancelled() => return,
                    _ = watch.until_leading() => { gauge.set(1); }
                }
                tokio::select! {
                    _ = gauge_stop.cancelled() => return,
                    _ = watch.until_not_leading() => { gauge.set(0); }
                }
            }
        });
        let cluster_dns = self.config.cluster_dns.clone();
        let ctx = crate::controller::context::Context::new(
            client.clone(),
            self.store.clone(),
            self.metrics.clone(),
            crate::controller::context::ControllerConfig {
                namespaces: work.watch_namespaces.clone(),
                jobmanagers: work.jobmanagers.clone(),
                jar_ca: self.jar_ca.clone(),
                jar_allow_private: work.jar_allow_private.clone(),
                max_jar_bytes: work.max_jar_bytes,
                savepoint_timeout: work.savepoint_timeout,
                identity: self.identity.clone(),
                #[cfg(feature = "test-support")]
                fault: self.config.fault,
                concurrency: work.concurrency,
                cluster_dns: cluster_dns.clone(),
            },
        )?;
        tasks.spawn(
            "controllers",
            crate::controller::run(Arc::new(ctx), leadership.clone(), stop.clone()),
        );
        if let ScoresSource::ConfigMap(cm) = &self.config.scores {
            let cfg = crate::collector::CollectorConfig {
                scores: cm.clone(),
                jobmanagers: work.jobmanagers.clone(),
                concurrency: usize::from(work.collect_concurrency),
                cluster_dns,
            };
            let (client, store, scores, metrics, stop) = (
                client.clone(),
                self.store.clone(),
                scores.clone(),
                self.metrics.clone(),
                stop.clone(),
            );
            // Its own thread and runtime: a slow JobManager walk never
            // competes with admission requests for the server's workers.
            tasks.spawn_blocking("collector", move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        rt.block_on(crate::collector::run(
                            client, cfg, store, scores, metrics, leadership, stop,
                        ));
                        // Dropping a runtime waits for its blocking pool, where
                        // name lookups of unreachable JobManagers can take
                        // seconds; the Lease is released only after this.
                        rt.shutdown_background();
                        tracing::info!("collector stopped");
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the collector runtime"),
                }
            });
        }
        Ok(())
    }
}

/// The given files, or a self-signed certificate in memory.
fn serving_cert(tls: &TlsSource) -> anyhow::Result<Arc<ReloadingCert>> {
    match tls {
        TlsSource::Files { cert, key } => {
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key_pem =
                std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            let key = tls::certified_key(&cert_pem, &key_pem)
                .context("loading the serving certificate")?;
            Ok(ReloadingCert::new(key))
        }
        TlsSource::SelfSigned => {
            let bundle = crate::certs::generate(
                &["localhost".into()],
                &[
                    std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::Ipv6Addr::LOCALHOST.into(),
                ],
                365,
            )?;
            tracing::warn!(
                "no --tls-cert given: serving a self-signed certificate for localhost (local use only)"
            );
            Ok(ReloadingCert::new(tls::certified_key(
                bundle.cert.as_bytes(),
                bundle.key.as_bytes(),
            )?))
        }
    }
}

/// The configured limits, with the connection cap lowered to what the
/// open-file limit allows (raised to its hard limit first). Each connection
/// is one file; the rest (watches, clients, files) get a reserve.
fn connection_limits(wanted: &ConnectionLimits) -> ConnectionLimits {
    const RESERVE: u64 = 256;
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            return wanted.clone();
        }
    };
    let fits = usize::try_from(files.saturating_sub(RESERVE).max(1)).unwrap_or(usize::MAX);
    let mut limits = wanted.clone();
    if wanted.max_connections > fits {
        tracing::warn!(
            max_connections = wanted.max_connections,
            open_file_limit = files,
            lowered_to = fits,
            "--max-connections is more than the open-file limit allows"
        );
        limits.max_connections = fits;
    }
    tracing::info!(
        open_file_limit = files,
        max_connections = limits.max_connections,
        "connection limits"
    );
    limits
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

/// What is left of the shutdown timeout for the leader's work. `deadline`
/// is `None` when serving finished before the loop saw the stop token: both
/// become ready together on SIGTERM and `select!` picks either, and a quick
/// drain wins. The shutdown then starts now, with the whole timeout; it must
/// not be read as "no time left", which aborted the controllers at once.
fn shutdown_time_left(
    deadline: Option<tokio::time::Instant>,
    timeout: Duration,
    now: tokio::time::Instant,
) -> Duration {
    deadline.map_or(timeout, |d| d.saturating_duration_since(now))
}

/// Installs the SIGTERM / SIGINT handlers now (before the server reports
/// itself listening, so no early signal takes the default action) and
/// cancels `stop` on the first one.
fn install_signal_handlers(stop: &CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let stop = stop.clone();
    // Not in a task set: it ends by itself once a signal came.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
            _ = stop.cancelled() => return,
        }
        stop.cancel();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaders_work_keeps_the_whole_timeout_when_serving_ended_first() {
        let now = tokio::time::Instant::now();
        let timeout = Duration::from_secs(25);
        assert_eq!(shutdown_time_left(None, timeout, now), timeout);
        let started = Some(now + Duration::from_secs(10));
        assert_eq!(
            shutdown_time_left(started, timeout, now),
            Duration::from_secs(10)
        );
        assert_eq!(
            shutdown_time_left(Some(now), timeout, now + Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
