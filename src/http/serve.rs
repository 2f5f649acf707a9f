//! The TLS accept loop. Every phase of a connection has a time limit and
//! the number of open connections has a cap, so no client, however slow or
//! numerous, can hold the webhook: a webhook that fails closed and stops
//! answering stops every `kubectl apply` it guards.
//!
//! | phase | limit |
//! |---|---|
//! | TLS handshake | `handshake_timeout` |
//! | HTTP/1 request head, also while a kept-alive connection waits | `header_read_timeout` (hyper's, on a timer) |
//! | request body, whole | `body_read_timeout` ([`DeadlineBody`]) |
//! | request, head to answer | `request_timeout` |
//! | no request in flight or started | `idle_timeout` |
//! | HTTP/2 peer gone | keepalive pings every `http2_keepalive_interval` |

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::canned::JsonCannedErrors;
use super::deadline::DeadlineBody;
use super::error::HttpError;

/// Put on every request of a connection whose client presented a
/// certificate the server's client CA verified.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedClient;

/// Limits on each connection and on how many there are.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TimeoutLabels {
    pub phase: &'static str,
}

/// What the accept loop reports; registered by the telemetry module.
#[derive(Clone, Default)]
pub struct ConnectionMetrics {
    /// Connections open now, handshakes included.
    pub open: Gauge,
    /// Connections closed, by why.
    pub closed: Family<ClosedLabels, Counter>,
    /// Requests cut off by a time limit, by phase (body, request).
    pub request_timeouts: Family<TimeoutLabels, Counter>,
    /// Times a new connection had to wait because the cap was reached.
    pub at_capacity: Counter,
}

impl ConnectionMetrics {
    fn closed(&self, reason: &'static str) {
        self.closed.get_or_create(&ClosedLabels { reason }).inc();
    }
}

/// Accepts TLS connections until `stop`, then stops accepting and waits up to
/// `drain` for in-flight requests to finish.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    stop: CancellationToken,
    drain: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout);
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let conn = Arc::new(PerConnection {
        acceptor,
        app,
        builder,
        limits,
        metrics,
        stop: stop.clone(),
    });
    // Warn once per stretch at the cap, not once per waiting connection.
    let mut warned_at_cap = false;
    loop {
        // A slot first: at the cap, new connections wait in the kernel's
        // backlog until one closes, rather than costing memory here.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                warned_at_cap = false;
                p
            }
            Err(_) => {
                conn.metrics.at_capacity.inc();
                if !warned_at_cap {
                    warned_at_cap = true;
                    tracing::warn!(
                        max_connections = max,
                        "connection cap reached; new connections wait"
                    );
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let (tcp, peer): (TcpStream, SocketAddr) = tokio::select! {
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
        tokio::spawn(conn.clone().serve(tcp, peer, permit));
    }
    drop(listener);
    tracing::info!("stopped accepting; draining in-flight requests");
    // Every connection holds a slot until it closes: all slots back means
    // all connections closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout; closing remaining connections"),
    }
}

/// What every connection shares.
struct PerConnection {
    acceptor: TlsAcceptor,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    stop: CancellationToken,
}

impl PerConnection {
    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, _slot: OwnedSemaphorePermit) {
        self.metrics.open.inc();
        let reason = self.serve_until_closed(tcp, peer).await;
        self.metrics.open.dec();
        self.metrics.closed(reason);
    }

    /// Serves one connection; returns why it closed.
    async fn serve_until_closed(&self, tcp: TcpStream, peer: SocketAddr) -> &'static str {
        let handshake =
            tokio::time::timeout(self.limits.handshake_timeout, self.acceptor.accept(tcp));
        let tls = tokio::select! {
            _ = self.stop.cancelled() => return "shutdown",
            done = handshake => match done {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return "handshake_failed";
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return "handshake_timeout";
                }
            },
        };
        let verified = tls
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|chain| !chain.is_empty());
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            let app = self.app.clone();
            let (body_limit, request_limit) =
                (self.limits.body_read_timeout, self.limits.request_timeout);
            let metrics = self.metrics.clone();
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let in_flight = activity.begin();
                let body_timeouts = metrics
                    .request_timeouts
                    .get_or_create(&TimeoutLabels { phase: "body" })
                    .clone();
                let mut req =
                    req.map(|b| Body::new(DeadlineBody::new(b, body_limit, body_timeouts)));
                if verified {
                    req.extensions_mut().insert(VerifiedClient);
                }
                let mut app = app.clone();
                let metrics = metrics.clone();
                async move {
                    let _in_flight = in_flight;
                    match tokio::time::timeout(request_limit, app.call(req)).await {
                        Ok(answer) => answer,
                        Err(_) => {
                            metrics
                                .request_timeouts
                                .get_or_create(&TimeoutLabels { phase: "request" })
                                .inc();
                            Ok(HttpError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!(
                                    "request not answered within {} s",
                                    request_limit.as_secs_f64()
                                ),
                            )
                            .into_response())
                        }
                    }
                }
            })
        };
        let conn = self
            .builder
            .serve_connection(TokioIo::new(JsonCannedErrors::new(tls)), service)
            .into_owned();
        let mut conn = pin!(conn);
        let mut closing: Option<&'static str> = None;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    return match (closing, ended) {
                        (Some(reason), _) => reason,
                        (None, Ok(())) => "closed_by_client",
                        (None, Err(e)) => {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                            if is_header_timeout(&*e) { "header_timeout" } else { "error" }
                        }
                    };
                }
                _ = self.stop.cancelled(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some("shutdown");
                }
                _ = activity.idle_for(self.limits.idle_timeout), if closing.is_none() => {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = Some("idle");
                }
            }
        }
    }
}

fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    super::error::chain(e).any(|e| {
        e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
    })
}

/// Requests in flight on one connection, and when the last one began or
/// ended: a connection is idle when none is in flight and none began or
/// ended for the idle timeout. Bytes alone do not count, so a client that
/// drips a request head or HTTP/2 frames without finishing a request is
/// idle too.
struct Activity {
    state: Mutex<(usize, Instant)>,
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.0 = s.0.saturating_sub(1);
            s.1 = Instant::now();
        }
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new((0, Instant::now())),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        if let Ok(mut s) = self.state.lock() {
            s.0 += 1;
            s.1 = Instant::now();
        }
        InFlight(self.clone())
    }

    /// Resolves once the connection has been idle for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let (in_flight, since) = match self.state.lock() {
                Ok(s) => *s,
                Err(_) => return,
            };
            let idle = since.elapsed();
            if in_flight == 0 && idle >= limit {
                return;
            }
            // Busy: look again after a whole limit; idle: when it would run out.
            let wait = if in_flight > 0 { limit } else { limit - idle };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Running {
        addr: SocketAddr,
        ca: String,
        metrics: ConnectionMetrics,
        stop: CancellationToken,
        server: tokio::task::JoinHandle<()>,
    }

    /// `serve_tls` on a loopback port with a slow route.
    async fn run(limits: ConnectionLimits) -> Running {
        let bundle =
            crate::certs::generate(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 1)
                .unwrap();
        let key = crate::tls::certified_key(bundle.cert.as_bytes(), bundle.key.as_bytes()).unwrap();
        let tls =
            Arc::new(crate::tls::server_config(crate::tls::ReloadingCert::new(key), None).unwrap());
        let app = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/fast", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let metrics = ConnectionMetrics::default();
        let server = tokio::spawn(serve_tls(
            listener,
            tls,
            app,
            limits,
            metrics.clone(),
            stop.clone(),
            Duration::from_secs(5),
        ));
        Running {
            addr,
            ca: bundle.ca_cert,
            metrics,
            stop,
            server,
        }
    }

    impl Running {
        fn client(&self) -> reqwest::Client {
            reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(self.ca.as_bytes()).unwrap())
                .build()
                .unwrap()
        }

        fn url(&self, path: &str) -> String {
            format!("https://127.0.0.1:{}{path}", self.addr.port())
        }

        async fn stop(self) {
            self.stop.cancel();
            self.server.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_request_past_its_time_limit_gets_a_json_503() {
        let s = run(ConnectionLimits {
            request_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        })
        .await;
        let r = s.client().get(s.url("/slow")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "request not answered within 0.3 s", "{v}");
        let timeouts = s
            .metrics
            .request_timeouts
            .get_or_create(&TimeoutLabels { phase: "request" })
            .get();
        assert_eq!(timeouts, 1);
        s.stop().await;
    }

    #[tokio::test]
    async fn past_the_cap_a_connection_waits_for_a_free_slot() {
        let s = run(ConnectionLimits {
            max_connections: 1,
            ..ConnectionLimits::default()
        })
        .await;
        let hog = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let client = s.client();
        let waiting = client
            .get(s.url("/fast"))
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        assert!(waiting.is_err(), "the only slot is taken: {waiting:?}");
        assert!(s.metrics.at_capacity.get() >= 1);
        drop(hog);
        let r = client.get(s.url("/fast")).send().await.unwrap();
        assert_eq!(
            r.text().await.unwrap(),
            "ok",
            "served once the slot is free"
        );
        s.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Arc::new(Activity::new());
        let limit = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        let request = activity.begin();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(limit).await }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "a request in flight keeps it busy");
        drop(request);
        idle.await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(35),
            "idle a whole limit after the request ended"
        );
    }
}
