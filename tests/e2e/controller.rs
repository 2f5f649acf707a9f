//! The controller on the real control plane with kwok nodes, and a real
//! Flink session cluster run as host JVMs.
//!
//! Where Flink really runs in pods (native and standalone clusters, session
//! jobs, HA, failures), the proof is tests/real_nodes. These scenarios keep
//! the host-JVM stand-in where it is still the right tool: leader failover
//! and crashes injected between persisting a job id and submitting it
//! (`--fault`), and the controller's bookkeeping against a kwok-sized
//! cluster, all of which need a JobManager that outlives any pod. kwok turns
//! the JobManager Deployment into a Running pod; the host JVMs (hack/flink)
//! answer for it through `--jobmanager-url e2e/session=...`. The session
//! job's jar is served over HTTPS by this test, with flinkgate's test CA.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::{flink_get, flink_job_state, restored_from, str_at};
pub use super::jar_server::{JarServer, example_jar};
use super::{Cluster, wait};

pub const NAMESPACE: &str = "e2e";
pub const SESSION: &str = "session";

fn session_deployment(savepoints: &Path) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {SESSION}
  namespace: {NAMESPACE}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  serviceAccount: flink
  flinkConfiguration:
    state.savepoints.dir: file://{}
    # savepoint upgrades need a checkpoint directory too (the operator's rule)
    state.checkpoints.dir: file://{}/checkpoints
  jobManager:
    resource: {{memory: 2048m, cpu: 1}}
  taskManager:
    resource: {{memory: 2048m, cpu: 1}}
"#,
        savepoints.display(),
        savepoints.display()
    )
}

fn session_job(name: &str, jar_url: &str, state: &str, nonce: Option<i64>) -> String {
    let nonce = nonce
        .map(|n| format!("    savepointTriggerNonce: {n}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  deploymentName: {SESSION}
  job:
    jarURI: {jar_url}
    entryClass: org.apache.flink.streaming.examples.windowing.TopSpeedWindowing
    parallelism: 1
    upgradeMode: savepoint
    state: {state}
{nonce}"#
    )
}

fn uid(c: &Cluster, kind: &str, name: &str) -> String {
    c.must(
        &[
            "get",
            kind,
            "-n",
            NAMESPACE,
            name,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
        None,
    )
}

fn gone(c: &Cluster, kind: &str, name: &str) -> bool {
    let (ok, out, _) = c.kubectl(
        &[
            "get",
            kind,
            "-n",
            NAMESPACE,
            name,
            "--ignore-not-found",
            "-o",
            "name",
        ],
        None,
    );
    ok && out.trim().is_empty()
}

/// Session cluster → session job → suspend with savepoint → resume from it →
/// savepoint on demand → delete.
pub fn session_cluster_and_job_lifecycle(c: &mut Cluster, rest: &str, jar_url: &str) {
    let savepoints = c.dir.join("savepoints");
    std::fs::create_dir_all(&savepoints).unwrap();

    // 0. The JobManager's ServiceAccount, as users install it.
    c.must(
        &[
            "apply",
            "-n",
            NAMESPACE,
            "-k",
            super::repo("deploy/flink-rbac").to_str().unwrap(),
        ],
        None,
    );

    // 1. The session cluster: owned objects, then DEPLOYED/STABLE.
    let t = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(&session_deployment(&savepoints)),
    );
    let fd_uid = uid(c, "flinkdeployment", SESSION);
    for (kind, name) in [
        ("deployment", SESSION.to_string()),
        ("service", format!("{SESSION}-rest")),
        ("service", SESSION.to_string()),
        ("configmap", format!("flink-config-{SESSION}")),
    ] {
        wait(
            &format!("{kind}/{name} is created"),
            Duration::from_secs(30),
            || !gone(c, kind, &name),
        );
        let owner = c.must(
            &[
                "get",
                kind,
                "-n",
                NAMESPACE,
                &name,
                "-o",
                "jsonpath={.metadata.ownerReferences[0].uid}",
            ],
            None,
        );
        assert_eq!(
            owner, fd_uid,
            "{kind}/{name} is owned by the FlinkDeployment"
        );
    }
    let conf = c.must(
        &[
            "get",
            "configmap",
            "-n",
            NAMESPACE,
            &format!("flink-config-{SESSION}"),
            "-o",
            "jsonpath={.data.config\\.yaml}",
        ],
        None,
    );
    assert!(
        conf.contains("kubernetes.cluster-id: \"session\""),
        "derived config: {conf}"
    );
    assert!(
        conf.contains("taskmanager.numberOfTaskSlots: \"2\""),
        "policy default: {conf}"
    );
    c.wait_stable(NAMESPACE, SESSION, Duration::from_secs(120));
    eprintln!(
        "e2e: session FlinkDeployment STABLE {:.1}s after apply",
        t.elapsed().as_secs_f64()
    );
    let s = c.status("flinkdeployment", NAMESPACE, SESSION);
    assert!(
        str_at(&s, "/reconciliationStatus/lastReconciledSpec").contains("\"resource_metadata\""),
        "operator-style reconciliation status: {s}"
    );

    // 2. The session job runs in Flink under its deterministic id.
    let t = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job("topspeed", jar_url, "running", None)),
    );
    let job_uid = uid(c, "flinksessionjob", "topspeed");
    let first = flinkgate::controller::job_id::job_id(&job_uid, 1);
    wait(
        "the session job is RUNNING and STABLE",
        Duration::from_secs(90),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
            str_at(&s, "/jobStatus/state") == "RUNNING" && str_at(&s, "/lifecycleState") == "STABLE"
        },
    );
    eprintln!(
        "e2e: kubectl apply -> job RUNNING in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
    assert_eq!(
        str_at(&s, "/jobStatus/jobId"),
        first,
        "deterministic job id"
    );
    assert_eq!(
        flink_job_state(rest, &first).as_deref(),
        Some("RUNNING"),
        "Flink runs it"
    );

    // 3. Suspend: a savepoint, then the job stops.
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job("topspeed", jar_url, "suspended", None)),
    );
    wait(
        "the session job is SUSPENDED",
        Duration::from_secs(90),
        || {
            str_at(
                &c.status("flinksessionjob", NAMESPACE, "topspeed"),
                "/lifecycleState",
            ) == "SUSPENDED"
        },
    );
    let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
    let savepoint = str_at(&s, "/jobStatus/upgradeSavepointPath").to_string();
    assert!(savepoint.contains("savepoint-"), "savepoint recorded: {s}");
    assert!(
        Path::new(savepoint.trim_start_matches("file:")).exists(),
        "the savepoint {savepoint} exists on disk"
    );
    assert_eq!(
        flink_job_state(rest, &first).as_deref(),
        Some("FINISHED"),
        "stopped with the savepoint"
    );
    // Recorded as a FlinkStateSnapshot, as the operator does by default.
    wait(
        "the suspend savepoint is a COMPLETED FlinkStateSnapshot",
        Duration::from_secs(30),
        || {
            let out = c.must(
                &[
                    "get",
                    "flinkstatesnapshots",
                    "-n",
                    NAMESPACE,
                    "-l",
                    "snapshot.trigger-type=UPGRADE,job-reference.name=topspeed,snapshot.state=COMPLETED",
                    "-o",
                    "jsonpath={.items[*].status.path}",
                ],
                None,
            );
            out.split_whitespace().any(|p| p == savepoint)
        },
    );

    // 4. Resume: the next id, restored from that savepoint.
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job("topspeed", jar_url, "running", None)),
    );
    let second = flinkgate::controller::job_id::job_id(&job_uid, 2);
    wait(
        "the resumed job is RUNNING",
        Duration::from_secs(90),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
            str_at(&s, "/jobStatus/jobId") == second && str_at(&s, "/jobStatus/state") == "RUNNING"
        },
    );
    let restored = restored_from(rest, &second);
    assert_eq!(
        restored.as_deref(),
        Some(savepoint.as_str()),
        "Flink's restore info names the savepoint"
    );

    // 5. savepointTriggerNonce: a savepoint while it keeps running.
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job("topspeed", jar_url, "running", Some(7))),
    );
    wait(
        "the triggered savepoint is recorded",
        Duration::from_secs(60),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
            s.pointer("/jobStatus/savepointInfo/lastSavepoint/triggerNonce")
                .and_then(Value::as_i64)
                == Some(7)
        },
    );
    let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
    assert!(str_at(&s, "/jobStatus/savepointInfo/lastSavepoint/location").contains("savepoint-"));
    assert_eq!(
        flink_job_state(rest, &second).as_deref(),
        Some("RUNNING"),
        "still running"
    );

    // 5b. FlinkStateSnapshot resources: a savepoint and a checkpoint of the
    // running job, taken through Flink's REST API by the controller.
    for (name, kind_spec) in [
        ("topspeed-sp", "savepoint: {formatType: CANONICAL}"),
        ("topspeed-cp", "checkpoint: {}"),
    ] {
        let snapshot = format!(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkStateSnapshot\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\nspec:\n  backoffLimit: 1\n  jobReference: {{kind: FlinkSessionJob, name: topspeed}}\n  {kind_spec}\n"
        );
        c.must(&["apply", "-f", "-"], Some(&snapshot));
        wait(
            &format!("{name} is COMPLETED"),
            Duration::from_secs(60),
            || {
                let s = c.status("flinkstatesnapshot", NAMESPACE, name);
                assert_ne!(str_at(&s, "/state"), "FAILED", "{name}: {s}");
                str_at(&s, "/state") == "COMPLETED"
            },
        );
        let s = c.status("flinkstatesnapshot", NAMESPACE, name);
        assert!(!str_at(&s, "/path").is_empty(), "{name}: {s}");
        assert!(!str_at(&s, "/resultTimestamp").is_empty(), "{name}: {s}");
        let labels = c.must(
            &[
                "get",
                "flinkstatesnapshot",
                "-n",
                NAMESPACE,
                name,
                "-o",
                "jsonpath={.metadata.labels}",
            ],
            None,
        );
        assert!(
            labels.contains("\"snapshot.state\":\"COMPLETED\""),
            "{labels}"
        );
        assert!(
            labels.contains("\"job-reference.name\":\"topspeed\""),
            "{labels}"
        );
    }
    let sp = str_at(
        &c.status("flinkstatesnapshot", NAMESPACE, "topspeed-sp"),
        "/path",
    )
    .to_string();
    assert!(
        sp.contains("savepoint-") && Path::new(sp.trim_start_matches("file:")).exists(),
        "the snapshot's savepoint {sp} exists on disk"
    );
    assert_eq!(
        flink_job_state(rest, &second).as_deref(),
        Some("RUNNING"),
        "snapshots leave the job running"
    );
    // A new job starts from the snapshot (spec.job.initialStateReference).
    let copy = format!(
        "{}    initialStateReference: {{name: topspeed-sp}}\n",
        session_job("topspeed-copy", jar_url, "running", None)
    );
    c.must(&["apply", "-f", "-"], Some(&copy));
    let copy_uid = uid(c, "flinksessionjob", "topspeed-copy");
    let copy_id = flinkgate::controller::job_id::job_id(&copy_uid, 1);
    wait(
        "the job started from the snapshot is RUNNING",
        Duration::from_secs(90),
        || {
            str_at(
                &c.status("flinksessionjob", NAMESPACE, "topspeed-copy"),
                "/jobStatus/state",
            ) == "RUNNING"
        },
    );
    let restored = restored_from(rest, &copy_id);
    assert_eq!(
        restored.as_deref(),
        Some(sp.as_str()),
        "restored from the snapshot's savepoint"
    );
    c.must(
        &[
            "delete",
            "flinksessionjob",
            "-n",
            NAMESPACE,
            "topspeed-copy",
            "--wait=false",
        ],
        None,
    );
    wait("the copy is deleted", Duration::from_secs(60), || {
        gone(c, "flinksessionjob", "topspeed-copy")
    });
    // A snapshot of a job that does not exist is refused by the webhook.
    let (ok, _, err) = c.kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkStateSnapshot\nmetadata:\n  name: nowhere\n  namespace: {NAMESPACE}\nspec:\n  jobReference: {{kind: FlinkSessionJob, name: no-such-job}}\n  savepoint: {{}}\n"
        )),
    );
    assert!(!ok && err.contains("no-such-job does not exist"), "{err}");

    // 6. restartNonce: an upgrade along the same path (savepoint, next id).
    let restarted = format!(
        "{}  restartNonce: 1\n",
        session_job("topspeed", jar_url, "running", Some(7))
    );
    c.must(&["apply", "-f", "-"], Some(&restarted));
    let third = flinkgate::controller::job_id::job_id(&job_uid, 3);
    wait(
        "the restarted job is RUNNING",
        Duration::from_secs(90),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
            str_at(&s, "/jobStatus/jobId") == third
                && str_at(&s, "/jobStatus/state") == "RUNNING"
                && str_at(&s, "/lifecycleState") == "STABLE"
        },
    );
    let upgrade_savepoint = str_at(
        &c.status("flinksessionjob", NAMESPACE, "topspeed"),
        "/jobStatus/upgradeSavepointPath",
    )
    .to_string();
    assert_ne!(
        upgrade_savepoint, savepoint,
        "a fresh savepoint for the restart"
    );
    let restored = restored_from(rest, &third);
    assert_eq!(restored.as_deref(), Some(upgrade_savepoint.as_str()));
    assert_eq!(flink_job_state(rest, &second).as_deref(), Some("FINISHED"));
    // 6b. savepointRedeployNonce: restart from initialSavepointPath (the
    // snapshot's savepoint), not from the savepoint the stop takes.
    let redeploy = format!(
        "{}    savepointRedeployNonce: 1\n    initialSavepointPath: {sp}\n  restartNonce: 1\n",
        session_job("topspeed", jar_url, "running", Some(7))
    );
    c.must(&["apply", "-f", "-"], Some(&redeploy));
    let fourth = flinkgate::controller::job_id::job_id(&job_uid, 4);
    wait(
        "the redeployed job is RUNNING",
        Duration::from_secs(90),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "topspeed");
            str_at(&s, "/jobStatus/jobId") == fourth && str_at(&s, "/jobStatus/state") == "RUNNING"
        },
    );
    let restored = restored_from(rest, &fourth);
    assert_eq!(
        restored.as_deref(),
        Some(sp.as_str()),
        "redeployed from initialSavepointPath"
    );
    let second = fourth;

    let reasons = c.events(NAMESPACE, "topspeed");
    for r in [
        "Submitted",
        "SavepointCompleted",
        "Suspended",
        "Stable",
        "SpecChanged",
    ] {
        assert!(reasons.contains(r), "Event {r} among: {reasons}");
    }

    // 6. Delete: the job is cancelled, the resource goes.
    c.must(
        &[
            "delete",
            "flinksessionjob",
            "-n",
            NAMESPACE,
            "topspeed",
            "--wait=false",
        ],
        None,
    );
    wait(
        "the session job is deleted",
        Duration::from_secs(60),
        || gone(c, "flinksessionjob", "topspeed"),
    );
    assert_eq!(
        flink_job_state(rest, &second).as_deref(),
        Some("CANCELED"),
        "deleting cancels the job"
    );
}

/// Two controller replicas: the standby does nothing; the leader, killed,
/// hands over. Then a replica that crashes right after Flink accepted a job
/// (before status recorded it) is replaced, and the replacement converges on
/// that one job. Finally deleting the session cluster removes what it owned.
pub fn controller_crash_mid_submission_converges(
    c: &mut Cluster,
    rest: &str,
    jar_url: &str,
    serve_args: &[String],
) {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
    };
    let metric = |port: u16, name: &str| -> Option<f64> {
        let ca = c.dir.join("flinkgate-certs/ca.crt");
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2", "--cacert", ca.to_str().unwrap()])
            .arg(format!("https://127.0.0.1:{port}/metrics"))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let prefix = format!("{name} ");
        Some(
            text.lines()
                .filter(|l| {
                    l.starts_with(name)
                        && (l.starts_with(&prefix) || l.starts_with(&format!("{name}{{")))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
        .filter(|_| out.status.success())
    };
    let args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let main_port: u16 = c.flinkgate_port().parse().unwrap();

    // After an earlier scenario's restart the serving replica may still be
    // waiting out a dead leader's lease: let it lead before a standby joins.
    wait("the serving replica leads", Duration::from_secs(30), || {
        metric(main_port, "flinkgate_leader") == Some(1.0)
    });

    // Session jobs of earlier scenarios (one with an unreachable jar) would
    // hit the crash points first.
    c.must(
        &[
            "delete",
            "flinksessionjobs",
            "-n",
            NAMESPACE,
            "--all",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );

    // The session cluster (left by the lifecycle scenario, or made here).
    let savepoints = c.dir.join("savepoints");
    std::fs::create_dir_all(&savepoints).unwrap();
    c.must(
        &["apply", "-f", "-"],
        Some(&session_deployment(&savepoints)),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    // DEPLOYED is enough here: its jobs need only the session's REST API
    // (the override). After the kill scenario kwok may leave the JobManager
    // pod unready (its nodes went NotReady while flinkgate was down), which
    // keeps the Deployment unavailable and the cluster from STABLE.
    while !matches!(
        str_at(
            &c.status("flinkdeployment", NAMESPACE, SESSION),
            "/lifecycleState"
        ),
        "DEPLOYED" | "STABLE"
    ) {
        if Instant::now() > deadline {
            let (_, pods, _) = c.kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "wide"], None);
            let (_, events, _) = c.kubectl(&["get", "events", "-n", NAMESPACE], None);
            panic!(
                "the session cluster is not deployed after 120 s\nstatus: {}\nJobManager: {}\npods:\n{pods}\nevents:\n{events}",
                c.status("flinkdeployment", NAMESPACE, SESSION),
                c.status("deployment", NAMESPACE, SESSION)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // A standby with a crash point after submissions.
    let standby_port = free_port();
    let mut faulty_args = args.clone();
    faulty_args.extend(["--fault", "exit-after-submit"]);
    let mut faulty = c.spawn_flinkgate(
        "flinkgate-faulty",
        &format!("127.0.0.1:{standby_port}"),
        &faulty_args,
        &[("POD_NAME", "faulty")],
    );
    wait("the standby serves", Duration::from_secs(20), || {
        metric(standby_port, "flinkgate_leader").is_some()
    });
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        metric(main_port, "flinkgate_leader"),
        Some(1.0),
        "the first replica leads"
    );
    assert_eq!(
        metric(standby_port, "flinkgate_leader"),
        Some(0.0),
        "the standby does not lead"
    );
    assert_eq!(
        metric(standby_port, "flinkgate_controller_reconciles_total"),
        Some(0.0),
        "only the leader reconciles"
    );

    // Kill the leader; the standby takes over.
    match c.restarted.take() {
        Some(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
        }
        None => {
            let pidfile = std::fs::read_to_string(c.dir.join("pids/flinkgate.pid")).unwrap();
            let pid = pidfile.split_whitespace().next().unwrap().to_string();
            Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        }
    }
    let killed = Instant::now();
    let renewed = super::lease_field(c, "renewTime");
    wait("the standby leads", Duration::from_secs(20), || {
        metric(standby_port, "flinkgate_leader") == Some(1.0)
    });
    let failover = killed.elapsed().as_secs_f64();
    eprintln!(
        "e2e: controller failover {failover:.1}s after the kill (lease 10 s; last renewal {renewed})"
    );
    // The standby retries the moment the lease runs out; 1 s of slack covers
    // the API round trips and this test's polling.
    assert!(
        failover <= 11.0,
        "hand-over within the lease duration (10 s): {failover:.1}s"
    );

    // A webhook for the applies, on the registered port; it stays standby
    // while the faulty replica holds the lease.
    let mut replacement = c.spawn_flinkgate(
        "flinkgate-replacement",
        &format!("127.0.0.1:{main_port}"),
        &args,
        &[("POD_NAME", "replacement")],
    );
    wait("the replacement serves", Duration::from_secs(20), || {
        metric(main_port, "flinkgate_leader").is_some()
    });

    c.must(
        &["apply", "-f", "-"],
        Some(&session_job("crashy", jar_url, "running", None)),
    );
    let job_uid = uid(c, "flinksessionjob", "crashy");
    let expected = flinkgate::controller::job_id::job_id(&job_uid, 1);
    let exited = (0..600).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        faulty.try_wait().ok().flatten()
    });
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(86),
        "the faulty replica crashed at its fault point"
    );
    assert!(
        flink_job_state(rest, &expected).is_some(),
        "Flink took the job before the crash"
    );

    wait(
        "the replacement adopts the job: RUNNING",
        Duration::from_secs(60),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "crashy");
            str_at(&s, "/jobStatus/state") == "RUNNING" && str_at(&s, "/lifecycleState") == "STABLE"
        },
    );
    let prefix = &expected[..16];
    let overview = flink_get(rest, "/jobs/overview").unwrap_or_default();
    let copies: Vec<&Value> = overview["jobs"]
        .as_array()
        .map(|j| {
            j.iter()
                .filter(|j| str_at(j, "/jid").starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        copies.len(),
        1,
        "exactly one job for the session job: {overview}"
    );
    assert_eq!(str_at(copies[0], "/jid"), expected);
    assert_eq!(
        str_at(
            &c.status("flinksessionjob", NAMESPACE, "crashy"),
            "/jobStatus/jobId"
        ),
        expected
    );

    // The other crash point: the job id is persisted, then the leader dies
    // before Flink is asked. Its successor submits under that same id.
    let _ = replacement.kill();
    let _ = replacement.wait();
    let mut early_args = args.clone();
    early_args.extend(["--fault", "exit-before-submit"]);
    let mut faulty_early = c.spawn_flinkgate(
        "flinkgate-faulty-early",
        &format!("127.0.0.1:{main_port}"),
        &early_args,
        &[("POD_NAME", "faulty-early")],
    );
    wait(
        "the second faulty replica leads",
        Duration::from_secs(30),
        || metric(main_port, "flinkgate_leader") == Some(1.0),
    );
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job("crashy-early", jar_url, "running", None)),
    );
    let early_uid = uid(c, "flinksessionjob", "crashy-early");
    let early_id = flinkgate::controller::job_id::job_id(&early_uid, 1);
    let exited = (0..600).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        faulty_early.try_wait().ok().flatten()
    });
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(86),
        "crashed before submitting"
    );
    assert_eq!(
        str_at(
            &c.status("flinksessionjob", NAMESPACE, "crashy-early"),
            "/jobStatus/jobId"
        ),
        early_id,
        "the id was persisted first"
    );
    assert_eq!(flink_job_state(rest, &early_id), None, "Flink never saw it");
    let mut replacement = c.spawn_flinkgate(
        "flinkgate-replacement-2",
        &format!("127.0.0.1:{main_port}"),
        &args,
        &[("POD_NAME", "replacement-2")],
    );
    wait(
        "the successor submits under the persisted id",
        Duration::from_secs(60),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, "crashy-early");
            str_at(&s, "/jobStatus/state") == "RUNNING"
                && str_at(&s, "/jobStatus/jobId") == early_id
        },
    );
    let overview = flink_get(rest, "/jobs/overview").unwrap_or_default();
    let early_copies = overview["jobs"]
        .as_array()
        .map(|j| {
            j.iter()
                .filter(|j| str_at(j, "/jid").starts_with(&early_id[..16]))
                .count()
        })
        .unwrap_or_default();
    assert_eq!(early_copies, 1, "exactly one job: {overview}");
    c.must(
        &[
            "delete",
            "flinksessionjob",
            "-n",
            NAMESPACE,
            "crashy-early",
            "--wait=false",
        ],
        None,
    );
    wait("crashy-early is deleted", Duration::from_secs(60), || {
        gone(c, "flinksessionjob", "crashy-early")
    });

    // Deleting the session job and then the cluster removes everything.
    c.must(
        &[
            "delete",
            "flinksessionjob",
            "-n",
            NAMESPACE,
            "crashy",
            "--wait=false",
        ],
        None,
    );
    wait("crashy is deleted", Duration::from_secs(60), || {
        gone(c, "flinksessionjob", "crashy")
    });
    assert_eq!(
        flink_job_state(rest, &expected).as_deref(),
        Some("CANCELED")
    );
    c.must(
        &[
            "delete",
            "flinkdeployment",
            "-n",
            NAMESPACE,
            SESSION,
            "--wait=false",
        ],
        None,
    );
    for (kind, name) in [
        ("flinkdeployment", SESSION.to_string()),
        ("deployment", SESSION.to_string()),
        ("service", format!("{SESSION}-rest")),
        ("service", SESSION.to_string()),
        ("configmap", format!("flink-config-{SESSION}")),
    ] {
        wait(
            &format!("{kind}/{name} is removed"),
            Duration::from_secs(60),
            || gone(c, kind, &name),
        );
    }
    let _ = faulty.wait();
    let _ = faulty_early.wait();
    // The replacement is the flinkgate `down` must stop.
    let _ = replacement.try_wait();
    c.restarted = Some(replacement);
}

fn application_deployment(name: &str, state: &str, region: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  serviceAccount: flink
  podTemplate:
    metadata:
      labels: {{team: orders}}
  jobManager:
    resource: {{memory: 2048m, cpu: 1}}
    podTemplate:
      spec:
        containers:
          - name: flink-main-container
            env: [{{name: ROLE, value: jobmanager}}]
  taskManager:
    resource: {{memory: 2048m, cpu: 1}}
  job:
    jarURI: local:///opt/flink/usrlib/orders.jar
    entryClass: com.example.Orders
    args: ["--region", "{region}"]
    parallelism: 3
    upgradeMode: stateless
    state: {state}
"#
    )
}

/// An application cluster: its objects carry the job (deterministic id,
/// entry class, args), the merged pod templates and the policy defaults;
/// suspend scales it to zero, resume brings it back under the next job id.
/// (Its JobManager has no REST endpoint here, so it stays DEPLOYED.)
pub fn application_cluster_objects_suspend_resume(c: &mut Cluster) {
    let name = "orders";
    c.must(
        &["apply", "-f", "-"],
        Some(&application_deployment(name, "running", "eu")),
    );
    let fd_uid = uid(c, "flinkdeployment", name);
    let config = || {
        c.must(
            &[
                "get",
                "configmap",
                "-n",
                NAMESPACE,
                &format!("flink-config-{name}"),
                "-o",
                "jsonpath={.data.config\\.yaml}",
            ],
            None,
        )
    };
    wait(
        "the application cluster's objects exist",
        Duration::from_secs(30),
        || !gone(c, "configmap", &format!("flink-config-{name}")) && !gone(c, "deployment", name),
    );
    let first = flinkgate::controller::job_id::job_id(&fd_uid, 1);
    let conf = config();
    for line in [
        format!("$internal.pipeline.job-id: \"{first}\""),
        "$internal.application.main: \"com.example.Orders\"".to_string(),
        "$internal.application.program-args: \"--region;eu\"".to_string(),
        "execution.target: \"kubernetes-application\"".to_string(),
        "parallelism.default: \"3\"".to_string(),
        "restart-strategy.type: \"exponential-delay\"".to_string(),
    ] {
        assert!(conf.contains(&line), "config.yaml has {line}:\n{conf}");
    }
    let jm = c.get_json("deployment", NAMESPACE, name);
    let pod = &jm["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["team"], "orders",
        "common pod template"
    );
    let main = &pod["spec"]["containers"][0];
    assert_eq!(main["name"], "flink-main-container");
    assert!(main["args"].to_string().contains("kubernetes-application"));
    assert!(
        main["env"].to_string().contains("ROLE"),
        "JobManager pod template merged"
    );
    wait(
        "the application cluster is DEPLOYED",
        Duration::from_secs(60),
        || {
            str_at(
                &c.status("flinkdeployment", NAMESPACE, name),
                "/lifecycleState",
            ) == "DEPLOYED"
        },
    );

    c.must(
        &["apply", "-f", "-"],
        Some(&application_deployment(name, "suspended", "eu")),
    );
    wait("suspended: scaled to zero", Duration::from_secs(60), || {
        let s = c.status("flinkdeployment", NAMESPACE, name);
        str_at(&s, "/lifecycleState") == "SUSPENDED"
            && c.get_json("deployment", NAMESPACE, name)["spec"]["replicas"] == 0
    });
    c.must(
        &["apply", "-f", "-"],
        Some(&application_deployment(name, "running", "eu")),
    );
    let second = flinkgate::controller::job_id::job_id(&fd_uid, 2);
    wait(
        "resumed under the next job id",
        Duration::from_secs(60),
        || {
            c.get_json("deployment", NAMESPACE, name)["spec"]["replicas"] == 1
                && config().contains(&format!("$internal.pipeline.job-id: \"{second}\""))
        },
    );
    // A spec change upgrades: the next id, and the JobManager rolls.
    let hash = |c: &Cluster| {
        c.get_json("deployment", NAMESPACE, name)["spec"]["template"]["metadata"]["annotations"]
            ["flinkgate.io/config-hash"]
            .clone()
    };
    let before = hash(c);
    c.must(
        &["apply", "-f", "-"],
        Some(&application_deployment(name, "running", "us")),
    );
    let third = flinkgate::controller::job_id::job_id(&fd_uid, 3);
    wait(
        "upgraded under the next job id",
        Duration::from_secs(60),
        || {
            let conf = config();
            conf.contains(&format!("$internal.pipeline.job-id: \"{third}\""))
                && conf.contains("--region;us")
        },
    );
    assert_ne!(
        hash(c),
        before,
        "the JobManager pods roll with the configuration"
    );
    assert!(
        c.events(NAMESPACE, name).contains("Upgrading"),
        "an Upgrading Event: {}",
        c.events(NAMESPACE, name)
    );
    c.delete_nowait("flinkdeployment", NAMESPACE, name);
    wait(
        "the application cluster and its objects are gone",
        Duration::from_secs(60),
        || {
            gone(c, "flinkdeployment", name)
                && gone(c, "deployment", name)
                && gone(c, "configmap", &format!("flink-config-{name}"))
        },
    );
}
