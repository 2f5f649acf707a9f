//! A request body that must arrive whole by a deadline. A client that
//! announces more bytes than it sends (a `Content-Length` larger than the
//! body, or a slow drip) gets an error when the deadline passes instead of
//! holding the handler, and the connection, for ever.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Sleep;

/// The error a [`DeadlineBody`] yields when its deadline passes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body not received within {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub Duration);

pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
    timed_out: Counter,
}

impl<B> DeadlineBody<B> {
    /// The clock starts now, when the request head has been read.
    pub fn new(inner: B, limit: Duration, timed_out: Counter) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
            timed_out,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Bytes that have arrived win over a deadline that passed meanwhile.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.timed_out.inc();
                    Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_times_out() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"{\"a\""))))
            .await
            .unwrap();
        let stream = tokio_stream_from(rx);
        let counter = Counter::default();
        let body = DeadlineBody::new(
            StreamBody::new(stream),
            Duration::from_secs(5),
            counter.clone(),
        );
        let err = body.collect().await.expect_err("the deadline passes");
        assert_eq!(
            err.downcast_ref::<BodyTimedOut>(),
            Some(&BodyTimedOut(Duration::from_secs(5)))
        );
        assert_eq!(counter.get(), 1);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_body_passes() {
        let counter = Counter::default();
        let inner = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let body = DeadlineBody::new(inner, Duration::from_secs(5), counter.clone());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{}");
        assert_eq!(counter.get(), 0);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Unpin {
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
