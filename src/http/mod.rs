//! HTTP plumbing every endpoint shares: one JSON error type, bounded body
//! reading, JSON answers, and the TLS accept loop with its limits and
//! graceful shutdown. It knows nothing of admission or scheduling; their
//! handlers import it.

mod deadline;
mod serve;

pub use deadline::BodyTimedOut;
pub use serve::{ConnectionLimits, ConnectionMetrics, serve_tls};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

/// Every error answer: `{"error": "...", "code": N}` with that status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "code": self.status.as_u16() });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    TimedOut(BodyTimedOut),
    #[error("request body could not be read: {0}")]
    Unreadable(String),
}

impl From<BodyError> for HttpError {
    fn from(e: BodyError) -> Self {
        let status = match e {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

/// The whole body, refused past `limit` bytes without buffering more.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Err(e) => Err(match timed_out(&*e) {
            Some(t) => BodyError::TimedOut(t),
            None => BodyError::Unreadable(e.to_string()),
        }),
    }
}

/// The deadline error somewhere in a body error's chain (axum wraps it).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<BodyTimedOut> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<BodyTimedOut>() {
            return Some(*t);
        }
        next = e.source();
    }
    None
}

/// A JSON answer already serialised, or a 500 saying why it could not be.
pub fn json_response(body: Result<Vec<u8>, serde_json::Error>) -> Response {
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer failed: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_are_json_with_their_code() {
        let r = HttpError::bad_request("nope").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"error": "nope", "code": 400}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_body_is_a_timeout_through_axum() {
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        let mut rx = rx;
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let late = deadline::DeadlineBody::new(
            http_body_util::StreamBody::new(Box::pin(stream)),
            std::time::Duration::from_secs(2),
            Default::default(),
        );
        let err = read_body(Body::new(late), 100).await.unwrap_err();
        assert!(matches!(err, BodyError::TimedOut(_)), "{err:?}");
        let answer = HttpError::from(err);
        assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(answer.message, "request body not received within 2 s");
        drop(tx);
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused() {
        let err = read_body(Body::from(vec![b'x'; 11]), 10).await.unwrap_err();
        assert_eq!(err.to_string(), "request body exceeds 10 bytes");
        let ok = read_body(Body::from(vec![b'x'; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
    }
}
