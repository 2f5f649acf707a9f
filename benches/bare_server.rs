//! The calibration server for load tests: axum + rustls that only parses the
//! AdmissionReview envelope and answers `allowed: true`. It measures what the
//! machine, TLS and HTTP cost, so flinkgate's own overhead can be read off
//! against it in the same run (see the README's benchmark section).
//! `cargo run --release --example bare-server -- 127.0.0.1:9443`

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use flinkgate::admission::review;
use flinkgate::http::serve_tls;
use tokio_util::sync::CancellationToken;

// mimalloc: admission decisions allocate many small JSON nodes; it cuts
// their cost by about a third against glibc malloc (see README benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9443".into());
    let bundle = flinkgate::certs::generate(&["localhost".into()], &["127.0.0.1".parse()?], 1)?;
    let cert = flinkgate::tls::ReloadingCert::new(flinkgate::tls::certified_key(
        bundle.cert.as_bytes(),
        bundle.key.as_bytes(),
    )?);
    let tls = Arc::new(flinkgate::tls::server_config(cert, None)?);
    let app = Router::new().route(
        "/validate",
        post(|body: Bytes| async move {
            match review::parse(&body) {
                Ok(req) => review::encode(review::allow(&req.uid)),
                Err(e) => e.to_string().into_bytes(),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "bare server listening on https://{}",
        listener.local_addr()?
    );
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        s.cancel();
    });
    // The same accept loop and limits as flinkgate's, so the baseline
    // differs only in the handler.
    serve_tls(
        listener,
        tls,
        app,
        Default::default(),
        Default::default(),
        stop,
        std::time::Duration::from_secs(1),
    )
    .await;
    Ok(())
}
