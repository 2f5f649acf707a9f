//! Test harness: runs the real `flinkgate` binary on a random port with
//! generated certificates and talks to it over HTTPS.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
    logs: mpsc::Receiver<String>,
}

/// The release build of flinkgate, static as the image holds it:
/// `hack/images release-binary` builds it (cached beside the image build)
/// and names it. Panics when it cannot, CI or not: a latency measured on
/// another build would not be the shipped server's.
pub fn release_binary() -> String {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/images"))
        .arg("release-binary")
        .stderr(Stdio::inherit())
        .output()
        .expect("run hack/images release-binary");
    assert!(
        out.status.success(),
        "hack/images release-binary failed ({})",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("flinkgate_binary="))
        .map(str::to_string)
        .expect("hack/images release-binary names the binary")
}

/// Where the build scripts cache what they make: `$FLINKGATE_CACHE`, by
/// default `~/.cache/flinkgate`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("FLINKGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/flinkgate")
        })
}

/// A JDK's `java`: `$JAVA_HOME/bin/java`, else `java` on PATH. The tests
/// that compare with Java run their drivers as single-file programs, which
/// needs a JDK.
pub fn java() -> Result<PathBuf, String> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .unwrap_or_else(|| PathBuf::from("java"));
    match Command::new(&java).arg("-version").output() {
        Ok(out) if out.status.success() => Ok(java),
        _ => Err(format!(
            "no working java at {} (set JAVA_HOME)",
            java.display()
        )),
    }
}

/// Fails under `CI=true`, where every test must run; elsewhere prints why
/// `test` is skipped.
pub fn skip_unless_ci(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} cannot run on CI: {why}");
    }
    eprintln!("note: skipping {test}: {why}");
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Writes a CA + serving certificate for 127.0.0.1/localhost into `dir`.
pub fn write_certs(dir: &Path) -> flinkgate::certs::Bundle {
    let b = flinkgate::certs::generate(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 1)
        .unwrap();
    flinkgate::certs::write(&b, dir).unwrap();
    b
}

impl Server {
    /// Starts `flinkgate serve` with certificate files in a temp dir plus `extra` args.
    pub fn start(extra: &[&str]) -> Server {
        Self::start_binary(env!("CARGO_BIN_EXE_flinkgate"), extra)
    }

    /// [`Server::start`] with the release build flinkgate ships
    /// ([`release_binary`]), for tests that hold it to a latency: the test
    /// build's own code runs unoptimised, several times slower per connection.
    pub fn start_release(extra: &[&str]) -> Server {
        Self::start_binary(&release_binary(), extra)
    }

    pub fn start_binary(binary: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let bundle = write_certs(dir.path());
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
            "--reload-interval".into(),
            "0.2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn_binary(binary, &args, dir, bundle.ca_cert)
    }

    pub fn spawn(args: &[String], dir: tempfile::TempDir, ca_pem: String) -> Server {
        Self::spawn_binary(env!("CARGO_BIN_EXE_flinkgate"), args, dir, ca_pem)
    }

    fn spawn_binary(
        binary: &str,
        args: &[String],
        dir: tempfile::TempDir,
        ca_pem: String,
    ) -> Server {
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start flinkgate");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[flinkgate] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        while addr.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("flinkgate did not report its address");
            if let Some(i) = line.find("listening on https://") {
                let rest = &line[i + "listening on https://".len()..];
                addr = Some(
                    rest.split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches('"')
                        .to_string(),
                );
            }
        }
        Server {
            child,
            addr: addr.unwrap(),
            ca_pem,
            dir,
            logs: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    pub fn client(&self) -> reqwest::Client {
        client_trusting(&[&self.ca_pem])
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {timeout:?}"),
            }
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        wait_timeout(&mut self.child, Duration::from_secs(30))
            .expect("flinkgate did not exit after SIGTERM")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

pub fn client_trusting(cas: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .use_rustls_tls();
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// POSTs a body and returns status and parsed JSON.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get_all("content-type")
        .iter()
        .collect::<Vec<_>>();
    assert_eq!(
        content_type,
        ["application/json"],
        "{url} answered {status}"
    );
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

/// Decodes the base64 JSON Patch of an AdmissionReview response.
pub fn patch_of(review: &serde_json::Value) -> Option<serde_json::Value> {
    use base64::Engine;
    let p = review["response"]["patch"].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
    Some(serde_json::from_slice(&raw).unwrap())
}

/// The whole router in process, as `flinkgate serve` builds it (built-in
/// policy, no cluster): requests go through `oneshot`, without TLS or a port.
pub struct App {
    router: axum::Router,
}

impl App {
    pub fn new() -> App {
        Self::with_scores(None)
    }

    /// With this scores table (JSON, the collector's format) in force.
    pub fn with_scores(table: Option<serde_json::Value>) -> App {
        use flinkgate::admission::cluster_view::NoClusterView;
        use flinkgate::server::router::{AppState, Health};
        use std::sync::Arc;
        let (metrics, registry) = flinkgate::telemetry::Metrics::new();
        let policy = Arc::new(flinkgate::policy::PolicyStore::new(metrics.clone()));
        policy.install(flinkgate::policy::Policy::builtin());
        let scores = Arc::new(flinkgate::scheduler::scores::ScoreBoard::default());
        if let Some(t) = table {
            scores.replace(serde_json::from_value(t).expect("a scores table"));
        }
        let health = Arc::new(Health::default());
        let bodies = flinkgate::http::BodyBudget::new(48 << 20);
        health
            .listening
            .store(true, std::sync::atomic::Ordering::Release);
        let router = flinkgate::server::router::router(AppState {
            admission: flinkgate::admission::handler::AdmissionState {
                policy: policy.clone(),
                metrics: metrics.clone(),
                cluster: Arc::new(NoClusterView("tests run without a cluster")),
                bodies: bodies.clone(),
            },
            extender: flinkgate::scheduler::extender::ExtenderState {
                policy,
                metrics,
                scores,
                filter_events: Default::default(),
                bodies,
                max_concurrent: 2,
                require_client_certificate: false,
            },
            registry: Arc::new(registry),
            health,
        });
        App { router }
    }

    async fn call(&self, request: axum::http::Request<axum::body::Body>) -> (u16, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// POSTs a JSON body; the answer must be JSON.
    pub async fn post(&self, path: &str, body: impl Into<String>) -> (u16, serde_json::Value) {
        let request = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.into()))
            .expect("a request");
        let (status, text) = self.call(request).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("a request");
        self.call(request).await
    }
}
