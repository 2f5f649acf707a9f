//! Logging setup and the Prometheus metrics flinkgate exports.

use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Sets up `tracing`: `RUST_LOG` filters (default `info`), JSON with `--log-json`.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        // Colour only for a person at a terminal, never into log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// stderr that drops what it cannot write. tracing-subscriber reports a
/// failed write with `eprintln!`, which panics when stderr is a closed pipe;
/// a log reader going away must not take the server down with it.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    pub endpoint: &'static str,
    pub kind: &'static str,
    pub operation: &'static str,
    pub allowed: &'static str,
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub kind: &'static str,
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExtenderLabels {
    pub verb: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExtenderPhaseLabels {
    pub verb: &'static str,
    /// `read_body` (from the handler's start until the whole body is in
    /// memory: the client sending it, TLS) or `handle` (parse, decide,
    /// encode).
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectionErrorLabels {
    pub jobmanager: String,
}

/// A family read on every admission review, whose label values are
/// `&'static str`s: each label set is resolved through the family once
/// (which hashes every label with SipHash under a lock, a tenth of
/// flinkgate's own work per review), then found again in a short list by
/// comparing labels. The list is read without a lock: a lock's read side
/// writes its cache line, which both worker threads would pass back and
/// forth on every review.
pub struct ResolvedFamily<L, M> {
    family: Family<L, M, fn() -> M>,
    resolved: ArcSwap<Vec<(L, M)>>,
}

impl<L, M> ResolvedFamily<L, M>
where
    L: Clone + std::hash::Hash + Eq + std::fmt::Debug + EncodeLabelSet + Send + Sync + 'static,
    M: Clone
        + prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    fn new(constructor: fn() -> M) -> Self {
        Self {
            family: Family::new_with_constructor(constructor),
            resolved: ArcSwap::default(),
        }
    }

    /// Calls `f` with the metric for `labels`.
    pub fn with<R>(&self, labels: &L, f: impl FnOnce(&M) -> R) -> R {
        if let Some((_, metric)) = self.resolved.load().iter().find(|(l, _)| l == labels) {
            return f(metric);
        }
        let metric = self.family.get_or_create(labels).clone();
        let result = f(&metric);
        self.resolved.rcu(|resolved| {
            let mut resolved = Vec::clone(resolved);
            if !resolved.iter().any(|(l, _)| l == labels) {
                resolved.push((labels.clone(), metric.clone()));
            }
            resolved
        });
        result
    }
}

/// Every metric, registered once; cheap to clone: one shared pointer, not
/// one per metric (each clone of an `Arc` is an atomic on a cache line
/// every core writes).
#[derive(Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

pub struct MetricSet {
    pub admission_requests: ResolvedFamily<AdmissionLabels, Counter>,
    pub admission_duration: ResolvedFamily<EndpointLabels, Histogram>,
    pub admission_bad_requests: Family<EndpointLabels, Counter>,
    pub admission_violations: Family<ViolationLabels, Counter>,
    pub policy_generation: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub policy_reload_errors: Counter<u64, AtomicU64>,
    pub tls_reloads: Counter<u64, AtomicU64>,
    pub tls_reload_errors: Counter<u64, AtomicU64>,
    pub extender_requests: Family<ExtenderLabels, Counter>,
    pub extender_seconds: Family<ExtenderPhaseLabels, Histogram>,
    pub node_performance: Family<NodeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub job_performance: Family<JobLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub rebalance_moves: Family<JobLabels, Counter>,
    pub collection_errors: Family<CollectionErrorLabels, Counter>,
    pub collection_cycles: Counter<u64, AtomicU64>,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Family<ReconcileKindLabels, Histogram>,
    pub leading: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub connections: crate::http::ConnectionMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileKindLabels {
    pub kind: &'static str,
}

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~65 s: a reconcile is API calls, and sometimes a savepoint.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1e-3, 2.0, 17,
    ))
}

fn duration_histogram() -> Histogram {
    // 5 µs .. ~80 ms: admission decisions are microseconds; the tail shows stalls.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        5e-6, 2.0, 15,
    ))
}

fn extender_histogram() -> Histogram {
    // 20 µs .. ~0.65 s: a call with node names takes well under a
    // millisecond, a full NodeList of 5,000 Nodes tens of milliseconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        2e-5, 2.0, 16,
    ))
}

impl Metrics {
    pub fn new() -> (Self, Registry) {
        let m = MetricSet {
            admission_requests: ResolvedFamily::new(Counter::default),
            admission_duration: ResolvedFamily::new(duration_histogram),
            admission_bad_requests: Family::default(),
            admission_violations: Family::default(),
            policy_generation: Gauge::default(),
            policy_reload_errors: Counter::default(),
            tls_reloads: Counter::default(),
            tls_reload_errors: Counter::default(),
            extender_requests: Family::default(),
            extender_seconds: Family::new_with_constructor(extender_histogram),
            node_performance: Family::default(),
            job_performance: Family::default(),
            rebalance_moves: Family::default(),
            collection_errors: Family::default(),
            collection_cycles: Counter::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            leading: Gauge::default(),
            connections: crate::http::ConnectionMetrics::default(),
        };
        let mut r = Registry::with_prefix("flinkgate");
        r.register(
            "admission_requests",
            "Admission reviews answered, by endpoint, kind, operation, verdict and policy mode",
            m.admission_requests.family.clone(),
        );
        r.register(
            "admission_duration_seconds",
            "Time to decide one admission review, body read to response encoded",
            m.admission_duration.family.clone(),
        );
        r.register(
            "admission_bad_requests",
            "Requests refused with 4xx because the body was not a usable AdmissionReview",
            m.admission_bad_requests.clone(),
        );
        r.register(
            "admission_violations",
            "Policy violations found, by kind and mode (in audit mode the only trace besides the log)",
            m.admission_violations.clone(),
        );
        r.register(
            "policy_generation",
            "Generation of the policy in force (0: none yet)",
            m.policy_generation.clone(),
        );
        r.register(
            "policy_reload_errors",
            "Policy documents rejected as invalid; the last good policy stayed in force",
            m.policy_reload_errors.clone(),
        );
        r.register(
            "tls_certificate_reloads",
            "Serving certificates loaded after a change on disk",
            m.tls_reloads.clone(),
        );
        r.register(
            "tls_certificate_reload_errors",
            "Serving certificate reloads that failed; the previous certificate stayed in use",
            m.tls_reload_errors.clone(),
        );
        r.register(
            "scheduler_extender_requests",
            "Extender calls by verb (filter, prioritize) and result",
            m.extender_requests.clone(),
        );
        r.register(
            "scheduler_extender_seconds",
            "Extender call time by verb and phase: read_body (the body arriving) and handle (parse, decide, encode)",
            m.extender_seconds.clone(),
        );
        r.register(
            "node_task_performance",
            "F_n: mean relative performance of the Flink subtasks that ran on the node (1.0 = as fast as peers)",
            m.node_performance.clone(),
        );
        r.register(
            "job_task_performance",
            "F(x) of a Flink job: mean relative performance of its subtasks",
            m.job_performance.clone(),
        );
        r.register(
            "rebalance_moves",
            "TaskManager pods moved off a node that stayed below the floor (scheduling.rebalance), by FlinkDeployment",
            m.rebalance_moves.clone(),
        );
        r.register(
            "http_open_connections",
            "Connections open now, TLS handshakes included",
            m.connections.open.clone(),
        );
        r.register(
            "http_connections_closed",
            "Connections closed, by reason (closed_by_client, idle, header_timeout, handshake_timeout, handshake_failed, shutdown, error)",
            m.connections.closed.clone(),
        );
        r.register(
            "http_request_timeouts",
            "Requests cut off by a time limit, by phase (body: not received in time; request: not answered in time)",
            m.connections.request_timeouts.clone(),
        );
        r.register(
            "http_connection_cap_reached",
            "Times a new connection waited because --max-connections were open",
            m.connections.at_capacity.clone(),
        );
        r.register(
            "collection_errors",
            "Failed polls of a JobManager's REST API",
            m.collection_errors.clone(),
        );
        r.register(
            "collection_cycles",
            "Completed collection cycles",
            m.collection_cycles.clone(),
        );
        r.register(
            "controller_reconciles",
            "Reconciles of FlinkDeployments and FlinkSessionJobs, by kind and result (ok, error, waiting: for pods to stop)",
            m.reconciles.clone(),
        );
        r.register(
            "controller_reconcile_duration_seconds",
            "Time one reconcile took, by kind",
            m.reconcile_duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader Lease (runs the controller and collector)",
            m.leading.clone(),
        );
        (Metrics(Arc::new(m)), r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_family_counts_into_the_registered_family() {
        let (metrics, registry) = Metrics::new();
        let labels = |allowed| AdmissionLabels {
            endpoint: "validate",
            kind: "FlinkDeployment",
            operation: "CREATE",
            allowed,
            mode: "enforce",
        };
        for allowed in ["true", "true", "false", "true"] {
            metrics
                .admission_requests
                .with(&labels(allowed), Counter::inc);
        }
        // Labels equal in content, not in address, find the same metric.
        let owned = String::from("true");
        let leaked: &'static str = Box::leak(owned.into_boxed_str());
        metrics
            .admission_requests
            .with(&labels(leaked), Counter::inc);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let line = |allowed: &str| {
            format!(
                r#"flinkgate_admission_requests_total{{endpoint="validate",kind="FlinkDeployment",operation="CREATE",allowed="{allowed}",mode="enforce"}}"#
            )
        };
        assert!(text.contains(&format!("{} 4\n", line("true"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", line("false"))), "{text}");
        assert_eq!(metrics.admission_requests.resolved.load().len(), 2);
    }
}
