//! End to end on a real control plane: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok from `hack`, with
//! flinkgate registered as the cluster admin would. Driven through kubectl,
//! as a user would. One cluster for all scenarios; it is torn down even when
//! a scenario fails (and `make test` runs `cluster down` as a last resort).
//!
//! Without the built control plane this skips, except under `CI=true`,
//! where it fails.

mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod controller;
mod jar_server;
mod manifests;
mod no_data;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{Cluster, repo, wait};
use flinkgate::collector::fake_jobmanager::FakeJobManager;
use manifests::*;
use serde_json::Value;

// --- scenarios ---------------------------------------------------------------

fn valid_deployment_is_stored_with_defaults(c: &Cluster) {
    let (ok, out, err) = c.apply(&bare_deployment("bare", "e2e"), &[]);
    assert!(ok, "apply failed: {err}");
    assert!(
        out.contains("flinkdeployment.flink.apache.org/bare created"),
        "{out}"
    );
    let stored = c.get_json("flinkdeployment", "e2e", "bare");
    let spec = &stored["spec"];
    assert_eq!(
        spec["flinkConfiguration"]["restart-strategy.type"], "exponential-delay",
        "{stored}"
    );
    assert_eq!(
        spec["flinkConfiguration"]["taskmanager.numberOfTaskSlots"],
        "2"
    );
    assert_eq!(spec["job"]["parallelism"], 2);
    assert_eq!(spec["job"]["upgradeMode"], "stateless");
    assert_eq!(spec["jobManager"]["resource"]["memory"], "2048m");
    assert_eq!(
        stored["metadata"]["labels"]["flinkgate.io/admitted"],
        "true"
    );
}

fn invalid_deployment_is_refused_with_path_and_fix(c: &Cluster) {
    let (ok, _, err) = c.apply(&deployment("zero", "e2e", 0), &[]);
    assert!(!ok, "an invalid FlinkDeployment was accepted");
    assert!(err.contains("denied the request"), "{err}");
    assert!(
        err.contains(
            "spec.job.parallelism: 0 is below the minimum 1; set spec.job.parallelism to at least 1"
        ),
        "kubectl shows the path and the fix: {err}"
    );
    let (found, _, _) = c.kubectl(&["get", "flinkdeployment", "-n", "e2e", "zero"], None);
    assert!(!found, "nothing is stored");
}

/// The webhook's own FlinkDeployment cache answers the session job rules
/// that need the cluster: a job aimed at an application is refused.
fn session_job_on_an_application_is_refused_from_the_cache(c: &Cluster) {
    let (ok, _, err) = c.apply(&deployment("app-target", "e2e", 2), &[]);
    assert!(ok, "{err}");
    let job = r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: misplaced
  namespace: e2e
spec:
  deploymentName: app-target
  job:
    jarURI: https://repo.example.com/jobs/job.jar
    parallelism: 1
"#;
    // The watch delivers the new FlinkDeployment within moments.
    let mut last = String::new();
    wait("the session job refused", Duration::from_secs(20), || {
        let (ok, _, err) = c.apply(job, &["--dry-run=server"]);
        last = err;
        !ok && last.contains("is an application cluster")
    });
    assert!(last.contains("spec.deploymentName"), "{last}");
    c.must(
        &[
            "delete",
            "flinkdeployment",
            "-n",
            "e2e",
            "app-target",
            "--wait=false",
        ],
        None,
    );
}

fn policy_edits_apply_live_and_broken_ones_are_refused(c: &Cluster) {
    c.set_policy("limits: {maxParallelism: 4}\n");
    let (ok, _, err) = c.apply(&deployment("eight", "e2e", 8), &[]);
    assert!(
        !ok && err.contains("above the maximum 4"),
        "the new policy applies without a restart: {err}"
    );

    let rejected = c
        .metric("flinkgate_policy_reload_errors_total")
        .unwrap_or(0.0);
    c.set_policy("limits: {maxParalelism: 100}\n");
    assert_eq!(
        c.metric("flinkgate_policy_reload_errors_total")
            .unwrap_or(0.0),
        rejected + 1.0
    );
    let (ok, _, err) = c.apply(&deployment("eight", "e2e", 8), &[]);
    assert!(
        !ok && err.contains("above the maximum 4"),
        "the last good policy stays in force: {err}"
    );
    wait(
        "a PolicyRejected event on the ConfigMap",
        Duration::from_secs(15),
        || {
            let (_, out, _) = c.kubectl(
                &[
                    "get",
                    "events",
                    "-n",
                    "flinkgate-system",
                    "--field-selector",
                    "involvedObject.name=flinkgate-policy",
                    "-o",
                    "json",
                ],
                None,
            );
            out.contains("PolicyRejected") && out.contains("maxParalelism")
        },
    );
    c.default_policy();
    let (ok, _, err) = c.apply(&deployment("eight", "e2e", 8), &[]);
    assert!(ok, "the default policy is back: {err}");
}

fn warn_mode_prints_warnings_and_creates(c: &Cluster) {
    let policy = format!(
        "{}\nnamespaces:\n  e2e-warn:\n    mode: warn\n",
        flinkgate::policy::BUILTIN_YAML
    );
    c.set_policy(&policy);
    let (ok, out, err) = c.apply(&deployment("warned", "e2e-warn", 0), &[]);
    c.default_policy();
    assert!(ok, "warn mode allows: {err}");
    assert!(out.contains("created"), "{out}");
    assert!(
        err.contains("Warning: flinkgate: spec.job.parallelism"),
        "kubectl prints the warning: {err}"
    );
}

fn flink_pods_are_mutated_and_validated_plain_pods_untouched(c: &Cluster) {
    let policy = flinkgate::policy::BUILTIN_YAML.replace(
            "pods:\n  taskManager:\n",
            "pods:\n  labels: {team: data}\n  taskManager:\n    restartPolicy: Never\n    schedulerName: flinkgate-scheduler\n"
        );
    assert_ne!(
        policy,
        flinkgate::policy::BUILTIN_YAML,
        "the policy edit applies"
    );
    c.set_policy(&policy);
    let (ok, _, err) = c.apply(&taskmanager_pod("tm-1", "e2e", ""), &[]);
    assert!(ok, "{err}");
    let pod = c.get_json("pod", "e2e", "tm-1");
    assert_eq!(pod["spec"]["restartPolicy"], "Never", "{pod}");
    assert_eq!(pod["spec"]["schedulerName"], "flinkgate-scheduler");
    assert_eq!(pod["metadata"]["labels"]["team"], "data");
    assert_eq!(pod["metadata"]["labels"]["flinkgate.io/admitted"], "true");
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "2Gi"
    );

    let (ok, _, err) = c.apply(&taskmanager_pod("tm-big", "e2e", "64"), &[]);
    assert!(
        !ok && err.contains("spec.containers[flink-main-container].resources.limits.cpu"),
        "validated: {err}"
    );

    let (ok, _, err) = c.apply(&plain_pod("web", "e2e"), &[]);
    c.default_policy();
    assert!(ok, "{err}");
    let web = c.get_json("pod", "e2e", "web");
    assert_eq!(web["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(web["spec"]["restartPolicy"], "Always");
    assert!(
        web["metadata"]["labels"]
            .get("flinkgate.io/admitted")
            .is_none(),
        "{web}"
    );
    // kube-scheduler and kwok run it like any other pod.
    wait(
        "the plain pod runs on a kwok node",
        Duration::from_secs(30),
        || c.get_json("pod", "e2e", "web")["status"]["phase"] == "Running",
    );
}

fn dry_run_gets_the_same_verdict_and_stores_nothing(c: &Cluster) {
    let (ok, _, err) = c.apply(&deployment("dry-bad", "e2e", 0), &["--dry-run=server"]);
    assert!(
        !ok && err.contains("spec.job.parallelism: 0 is below the minimum 1"),
        "{err}"
    );
    let (ok, out, err) = c.apply(
        &bare_deployment("dry-good", "e2e"),
        &["--dry-run=server", "-o", "json"],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["spec"]["job"]["parallelism"], 2,
        "dry run shows the mutation too"
    );
    let (found, _, _) = c.kubectl(&["get", "flinkdeployment", "-n", "e2e", "dry-good"], None);
    assert!(!found, "a dry run stores nothing");
}

fn multi_document_apply(c: &Cluster) {
    let (ok, out, err) = c.apply(&session_cluster_and_job("e2e"), &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("flinkdeployment.flink.apache.org/session created"),
        "{out}"
    );
    assert!(
        out.contains("flinksessionjob.flink.apache.org/top-speed created"),
        "{out}"
    );
    let job = c.get_json("flinksessionjob", "e2e", "top-speed");
    assert_eq!(job["metadata"]["labels"]["target.session"], "session");
}

/// A field of the leader Lease, e.g. `holderIdentity` or `renewTime`.
fn lease_field(c: &Cluster, field: &str) -> String {
    c.must(
        &[
            "get",
            "lease",
            "-n",
            "flinkgate-system",
            "flinkgate-leader",
            "-o",
            &format!("jsonpath={{.spec.{field}}}"),
        ],
        None,
    )
}

fn lease_holder(c: &Cluster) -> String {
    lease_field(c, "holderIdentity")
}

fn killed_flinkgate_refuses_then_recovers(c: &mut Cluster) {
    // A second replica (serving on another port) joins the election first;
    // while the first lives, it must not take the lease.
    let mut replica = c.spawn_flinkgate(
        "flinkgate-replica-2",
        "127.0.0.1:0",
        &["--scores-configmap", "flinkgate-system/flinkgate-scores"],
        &[("POD_NAME", "replica-2")],
    );
    let first = lease_holder(c);
    assert!(
        !first.is_empty() && first != "replica-2",
        "the first replica leads: {first:?}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        lease_holder(c),
        first,
        "one writer: the standby does not take a live lease"
    );

    let pidfile = std::fs::read_to_string(c.dir.join("pids/flinkgate.pid")).unwrap();
    let pid = pidfile.split_whitespace().next().unwrap().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let killed = Instant::now();
    wait("flinkgate is gone", Duration::from_secs(5), || {
        c.metrics().is_none()
    });
    // The standby takes over once the lease (10 s) runs out.
    wait(
        "the standby replica takes the lease",
        Duration::from_secs(20),
        || lease_holder(c) == "replica-2",
    );
    eprintln!(
        "e2e: leader hand-over after {:.1}s",
        killed.elapsed().as_secs_f64()
    );
    let _ = replica.kill();
    let _ = replica.wait();
    let (ok, _, err) = c.apply(&bare_deployment("while-down", "e2e"), &[]);
    assert!(!ok, "applies are refused while flinkgate is down");
    assert!(
        err.contains("failed calling webhook") && err.contains("flinkgate.io"),
        "a clear message: {err}"
    );

    restart_main_flinkgate(c, "flinkgate-restarted");
    let (ok, _, err) = c.apply(&bare_deployment("after-restart", "e2e"), &[]);
    assert!(ok, "applies work again after a restart: {err}");
}

/// Starts the main flinkgate again on its port, as it was started
/// (controller-side flags included), and waits until it serves.
fn restart_main_flinkgate(c: &mut Cluster, log_name: &str) {
    let listen = format!("127.0.0.1:{}", c.flinkgate_port());
    let mut args: Vec<&str> = SERVE_ARGS
        .get()
        .map(|a| a.iter().map(String::as_str).collect())
        .unwrap_or_default();
    args.extend(["--reload-interval", "0.2"]);
    let child = c.spawn_flinkgate(log_name, &listen, &args, &[]);
    c.restarted = Some(child);
    wait(
        "the restarted flinkgate is ready",
        Duration::from_secs(20),
        || c.metrics().is_some(),
    );
}

/// The main flinkgate's pid: the restarted child, else the one the
/// cluster script started.
fn main_flinkgate_pid(c: &Cluster) -> String {
    match &c.restarted {
        Some(child) => child.id().to_string(),
        None => std::fs::read_to_string(c.dir.join("pids/flinkgate.pid"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string(),
    }
}

/// SIGTERM on the leader: it drains, stops its controllers, releases the
/// Lease and exits 0; a standby takes the Lease at once instead of after
/// the lease duration (10 s). Both ways: the main replica hands over to a
/// standby, then the standby hands back.
fn sigterm_hands_the_lease_over_at_once(c: &mut Cluster) {
    wait("the main flinkgate leads", Duration::from_secs(30), || {
        !lease_holder(c).is_empty() && !lease_holder(c).starts_with("replica-")
    });
    let mut standby = c.spawn_flinkgate(
        "flinkgate-replica-3",
        "127.0.0.1:0",
        &["--scores-configmap", "flinkgate-system/flinkgate-scores"],
        &[("POD_NAME", "replica-3")],
    );
    // Let the standby start and watch the Lease.
    std::thread::sleep(Duration::from_secs(3));
    assert!(standby.try_wait().unwrap().is_none(), "the standby runs");

    let pid = main_flinkgate_pid(c);
    let t = Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    wait(
        "the standby takes the released lease",
        Duration::from_secs(20),
        || lease_holder(c) == "replica-3",
    );
    let first = t.elapsed().as_secs_f64();
    if let Some(mut child) = c.restarted.take() {
        let status = child.wait().unwrap();
        assert!(status.success(), "the leader exits 0 on SIGTERM: {status}");
    }
    let log_name = if c.dir.join("logs/flinkgate-restarted.log").exists() {
        "flinkgate-restarted"
    } else {
        "flinkgate"
    };
    let log =
        std::fs::read_to_string(c.dir.join(format!("logs/{log_name}.log"))).unwrap_or_default();
    assert!(
        log.contains("released the lease") && log.contains("controllers stopped"),
        "the leader stopped its controllers, then released the lease: {}",
        log.lines().rev().take(15).collect::<Vec<_>>().join("\n")
    );

    restart_main_flinkgate(c, "flinkgate-restarted-2");
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    Command::new("kill")
        .args(["-TERM", &standby.id().to_string()])
        .status()
        .unwrap();
    wait(
        "the main flinkgate takes the lease back",
        Duration::from_secs(20),
        || {
            let h = lease_holder(c);
            !h.is_empty() && h != "replica-3"
        },
    );
    let second = t.elapsed().as_secs_f64();
    let status = standby.wait().unwrap();
    assert!(status.success(), "the standby exits 0 on SIGTERM: {status}");
    eprintln!("e2e: SIGTERM leader hand-over in {first:.2}s and {second:.2}s (lease 10 s)");
    // Released, not expired: an expiry takes the lease duration (10 s).
    for (took, stopping, taking) in [
        (first, log_name, "flinkgate-replica-3"),
        (second, "flinkgate-replica-3", "flinkgate-restarted-2"),
    ] {
        if took >= 5.0 {
            let tail = |name: &str| {
                let log = std::fs::read_to_string(c.dir.join(format!("logs/{name}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            };
            panic!(
                "the lease was released, not left to expire: {took:.1}s\n\
                 --- {stopping} (stopping) ---\n{}\n--- {taking} (taking over) ---\n{}",
                tail(stopping),
                tail(taking)
            );
        }
    }
}

fn rotation_while_applying_fails_nothing(c: &Cluster) {
    let certs = c.dir.join("flinkgate-certs");
    let ca_key = std::fs::read_to_string(certs.join("ca.key")).unwrap();
    let reloads = c
        .metric("flinkgate_tls_certificate_reloads_total")
        .unwrap_or(0.0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kubectl = c.kubectl_runner();
    let stop2 = stop.clone();
    let applier = std::thread::spawn(move || {
        let mut failures = Vec::new();
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let manifest = bare_deployment(&format!("rot-{n}"), "e2e");
            let (ok, _, err) = kubectl.run(&["apply", "-f", "-"], Some(&manifest));
            if !ok {
                failures.push(err);
            }
            n += 1;
        }
        (n, failures)
    });
    std::thread::sleep(Duration::from_secs(1));
    for round in 0..3 {
        let (cert, key) = flinkgate::certs::issue(
            &ca_key,
            &["localhost".into()],
            &["127.0.0.1".parse().unwrap()],
            1,
        )
        .unwrap();
        // As a Secret volume does: write beside, then swap in.
        for (name, content) in [("tls.key", key), ("tls.crt", cert)] {
            let tmp = certs.join(format!("{name}.new"));
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, certs.join(name)).unwrap();
        }
        wait(
            &format!("rotation {round} is picked up"),
            Duration::from_secs(15),
            || {
                c.metric("flinkgate_tls_certificate_reloads_total")
                    .unwrap_or(0.0)
                    > reloads + round as f64
            },
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (n, failures) = applier.join().unwrap();
    assert!(n >= 3, "applies ran during the rotation ({n})");
    assert!(
        failures.is_empty(),
        "{} of {n} applies failed during rotation: {failures:?}",
        failures.len()
    );
}

fn register_is_idempotent_and_uninstall_removes_exactly_it(c: &mut Cluster) {
    let rv = |c: &Cluster| {
        let v = c.must(
            &[
                "get",
                "validatingwebhookconfiguration",
                "flinkgate",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
            None,
        );
        let m = c.must(
            &[
                "get",
                "mutatingwebhookconfiguration",
                "flinkgate",
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
            None,
        );
        (v, m)
    };
    let register = |c: &Cluster, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flinkgate"))
            .arg("register")
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .arg("--ca-file")
            .arg(c.dir.join("flinkgate-certs/ca.crt"))
            .args([
                "--url",
                &format!("https://127.0.0.1:{}", c.flinkgate_port()),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "register {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = rv(c);
    register(c, &[]);
    assert_eq!(rv(c), before, "a second register changes nothing");

    // An unrelated configuration must survive the uninstall.
    c.must(
        &["apply", "-f", "-"],
        Some("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: someone-else\nwebhooks: []\n"),
    );
    let out = register(c, &["--uninstall"]);
    assert!(
        out.contains("deleted ValidatingWebhookConfiguration/flinkgate"),
        "{out}"
    );
    let (v, _, _) = c.kubectl(
        &["get", "validatingwebhookconfiguration", "flinkgate"],
        None,
    );
    let (m, _, _) = c.kubectl(&["get", "mutatingwebhookconfiguration", "flinkgate"], None);
    assert!(!v && !m, "both of flinkgate's configurations are gone");
    c.must(
        &["get", "validatingwebhookconfiguration", "someone-else"],
        None,
    );
    let (ok, _, err) = c.apply(&deployment("unchecked", "e2e", 0), &[]);
    assert!(ok, "without the webhook nothing is enforced: {err}");

    register(c, &[]);
    let (ok, _, err) = c.apply(&deployment("checked-again", "e2e", 0), &[]);
    assert!(
        !ok && err.contains("spec.job.parallelism"),
        "registered again, enforced again: {err}"
    );
    c.must(
        &["delete", "validatingwebhookconfiguration", "someone-else"],
        None,
    );
}

/// TaskManager pods pinned to chosen kwok nodes, as a Flink cluster's would be.
fn pinned_taskmanager(name: &str, node: &str) -> String {
    taskmanager_pod(name, "e2e", "").replace("spec:\n", &format!("spec:\n  nodeName: {node}\n"))
}

/// The fake JobManager reports subtasks on tm-a (fast), tm-b, tm-c (slow);
/// the collector maps them to kwok-node-0/1/2 through these pods.
fn placement_follows_measured_performance(c: &mut Cluster) {
    for (tm, node) in [
        ("tm-a", "kwok-node-0"),
        ("tm-b", "kwok-node-1"),
        ("tm-c", "kwok-node-2"),
    ] {
        c.must(&["apply", "-f", "-"], Some(&pinned_taskmanager(tm, node)));
    }
    let policy = flinkgate::policy::BUILTIN_YAML.replace(
        "pods:\n  taskManager:\n",
        "scheduling: {minSamples: 4, collectionIntervalSeconds: 1}\npods:\n  taskManager:\n    schedulerName: flinkgate\n",
    );
    c.set_policy(&policy);
    let perf = |c: &Cluster, node: &str| {
        c.metric(&format!(
            "flinkgate_node_task_performance{{node=\"{node}\"}}"
        ))
    };
    let table = || c.scores_table();
    // Two cycles: enough samples (minSamples 4, 4 per cycle) for the floor to apply.
    wait(
        "scores for the three nodes are published",
        Duration::from_secs(60),
        || {
            perf(c, "kwok-node-2").is_some_and(|f| f < 0.6)
                && perf(c, "kwok-node-0").is_some_and(|f| f > 1.2)
                && table()["nodes"]["kwok-node-2"]["weight"]
                    .as_f64()
                    .is_some_and(|w| w >= 6.0)
        },
    );
    let table = table();
    assert!(
        table["nodes"]["kwok-node-2"]["mean"].as_f64().unwrap()
            < table["nodes"]["kwok-node-1"]["mean"].as_f64().unwrap()
    );
    assert!(
        table["nodes"]["kwok-node-1"]["mean"].as_f64().unwrap()
            < table["nodes"]["kwok-node-0"]["mean"].as_f64().unwrap()
    );
    assert!(
        c.metric("flinkgate_job_task_performance{namespace=\"e2e\",name=\"top-speed\"}")
            .is_some(),
        "job-level F(x) exported"
    );

    for i in 0..3 {
        let name = format!("tm-new-{i}");
        let (ok, _, err) = c.apply(&taskmanager_pod(&name, "e2e", ""), &[]);
        assert!(ok, "{err}");
        wait(&format!("{name} is bound"), Duration::from_secs(30), || {
            c.get_json("pod", "e2e", &name)["spec"]["nodeName"].is_string()
        });
        let pod = c.get_json("pod", "e2e", &name);
        assert_eq!(
            pod["spec"]["schedulerName"], "flinkgate",
            "the webhook routed it"
        );
        assert_eq!(
            pod["spec"]["nodeName"], "kwok-node-0",
            "bound to the node with the best F_n: {pod}"
        );
    }
    let filtered = c.metrics().unwrap_or_default();
    assert!(
        filtered
            .contains("flinkgate_scheduler_extender_requests_total{verb=\"filter\",result=\"ok\"}"),
        "the extender was consulted"
    );
    let log = std::fs::read_to_string(c.dir.join("logs/flinkgate.log")).unwrap_or_default();
    assert!(
        log.contains("node kwok-node-2: mean task performance"),
        "kwok-node-2 was filtered with a reason"
    );
    c.default_policy();
}

/// A real Flink session cluster (JVMs from Maven Central jars, hack/flink)
/// whose TaskManagers are named after pods pinned to kwok-node-3..5.
struct RealFlink {
    dir: PathBuf,
    rest: String,
}

impl RealFlink {
    fn up(dir: &Path) -> Result<RealFlink, String> {
        let out = Command::new(repo("hack/flink/flink"))
            .args(["up", "--dir", dir.to_str().unwrap()])
            .args([
                "--taskmanager",
                "flink-tm-a",
                "--taskmanager",
                "flink-tm-b",
                "--taskmanager",
                "flink-tm-c",
            ])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run hack/flink/flink: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rest = stdout
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("FLINK_REST="))
            .map(str::to_string)
            .filter(|_| out.status.success())
            .ok_or_else(|| {
                format!(
                    "flink up failed ({}); logs in {}/logs",
                    out.status,
                    dir.display()
                )
            })?;
        Ok(RealFlink {
            dir: dir.to_path_buf(),
            rest,
        })
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(repo("hack/flink/flink"))
            .args(args)
            .args(["--dir", self.dir.to_str().unwrap()])
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "flink {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RealFlink {
    fn drop(&mut self) {
        let _ = Command::new(repo("hack/flink/flink"))
            .args(["down", "--dir", self.dir.to_str().unwrap()])
            .status();
    }
}

/// Real Flink: StateMachineExample on three TaskManagers, one of them slowed
/// (SIGSTOP/SIGCONT duty cycle); the published scores must rank its node last.
fn real_flink_scores_follow_its_metrics(c: &mut Cluster, flink: &RealFlink) {
    for (tm, node) in [
        ("flink-tm-a", "kwok-node-3"),
        ("flink-tm-b", "kwok-node-4"),
        ("flink-tm-c", "kwok-node-5"),
    ] {
        c.must(&["apply", "-f", "-"], Some(&pinned_taskmanager(tm, node)));
    }
    let policy = flinkgate::policy::BUILTIN_YAML.replace(
        "pods:\n  taskManager:\n",
        "scheduling: {minSamples: 4, collectionIntervalSeconds: 2}\npods:\n  taskManager:\n",
    );
    c.set_policy(&policy);
    let jid = flink.run(&["submit", "--job", "statemachine", "--parallelism", "6"]);
    eprintln!(
        "e2e: real Flink job {} running at {}",
        jid.trim(),
        flink.rest
    );
    flink.run(&[
        "throttle",
        "--taskmanager",
        "flink-tm-c",
        "--run-fraction",
        "0.25",
    ]);
    let perf = |c: &Cluster, node: &str| {
        c.metric(&format!(
            "flinkgate_node_task_performance{{node=\"{node}\"}}"
        ))
    };
    // Flink's per-second rates average over a minute, so the slowdown shows gradually.
    wait(
        "the slowed TaskManager's node ranks last",
        Duration::from_secs(240),
        || match (
            perf(c, "kwok-node-3"),
            perf(c, "kwok-node-4"),
            perf(c, "kwok-node-5"),
        ) {
            (Some(a), Some(b), Some(slow)) => slow < 0.9 && slow < a.min(b),
            _ => false,
        },
    );
    assert!(
        c.metric("flinkgate_job_task_performance{namespace=\"e2e\",name=\"statemachine\"}")
            .is_some()
    );
    eprintln!(
        "e2e: real Flink F_n: kwok-node-3 {:.2}, kwok-node-4 {:.2}, kwok-node-5 (throttled) {:.2}",
        perf(c, "kwok-node-3").unwrap_or(f64::NAN),
        perf(c, "kwok-node-4").unwrap_or(f64::NAN),
        perf(c, "kwok-node-5").unwrap_or(f64::NAN)
    );
    c.default_policy();
    // Free the two cores and the slots for the scenarios after this one; the
    // session cluster stays up for the controller's.
    flink.run(&["throttle", "--taskmanager", "flink-tm-c", "--off"]);
    let _ = Command::new("curl")
        .args(["-sf", "-X", "PATCH"])
        .arg(format!("{}/jobs/{}?mode=cancel", flink.rest, jid.trim()))
        .status();
}

// --- runner ------------------------------------------------------------------

type Scenario = (&'static str, fn(&mut Cluster));

/// The real Flink cluster, for the scenarios that need it (scenarios are plain fns).
static REAL_FLINK: std::sync::OnceLock<RealFlink> = std::sync::OnceLock::new();
/// The HTTPS server of the session job's jar.
static JAR_SERVER: std::sync::OnceLock<controller::JarServer> = std::sync::OnceLock::new();
/// The controller-side flags of the flinkgate the cluster started with.
static SERVE_ARGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

fn main() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let kubectl = cluster::built_kubectl();
    let Some(kubectl) = kubectl else {
        if ci {
            eprintln!(
                "FAIL: the local control plane is not built (run hack/build); CI=true forbids skipping"
            );
            std::process::exit(1);
        }
        eprintln!(
            "SKIP e2e: the local control plane is not built; `make test` builds it (hack/build)"
        );
        return;
    };
    let dir = std::env::var("FLINKGATE_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("flinkgate-e2e-{}", std::process::id()))
        });
    let started = Instant::now();
    // A fake JobManager the collector polls (a controller-side flag, as a
    // JobManager outside the cluster would be).
    let fake_runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (_fake_addr, fake) = fake_runtime
        .block_on(
            FakeJobManager::new(1, 2, 6)
                .taskmanager(|s| Some(["tm-a", "tm-b", "tm-c"][s.subtask % 3].to_string()))
                .metrics(|s| {
                    // Same traffic; tm-c needs four times tm-a's busy time.
                    let busy = [250.0, 500.0, 1000.0][s.subtask % 3];
                    FakeJobManager::rates(100.0, 100.0, busy)
                })
                .start(),
        )
        .expect("fake JobManager");
    // Real Flink starts beside the control plane (both take ~10 s).
    let flink_dir = PathBuf::from(format!("{}-flink", dir.display()));
    let flink_thread = {
        let flink_dir = flink_dir.clone();
        std::thread::spawn(move || RealFlink::up(&flink_dir))
    };
    let flink = match flink_thread.join().expect("flink thread") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("FAIL: real Flink did not start: {e}");
            std::process::exit(1);
        }
    };
    // The session job's jar, over HTTPS from this test.
    let jar = match controller::JarServer::start(
        &PathBuf::from(format!("{}-jars", dir.display())),
        &controller::example_jar(),
    ) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("FAIL: cannot serve the example jar: {e}");
            std::process::exit(1);
        }
    };
    let serve_args = format!(
        "--jobmanager-url e2e/top-speed={},e2e/statemachine={},{}/{}={} --jar-ca-file {} --jar-allow-private-cidrs {}",
        fake.url(),
        flink.rest,
        controller::NAMESPACE,
        controller::SESSION,
        flink.rest,
        jar.ca_file.display(),
        jar_server::JarServer::ALLOW_CIDRS,
    );
    let mut cluster = match Cluster::up(&dir, kubectl, &["--nodes", "6"], &serve_args) {
        Ok(c) => c,
        Err(e) => {
            drop(flink);
            eprintln!("FAIL: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "e2e: cluster with flinkgate up in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let _ = JAR_SERVER.set(jar);
    let mut spawn_args: Vec<String> = serve_args.split_whitespace().map(String::from).collect();
    spawn_args.extend([
        "--scores-configmap".into(),
        "flinkgate-system/flinkgate-scores".into(),
    ]);
    let _ = SERVE_ARGS.set(spawn_args);
    let _ = REAL_FLINK.set(flink);
    for ns in ["e2e", "e2e-warn"] {
        cluster.must(&["create", "namespace", ns], None);
    }
    // The native-mode JobManagers' ServiceAccount, as users install it (early:
    // the ServiceAccount admission plugin's cache lags a fresh one).
    cluster.must(
        &[
            "apply",
            "-n",
            "e2e",
            "-k",
            repo("deploy/flink-rbac").to_str().unwrap(),
        ],
        None,
    );
    let scenarios: Vec<Scenario> = vec![
        (
            "valid FlinkDeployment is stored with the injected defaults",
            |c| valid_deployment_is_stored_with_defaults(c),
        ),
        (
            "invalid FlinkDeployment is refused with the field path and the fix",
            |c| invalid_deployment_is_refused_with_path_and_fix(c),
        ),
        (
            "a session job aimed at an application is refused, from the webhook's FlinkDeployment cache",
            |c| session_job_on_an_application_is_refused_from_the_cache(c),
        ),
        (
            "policy ConfigMap edits apply live; a broken policy is refused",
            |c| policy_edits_apply_live_and_broken_ones_are_refused(c),
        ),
        ("warn mode prints warnings and creates the object", |c| {
            warn_mode_prints_warnings_and_creates(c)
        }),
        (
            "Flink pods are mutated and validated; plain pods untouched",
            |c| flink_pods_are_mutated_and_validated_plain_pods_untouched(c),
        ),
        (
            "--dry-run=server gets the same verdict and stores nothing",
            |c| dry_run_gets_the_same_verdict_and_stores_nothing(c),
        ),
        (
            "a FlinkDeployment and FlinkSessionJob in one multi-document apply",
            |c| multi_document_apply(c),
        ),
        (
            "certificate rotation while applies run fails nothing",
            |c| rotation_while_applying_fails_nothing(c),
        ),
        (
            "placement follows measured performance (extender + collector)",
            placement_follows_measured_performance,
        ),
        ("real Flink: published scores follow its metrics", |c| {
            real_flink_scores_follow_its_metrics(c, REAL_FLINK.get().expect("real Flink"))
        }),
        (
            "controller: session cluster, session job, suspend/resume with savepoint, delete",
            |c| {
                let flink = REAL_FLINK.get().expect("real Flink");
                let jar = JAR_SERVER.get().expect("jar server");
                controller::session_cluster_and_job_lifecycle(c, &flink.rest, &jar.url)
            },
        ),
        (
            "controller: application cluster objects, suspend to zero, resume under the next job id",
            |c| controller::application_cluster_objects_suspend_resume(c),
        ),
        (
            "with no data, placement is what kube-scheduler does without the extender",
            |c| no_data::placement_without_data_is_kube_schedulers(c),
        ),
        (
            "register twice changes nothing; --uninstall removes exactly its own",
            register_is_idempotent_and_uninstall_removes_exactly_it,
        ),
        (
            "flinkgate killed: applies refused, scheduling goes on, the standby takes the lease; restarted: applies work",
            killed_flinkgate_refuses_then_recovers,
        ),
        (
            "SIGTERM: the leader drains, stops its controllers, releases the Lease and exits 0; a standby takes over at once",
            sigterm_hands_the_lease_over_at_once,
        ),
        (
            "controller: standby idle, failover, a crash before or after submitting converges on one job, delete removes all",
            |c| {
                let flink = REAL_FLINK.get().expect("real Flink");
                let jar = JAR_SERVER.get().expect("jar server");
                let args = SERVE_ARGS.get().expect("serve args");
                controller::controller_crash_mid_submission_converges(
                    c,
                    &flink.rest,
                    &jar.url,
                    args,
                )
            },
        ),
    ];
    // FLINKGATE_E2E_ONLY=WORD[,WORD...] runs only the scenarios whose name
    // contains one of the words.
    let only = std::env::var("FLINKGATE_E2E_ONLY").unwrap_or_default();
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .filter(|(name, _)| only.split(',').any(|w| name.contains(w)))
        .collect();
    let mut failed = Vec::new();
    for (name, scenario) in &scenarios {
        let t = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&mut cluster)));
        match result {
            Ok(()) => eprintln!("e2e: ok     {name} ({:.1}s)", t.elapsed().as_secs_f64()),
            Err(_) => {
                eprintln!("e2e: FAILED {name} ({:.1}s)", t.elapsed().as_secs_f64());
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        cluster::keep_logs("e2e", &dir);
    }
    cluster.down();
    drop(cluster);
    // A static is never dropped: stop real Flink explicitly.
    let _ = Command::new(repo("hack/flink/flink"))
        .args(["down", "--dir", flink_dir.to_str().unwrap()])
        .status();
    cluster::report("e2e", scenarios.len(), &failed, started);
}
