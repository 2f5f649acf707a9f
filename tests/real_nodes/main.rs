//! End to end on real nodes: the local control plane with kubelets,
//! containerd, kube-proxy and CoreDNS (`hack/cluster up --real-nodes`),
//! the locally built `flink:1.20` image, and flinkgate registered on it.
//! Flink really runs in pods: the controller launches it, Flink's native mode
//! creates its TaskManager pods, the webhook admits them. Every assertion
//! reads Flink's own REST API (through its Service, as the controller does)
//! or pod and node state. Driven through kubectl, as a user would.
//!
//! A machine that cannot run real nodes (no root, no cgroup v1) skips with
//! one loud line, except under `CI=true`, where that is a failure.

#[path = "../e2e/cluster.rs"]
mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod in_cluster;
#[path = "../e2e/jar_server.rs"]
mod jar_server;
#[path = "../e2e/manifests.rs"]
#[allow(dead_code)]
mod manifests;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cluster::{Cluster, repo};

type Scenario = (&'static str, fn(&mut Cluster));

static JAR_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Why real nodes cannot run here, or None.
fn cannot_run_real_nodes() -> Option<String> {
    let out = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Some("real nodes need root".into());
    }
    if !Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
        return Some("real nodes need cgroup v1 (no /sys/fs/cgroup/cpu/cpu.cfs_quota_us)".into());
    }
    None
}

fn main() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let fail_or_skip = |why: &str| {
        if ci {
            eprintln!("FAIL real-nodes: {why}; CI=true forbids skipping");
            std::process::exit(1);
        }
        eprintln!("SKIP real-nodes: {why}");
        std::process::exit(0);
    };
    if let Some(why) = cannot_run_real_nodes() {
        fail_or_skip(&why);
    }
    let kubectl = cluster::built_kubectl();
    let Some(kubectl) = kubectl else {
        fail_or_skip("the local control plane is not built; `make test` builds it");
        return;
    };
    let dir = std::env::var("FLINKGATE_REAL_NODES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("flinkgate-real-{}", std::process::id()))
        });
    let started = Instant::now();
    // A session job's jar, over HTTPS from this test; flinkgate trusts its CA.
    let jar = match jar_server::JarServer::start(
        &PathBuf::from(format!("{}-jars", dir.display())),
        &scenarios::examples_jar(),
    ) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("FAIL real-nodes: cannot serve the example jar: {e}");
            std::process::exit(1);
        }
    };
    let _ = JAR_URL.set(jar.url.clone());
    let serve_args = format!(
        "--jar-ca-file {} --jar-allow-private-cidrs {}",
        jar.ca_file.display(),
        jar_server::JarServer::ALLOW_CIDRS
    );
    let mut cluster = match Cluster::up(
        &dir,
        kubectl,
        &[
            "--real-nodes",
            &scenarios::NODES.to_string(),
            "--nodes",
            "0",
        ],
        &serve_args,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("FAIL real-nodes: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "real-nodes: cluster with {} real nodes and flinkgate up in {:.1}s",
        scenarios::NODES,
        started.elapsed().as_secs_f64()
    );
    scenarios::prepare(&cluster);
    let all: Vec<Scenario> = vec![
        (
            "native application mode: apply to RUNNING, TaskManager pods from Flink admitted, suspend/resume and upgrade keep state, delete leaves nothing",
            scenarios::native_application_lifecycle,
        ),
        (
            "native session cluster + FlinkSessionJob: jar over HTTPS, TaskManagers on demand, suspend/resume keep state, delete cancels",
            |c| scenarios::native_session_job_lifecycle(c, JAR_URL.get().expect("jar URL")),
        ),
        (
            "slow node: a CPU quota on its cgroup root, capacity and allocatable unchanged",
            scenarios::slow_node_is_invisible_to_the_scheduler,
        ),
        (
            "standalone mode: the TaskManager Deployment's pods register with the JobManager",
            scenarios::standalone_taskmanagers_register,
        ),
        (
            "Kubernetes HA: a killed JobManager's job recovers from its latest checkpoint; a last-state upgrade resumes from the HA metadata",
            scenarios::ha_jobmanager_kill_recovers_from_checkpoint,
        ),
        (
            "failures show: bad image, missing main class, a job failed in Flink and crash-looping TaskManagers are FAILED with the cause and an Event",
            scenarios::failures_show_in_status_and_events,
        ),
        (
            "placement: a slow node is measured, filtered for new TaskManagers, and rebalance moves one off it",
            scenarios::slow_node_filtered_and_rebalanced,
        ),
        // Last: it stops the host's flinkgate and scheduler for good.
        (
            "in the cluster: flinkgate's own image, apply -k deploy, 2 replicas behind the Service, the in-cluster scheduler and extender, no failed apply when a replica or the leader is deleted or restarted",
            in_cluster::flinkgate_in_the_cluster,
        ),
    ];
    let only = std::env::var("FLINKGATE_E2E_ONLY").unwrap_or_default();
    let mut selected: Vec<Scenario> = all
        .into_iter()
        .filter(|(name, _)| only.split(',').any(|w| name.contains(w)))
        .collect();
    let mut failed = Vec::new();
    for (name, scenario) in &selected {
        let t = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&mut cluster)));
        if result.is_err() {
            scenarios::dump_state(&cluster, &dir.join("logs"), true);
        }
        scenarios::reset(&cluster);
        match result {
            Ok(()) => eprintln!(
                "real-nodes: ok     {name} ({:.1}s)",
                t.elapsed().as_secs_f64()
            ),
            Err(_) => {
                eprintln!(
                    "real-nodes: FAILED {name} ({:.1}s)",
                    t.elapsed().as_secs_f64()
                );
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        scenarios::dump_state(&cluster, &dir.join("logs"), false);
        cluster::keep_logs("real-nodes", &dir);
    }
    cluster.down();
    drop(cluster);
    drop(jar);
    // Only one real-node cluster runs at a time: this one comes after.
    let name = "a kill -9'd up, then down, leaves the host as it was";
    if only.split(',').any(|w| name.contains(w)) {
        let t = Instant::now();
        let killed = PathBuf::from(format!("{}-killed", dir.display()));
        let result =
            std::panic::catch_unwind(|| scenarios::killed_up_then_down_leaves_nothing(&killed));
        if result.is_ok() {
            eprintln!(
                "real-nodes: ok     {name} ({:.1}s)",
                t.elapsed().as_secs_f64()
            );
        } else {
            eprintln!("real-nodes: FAILED {name}");
            let _ = Command::new(repo("hack/cluster"))
                .args(["down", "--dir", killed.to_str().unwrap()])
                .status();
            failed.push(name);
        }
        selected.push((name, |_| {}));
    }
    cluster::report("real-nodes", selected.len(), &failed, started);
}
