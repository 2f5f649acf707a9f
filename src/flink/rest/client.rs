//! The client itself: construction, requests with Flink's error messages,
//! and the read calls; the wire types are read leniently, on purpose.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

/// The metrics asked of every subtask, by their Flink names.
pub const METRIC_RECORDS_IN: &str = "numRecordsInPerSecond";
pub const METRIC_RECORDS_OUT: &str = "numRecordsOutPerSecond";
pub const METRIC_BUSY_TIME: &str = "busyTimeMsPerSecond";

/// Flink's placeholder for a subtask not deployed anywhere yet.
const UNASSIGNED: &str = "(unassigned)";

#[derive(Debug, Error)]
pub enum FlinkRestError {
    #[error("invalid JobManager base URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: Url, detail: String },
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: Url, timeout: Duration },
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        url: Url,
        status: u16,
        message: String,
    },
    #[error("bad JSON from {url} at {path}: {source}")]
    Json {
        url: Url,
        path: String,
        source: serde_json::Error,
    },
    #[error("request to {url} failed: {detail}")]
    Transport { url: Url, detail: String },
}

impl FlinkRestError {
    /// The URL the failed request went to, when there was one.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Self::Connect { url, .. }
            | Self::Timeout { url, .. }
            | Self::Status { url, .. }
            | Self::Json { url, .. }
            | Self::Transport { url, .. } => Some(url),
            Self::InvalidUrl { .. } | Self::Client(_) => None,
        }
    }

    /// Flink answers 404 for a job it no longer knows.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }
}

/// Timeouts for the client built by [`FlinkRestClient::new`].
#[derive(Debug, Clone)]
pub struct FlinkRestOptions {
    pub connect_timeout: Duration,
    /// Whole request, body included.
    pub request_timeout: Duration,
}

impl Default for FlinkRestOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// One entry of `/jobs/overview`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct JobSummary {
    pub jid: String,
    #[serde(default)]
    pub name: String,
    pub state: String,
    #[serde(default, rename = "start-time")]
    pub start_time: Option<i64>,
}

/// `/jobs/:jid`, reduced to what the collector uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobDetails {
    pub jid: String,
    pub name: String,
    pub state: String,
    pub vertices: Vec<JobVertex>,
    /// The plan Flink embeds in the job details, when it does and it parses.
    pub plan: Option<JobPlan>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct JobVertex {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub parallelism: u32,
    #[serde(default)]
    pub status: String,
}

/// The job graph: which vertex reads from which.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct JobPlan {
    #[serde(default)]
    pub nodes: Vec<PlanNode>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlanNode {
    pub id: String,
    /// Flink leaves `inputs` out entirely for a source.
    #[serde(default)]
    pub inputs: Vec<PlanInput>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlanInput {
    pub id: String,
}

impl JobPlan {
    /// Whether the vertex reads from another; None if the plan lacks it.
    pub fn has_inputs(&self, vertex_id: &str) -> Option<bool> {
        self.nodes
            .iter()
            .find(|n| n.id == vertex_id)
            .map(|n| !n.inputs.is_empty())
    }
}

/// `/jobs/:jid/vertices/:vid`, reduced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VertexDetails {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    pub subtasks: Vec<SubtaskDetails>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubtaskDetails {
    pub index: u32,
    pub status: String,
    pub attempt: u32,
    pub taskmanager_id: Option<String>,
    /// `host` when Flink sends it, else the host part of `endpoint`.
    pub host: Option<String>,
    /// `host:port`, as sent from Flink 1.19 on.
    pub endpoint: Option<String>,
}

/// Rates of one subtask; None when absent, NaN, negative or not a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SubtaskMetrics {
    pub records_in_per_second: Option<f64>,
    pub records_out_per_second: Option<f64>,
    pub busy_time_ms_per_second: Option<f64>,
}

/// Client for one JobManager's REST endpoint.
#[derive(Debug, Clone)]
pub struct FlinkRestClient {
    base: Url,
    pub(crate) http: reqwest::Client,
    request_timeout: Duration,
}

impl FlinkRestClient {
    /// A client with its own connection pool and the given timeouts.
    pub fn new(base_url: &str, options: &FlinkRestOptions) -> Result<Self, FlinkRestError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| FlinkRestError::Client(error_chain(&e)))?;
        Self::with_client(base_url, http, options)
    }

    /// Shares an existing `reqwest::Client` (its connect timeout applies);
    /// `options.request_timeout` is set on every request.
    pub fn with_client(
        base_url: &str,
        http: reqwest::Client,
        options: &FlinkRestOptions,
    ) -> Result<Self, FlinkRestError> {
        let invalid = |reason: &str| FlinkRestError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("must not carry a query or fragment"));
        }
        Ok(Self {
            base,
            http,
            request_timeout: options.request_timeout,
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Jobs in state RUNNING.
    pub async fn running_jobs(&self) -> Result<Vec<JobSummary>, FlinkRestError> {
        let overview: WireOverview = self.get_json(self.url(&["jobs", "overview"])).await?;
        Ok(running_only(overview))
    }

    pub async fn job(&self, jid: &str) -> Result<JobDetails, FlinkRestError> {
        let wire: WireJob = self.get_json(self.url(&["jobs", jid])).await?;
        Ok(wire.into())
    }

    /// Completed checkpoints of a job (`/jobs/:jid/checkpoints` counts),
    /// since it started on this JobManager.
    pub async fn completed_checkpoints(&self, jid: &str) -> Result<u64, FlinkRestError> {
        let wire: WireCheckpoints = self
            .get_json(self.url(&["jobs", jid, "checkpoints"]))
            .await?;
        Ok(wire.counts.completed)
    }

    /// `/jobs/:jid/plan`; only needed when the job details carry no plan.
    pub async fn job_plan(&self, jid: &str) -> Result<Option<JobPlan>, FlinkRestError> {
        let wire: WirePlanResponse = self.get_json(self.url(&["jobs", jid, "plan"])).await?;
        Ok(wire.plan.and_then(parse_plan))
    }

    pub async fn vertex(&self, jid: &str, vid: &str) -> Result<VertexDetails, FlinkRestError> {
        let wire: WireVertex = self
            .get_json(self.url(&["jobs", jid, "vertices", vid]))
            .await?;
        Ok(wire.into())
    }

    pub async fn subtask_metrics(
        &self,
        jid: &str,
        vid: &str,
        index: u32,
    ) -> Result<SubtaskMetrics, FlinkRestError> {
        let wire: Vec<WireMetric> = self.get_json(self.metrics_url(jid, vid, index)).await?;
        Ok(metrics_from(&wire))
    }

    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // with_client checked the base can carry a path, so this is Ok.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(super) fn metrics_url(&self, jid: &str, vid: &str, index: u32) -> Url {
        let index = index.to_string();
        let mut url = self.url(&["jobs", jid, "vertices", vid, "subtasks", &index, "metrics"]);
        url.set_query(Some(&format!(
            "get={METRIC_RECORDS_IN},{METRIC_RECORDS_OUT},{METRIC_BUSY_TIME}"
        )));
        url
    }

    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<T, FlinkRestError> {
        let request = self.http.get(url.clone());
        self.send_json(request, url).await
    }

    /// Sends `request` (to `url`) with the request timeout and parses a
    /// JSON answer; non-2xx answers become [`FlinkRestError::Status`] with
    /// Flink's own message.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: Url,
    ) -> Result<T, FlinkRestError> {
        let transport = |e: reqwest::Error, url: &Url| {
            let (timed_out, connect) = (e.is_timeout(), e.is_connect());
            // The URL goes into our own message, once.
            let detail = error_chain(&e.without_url());
            if timed_out {
                FlinkRestError::Timeout {
                    url: url.clone(),
                    timeout: self.request_timeout,
                }
            } else if connect {
                FlinkRestError::Connect {
                    url: url.clone(),
                    detail,
                }
            } else {
                FlinkRestError::Transport {
                    url: url.clone(),
                    detail,
                }
            }
        };
        let response = request
            .timeout(self.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport(e, &url))?;
        let status = response.status();
        let peer = response.remote_addr();
        let body = response.bytes().await.map_err(|e| transport(e, &url))?;
        if !status.is_success() {
            // Flink always says why; an empty answer came from something
            // else on the way (its address says what).
            let message = match (body.is_empty(), peer) {
                (true, Some(peer)) => format!("an empty answer from {peer}, not Flink's"),
                _ => flink_error_message(&body),
            };
            return Err(FlinkRestError::Status {
                url,
                status: status.as_u16(),
                message,
            });
        }
        let bad_json = |path: String, source| FlinkRestError::Json {
            url: url.clone(),
            path,
            source,
        };
        let mut de = serde_json::Deserializer::from_slice(&body);
        let value = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| bad_json(e.path().to_string(), e.into_inner()))?;
        de.end().map_err(|e| bad_json("(end)".to_owned(), e))?;
        Ok(value)
    }
}

pub(super) fn running_only(overview: WireOverview) -> Vec<JobSummary> {
    overview
        .jobs
        .into_iter()
        .filter(|j| j.state == "RUNNING")
        .collect()
}

pub(super) fn metrics_from(wire: &[WireMetric]) -> SubtaskMetrics {
    let mut m = SubtaskMetrics::default();
    for metric in wire {
        let value = metric.value.as_ref().and_then(metric_value);
        match metric.id.as_str() {
            METRIC_RECORDS_IN => m.records_in_per_second = value,
            METRIC_RECORDS_OUT => m.records_out_per_second = value,
            METRIC_BUSY_TIME => m.busy_time_ms_per_second = value,
            _ => {}
        }
    }
    m
}

/// Flink sends metric values as strings ("12.3", "NaN"); numbers are taken
/// too. Only finite, non-negative rates are meaningful.
fn metric_value(value: &serde_json::Value) -> Option<f64> {
    let v = match value {
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Host part of `host:port`, `[v6]:port`, or a bare host.
fn host_of_endpoint(endpoint: &str) -> Option<String> {
    let host = match endpoint.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => endpoint,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    known(host)
}

/// Empty and "(unassigned)" mean Flink does not know yet.
fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != UNASSIGNED).then(|| s.to_owned())
}

pub(super) fn parse_plan(value: serde_json::Value) -> Option<JobPlan> {
    serde_json::from_value::<JobPlan>(value)
        .ok()
        .filter(|p| !p.nodes.is_empty())
}

/// Flink error bodies are `{"errors": ["..."]}`; keep them short in messages.
pub(super) fn flink_error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let text = match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    // Flink puts whole Java stack traces in there.
    let first_line = text.lines().next().unwrap_or_default();
    let mut short: String = first_line.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// reqwest hides the useful part ("Connection refused") in the source chain.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let s = inner.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = inner.source();
    }
    out
}

// Wire shapes: only the fields used, everything else ignored.

#[derive(Deserialize)]
struct WireCheckpoints {
    #[serde(default)]
    counts: WireCheckpointCounts,
}

#[derive(Deserialize, Default)]
struct WireCheckpointCounts {
    #[serde(default)]
    completed: u64,
}

#[derive(Deserialize)]
pub(super) struct WireOverview {
    #[serde(default)]
    jobs: Vec<JobSummary>,
}

#[derive(Deserialize)]
pub(super) struct WireJob {
    jid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    vertices: Vec<JobVertex>,
    /// Kept raw so an unexpected plan shape only costs the plan.
    #[serde(default)]
    plan: Option<serde_json::Value>,
}

impl From<WireJob> for JobDetails {
    fn from(w: WireJob) -> Self {
        Self {
            jid: w.jid,
            name: w.name,
            state: w.state,
            vertices: w.vertices,
            plan: w.plan.and_then(parse_plan),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WirePlanResponse {
    #[serde(default)]
    pub(super) plan: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct WireVertex {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    parallelism: u32,
    #[serde(default)]
    subtasks: Vec<WireSubtask>,
}

impl From<WireVertex> for VertexDetails {
    fn from(w: WireVertex) -> Self {
        Self {
            id: w.id,
            name: w.name,
            parallelism: w.parallelism,
            subtasks: w.subtasks.into_iter().map(SubtaskDetails::from).collect(),
        }
    }
}

#[derive(Deserialize)]
struct WireSubtask {
    subtask: u32,
    #[serde(default)]
    status: String,
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default, rename = "taskmanager-id")]
    taskmanager_id: Option<String>,
}

impl From<WireSubtask> for SubtaskDetails {
    fn from(w: WireSubtask) -> Self {
        let endpoint = w.endpoint.as_deref().and_then(known);
        let host = w
            .host
            .as_deref()
            .and_then(known)
            .or_else(|| endpoint.as_deref().and_then(host_of_endpoint));
        Self {
            index: w.subtask,
            status: w.status,
            attempt: w.attempt,
            taskmanager_id: w.taskmanager_id.as_deref().and_then(known),
            host,
            endpoint,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireMetric {
    id: String,
    #[serde(default)]
    value: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metric_values_keep_only_finite_non_negative_numbers() {
        assert_eq!(metric_value(&json!("12.5")), Some(12.5));
        assert_eq!(metric_value(&json!(" 0 ")), Some(0.0));
        assert_eq!(metric_value(&json!(3)), Some(3.0));
        for bad in [
            json!("NaN"),
            json!("Infinity"),
            json!("-1"),
            json!("abc"),
            json!(""),
            json!(null),
            json!(true),
        ] {
            assert_eq!(metric_value(&bad), None, "{bad}");
        }
    }

    #[test]
    fn endpoint_host_forms() {
        assert_eq!(host_of_endpoint("tm-1:6121").as_deref(), Some("tm-1"));
        assert_eq!(host_of_endpoint("10.0.0.7").as_deref(), Some("10.0.0.7"));
        assert_eq!(
            host_of_endpoint("[fe80::1]:6121").as_deref(),
            Some("fe80::1")
        );
        assert_eq!(host_of_endpoint("(unassigned)"), None);
        assert_eq!(host_of_endpoint(":6121"), None);
    }

    #[test]
    fn subtask_address_forms() {
        let parse = |v: serde_json::Value| {
            SubtaskDetails::from(serde_json::from_value::<WireSubtask>(v).expect("parses"))
        };
        let both =
            parse(json!({"subtask": 1, "status": "RUNNING", "host": "a", "endpoint": "b:1"}));
        assert_eq!(
            (both.host.as_deref(), both.endpoint.as_deref()),
            (Some("a"), Some("b:1"))
        );
        let endpoint = parse(json!({"subtask": 1, "endpoint": "b:1"}));
        assert_eq!(endpoint.host.as_deref(), Some("b"));
        let neither = parse(json!({"subtask": 1, "taskmanager-id": "(unassigned)"}));
        assert_eq!(
            (neither.host, neither.endpoint, neither.taskmanager_id),
            (None, None, None)
        );
    }

    #[test]
    fn error_bodies_are_shortened() {
        let body = br#"{"errors":["org.apache.flink.runtime.rest.NotFoundException: Job x not found\n\tat a.b.C"]}"#;
        assert_eq!(
            flink_error_message(body),
            "org.apache.flink.runtime.rest.NotFoundException: Job x not found…"
        );
    }

    #[test]
    fn base_url_with_path_prefix_is_kept() {
        let c = FlinkRestClient::new("http://jm:8081/proxy/", &FlinkRestOptions::default())
            .expect("valid");
        assert_eq!(
            c.url(&["jobs", "overview"]).as_str(),
            "http://jm:8081/proxy/jobs/overview"
        );
        assert!(FlinkRestClient::new("jm:8081", &FlinkRestOptions::default()).is_err());
    }
}
