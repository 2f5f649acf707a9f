//! HTTP plumbing every endpoint shares: one JSON error type, bounded body
//! reading, JSON answers, and the TLS accept loop with its limits and
//! graceful shutdown. It knows nothing of admission or scheduling; their
//! handlers import it.

mod canned;
mod deadline;
mod error;
mod serve;

pub use deadline::BodyTimedOut;
pub use error::HttpError;
pub use serve::{ConnectionLimits, ConnectionMetrics, VerifiedClient, serve_tls};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;

use bytes::BytesMut;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Bytes of request bodies held in memory at once, across all requests:
/// a request waits for its share before its body is read, so many large
/// bodies at once queue instead of exhausting memory.
#[derive(Debug)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Arc<Self> {
        let total_kib = bytes.div_ceil(1024).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            kib: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        })
    }

    /// Waits until `bytes` fit (all of the budget at most). `None` only if
    /// the budget were closed, which nothing does.
    async fn charge(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = bytes.div_ceil(1024).clamp(1, self.total_kib);
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        self.kib.clone().acquire_many_owned(kib).await.ok()
    }
}

/// A request body read whole, holding its share of the [`BodyBudget`]
/// until dropped.
#[derive(Debug)]
pub struct ReadBody {
    pub bytes: Bytes,
    _charge: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The whole body in one buffer, refused past `limit` bytes without
/// buffering more: at once when its Content-Length says so. A body of known
/// length is charged that length against `budget`, one of unknown length
/// the limit.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    budget: &BodyBudget,
) -> Result<ReadBody, BodyError> {
    let hint = body.size_hint();
    let announced = usize::try_from(hint.lower()).unwrap_or(usize::MAX);
    if announced > limit {
        return Err(BodyError::TooLarge { limit });
    }
    let charge = hint
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(limit)
        .min(limit);
    let held = budget.charge(charge).await;
    // A body that arrives as one frame (most admission reviews: they fit
    // in the read that brought the headers) is kept as that frame, a slice
    // of the connection's read buffer, not copied. Otherwise one buffer of
    // the announced size: frames are copied in once.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match timed_out(&e) {
            Some(t) => BodyError::TimedOut(t),
            None => BodyError::Unreadable(e.to_string()),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if read + data.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if read == 0 {
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            buf.reserve(announced.max(read + data.len()));
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: first.unwrap_or_else(|| buf.freeze()),
        _charge: held,
    })
}

/// A JSON answer sent as the given pieces in order, without joining them.
/// The pieces may be slices of `request`, whose share of the body budget is
/// then kept until the answer is sent: the memory stays in use until then.
pub fn json_pieces_response(pieces: Vec<Bytes>, request: ReadBody) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::new(Pieces::new(pieces, request)),
    )
        .into_response()
}

/// A body of known pieces with its exact length, so it goes out with a
/// Content-Length rather than chunked.
struct Pieces {
    left: std::collections::VecDeque<Bytes>,
    length: u64,
    _request: ReadBody,
}

impl Pieces {
    fn new(pieces: Vec<Bytes>, request: ReadBody) -> Self {
        let length = pieces.iter().map(|p| p.len() as u64).sum();
        Self {
            left: pieces.into(),
            length,
            _request: request,
        }
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let next = this.left.pop_front().map(|piece| {
            this.length -= piece.len() as u64;
            Ok(http_body::Frame::data(piece))
        });
        std::task::Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.left.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.length)
    }
}

/// The deadline error somewhere in a body error's chain (axum wraps it).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<BodyTimedOut> {
    error::chain(e)
        .find_map(|e| e.downcast_ref::<BodyTimedOut>())
        .copied()
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
        let err = read_body(Body::new(late), 100, &BodyBudget::new(1 << 20))
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TimedOut(_)), "{err:?}");
        let answer = HttpError::from(err);
        assert_eq!(answer.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(answer.message, "request body not received within 2 s");
        drop(tx);
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused() {
        let budget = BodyBudget::new(1 << 20);
        let err = read_body(Body::from(vec![b'x'; 11]), 10, &budget)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "request body exceeds 10 bytes");
        let ok = read_body(Body::from(vec![b'x'; 10]), 10, &budget)
            .await
            .unwrap();
        assert_eq!(ok.len(), 10);
    }

    #[tokio::test]
    async fn bodies_wait_for_their_share_of_the_budget() {
        let budget = BodyBudget::new(4096);
        let first = read_body(Body::from(vec![b'x'; 3000]), 8192, &budget)
            .await
            .unwrap();
        let second = read_body(Body::from(vec![b'y'; 3000]), 8192, &budget);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), second).await;
        assert!(waited.is_err(), "3 KiB + 3 KiB do not fit in 4 KiB at once");
        drop(first);
        let second = read_body(Body::from(vec![b'y'; 3000]), 8192, &budget)
            .await
            .unwrap();
        assert_eq!(second.len(), 3000, "read once the first let go");
    }

    /// A body of one frame is kept as it came; frames after it are joined
    /// in order, and the limit counts all of them.
    #[tokio::test]
    async fn frames_are_kept_whole_or_joined_in_order() {
        let budget = BodyBudget::new(1 << 20);
        let frames = |parts: &[&'static [u8]]| {
            let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = parts
                .iter()
                .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p))))
                .collect();
            Body::new(http_body_util::StreamBody::new(futures::stream::iter(
                frames,
            )))
        };
        let one = Bytes::from_static(b"{\"whole\":1}");
        let kept = read_body(Body::from(one.clone()), 100, &budget)
            .await
            .unwrap();
        assert_eq!(kept.bytes, one);
        assert_eq!(kept.bytes.as_ptr(), one.as_ptr(), "one frame is not copied");
        for parts in [
            &[&b"ab"[..], b"cd", b"ef"][..],
            &[b"", b"abc", b"", b"def"],
            &[b"abcdef", b""],
        ] {
            let joined = read_body(frames(parts), 6, &budget).await.unwrap();
            assert_eq!(&joined[..], b"abcdef", "{parts:?}");
        }
        let err = read_body(frames(&[b"abcd", b"efg"]), 6, &budget)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "request body exceeds 6 bytes");
    }
}
