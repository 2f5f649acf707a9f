//! Certificate rotation the way a Kubernetes Secret volume does it: new
//! files in a fresh timestamped directory, then an atomic swap of the
//! `..data` symlink. No request may fail; new handshakes see the new cert.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, client_trusting, fixture, post_json};

fn secret_volume_version(root: &Path, version: &str) -> flinkgate::certs::Bundle {
    let dir = root.join(version);
    common::write_certs(&dir)
}

/// Points `..data` at `version` atomically (rename of a fresh symlink).
fn swap_data_link(root: &Path, version: &str) {
    let tmp = root.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, root.join("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_secret_volume_fails_no_request() {
    let vol = tempfile::tempdir().unwrap();
    let root = vol.path();
    let old = secret_volume_version(root, "..2026_11_23_10_00_00.1");
    swap_data_link(root, "..2026_11_23_10_00_00.1");
    symlink("..data/tls.crt", root.join("tls.crt")).unwrap();
    symlink("..data/tls.key", root.join("tls.key")).unwrap();

    let args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        root.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        root.join("tls.key").to_str().unwrap(),
        "--reload-interval",
        "0.1",
    ]
    .map(String::from)
    .to_vec();
    let s = Server::spawn(&args, tempfile::tempdir().unwrap(), old.ca_cert.clone());

    // New CA and certificate, prepared before the swap as the kubelet does.
    let new = secret_volume_version(root, "..2026_11_23_11_00_00.2");
    let both = [old.ca_cert.as_str(), new.ca_cert.as_str()];
    let body = fixture("flinkdeployment-create.json");
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut workers = Vec::new();
    for worker in 0..4 {
        let (url, body, failures, done, stop) = (
            s.url("/mutate"),
            body.clone(),
            failures.clone(),
            done.clone(),
            stop.clone(),
        );
        let keep_alive = client_trusting(&both);
        let cas: Vec<String> = both.iter().map(|s| s.to_string()).collect();
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Half the workers reuse one connection, half open a new one each time.
                let client = if worker % 2 == 0 {
                    keep_alive.clone()
                } else {
                    client_trusting(&cas.iter().map(String::as_str).collect::<Vec<_>>())
                };
                match client.post(&url).body(body.clone()).send().await {
                    Ok(r) if r.status() == 200 => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("request failed: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    swap_data_link(root, "..2026_11_23_11_00_00.2");
    std::fs::remove_dir_all(root.join("..2026_11_23_10_00_00.1")).unwrap();
    s.wait_for_log("serving certificate reloaded", Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
    assert!(done.load(Ordering::Relaxed) > 20, "the load actually ran");

    // New handshakes present the new certificate.
    let only_new = client_trusting(&[&new.ca_cert]);
    let (status, _) = post_json(&only_new, &s.url("/mutate"), body.clone()).await;
    assert_eq!(status, 200);
    let only_old = client_trusting(&[&old.ca_cert]);
    assert!(
        only_old.get(s.url("/healthz")).send().await.is_err(),
        "the old certificate is no longer served"
    );
}
