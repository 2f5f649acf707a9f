//! A fake Flink JobManager REST server for tests and benchmarks: N jobs × V
//! vertices × P subtasks, answering the endpoints the collector reads with
//! the response shapes of Flink 1.19/1.20 (string metric values, "NaN",
//! `{"errors": [...]}` on 404). Plain HTTP on 127.0.0.1, random port.
//!
//! Every request is counted, by kind, and the largest number of requests
//! being served at once is tracked; an artificial delay makes that number
//! meaningful when checking a client's concurrency bound.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One subtask of the fake cluster, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubtaskRef {
    pub job: usize,
    pub vertex: usize,
    pub subtask: usize,
}

/// Which address fields a subtask carries in `/jobs/:jid/vertices/:vid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressForm {
    /// Before 1.19: `host` only.
    Host,
    /// After `host` was removed: `endpoint` (host:port) only.
    #[default]
    Endpoint,
    /// 1.19 and 1.20: both.
    Both,
    Neither,
}

/// Where the job plan can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanForm {
    /// As real Flink: inside `/jobs/:jid` and at `/jobs/:jid/plan`.
    #[default]
    Embedded,
    /// Only at `/jobs/:jid/plan`.
    EndpointOnly,
    /// Nowhere: `/jobs/:jid/plan` answers 404.
    Missing,
}

/// The first endpoint at which a vanishing job answers 404; the ones after
/// it do too. The overview still lists the job as RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Job,
    Plan,
    Vertex,
    Metrics,
}

/// Requests served, by endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub total: usize,
    pub overview: usize,
    pub job: usize,
    pub plan: usize,
    pub vertex: usize,
    pub metrics: usize,
    pub other: usize,
}

type SubtaskFn<T> = Arc<dyn Fn(SubtaskRef) -> T + Send + Sync>;
type VertexNameFn = Arc<dyn Fn(usize, usize) -> String + Send + Sync>;

/// Builder and description of the fake cluster.
#[derive(Clone)]
pub struct FakeJobManager {
    jobs: usize,
    vertices: usize,
    subtasks: usize,
    address: AddressForm,
    plan: PlanForm,
    delay: Duration,
    taskmanager: SubtaskFn<Option<String>>,
    host: SubtaskFn<String>,
    metrics: SubtaskFn<Vec<(String, String)>>,
    status: SubtaskFn<String>,
    vertex_name: VertexNameFn,
    job_states: HashMap<usize, String>,
    vanishing: HashMap<usize, Stage>,
}

impl FakeJobManager {
    /// `jobs` RUNNING jobs, each a chain of `vertices` vertices (vertex 0 the
    /// source) of `subtasks` RUNNING subtasks. Subtask s runs on
    /// TaskManager `fake-taskmanager-1-{s % 4 + 1}` at host `10.0.0.{s % 4 + 1}`
    /// with rates in = out = 100 × (s + 1) and busy 500 ms/s.
    pub fn new(jobs: usize, vertices: usize, subtasks: usize) -> Self {
        Self {
            jobs,
            vertices,
            subtasks,
            address: AddressForm::default(),
            plan: PlanForm::default(),
            delay: Duration::ZERO,
            taskmanager: Arc::new(|s| Some(format!("fake-taskmanager-1-{}", s.subtask % 4 + 1))),
            host: Arc::new(|s| format!("10.0.0.{}", s.subtask % 4 + 1)),
            metrics: Arc::new(|s| {
                let rate = 100.0 * (s.subtask + 1) as f64;
                Self::rates(rate, rate, 500.0)
            }),
            status: Arc::new(|_| "RUNNING".to_owned()),
            vertex_name: Arc::new(default_vertex_name(vertices)),
            job_states: HashMap::new(),
            vanishing: HashMap::new(),
        }
    }

    /// The three collector metrics formatted as Flink does (`NaN` included).
    pub fn rates(records_in: f64, records_out: f64, busy_ms: f64) -> Vec<(String, String)> {
        vec![
            (
                "numRecordsInPerSecond".to_owned(),
                format!("{records_in:?}"),
            ),
            (
                "numRecordsOutPerSecond".to_owned(),
                format!("{records_out:?}"),
            ),
            ("busyTimeMsPerSecond".to_owned(), format!("{busy_ms:?}")),
        ]
    }

    pub fn address_form(mut self, form: AddressForm) -> Self {
        self.address = form;
        self
    }

    pub fn plan_form(mut self, form: PlanForm) -> Self {
        self.plan = form;
        self
    }

    /// Added before every answer.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The `taskmanager-id` of each subtask; None sends "(unassigned)".
    pub fn taskmanager(
        mut self,
        f: impl Fn(SubtaskRef) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.taskmanager = Arc::new(f);
        self
    }

    /// The host name of each subtask (`endpoint` adds a port).
    pub fn host(mut self, f: impl Fn(SubtaskRef) -> String + Send + Sync + 'static) -> Self {
        self.host = Arc::new(f);
        self
    }

    /// Metric (name, raw string value) pairs of each subtask; a name left
    /// out is absent from the answer, any string is sent as is.
    pub fn metrics(
        mut self,
        f: impl Fn(SubtaskRef) -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        self.metrics = Arc::new(f);
        self
    }

    /// The execution state of each subtask ("RUNNING", "SCHEDULED", ...).
    pub fn subtask_status(
        mut self,
        f: impl Fn(SubtaskRef) -> String + Send + Sync + 'static,
    ) -> Self {
        self.status = Arc::new(f);
        self
    }

    /// The name of vertex (job, vertex).
    pub fn vertex_name(
        mut self,
        f: impl Fn(usize, usize) -> String + Send + Sync + 'static,
    ) -> Self {
        self.vertex_name = Arc::new(f);
        self
    }

    /// A job state other than RUNNING ("FINISHED", "CANCELED", ...).
    pub fn job_state(mut self, job: usize, state: &str) -> Self {
        self.job_states.insert(job, state.to_owned());
        self
    }

    /// Listed as RUNNING, but 404 from `stage` on, as a job that ended and
    /// was cleaned up while a client walked the cluster.
    pub fn vanish(mut self, job: usize, stage: Stage) -> Self {
        self.vanishing.insert(job, stage);
        self
    }

    /// The 32-hex-digit job id of job `job`.
    pub fn job_id(job: usize) -> String {
        format!("{:032x}", (JOB_TAG << 96) | job as u128)
    }

    /// The 32-hex-digit vertex id of vertex `vertex` of job `job`.
    pub fn vertex_id(job: usize, vertex: usize) -> String {
        format!(
            "{:032x}",
            (VERTEX_TAG << 112) | ((job as u128) << 32) | vertex as u128
        )
    }

    /// Serves on 127.0.0.1 at a free port until the handle is shut down or
    /// dropped.
    pub async fn start(self) -> io::Result<(SocketAddr, FakeJobManagerHandle)> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
            - 60_000;
        let shared = Arc::new(Shared {
            fake: self,
            start_ms,
            counts: Default::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jobs/overview", get(overview))
            .route("/jobs/{jid}", get(job))
            .route("/jobs/{jid}/plan", get(plan))
            .route("/jobs/{jid}/vertices/{vid}", get(vertex))
            .route(
                "/jobs/{jid}/vertices/{vid}/subtasks/{idx}/metrics",
                get(subtask_metrics),
            )
            .fallback(|uri: Uri| async move { not_found(format!("Not found: {}", uri.path())) })
            .layer(middleware::from_fn_with_state(shared.clone(), track))
            .with_state(shared.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Ok((
            addr,
            FakeJobManagerHandle {
                addr,
                shared,
                shutdown,
                task: Some(task),
            },
        ))
    }
}

const JOB_TAG: u128 = 0xf11c_0000;
const VERTEX_TAG: u128 = 0xbe27;

fn default_vertex_name(vertices: usize) -> impl Fn(usize, usize) -> String + Send + Sync {
    move |_, v| match v {
        0 => "Source: events".to_owned(),
        v if v + 1 == vertices => "Sink: out".to_owned(),
        v => format!("Map {v}"),
    }
}

/// Stops the server when shut down or dropped; reads the counters.
pub struct FakeJobManagerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl FakeJobManagerHandle {
    /// `http://127.0.0.1:port`, the base URL for a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far, 404s included.
    pub fn requests(&self) -> usize {
        self.counts().total
    }

    pub fn counts(&self) -> RequestCounts {
        let c = &self.shared.counts;
        let get = |k: Kind| c[k as usize].load(Ordering::Relaxed);
        let mut counts = RequestCounts {
            total: 0,
            overview: get(Kind::Overview),
            job: get(Kind::Job),
            plan: get(Kind::Plan),
            vertex: get(Kind::Vertex),
            metrics: get(Kind::Metrics),
            other: get(Kind::Other),
        };
        counts.total = counts.overview
            + counts.job
            + counts.plan
            + counts.vertex
            + counts.metrics
            + counts.other;
        counts
    }

    /// The most requests that were being served at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::Relaxed)
    }

    pub fn reset_counters(&self) {
        for c in &self.shared.counts {
            c.store(0, Ordering::Relaxed);
        }
        self.shared.max_in_flight.store(0, Ordering::Relaxed);
    }

    /// Stops accepting, lets open requests finish (bounded by 5 s).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for FakeJobManagerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Overview,
    Job,
    Plan,
    Vertex,
    Metrics,
    Other,
}

struct Shared {
    fake: FakeJobManager,
    start_ms: i64,
    counts: [AtomicUsize; 6],
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

type AppState = State<Arc<Shared>>;

fn kind_of(path: &str) -> Kind {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["jobs", "overview"] => Kind::Overview,
        ["jobs", _] => Kind::Job,
        ["jobs", _, "plan"] => Kind::Plan,
        ["jobs", _, "vertices", _] => Kind::Vertex,
        ["jobs", _, "vertices", _, "subtasks", _, "metrics"] => Kind::Metrics,
        _ => Kind::Other,
    }
}

/// Decrements the in-flight gauge however the handler ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn track(State(shared): AppState, request: Request, next: Next) -> Response {
    shared.counts[kind_of(request.uri().path()) as usize].fetch_add(1, Ordering::Relaxed);
    let now = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::Relaxed);
    let _in_flight = InFlight(&shared.in_flight);
    if !shared.fake.delay.is_zero() {
        tokio::time::sleep(shared.fake.delay).await;
    }
    next.run(request).await
}

/// Flink's 404 body; small, so handlers can return it through `?`.
struct NotFound(String);

impl IntoResponse for NotFound {
    fn into_response(self) -> Response {
        (StatusCode::NOT_FOUND, Json(json!({ "errors": [self.0] }))).into_response()
    }
}

fn not_found(message: String) -> NotFound {
    NotFound(message)
}

impl Shared {
    fn job_state(&self, job: usize) -> &str {
        self.fake
            .job_states
            .get(&job)
            .map(String::as_str)
            .unwrap_or("RUNNING")
    }

    /// The job index behind `jid`, or Flink's 404 when unknown or vanished
    /// at `stage`.
    fn job_at(&self, jid: &str, stage: Stage) -> Result<usize, NotFound> {
        let gone = || {
            not_found(format!(
                "org.apache.flink.runtime.rest.NotFoundException: Job {jid} not found"
            ))
        };
        let id = parse_id(jid).ok_or_else(gone)?;
        let job = (id >> 96 == JOB_TAG)
            .then(|| (id & u128::from(u64::MAX)) as usize)
            .filter(|j| *j < self.fake.jobs)
            .ok_or_else(gone)?;
        match self.fake.vanishing.get(&job) {
            Some(at) if *at <= stage => Err(gone()),
            _ => Ok(job),
        }
    }

    fn vertex_at(&self, job: usize, vid: &str) -> Result<usize, NotFound> {
        let missing = || not_found(format!("JobVertex {vid} not found"));
        let id = parse_id(vid).ok_or_else(missing)?;
        let ok = id >> 112 == VERTEX_TAG && ((id >> 32) & u128::from(u64::MAX)) as usize == job;
        let vertex = (id & 0xffff_ffff) as usize;
        if ok && vertex < self.fake.vertices {
            Ok(vertex)
        } else {
            Err(missing())
        }
    }

    fn status(&self, s: SubtaskRef) -> String {
        (self.fake.status)(s)
    }

    fn running_count(&self, job: usize) -> usize {
        (0..self.fake.vertices)
            .flat_map(|vertex| (0..self.fake.subtasks).map(move |subtask| (vertex, subtask)))
            .filter(|&(vertex, subtask)| {
                self.status(SubtaskRef {
                    job,
                    vertex,
                    subtask,
                }) == "RUNNING"
            })
            .count()
    }

    fn plan_json(&self, job: usize) -> Value {
        let nodes: Vec<Value> = (0..self.fake.vertices)
            .map(|v| {
                let mut node = json!({
                    "id": FakeJobManager::vertex_id(job, v),
                    "parallelism": self.fake.subtasks,
                    "operator": "",
                    "operator_strategy": "",
                    "description": (self.fake.vertex_name)(job, v),
                    "optimizer_properties": {},
                });
                // As Flink's JsonPlanGenerator: no "inputs" key for a source.
                if v > 0 {
                    node["inputs"] = json!([{
                        "num": 0,
                        "id": FakeJobManager::vertex_id(job, v - 1),
                        "ship_strategy": "REBALANCE",
                        "exchange": "pipelined_bounded",
                    }]);
                }
                node
            })
            .collect();
        json!({
            "jid": FakeJobManager::job_id(job),
            "name": format!("fake-job-{job}"),
            "type": "STREAMING",
            "nodes": nodes,
        })
    }
}

fn parse_id(id: &str) -> Option<u128> {
    (id.len() == 32)
        .then(|| u128::from_str_radix(id, 16).ok())
        .flatten()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn overview(State(shared): AppState) -> Response {
    let now = now_ms();
    let jobs: Vec<Value> = (0..shared.fake.jobs)
        .map(|j| {
            let total = shared.fake.vertices * shared.fake.subtasks;
            let running = shared.running_count(j);
            json!({
                "jid": FakeJobManager::job_id(j),
                "name": format!("fake-job-{j}"),
                "start-time": shared.start_ms,
                "end-time": -1,
                "duration": now - shared.start_ms,
                "state": shared.job_state(j),
                "last-modification": shared.start_ms,
                "tasks": {
                    "running": running, "canceling": 0, "canceled": 0,
                    "total": total, "created": 0, "scheduled": total - running,
                    "deploying": 0, "reconciling": 0, "finished": 0,
                    "initializing": 0, "failed": 0,
                },
            })
        })
        .collect();
    Json(json!({ "jobs": jobs })).into_response()
}

async fn job(State(shared): AppState, Path(jid): Path<String>) -> Result<Response, NotFound> {
    let job = shared.job_at(&jid, Stage::Job)?;
    let fake = &shared.fake;
    let now = now_ms();
    let vertices: Vec<Value> = (0..fake.vertices)
        .map(|v| {
            let running = (0..fake.subtasks)
                .filter(|&subtask| {
                    shared.status(SubtaskRef {
                        job,
                        vertex: v,
                        subtask,
                    }) == "RUNNING"
                })
                .count();
            json!({
                "id": FakeJobManager::vertex_id(job, v),
                "slotSharingGroupId": "a4d3b2c1a4d3b2c1a4d3b2c1a4d3b2c1",
                "name": (fake.vertex_name)(job, v),
                "maxParallelism": 128,
                "parallelism": fake.subtasks,
                "status": if running > 0 { "RUNNING" } else { "SCHEDULED" },
                "start-time": shared.start_ms,
                "end-time": -1,
                "duration": now - shared.start_ms,
                "tasks": { "RUNNING": running, "SCHEDULED": fake.subtasks - running },
                "metrics": {
                    "read-bytes": 0, "read-bytes-complete": true,
                    "write-bytes": 0, "write-bytes-complete": true,
                    "read-records": 0, "read-records-complete": true,
                    "write-records": 0, "write-records-complete": true,
                    "accumulated-backpressured-time": 0,
                    "accumulated-idle-time": 0,
                    "accumulated-busy-time": "NaN",
                },
            })
        })
        .collect();
    let mut body = json!({
        "jid": jid,
        "name": format!("fake-job-{job}"),
        "isStoppable": false,
        "state": shared.job_state(job),
        "job-type": "STREAMING",
        "start-time": shared.start_ms,
        "end-time": -1,
        "duration": now - shared.start_ms,
        "maxParallelism": -1,
        "now": now,
        "timestamps": { "RUNNING": shared.start_ms, "CREATED": shared.start_ms },
        "vertices": vertices,
        "status-counts": { "RUNNING": fake.vertices },
    });
    if fake.plan == PlanForm::Embedded {
        body["plan"] = shared.plan_json(job);
    }
    Ok(Json(body).into_response())
}

async fn plan(State(shared): AppState, Path(jid): Path<String>) -> Result<Response, NotFound> {
    let job = shared.job_at(&jid, Stage::Plan)?;
    if shared.fake.plan == PlanForm::Missing {
        return Err(not_found(format!("Not found: /jobs/{jid}/plan")));
    }
    Ok(Json(json!({ "plan": shared.plan_json(job) })).into_response())
}

async fn vertex(
    State(shared): AppState,
    Path((jid, vid)): Path<(String, String)>,
) -> Result<Response, NotFound> {
    let job = shared.job_at(&jid, Stage::Vertex)?;
    let v = shared.vertex_at(job, &vid)?;
    let fake = &shared.fake;
    let now = now_ms();
    let subtasks: Vec<Value> = (0..fake.subtasks)
        .map(|subtask| {
            let s = SubtaskRef {
                job,
                vertex: v,
                subtask,
            };
            let status = shared.status(s);
            // Flink's placeholder until a subtask is deployed somewhere.
            let placed = !matches!(status.as_str(), "CREATED" | "SCHEDULED");
            let unassigned = || "(unassigned)".to_owned();
            let host = if placed { (fake.host)(s) } else { unassigned() };
            let endpoint = if placed {
                format!("{host}:{}", 35000 + subtask % 4)
            } else {
                unassigned()
            };
            let tm = (fake.taskmanager)(s)
                .filter(|_| placed)
                .unwrap_or_else(unassigned);
            let mut entry = json!({
                "subtask": subtask,
                "status": status,
                "attempt": 0,
                "start-time": shared.start_ms,
                "end-time": -1,
                "duration": now - shared.start_ms,
                "metrics": {
                    "read-bytes": 0, "read-bytes-complete": true,
                    "write-bytes": 0, "write-bytes-complete": true,
                    "read-records": 0, "read-records-complete": true,
                    "write-records": 0, "write-records-complete": true,
                    "accumulated-backpressured-time": 0,
                    "accumulated-idle-time": 0,
                    "accumulated-busy-time": "NaN",
                },
                "taskmanager-id": tm,
                "status-duration": { "RUNNING": now - shared.start_ms },
            });
            if matches!(fake.address, AddressForm::Host | AddressForm::Both) {
                entry["host"] = json!(host);
            }
            if matches!(fake.address, AddressForm::Endpoint | AddressForm::Both) {
                entry["endpoint"] = json!(endpoint);
            }
            entry
        })
        .collect();
    Ok(Json(json!({
        "id": vid,
        "name": (fake.vertex_name)(job, v),
        "maxParallelism": 128,
        "parallelism": fake.subtasks,
        "now": now,
        "subtasks": subtasks,
    }))
    .into_response())
}

async fn subtask_metrics(
    State(shared): AppState,
    Path((jid, vid, idx)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, NotFound> {
    let job = shared.job_at(&jid, Stage::Metrics)?;
    let vertex = shared.vertex_at(job, &vid)?;
    let subtask = match idx.parse::<usize>() {
        Ok(i) if i < shared.fake.subtasks => i,
        _ => return Err(not_found(format!("Subtask {idx} not found"))),
    };
    let available = (shared.fake.metrics)(SubtaskRef {
        job,
        vertex,
        subtask,
    });
    let wanted: Option<Vec<String>> = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "get")
            .map(|(_, v)| v.split(',').map(str::to_owned).collect())
    });
    // Without `get`, Flink lists the metric names only.
    let body: Vec<Value> = match wanted {
        None => available
            .iter()
            .map(|(id, _)| json!({ "id": id }))
            .collect(),
        Some(wanted) => available
            .iter()
            .filter(|(id, _)| wanted.contains(id))
            .map(|(id, value)| json!({ "id": id, "value": value }))
            .collect(),
    };
    Ok(Json(body).into_response())
}
