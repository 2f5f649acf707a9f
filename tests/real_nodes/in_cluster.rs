//! flinkgate deployed the way the README tells a platform team to deploy
//! it, on the real nodes: its own image built here, `kubectl apply -k
//! deploy`, `flinkgate certs` and `register --service`, two replicas behind
//! the Service, and deploy/scheduler's kube-scheduler in a pod calling the
//! in-cluster extender. Then faults under an apply loop.
//!
//! It replaces the host's flinkgate and second scheduler (they are stopped,
//! so the lease and the `flinkgate` profile have one owner): run it last.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, built_tool, repo, series, str_at, wait};
use crate::manifests::policy_configmap;
use crate::scenarios::{NAMESPACE, application, await_running, data_dir, json, pod_policy, pods};

const SYSTEM: &str = "flinkgate-system";

/// Stops a component `hack/cluster up` started (SIGTERM, as a node drain
/// would; flinkgate releases its lease) and waits until it is gone.
fn stop_host_component(c: &Cluster, name: &str) {
    let pidfile = c.dir.join(format!("pids/{name}.pid"));
    let text =
        std::fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()));
    let pid = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(!pid.is_empty(), "{} names no pid", pidfile.display());
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    wait(
        &format!("the host's {name} (pid {pid}) exits"),
        Duration::from_secs(30),
        || {
            !Command::new("kill")
                .args(["-0", &pid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
    );
}

/// `kubectl get --raw` through the API server's proxy to one pod's HTTPS
/// port (the API server does not verify the pod's certificate there).
fn pod_get(c: &Cluster, pod: &str, path: &str) -> Option<String> {
    let url = format!("/api/v1/namespaces/{SYSTEM}/pods/https:{pod}:8443/proxy{path}");
    let (ok, out, _) = c.kubectl(&["get", "--raw", &url], None);
    ok.then_some(out)
}

/// Sum of every series of `name` over every flinkgate pod.
fn metric_sum(c: &Cluster, name: &str) -> f64 {
    flinkgate_pods(c)
        .iter()
        .filter_map(|p| pod_get(c, p, "/metrics"))
        .map(|text| series(&text, name).map(|(_, v)| v).sum::<f64>())
        .sum()
}

/// The running (not terminating) flinkgate webhook pods.
fn flinkgate_pods(c: &Cluster) -> Vec<String> {
    json(
        c,
        &[
            "get",
            "pods",
            "-n",
            SYSTEM,
            "-l",
            "app.kubernetes.io/name=flinkgate,app.kubernetes.io/component=webhook",
        ],
    )["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect()
}

fn lease_holder(c: &Cluster) -> String {
    let (_, out, _) = c.kubectl(
        &[
            "get",
            "lease",
            "-n",
            SYSTEM,
            "flinkgate-leader",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    out.trim().to_owned()
}

/// Waits until `kubectl rollout status` says the Deployment is complete.
fn rolled_out(c: &Cluster, deployment: &str) {
    c.must(
        &[
            "rollout",
            "status",
            "-n",
            SYSTEM,
            &format!("deployment/{deployment}"),
            "--timeout=180s",
        ],
        None,
    );
}

/// Waits until kube-proxy routes the Service's ClusterIP to `endpoints`
/// pods. Before that, a connection to the ClusterIP leaves this machine
/// and meets its egress proxy, which answers an empty 404 (notes of
/// real-nodes.md): kube-apiserver would fail the webhook call.
fn service_routed(service: &str, endpoints: usize) {
    let comment = format!("{SYSTEM}/{service}:https -> ");
    wait(
        &format!("kube-proxy routes {SYSTEM}/{service} to {endpoints} pods"),
        Duration::from_secs(60),
        || {
            let out = Command::new("iptables-save")
                .args(["-t", "nat"])
                .output()
                .expect("iptables-save");
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines()
                .filter(|l| l.starts_with("-A KUBE-SVC-") && l.contains(&comment))
                .count()
                == endpoints
        },
    );
}

/// One applied object of the loop: a suspended application (nothing runs,
/// but every apply is a CREATE or UPDATE through both webhooks).
fn loop_deployment(i: usize, n: u64) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: loop-{i}
  namespace: {NAMESPACE}
  annotations: {{flinkgate.io/e2e-apply: "{n}"}}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  serviceAccount: flink
  jobManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  taskManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  job:
    jarURI: local:///opt/flink/examples/streaming/StateMachineExample.jar
    parallelism: 1
    state: suspended
"#
    )
}

#[derive(Default)]
struct LoopTally {
    ok: u64,
    failed: Vec<String>,
}

/// `kubectl apply` in a loop until stopped: its tally.
struct ApplyLoop {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<LoopTally>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApplyLoop {
    fn start(c: &Cluster) -> ApplyLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(LoopTally::default()));
        let kubectl = c.kubectl_runner();
        let (s, t) = (stop.clone(), tally.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let manifest = loop_deployment((n % 4) as usize, n);
                let (ok, _, err) = kubectl.run(&["apply", "-f", "-"], Some(&manifest));
                let mut tally = t.lock().unwrap();
                if ok {
                    tally.ok += 1;
                } else {
                    tally.failed.push(err.trim().to_owned());
                }
            }
        });
        ApplyLoop {
            stop,
            tally,
            thread: Some(thread),
        }
    }

    /// (applies that succeeded, failures' messages) so far.
    fn snapshot(&self) -> (u64, Vec<String>) {
        let t = self.tally.lock().unwrap();
        (t.ok, t.failed.clone())
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.snapshot()
    }
}

impl Drop for ApplyLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Every update of the controller Lease (renewals too), with its holder,
/// timestamped as the watch delivers it.
struct LeaseWatch {
    child: std::process::Child,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl LeaseWatch {
    fn start(c: &Cluster) -> LeaseWatch {
        let mut child = Command::new(&c.kubectl)
            .args([
                "get",
                "lease",
                "-n",
                SYSTEM,
                "flinkgate-leader",
                "--watch",
                "-o",
                "jsonpath={.spec.holderIdentity}{\"\\n\"}",
            ])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("KUBECACHEDIR", c.dir.join("kube-cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get --watch");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (out, s) = (child.stdout.take().expect("stdout"), seen.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                s.lock().unwrap().push((Instant::now(), line));
            }
        });
        LeaseWatch { child, seen }
    }

    /// Seconds without a leader at each change of holder after `since`:
    /// from the old holder's release (or, had it died, its last renewal)
    /// to the new holder's first update.
    fn handovers_since(&self, since: Instant) -> Vec<f64> {
        let seen = self.seen.lock().unwrap();
        let (mut holder, mut last_led) = (String::new(), None::<Instant>);
        let mut gaps = Vec::new();
        for (t, h) in seen.iter().filter(|(t, _)| *t >= since) {
            if h.is_empty() {
                // Released: nobody leads from here.
                if !holder.is_empty() {
                    last_led = Some(*t);
                }
                holder.clear();
                continue;
            }
            if *h != holder {
                if let Some(end) = last_led {
                    gaps.push(t.duration_since(end).as_secs_f64());
                }
                holder = h.clone();
            }
            last_led = Some(*t);
        }
        gaps
    }

    /// Seconds between the last update of the lease before `t` and the
    /// first one after it, and who holds it then: across a crash, how long
    /// nobody renewed it.
    fn renewal_gap_across(&self, t: Instant) -> Option<(f64, String)> {
        let seen = self.seen.lock().unwrap();
        let before = seen.iter().rev().find(|(at, _)| *at < t)?.0;
        let (after, holder) = seen.iter().find(|(at, h)| *at > t && !h.is_empty())?;
        Some((after.duration_since(before).as_secs_f64(), holder.clone()))
    }

    /// The holders in order, a release shown as such.
    fn changes(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut out: Vec<String> = Vec::new();
        for (_, h) in seen.iter() {
            let h = if h.is_empty() {
                "(released)".into()
            } else {
                h.clone()
            };
            if out.last() != Some(&h) {
                out.push(h);
            }
        }
        out
    }
}

impl Drop for LeaseWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `flinkgate` command a platform team runs, which must succeed.
fn flinkgate_cli(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_flinkgate"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("flinkgate {args:?}: {e}"));
    assert!(
        out.status.success(),
        "flinkgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Installs flinkgate in the cluster from deploy/, as the README says.
fn install(c: &Cluster) {
    let t = Instant::now();
    let status = Command::new(repo("hack/cluster"))
        .args(["load-images", "--dir", c.dir.to_str().unwrap()])
        .status()
        .expect("hack/cluster load-images");
    assert!(status.success(), "hack/cluster load-images: {status}");
    eprintln!(
        "real-nodes: flinkgate and kube-scheduler images built and imported in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // The host's registration (`register --url`) goes first: a
    // configuration holds either a URL or a Service, and deploy/'s names the
    // Service.
    let kubeconfig = c.kubeconfig.to_str().unwrap();
    flinkgate_cli(&["register", "--uninstall", "--kubeconfig", kubeconfig]);
    stop_host_component(c, "flinkgate");
    stop_host_component(c, "flinkgate-scheduler");

    // The README's steps, in its order.
    c.must(&["apply", "-k", repo("deploy").to_str().unwrap()], None);
    let certs = c.dir.join("in-cluster-certs");
    flinkgate_cli(&["certs", "--out-dir", certs.to_str().unwrap()]);
    let file = |n: &str| certs.join(n).to_str().unwrap().to_owned();
    c.must(
        &[
            "-n",
            SYSTEM,
            "create",
            "secret",
            "tls",
            "flinkgate-tls",
            "--cert",
            &file("tls.crt"),
            "--key",
            &file("tls.key"),
        ],
        None,
    );
    // deploy/scheduler/README.md: the scheduler reads the CA from the Secret.
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    let patch = serde_json::json!({"data": {"ca.crt": base64_encode(&ca)}}).to_string();
    c.must(
        &[
            "-n",
            SYSTEM,
            "patch",
            "secret",
            "flinkgate-tls",
            "--type",
            "merge",
            "-p",
            &patch,
        ],
        None,
    );
    // The test's policy (TaskManagers to the `flinkgate` profile, labelled),
    // replacing the builtin one `apply -k` wrote; watched live.
    c.must(
        &["apply", "-f", "-"],
        Some(&policy_configmap(&pod_policy())),
    );
    c.must(
        &["apply", "-k", repo("deploy/scheduler").to_str().unwrap()],
        None,
    );
    rolled_out(c, "flinkgate");
    rolled_out(c, "flinkgate-scheduler");
    service_routed("flinkgate", 2);
    flinkgate_cli(&[
        "register",
        "--kubeconfig",
        kubeconfig,
        "--service",
        "flinkgate-system/flinkgate",
        "--ca-file",
        &file("ca.crt"),
    ]);
    eprintln!(
        "real-nodes: flinkgate in the cluster (2 replicas, scheduler, webhooks registered) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The webhook in the cluster enforces and fixes Flink resources through the
/// Service; the controller in a pod runs a job whose TaskManagers the
/// in-cluster scheduler places with the in-cluster extender; deleting a
/// replica, the leader among them, and a rolling restart under an apply
/// loop fail no apply.
pub fn flinkgate_in_the_cluster(c: &mut Cluster) {
    install(c);
    let replicas = flinkgate_pods(c);
    assert_eq!(replicas.len(), 2, "two replicas: {replicas:?}");
    for p in &replicas {
        let pod = c.get_json("pod", SYSTEM, p);
        let sc = &pod["spec"]["containers"][0]["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{p}");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["ready"], true,
            "{p} ready"
        );
        assert_eq!(
            pod_get(c, p, "/readyz").as_deref().map(str::trim),
            Some("ok"),
            "{p} /readyz"
        );
    }
    wait(
        "a replica leads the controllers",
        Duration::from_secs(60),
        || replicas.contains(&lease_holder(c)),
    );

    // Enforced through the Service: a denial with flinkgate's message.
    let reviews_before = metric_sum(c, "flinkgate_admission_requests_total");
    let mut bad = loop_deployment(0, 0).replace("name: loop-0", "name: too-wide");
    bad = bad.replace("parallelism: 1", "parallelism: 100000");
    let (ok, _, err) = c.apply(&bad, &[]);
    assert!(!ok, "a policy violation is denied");
    assert!(
        err.contains("flinkgate") && err.contains("parallelism"),
        "the denial names the rule: {err}"
    );
    // A job: the controller in a pod launches it, Flink's TaskManager pods
    // are admitted and placed by the in-cluster scheduler and extender.
    let filters_before = metric_sum(c, "flinkgate_scheduler_extender_requests_total");
    let name = "in-cluster";
    let t = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(&application(name, "running", &data_dir(c), 1)),
    );
    let uid = c.get_json("flinkdeployment", NAMESPACE, name)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let jid = flinkgate::controller::job_id::job_id(&uid, 1);
    await_running(c, name, &jid, Duration::from_secs(240));
    eprintln!(
        "real-nodes: in-cluster controller: apply -> RUNNING and STABLE in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let tms = pods(c, &format!("app={name},component=taskmanager"));
    assert!(!tms.is_empty(), "TaskManager pods");
    for tm in &tms {
        assert_eq!(tm["spec"]["schedulerName"], "flinkgate");
        assert_eq!(tm["metadata"]["labels"]["flinkgate.io/e2e"], "real-nodes");
        assert!(!str_at(tm, "/spec/nodeName").is_empty(), "placed");
    }
    let filters = metric_sum(c, "flinkgate_scheduler_extender_requests_total");
    assert!(
        filters > filters_before,
        "the in-cluster kube-scheduler called the in-cluster extender ({filters_before} -> {filters})"
    );
    assert!(
        metric_sum(c, "flinkgate_admission_requests_total") > reviews_before,
        "the reviews reached the in-cluster replicas"
    );
    let _ = c.kubectl(
        &[
            "delete",
            "flinkdeployment",
            "-n",
            NAMESPACE,
            name,
            "--wait=false",
        ],
        None,
    );

    // Faults under an apply loop.
    let lease = LeaseWatch::start(c);
    let applies = ApplyLoop::start(c);
    wait("the apply loop runs", Duration::from_secs(60), || {
        applies.snapshot().0 >= 5
    });

    // 1. The leader's pod is deleted (a drain, an eviction).
    let leader = lease_holder(c);
    let t = Instant::now();
    c.must(
        &["delete", "pod", "-n", SYSTEM, &leader, "--wait=false"],
        None,
    );
    wait(
        "another replica takes the lease",
        Duration::from_secs(60),
        || {
            let h = lease_holder(c);
            !h.is_empty() && h != leader
        },
    );
    let handover_delete = lease.handovers_since(t);
    rolled_out(c, "flinkgate");
    wait("two replicas serve again", Duration::from_secs(120), || {
        flinkgate_pods(c).len() == 2
    });
    let after_delete = applies.snapshot();

    // 2. A rolling restart.
    let t = Instant::now();
    c.must(
        &["rollout", "restart", "-n", SYSTEM, "deployment/flinkgate"],
        None,
    );
    rolled_out(c, "flinkgate");
    wait(
        "a new replica leads after the restart",
        Duration::from_secs(60),
        || flinkgate_pods(c).contains(&lease_holder(c)),
    );
    let handover_restart = lease.handovers_since(t);
    // A few more applies against the new replicas.
    let settled = applies.snapshot().0;
    wait(
        "applies go on after the restart",
        Duration::from_secs(60),
        || applies.snapshot().0 >= settled + 5,
    );
    let (ok, failed) = applies.finish();
    eprintln!(
        "real-nodes: apply loop: {ok} applies succeeded, {} failed ({} ok before the restart); \
         seconds without a leader: {handover_delete:.2?} on deleting the leader's pod, \
         {handover_restart:.2?} in the rolling restart; holders: {:?}",
        failed.len(),
        after_delete.0,
        lease.changes()
    );
    assert!(
        failed.is_empty(),
        "no apply fails while a replica is deleted or restarted: {failed:#?}"
    );
    assert_eq!(
        handover_delete.len(),
        1,
        "one hand-over on deleting the leader's pod"
    );
    assert!(
        !handover_restart.is_empty(),
        "the leader moves in a rolling restart"
    );
    for gap in handover_delete.iter().chain(&handover_restart) {
        // A released lease is taken at once; an expired one (a leader that
        // died without releasing) would wait out its duration.
        assert!(
            *gap < 5.0,
            "a standby takes the released lease at once: {gap:.2} s"
        );
    }
    sigkill_the_leader(c);
    helm_install(c);
    let _ = c.kubectl(
        &[
            "delete",
            "flinkdeployment",
            "-n",
            NAMESPACE,
            "loop-0",
            "loop-1",
            "loop-2",
            "loop-3",
            "--ignore-not-found",
            "--wait=false",
        ],
        None,
    );
}

/// The Helm chart, installed once in place of the kustomize objects (the
/// CRDs, the namespace and its Secret stay): the webhook enforces again.
fn helm_install(c: &Cluster) {
    let helm = built_tool("helm").expect("helm: hack/build builds it");
    let t = Instant::now();
    let rendered = c.must(&["kustomize", repo("deploy").to_str().unwrap()], None);
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&rendered) {
        let v = <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap();
        if !matches!(
            v["kind"].as_str(),
            Some("Namespace" | "CustomResourceDefinition")
        ) {
            objects.push(v);
        }
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    c.must(
        &["delete", "--wait=true", "-f", "-"],
        Some(&list.to_string()),
    );
    let ca = std::fs::read(c.dir.join("in-cluster-certs/ca.crt")).unwrap();
    let out = Command::new(&helm)
        .args([
            "install",
            "flinkgate",
            repo("deploy/helm/flinkgate").to_str().unwrap(),
        ])
        .args(["--namespace", SYSTEM, "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(["--set", &format!("webhook.caBundle={}", base64_encode(&ca))])
        .args(["--wait", "--timeout", "180s"])
        .output()
        .expect("helm install");
    assert!(
        out.status.success(),
        "helm install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    rolled_out(c, "flinkgate");
    service_routed("flinkgate", 2);
    let deployment = c.get_json("deployment", SYSTEM, "flinkgate");
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/instance"], "flinkgate",
        "the Deployment is Helm's"
    );
    let bad = loop_deployment(0, 0)
        .replace("name: loop-0", "name: too-wide-helm")
        .replace("parallelism: 1", "parallelism: 100000");
    let (ok, _, err) = c.apply(&bad, &[]);
    assert!(
        !ok && err.contains("parallelism"),
        "the Helm-installed webhook denies: {err}"
    );
    let (ok, _, err) = c.apply(&loop_deployment(0, 1_000_000), &[]);
    assert!(ok, "and admits: {err}");
    eprintln!(
        "real-nodes: helm install in place of apply -k: serving and enforcing in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// The host pid of the `flinkgate` process in `pod` (its cgroup path names
/// the pod's UID).
fn container_pid(c: &Cluster, pod: &str) -> Option<String> {
    let uid = c.get_json("pod", SYSTEM, pod)["metadata"]["uid"]
        .as_str()?
        .to_owned();
    let marker = format!("pod{uid}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().into_owned();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        (cgroup.contains(&marker) && cmdline.starts_with(b"/flinkgate\0")).then_some(pid)
    })
}

/// A crash, not a drain: the leader's process is SIGKILLed, so it neither
/// releases the lease nor leaves the Service first. Measured, not held to
/// zero: until the kubelet marks the pod unready, kube-proxy still sends
/// some connections to it, and kube-apiserver does not retry a webhook call.
/// The kubelet restarts the container at once; its replica keeps its
/// identity (the pod name), so it may take its own lease back.
fn sigkill_the_leader(c: &Cluster) {
    let lease = LeaseWatch::start(c);
    let applies = ApplyLoop::start(c);
    wait("the apply loop runs", Duration::from_secs(60), || {
        applies.snapshot().0 >= 5
    });
    let leader = lease_holder(c);
    let pid = container_pid(c, &leader).expect("the leader's flinkgate process");
    let t = Instant::now();
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    wait(
        "a replica renews the lease after the kill",
        Duration::from_secs(60),
        || lease.renewal_gap_across(t).is_some(),
    );
    let (gap, new_leader) = lease
        .renewal_gap_across(t)
        .expect("a renewal after the kill");
    wait(
        "the killed container is restarted and both replicas are ready",
        Duration::from_secs(120),
        || {
            let pod = c.get_json("pod", SYSTEM, &leader);
            pod["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
                && pod["status"]["containerStatuses"][0]["ready"] == true
        },
    );
    let recovered = t.elapsed().as_secs_f64();
    let settled = applies.snapshot().0;
    wait("applies go on", Duration::from_secs(60), || {
        applies.snapshot().0 >= settled + 5
    });
    let (ok, failed) = applies.finish();
    eprintln!(
        "real-nodes: SIGKILL of the leader's flinkgate: {ok} applies succeeded, {} failed; \
         the lease went unrenewed for {gap:.1} s across the kill, then {new_leader} held it \
         (the killed pod: {leader}); the container was back and ready after {recovered:.1} s",
        failed.len(),
    );
    for message in &failed {
        assert!(
            message.contains("failed calling webhook") && message.contains("flinkgate.io"),
            "a failed apply says which webhook failed: {message}"
        );
    }
}
