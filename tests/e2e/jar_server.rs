//! An HTTPS server for a session job's jar, under this machine's host name
//! with its own test CA. Shared by the e2e and real-nodes test binaries.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// An HTTPS server that serves one jar under this machine's host name (the
/// webhook refuses loopback and private addresses in jarURI, so the URL
/// must name a host), with a certificate from its own test CA.
pub struct JarServer {
    pub url: String,
    /// The CA to pass to `flinkgate serve --jar-ca-file`.
    pub ca_file: PathBuf,
    _runtime: tokio::runtime::Runtime,
    stop: tokio_util::sync::CancellationToken,
}

impl JarServer {
    /// The networks this machine's host name may resolve to: the jar
    /// server is internal, so the downloader must be told to reach it.
    pub const ALLOW_CIDRS: &'static str =
        "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,::1/128,fc00::/7";
    /// Serves `jar` at `https://<host name>:<port>/jobs/<file name>`.
    pub fn start(dir: &Path, jar: &Path) -> Result<JarServer, String> {
        let file_name = jar
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} names no file", jar.display()))?;
        let bytes = std::fs::read(jar).map_err(|e| format!("{}: {e}", jar.display()))?;
        let host = String::from_utf8_lossy(
            &Command::new("hostname")
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .trim()
        .to_string();
        if host.is_empty() || std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 1)).is_err()
        {
            return Err(format!(
                "this machine's host name {host:?} does not resolve"
            ));
        }
        let bundle = flinkgate::certs::generate(std::slice::from_ref(&host), &[], 2)
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, &bundle.ca_cert).map_err(|e| e.to_string())?;
        let key = flinkgate::tls::certified_key(bundle.cert.as_bytes(), bundle.key.as_bytes())
            .map_err(|e| e.to_string())?;
        let tls = flinkgate::tls::server_config(flinkgate::tls::ReloadingCert::new(key), None)
            .map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        let stop = tokio_util::sync::CancellationToken::new();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("0.0.0.0:0"))
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let body = bytes::Bytes::from(bytes);
        let app = axum::Router::new().route(
            &format!("/jobs/{file_name}"),
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
        runtime.spawn(flinkgate::http::serve_tls(
            listener,
            Arc::new(tls),
            app,
            Default::default(),
            Default::default(),
            stop.clone(),
            Duration::from_secs(1),
        ));
        Ok(JarServer {
            url: format!("https://{host}:{port}/jobs/{file_name}"),
            ca_file,
            _runtime: runtime,
            stop,
        })
    }
}

impl Drop for JarServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The TopSpeedWindowing example jar fetched by hack/flink.
pub fn example_jar() -> PathBuf {
    let dir = std::fs::read_dir(crate::common::cache_root())
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("flink-"))
        })
        .map(|p| p.join("examples"))
        .unwrap_or_default();
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("TopSpeedWindowing.jar"))
        .unwrap_or_else(|| panic!("no TopSpeedWindowing jar under {}", dir.display()))
}
