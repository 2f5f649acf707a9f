//! The local cluster as end-to-end tests drive it: `hack/cluster up`
//! with flinkgate, kubectl as a user runs it, extra flinkgate replicas,
//! metrics and policy edits. Shared by the e2e and real-nodes test binaries.
#![allow(dead_code)] // each test binary uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::manifests::policy_configmap;

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub kubectl: String,
    /// A flinkgate this test started (after the kill scenario).
    pub restarted: Option<Child>,
}

impl Cluster {
    /// `cluster up` with flinkgate; `up_args` picks the nodes (`--nodes 6`,
    /// `--real-nodes 2 --nodes 0`).
    pub fn up(
        dir: &Path,
        kubectl: String,
        up_args: &[&str],
        serve_args: &str,
    ) -> Result<Cluster, String> {
        let out = Command::new(repo("hack/cluster"))
            .args(["up", "--dir", dir.to_str().unwrap()])
            .args(up_args)
            .env("FLINKGATE_BIN", env!("CARGO_BIN_EXE_flinkgate"))
            .env("FLINKGATE_SERVE_ARGS", serve_args)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run hack/cluster: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "cluster up failed ({}); logs in {}/logs",
                out.status,
                dir.display()
            ));
        }
        let last = stdout.lines().last().unwrap_or_default();
        let kubeconfig = last
            .strip_prefix("export KUBECONFIG=")
            .ok_or_else(|| format!("unexpected last line of cluster up: {last:?}"))?;
        Ok(Cluster {
            dir: dir.to_path_buf(),
            kubeconfig: PathBuf::from(kubeconfig),
            kubectl,
            restarted: None,
        })
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        self.kubectl_runner().run(args, stdin)
    }

    /// kubectl on this cluster as an owned value, for another thread.
    pub fn kubectl_runner(&self) -> Kubectl {
        Kubectl {
            bin: self.kubectl.clone(),
            kubeconfig: self.kubeconfig.clone(),
            cache: self.dir.join("kube-cache"),
        }
    }

    pub fn apply(&self, manifest: &str, extra: &[&str]) -> (bool, String, String) {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl(&args, Some(manifest))
    }

    pub fn must(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl(args, stdin);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    pub fn get_json(&self, kind: &str, ns: &str, name: &str) -> Value {
        let out = self.must(&["get", kind, "-n", ns, name, "-o", "json"], None);
        serde_json::from_str(&out).unwrap()
    }

    /// Starts another `flinkgate serve` on this cluster, in its own session
    /// with a pid file, so `cluster down` stops it should the test die first.
    pub fn spawn_flinkgate(
        &self,
        name: &str,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Child {
        let certs = self.dir.join("flinkgate-certs");
        let log = std::fs::File::create(self.dir.join(format!("logs/{name}.log"))).unwrap();
        let child = Command::new("setsid")
            .arg(env!("CARGO_BIN_EXE_flinkgate"))
            .args(["serve", "--listen", listen])
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--policy-configmap", "flinkgate-system/flinkgate-policy"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(
            self.dir.join(format!("pids/{name}.pid")),
            format!("{} ?\n", child.id()),
        )
        .unwrap();
        child
    }

    /// The published scores table (`flinkgate-scores`, key scores.json),
    /// `Null` when there is none yet.
    pub fn scores_table(&self) -> Value {
        let (_, scores, _) = self.kubectl(
            &[
                "get",
                "configmap",
                "-n",
                "flinkgate-system",
                "flinkgate-scores",
                "-o",
                "jsonpath={.data.scores\\.json}",
            ],
            None,
        );
        serde_json::from_str(&scores).unwrap_or(Value::Null)
    }

    /// The Events on objects named `name` in `namespace`, a line each:
    /// `Reason: message`.
    pub fn events(&self, namespace: &str, name: &str) -> String {
        self.must(
            &[
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                &format!("involvedObject.name={name}"),
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ],
            None,
        )
    }

    /// An object's `status`, `Null` when it or its status is missing.
    pub fn status(&self, kind: &str, namespace: &str, name: &str) -> Value {
        let (ok, out, _) = self.kubectl(&["get", kind, "-n", namespace, name, "-o", "json"], None);
        if !ok {
            return Value::Null;
        }
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.get("status").cloned())
            .unwrap_or(Value::Null)
    }

    /// Waits until a FlinkDeployment's JobManager is READY and it is STABLE.
    pub fn wait_stable(&self, namespace: &str, name: &str, timeout: Duration) {
        wait(
            &format!("FlinkDeployment {namespace}/{name} is READY and STABLE"),
            timeout,
            || {
                let s = self.status("flinkdeployment", namespace, name);
                str_at(&s, "/jobManagerDeploymentStatus") == "READY"
                    && str_at(&s, "/lifecycleState") == "STABLE"
            },
        );
    }

    /// `kubectl delete` that does not wait for finalizers.
    pub fn delete_nowait(&self, kind: &str, namespace: &str, name: &str) {
        self.must(
            &["delete", kind, "-n", namespace, name, "--wait=false"],
            None,
        );
    }

    pub fn flinkgate_port(&self) -> String {
        std::fs::read_to_string(self.dir.join("flinkgate.port"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn metrics(&self) -> Option<String> {
        let ca = self.dir.join("flinkgate-certs/ca.crt");
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2", "--cacert", ca.to_str().unwrap()])
            .arg(format!(
                "https://127.0.0.1:{}/metrics",
                self.flinkgate_port()
            ))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics()?;
        series(&text, name).find_map(|(labels, v)| labels.is_empty().then_some(v))
    }

    /// Applies a policy ConfigMap and waits until flinkgate has acted on it
    /// (its generation or its rejection counter moved).
    pub fn set_policy(&self, policy: &str) {
        let generation = self.metric("flinkgate_policy_generation").unwrap_or(0.0);
        let rejected = self
            .metric("flinkgate_policy_reload_errors_total")
            .unwrap_or(0.0);
        self.must(&["apply", "-f", "-"], Some(&policy_configmap(policy)));
        wait(
            "flinkgate acts on the policy edit",
            Duration::from_secs(20),
            || {
                self.metric("flinkgate_policy_generation").unwrap_or(0.0) > generation
                    || self
                        .metric("flinkgate_policy_reload_errors_total")
                        .unwrap_or(0.0)
                        > rejected
            },
        );
    }

    pub fn default_policy(&self) {
        self.set_policy(flinkgate::policy::BUILTIN_YAML);
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.restarted.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(repo("hack/cluster"))
            .args(["down", "--dir", self.dir.to_str().unwrap()])
            .status();
    }
}

/// kubectl with a cluster's kubeconfig and discovery cache.
pub struct Kubectl {
    bin: String,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// Runs kubectl; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.down();
    }
}

/// The series of metric `name` in a Prometheus text page: each one's
/// label set (`k="v",...`, empty for none) and value.
pub fn series<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = (&'t str, f64)> + 't {
    text.lines().filter_map(move |l| {
        let rest = l.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(labelled) => labelled.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        Some((labels, value.trim().parse().ok()?))
    })
}

pub fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting until {what}");
}

/// GET on a Flink REST API (`rest` is its base URL); `None` on any failure.
pub fn flink_get(rest: &str, path: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .arg(format!("{rest}{path}"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// The string at a JSON pointer, empty when absent.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The kubectl `hack/build` built, if it did.
pub fn built_kubectl() -> Option<String> {
    built_tool("kubectl")
}

/// A tool `hack/build` made (kubectl, helm, ...), if it is built.
pub fn built_tool(name: &str) -> Option<String> {
    let paths = Command::new(repo("hack/build"))
        .arg("--paths")
        .output()
        .ok()?;
    let prefix = format!("{name}=");
    String::from_utf8_lossy(&paths.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(String::from))
        .filter(|k| Path::new(k).exists())
}

/// A Flink job's state (`RUNNING`, `FINISHED`, ...).
pub fn flink_job_state(rest: &str, jid: &str) -> Option<String> {
    flink_get(rest, &format!("/jobs/{jid}"))?["state"]
        .as_str()
        .map(String::from)
}

/// The savepoint or checkpoint a Flink job restored from, as Flink reports it.
pub fn restored_from(rest: &str, jid: &str) -> Option<String> {
    flink_get(rest, &format!("/jobs/{jid}/checkpoints"))?
        .pointer("/latest/restored/external_path")?
        .as_str()
        .map(String::from)
}

/// Copies the run's logs out of `dir` before `down` removes them.
pub fn keep_logs(prefix: &str, dir: &Path) {
    let keep = std::env::temp_dir().join(format!("flinkgate-{prefix}-logs-{}", std::process::id()));
    let _ = Command::new("cp")
        .arg("-r")
        .arg(dir.join("logs"))
        .arg(&keep)
        .status();
    eprintln!("{prefix}: logs kept in {}", keep.display());
}

/// Prints the summary line and the failed scenarios; exits 1 if any failed.
pub fn report(prefix: &str, ran: usize, failed: &[&str], started: Instant) {
    eprintln!(
        "{prefix}: {} passed, {} failed in {:.1}s",
        ran - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        for f in failed {
            eprintln!("  FAILED: {f}");
        }
        std::process::exit(1);
    }
}
