//! The HTTPS server: routes, request handling with metrics and a tracing
//! span per review, and the TLS accept loop with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::decide::{self, Endpoint};
use super::review::{self, BadReview, MAX_BODY_BYTES};
use crate::policy::PolicyStore;
use crate::telemetry::{AdmissionLabels, EndpointLabels, Metrics};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub policy: Arc<PolicyStore>,
    pub metrics: Metrics,
    pub registry: Arc<Registry>,
    /// Set once the listener is bound.
    pub listening: Arc<AtomicBool>,
    /// Per-node scores for the scheduler extender.
    pub scores: Arc<crate::scheduler::scores::ScoreBoard>,
    /// Events on pods whose nodes the extender filtered out.
    pub filter_events: crate::scheduler::filter_events::FilterEvents,
    /// The Flink resources in the cluster, for the rules that need another one.
    pub cluster: Arc<dyn crate::admission::cluster_view::ClusterView>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/scheduler/filter",
            post(crate::scheduler::extender::filter),
        )
        .route(
            "/scheduler/prioritize",
            post(crate::scheduler::extender::prioritize),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn validate(State(s): State<AppState>, body: Body) -> Response {
    admit(Endpoint::Validate, s, body).await
}

async fn mutate(State(s): State<AppState>, body: Body) -> Response {
    admit(Endpoint::Mutate, s, body).await
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "code": status.as_u16() });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn read_body(body: Body) -> Result<bytes::Bytes, BadReview> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BadReview::TooLarge),
        Err(e) => Err(BadReview::Unreadable(e.to_string())),
    }
}

async fn admit(endpoint: Endpoint, s: AppState, body: Body) -> Response {
    let started = Instant::now();
    let ep = EndpointLabels {
        endpoint: endpoint.as_str(),
    };
    let bad = |e: BadReview| {
        s.metrics.admission_bad_requests.get_or_create(&ep).inc();
        tracing::warn!(endpoint = endpoint.as_str(), error = %e, "bad admission request");
        json_error(StatusCode::BAD_REQUEST, &e.to_string())
    };
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return bad(e),
    };
    let req = match review::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let Some(policy) = s.policy.current() else {
        // Not ready: kube-apiserver applies the webhook's failurePolicy.
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "no policy loaded yet");
    };
    let span = tracing::info_span!(
        "admission",
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = %req.name,
        operation = ?req.operation,
        endpoint = endpoint.as_str(),
        allowed = tracing::field::Empty,
        patched = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    let _enter = span.enter();
    let decision = decide::decide(endpoint, &policy, &req, s.cluster.as_ref());
    let allowed = decision.response.allowed;
    let body = review::encode(decision.response);
    let elapsed = started.elapsed();
    span.record("allowed", allowed);
    span.record("patched", decision.patched);
    span.record("duration_us", elapsed.as_micros() as u64);
    if !allowed {
        tracing::info!(violations = decision.violations, "denied");
    } else if decision.violations > 0 {
        tracing::info!(
            violations = decision.violations,
            mode = decision.mode.as_str(),
            "allowed despite violations"
        );
    } else {
        tracing::debug!("allowed");
    }
    if decision.violations > 0 {
        s.metrics
            .admission_violations
            .get_or_create(&crate::telemetry::ViolationLabels {
                kind: decision.target.as_str(),
                mode: decision.mode.as_str(),
            })
            .inc_by(decision.violations as u64);
    }
    s.metrics
        .admission_requests
        .get_or_create(&AdmissionLabels {
            endpoint: endpoint.as_str(),
            kind: decision.target.as_str(),
            operation: operation_label(&req.operation),
            allowed: if allowed { "true" } else { "false" },
            mode: decision.mode.as_str(),
        })
        .inc();
    s.metrics
        .admission_duration
        .get_or_create(&ep)
        .observe(elapsed.as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn operation_label(op: &kube::core::admission::Operation) -> &'static str {
    use kube::core::admission::Operation::*;
    match op {
        Create => "CREATE",
        Update => "UPDATE",
        Delete => "DELETE",
        Connect => "CONNECT",
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    let listening = s.listening.load(Ordering::Acquire);
    let policy = s.policy.is_loaded();
    if listening && policy {
        "ok".into_response()
    } else {
        let why = if !listening {
            "listener not bound"
        } else {
            "no policy in force yet"
        };
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &s.registry) {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding metrics failed: {e}"),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "no such endpoint; try /validate, /mutate, /scheduler/filter, /scheduler/prioritize, /healthz, /readyz or /metrics",
    )
}

/// Accepts TLS connections until `stop`, then stops accepting and waits up to
/// `drain` for in-flight requests to finish.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    stop: CancellationToken,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut app = app.clone();
                    async move { app.call(req.map(Body::new)).await }
                });
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout; closing remaining connections"),
    }
}
