//! Hostile connections against the real binary: thousands of idle and
//! slowloris clients cannot starve a legitimate one, and each is closed by
//! its time limit; a body shorter than its Content-Length gets a JSON 408
//! and does not hold up a SIGTERM.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const IDLE: usize = 5_000;
const SLOWLORIS: usize = 1_000;

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(tls: &TlsConnector, addr: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tls.connect(name, tcp).await
}

/// Opens `n` TLS connections, `parallel` at a time.
async fn open_many(tls: &TlsConnector, addr: &str, n: usize) -> Vec<TlsStream<TcpStream>> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|_| async { connect(tls, addr).await })
        .buffer_unordered(64)
        .map(|c| c.expect("the server accepts the connection"))
        .collect()
        .await
}

/// Whether the server has closed the connection (EOF or reset) by `within`.
async fn closed_by_server(conn: &mut TlsStream<TcpStream>, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (a 408 or the like) before the close: read on.
            Ok(Ok(_)) => {}
        }
    }
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(server: &Server) -> String {
    server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_connections_cannot_starve_a_real_client() {
    let needed = (IDLE + SLOWLORIS + 256) as u64;
    let mut files = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    if files < needed {
        // Root (CI) may raise the hard limit itself; the server inherits it.
        let _ = rlimit::Resource::NOFILE.set(needed, needed);
        files = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    }
    assert!(
        files >= needed,
        "this test holds {} connections; the open-file hard limit is {files}",
        IDLE + SLOWLORIS
    );
    // Limits long enough to hold every connection while measuring, short
    // enough to watch them close. The shipped build: its latency is what
    // the limit is about.
    let server = Server::start_release(&[
        "--idle-timeout",
        "25",
        "--header-read-timeout",
        "15",
        "--max-connections",
        "8000",
    ]);
    let addr = server.addr.clone();
    let tls = connector(&server.ca_pem);

    let opened = Instant::now();
    let mut idle = open_many(&tls, &addr, IDLE).await;
    let mut slow = open_many(&tls, &addr, SLOWLORIS).await;
    // Each slowloris client sends a request head that never ends.
    for conn in &mut slow {
        conn.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        conn.flush().await.unwrap();
    }
    let open_took = opened.elapsed();
    eprintln!(
        "opened {IDLE} idle and {SLOWLORIS} slowloris connections in {:.1}s",
        open_took.as_secs_f64()
    );
    let (slow_tx, mut slow_back) = tokio::sync::mpsc::channel(1);
    let drip = tokio::spawn(async move {
        // One more header line a second on every slowloris connection.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..7 {
            tick.tick().await;
            for conn in &mut slow {
                let _ = conn.write_all(b"X-Slow: 1\r\n").await;
                let _ = conn.flush().await;
            }
        }
        let _ = slow_tx.send(slow).await;
    });

    // A legitimate client at 100 req/s for 5 s; every other request on a
    // new connection, as a restarted API server would make. The first
    // second is not counted: its requests meet the server still taking up
    // the 6,000 connections just opened and the first header line on each
    // slowloris one, so all of them wait together (50-160 ms here), which
    // measures the start of the attack, not the server under it.
    let review = fixture("flinkdeployment-create.json");
    let kept = server.client();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut calls = Vec::new();
    const WARM_UP: usize = 100;
    for i in 0..WARM_UP + 500 {
        tick.tick().await;
        let client = if i % 2 == 0 {
            kept.clone()
        } else {
            server.client()
        };
        let (url, body) = (server.url("/validate"), review.clone());
        calls.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            (ok, t.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut warm_up_errors = 0;
    for (i, call) in calls.into_iter().enumerate() {
        let (ok, took) = call.await.unwrap();
        if i < WARM_UP {
            warm_up_errors += usize::from(!ok);
        } else {
            errors += usize::from(!ok);
            latencies.push(took);
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let p50 = latencies[latencies.len() / 2];
    let held = metric(&metrics(&server).await, "flinkgate_http_open_connections ");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?");
    eprintln!(
        "legitimate client under {IDLE} idle + {SLOWLORIS} slowloris connections: \
         500 requests, {errors} errors, p50 {:.1} ms, p99 {:.1} ms; {held} connections open; server {rss}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    assert!(
        held >= (IDLE + SLOWLORIS) as f64,
        "the attack connections were all held while measuring: {held}"
    );
    assert_eq!(errors + warm_up_errors, 0, "no legitimate request failed");
    assert!(
        p99 < Duration::from_millis(50),
        "legitimate p99 under 50 ms: {p99:?}"
    );

    // Then every attack connection is closed by its time limit: idle ones
    // by --idle-timeout, slowloris ones by --header-read-timeout.
    let mut slow = slow_back.recv().await.unwrap();
    drip.await.unwrap();
    let within =
        Duration::from_secs(25 + 10).saturating_sub(opened.elapsed()) + Duration::from_secs(5);
    let closed = futures::future::join_all(
        idle.iter_mut()
            .chain(slow.iter_mut())
            .map(|c| closed_by_server(c, within)),
    )
    .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        still_open, 0,
        "every attack connection was closed by the server"
    );
    let m = metrics(&server).await;
    let by_idle = metric(
        &m,
        "flinkgate_http_connections_closed_total{reason=\"idle\"}",
    );
    let by_header = metric(
        &m,
        "flinkgate_http_connections_closed_total{reason=\"header_timeout\"}",
    );
    eprintln!("closed: {by_idle} idle, {by_header} by the header timeout");
    assert!(
        by_idle >= IDLE as f64,
        "idle connections closed as idle: {by_idle}"
    );
    assert!(
        by_header >= SLOWLORIS as f64,
        "slowloris connections closed by the header timeout: {by_header}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_gets_a_json_408_and_does_not_hold_shutdown() {
    let mut server = Server::start(&["--body-read-timeout", "1", "--shutdown-timeout", "20"]);
    let tls = connector(&server.ca_pem);

    // Announces 100 bytes, sends 10: answered 408 with JSON at the deadline.
    let mut conn = connect(&tls, &server.addr).await.unwrap();
    conn.write_all(
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"apiVers",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(json["code"], 408, "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("not received within 1 s"),
        "{json}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at the deadline"
    );

    // A drip that never completes is cut at the same deadline.
    let mut dripping = connect(&tls, &server.addr).await.unwrap();
    dripping
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let drip = tokio::spawn(async move {
        let started = Instant::now();
        let mut answer = Vec::new();
        for _ in 0..100 {
            if dripping.write_all(b" ").await.is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), dripping.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
        }
        (
            String::from_utf8_lossy(&answer).to_string(),
            started.elapsed(),
        )
    });
    let (answer, took) = drip.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took < Duration::from_secs(5),
        "cut at the deadline, not per byte: {took:?}"
    );

    // SIGTERM while a body is owed: shutdown waits for the body deadline,
    // not the 20 s drain timeout.
    let mut owed = connect(&tls, &server.addr).await.unwrap();
    owed.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown did not wait out the drain timeout: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_json_4xx() {
    let server = Server::start(&[]);
    let tls = connector(&server.ca_pem);
    for request in [
        &b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n"[..],
        b"NOT HTTP AT ALL\r\n\r\n",
    ] {
        let mut conn = connect(&tls, &server.addr).await.unwrap();
        conn.write_all(request).await.unwrap();
        conn.flush().await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(json["code"], 400, "{json}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("not a valid HTTP request"),
            "{json}"
        );
    }
}
