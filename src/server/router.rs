//! The process-wide router: admission and extender routes beside health,
//! readiness and metrics. It lives here, not in `http`, because it names
//! both handler modules; they import `http`, never this.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::admission::handler::{self, AdmissionState};
use crate::http::{HttpError, VerifiedClient};
use crate::scheduler::extender::{self, ExtenderState};

/// Why the process is not ready, beyond the policy.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the listener is bound.
    pub listening: AtomicBool,
    /// Set when a background task ended unexpectedly; the process then
    /// shuts down, and must not take traffic meanwhile.
    pub failed: AtomicBool,
}

/// Shared by all handlers; each takes the part it needs.
pub struct AppState {
    pub admission: AdmissionState,
    pub extender: ExtenderState,
    pub registry: Arc<Registry>,
    pub health: Arc<Health>,
}

/// The router's state: [`AppState`], for the life of the process.
///
/// axum clones the router's state for every request, and a handler's
/// `State` part once more. Cloning an `Arc` is an atomic add on a counter
/// that every worker thread touches; each one costs a cache line moved
/// between cores, and the dozen per review cost more than the review's
/// rules. A `&'static` is copied instead, so the state is leaked once per
/// router: one per process in `flinkgate serve`, whose handlers live as long
/// as it does; nothing in it needs dropping to shut down (the tasks behind
/// it stop on their cancellation tokens).
#[derive(Clone, Copy)]
struct Shared(&'static AppState);

impl FromRef<Shared> for &'static AdmissionState {
    fn from_ref(s: &Shared) -> Self {
        &s.0.admission
    }
}

impl FromRef<Shared> for &'static ExtenderState {
    fn from_ref(s: &Shared) -> Self {
        &s.0.extender
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(handler::validate))
        .route("/mutate", post(handler::mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(
            Router::new()
                .route("/scheduler/filter", post(extender::filter))
                .route("/scheduler/prioritize", post(extender::prioritize))
                .route_layer(GlobalConcurrencyLimitLayer::new(
                    state.extender.max_concurrent.max(1),
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.extender.require_client_certificate,
                    client_certificate_gate,
                )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Shared(Box::leak(Box::new(state))))
}

async fn readyz(State(Shared(s)): State<Shared>) -> Response {
    let why = if s.health.failed.load(Ordering::Acquire) {
        "a background task failed; shutting down"
    } else if !s.health.listening.load(Ordering::Acquire) {
        "listener not bound"
    } else if !s.admission.policy.is_loaded() {
        "no policy in force yet"
    } else {
        return "ok".into_response();
    };
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

async fn metrics(State(Shared(s)): State<Shared>) -> Response {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &s.registry) {
        return HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}"),
        )
        .into_response();
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

async fn method_not_allowed(method: axum::http::Method) -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed here: POST to /validate, /mutate and /scheduler/*, GET the rest"
        ),
    )
}

/// With `--extender-client-ca`, only a client whose certificate that CA
/// verified reaches the extender (checked before the concurrency limit, so
/// strangers cannot take its slots).
async fn client_certificate_gate(
    State(required): State<bool>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if required && request.extensions().get::<VerifiedClient>().is_none() {
        return HttpError::new(
            StatusCode::FORBIDDEN,
            "the scheduler extender requires a client certificate signed by --extender-client-ca",
        )
        .into_response();
    }
    next.run(request).await
}

async fn not_found() -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; try /validate, /mutate, /scheduler/filter, /scheduler/prioritize, /healthz, /readyz or /metrics",
    )
}
