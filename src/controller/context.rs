//! What every reconcile shares: the API client, the policy, the JobManager
//! address overrides, Flink REST clients, the jar downloader, Events and
//! per-object retry backoff.

use crate::cluster_dns::AddressGuard;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer;
use thiserror::Error;

use crate::collector::JobManagerTarget;
use crate::controller::pod_health::TaskManagerExits;
use crate::flink::rest::{FlinkRestClient, FlinkRestError, FlinkRestOptions};
use crate::policy::PolicyStore;
use crate::telemetry::Metrics;

const FLINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Field manager of everything the controller applies.
pub const FIELD_MANAGER: &str = "flinkgate-controller";
pub const FINALIZER: &str = "flinkgate.io/finalizer";

#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Flink REST: {0}")]
    Flink(Box<FlinkRestError>),
    #[error("cannot fetch the jar {uri}: {detail}")]
    Jar { uri: String, detail: String },
    #[error("savepoint of job {job_id} failed: {cause}")]
    Savepoint { job_id: String, cause: String },
    #[error("{0}")]
    Invalid(String),
    /// Not a failure: a step waits for the cluster (e.g. pods to stop) and
    /// is retried soon, without a Warning Event.
    #[error("waiting: {0}")]
    Waiting(String),
}

impl From<FlinkRestError> for ReconcileError {
    fn from(e: FlinkRestError) -> Self {
        // Boxed: the REST error is large and errors travel far.
        Self::Flink(Box::new(e))
    }
}

impl ReconcileError {
    /// Short PascalCase reason for the Warning Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApiError",
            Self::Flink(_) => "JobManagerError",
            Self::Jar { .. } => "JarFetchFailed",
            Self::Savepoint { .. } => "SavepointFailed",
            Self::Invalid(_) => "InvalidSpec",
            Self::Waiting(_) => "Waiting",
        }
    }
}

pub struct ControllerConfig {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Controller-side JobManager address overrides (tests, external clusters).
    pub jobmanagers: Vec<JobManagerTarget>,
    /// Extra CA certificate (PEM) trusted for `jarURI` downloads.
    pub jar_ca: Option<Vec<u8>>,
    /// Internal networks jar downloads may reach anyway.
    pub jar_allow_private: Vec<ipnet::IpNet>,
    /// Largest jar downloaded, in bytes.
    pub max_jar_bytes: u64,
    /// Seconds a savepoint may take before the reconcile gives up and retries.
    pub savepoint_timeout: Duration,
    pub identity: String,
    #[cfg(feature = "test-support")]
    pub fault: Option<super::fault::Fault>,
    /// Reconciles in flight per kind and namespace scope.
    pub concurrency: u16,
    /// Resolve Service names through this DNS server (flinkgate outside the cluster).
    pub cluster_dns: Option<crate::cluster_dns::ClusterDnsConfig>,
}

pub struct Context {
    pub client: Client,
    pub policy: Arc<PolicyStore>,
    pub metrics: Metrics,
    pub config: ControllerConfig,
    reporter: Reporter,
    jars: reqwest::Client,
    jar_guard: AddressGuard,
    /// One connection pool for every JobManager: a client per cluster would
    /// load the system's root certificates once per FlinkDeployment.
    flink_http: reqwest::Client,
    /// Hash of the objects last applied per FlinkDeployment uid, so an
    /// unchanged cluster costs no server-side applies (a new leader starts
    /// empty and re-applies everything once).
    applied: Mutex<HashMap<String, String>>,
    failures: Mutex<HashMap<String, u32>>,
    /// Polls so far of a JobManager that is up but not answering, per uid.
    not_ready: Mutex<HashMap<String, u32>>,
    /// Recent error exits of native TaskManager pods, per `namespace/name`
    /// of their FlinkDeployment (see
    /// [`crate::controller::pod_health::taskmanager_exit`]).
    taskmanager_exits: Mutex<HashMap<String, TaskManagerExits>>,
}

impl Context {
    pub fn new(
        client: Client,
        policy: Arc<PolicyStore>,
        metrics: Metrics,
        config: ControllerConfig,
    ) -> Result<Self, ReconcileError> {
        let dns = config
            .cluster_dns
            .as_ref()
            .map(crate::cluster_dns::ClusterDns::new);
        let guard = AddressGuard::new(config.jar_allow_private.clone());
        let mut jars = crate::cluster_dns::guarded_client_builder(dns.as_ref(), guard.clone())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .https_only(true);
        if let Some(pem) = &config.jar_ca {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ReconcileError::Invalid(format!("--jar-ca-file: {e}")))?
            {
                jars = jars.add_root_certificate(cert);
            }
        }
        let jars = jars
            .build()
            .map_err(|e| ReconcileError::Invalid(format!("jar download client: {e}")))?;
        Ok(Self {
            reporter: Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(config.identity.clone()),
            },
            client,
            policy,
            metrics,
            config,
            jars,
            jar_guard: guard,
            flink_http: crate::cluster_dns::client_builder(dns.as_ref())
                .connect_timeout(FLINK_CONNECT_TIMEOUT)
                .build()
                .map_err(|e| ReconcileError::Invalid(format!("Flink REST client: {e}")))?,
            applied: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            not_ready: Mutex::new(HashMap::new()),
            taskmanager_exits: Mutex::new(HashMap::new()),
        })
    }

    /// REST base URL of the FlinkDeployment `namespace/name`'s JobManager:
    /// the override if one is configured, else its `<name>-rest` Service.
    pub fn jobmanager_url(&self, namespace: &str, name: &str) -> String {
        let id = format!("{namespace}/{name}");
        self.config
            .jobmanagers
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.url.clone())
            .unwrap_or_else(|| format!("http://{name}-rest.{namespace}.svc:8081"))
    }

    /// A REST client for that JobManager (one pool per URL, kept).
    pub fn flink(&self, namespace: &str, name: &str) -> Result<FlinkRestClient, ReconcileError> {
        let url = self.jobmanager_url(namespace, name);
        // Running a jar executes its main() in the JobManager: allow time.
        let options = FlinkRestOptions {
            connect_timeout: FLINK_CONNECT_TIMEOUT,
            request_timeout: Duration::from_secs(60),
        };
        Ok(FlinkRestClient::with_client(
            &url,
            self.flink_http.clone(),
            &options,
        )?)
    }

    /// Whether `hash` is what was last applied for `uid`.
    pub fn already_applied(&self, uid: &str, hash: &str) -> bool {
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        applied.get(uid).is_some_and(|h| h == hash)
    }

    pub fn record_applied(&self, uid: &str, hash: Option<String>) {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        match hash {
            Some(h) => applied.insert(uid.to_owned(), h),
            None => applied.remove(uid),
        };
    }

    /// Downloads `uri` (https only), refusing bodies over the size limit.
    pub async fn fetch_jar(&self, uri: &str) -> Result<Vec<u8>, ReconcileError> {
        let fail = |detail: String| ReconcileError::Jar {
            uri: uri.to_owned(),
            detail,
        };
        // Names are checked by the client's resolver; an address written
        // in the URI never reaches it.
        if let Some(host) = reqwest::Url::parse(uri)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
            && let Some(refused) = self.jar_guard.refusal_of_host(&host)
        {
            return Err(fail(refused));
        }
        let response = self
            .jars
            .get(uri)
            .send()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        let limit = self.config.max_jar_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(fail(format!("larger than the {limit}-byte limit")));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(error_chain(&e)))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(fail(format!("larger than the {limit}-byte limit")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Publishes an Event on `obj`; failures are logged, never fatal.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish an Event");
        }
    }

    /// Next retry delay for `key` after a failure: 2 s doubling to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let secs = 2u64.saturating_pow((*n).min(9)).min(300);
        Duration::from_secs(secs)
    }

    /// Next poll of a JobManager that is up but not answering yet: 5 s,
    /// doubling to 60 s, so a cluster stuck there costs little.
    pub fn not_ready_delay(&self, key: &str) -> Duration {
        let mut m = self.not_ready.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.to_owned()).or_insert(0);
        let secs = (5u64 << (*n).min(4)).min(60);
        *n = n.saturating_add(1);
        Duration::from_secs(secs)
    }

    pub fn ready(&self, key: &str) {
        let mut m = self.not_ready.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(key);
    }

    pub fn succeeded(&self, key: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(key);
    }

    /// Remembers that a TaskManager pod of `namespace/name` ended with an
    /// error; whether this pod's exit is new.
    pub fn record_taskmanager_exit(&self, cluster: &str, pod: &str, why: String) -> bool {
        let mut m = self
            .taskmanager_exits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.entry(cluster.to_owned())
            .or_default()
            .record(Instant::now(), pod, why)
    }

    /// Whether the TaskManagers of `namespace/name` are crash-looping.
    pub fn taskmanager_crash_loop(&self, cluster: &str) -> Option<String> {
        let mut m = self
            .taskmanager_exits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let exits = m.get_mut(cluster)?;
        let found = exits.crash_loop(Instant::now());
        if exits.is_empty() {
            m.remove(cluster);
        }
        found
    }

    /// A new spec: earlier TaskManager exits say nothing about it.
    pub fn forget_taskmanager_exits(&self, cluster: &str) {
        let mut m = self
            .taskmanager_exits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.remove(cluster);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The error a reconcile failed with, through kube's finalizer wrapper.
pub fn flatten_finalizer_error(
    result: Result<Action, finalizer::Error<ReconcileError>>,
) -> Result<Action, ReconcileError> {
    result.map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(k) | finalizer::Error::RemoveFinalizer(k) => {
            ReconcileError::Kube(k)
        }
        other => ReconcileError::Invalid(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a…");
    }
}
