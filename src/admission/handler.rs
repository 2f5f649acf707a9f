//! The `/validate` and `/mutate` handlers: read and parse the review, decide,
//! and answer, with metrics, and a log line per denial (every review at
//! debug level).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::cluster_view::ClusterView;
use super::decide::{self, Endpoint};
use super::review::{self, MAX_BODY_BYTES};
use crate::http::{BodyBudget, HttpError, read_body};
use crate::policy::PolicyStore;
use crate::telemetry::{AdmissionLabels, EndpointLabels, Metrics};
use prometheus_client::metrics::counter::Counter;

/// What the admission handlers need.
pub struct AdmissionState {
    pub policy: Arc<PolicyStore>,
    pub metrics: Metrics,
    /// The Flink resources in the cluster, for the rules that need another one.
    pub cluster: Arc<dyn ClusterView>,
    /// Memory for request bodies, shared with the extender.
    pub bodies: Arc<BodyBudget>,
}

pub async fn validate(State(s): State<&'static AdmissionState>, body: Body) -> Response {
    admit(Endpoint::Validate, s, body).await
}

pub async fn mutate(State(s): State<&'static AdmissionState>, body: Body) -> Response {
    admit(Endpoint::Mutate, s, body).await
}

async fn admit(endpoint: Endpoint, s: &AdmissionState, body: Body) -> Response {
    let started = Instant::now();
    let ep = EndpointLabels {
        endpoint: endpoint.as_str(),
    };
    let bad = |e: HttpError| {
        s.metrics.admission_bad_requests.get_or_create(&ep).inc();
        tracing::warn!(endpoint = endpoint.as_str(), error = %e.message, "bad admission request");
        e.into_response()
    };
    let bytes = match read_body(body, MAX_BODY_BYTES, &s.bodies).await {
        Ok(b) => b,
        Err(e) => return bad(e.into()),
    };
    let req = match review::parse_typed(&bytes) {
        Ok(r) => r,
        Err(e) => return bad(HttpError::bad_request(e.to_string())),
    };
    let policy = s.policy.borrow();
    let Some(policy) = policy.as_deref() else {
        // Not ready: kube-apiserver applies the webhook's failurePolicy.
        return HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "no policy loaded yet")
            .into_response();
    };
    // The review's identity goes on the events themselves, not on a span:
    // a span's fields are formatted on every review, even when no event
    // is logged, and at info level most reviews log nothing.
    let decision = decide::decide(endpoint, policy, &req, s.cluster.as_ref());
    let allowed = decision.response.allowed;
    let body = review::encode(decision.response);
    let elapsed = started.elapsed();
    macro_rules! review_event {
        ($level:ident, $($rest:tt)+) => {
            tracing::$level!(
                uid = %req.uid,
                kind = %req.kind.kind,
                namespace = req.namespace.as_deref().unwrap_or(""),
                name = %req.name,
                operation = operation_label(&req.operation),
                endpoint = endpoint.as_str(),
                patched = decision.patched,
                duration_us = elapsed.as_micros() as u64,
                $($rest)+
            )
        };
    }
    if !allowed {
        review_event!(info, violations = decision.violations, "denied");
    } else if decision.violations > 0 {
        review_event!(
            info,
            violations = decision.violations,
            mode = decision.mode.as_str(),
            "allowed despite violations"
        );
    } else {
        review_event!(debug, "allowed");
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
    s.metrics.admission_requests.with(
        &AdmissionLabels {
            endpoint: endpoint.as_str(),
            kind: decision.target.as_str(),
            operation: operation_label(&req.operation),
            allowed: if allowed { "true" } else { "false" },
            mode: decision.mode.as_str(),
        },
        Counter::inc,
    );
    s.metrics
        .admission_duration
        .with(&ep, |h| h.observe(elapsed.as_secs_f64()));
    // One header, set once: a (headers, body) pair first gives the body its
    // own content type, then replaces it.
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
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
