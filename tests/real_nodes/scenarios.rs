//! Scenarios on real nodes: Flink in pods, as a user would run it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{
    Cluster, flink_get, flink_job_state, repo, restored_from, series, str_at, wait,
};

pub const NODES: usize = 2;
pub const NAMESPACE: &str = "rn";
/// Shared by the nodes (they are one host): checkpoints and savepoints.
const DATA_MOUNT: &str = "/flink-data";

pub(crate) fn data_dir(c: &Cluster) -> std::path::PathBuf {
    c.dir.join("flink-data")
}

/// Namespace, the JobManagers' ServiceAccount (deploy/flink-rbac), the shared
/// data directory, and a policy that routes TaskManagers to flinkgate's
/// scheduler profile and labels every Flink pod it admits.
pub fn prepare(c: &Cluster) {
    c.must(&["create", "namespace", NAMESPACE], None);
    c.must(
        &[
            "apply",
            "-n",
            NAMESPACE,
            "-k",
            repo("deploy/flink-rbac").to_str().unwrap(),
        ],
        None,
    );
    let data = data_dir(c);
    std::fs::create_dir_all(&data).unwrap();
    // The image's flink user (uid 9999) writes here.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    c.set_policy(&pod_policy());
}

pub(crate) fn pod_policy() -> String {
    let builtin = flinkgate::policy::BUILTIN_YAML;
    assert!(builtin.contains("\npods:\n  taskManager:\n"), "{builtin}");
    builtin.replace(
        "\npods:\n  taskManager:\n",
        "\npods:\n  labels: {flinkgate.io/e2e: real-nodes}\n  taskManager:\n    schedulerName: flinkgate\n",
    )
}

/// Waits until no FlinkDeployment, Deployment, Service, ConfigMap or pod
/// named after `name` is left in the test namespace.
fn wait_nothing_left(c: &Cluster, name: &str) {
    wait(
        &format!("no pod, Service, ConfigMap or Deployment of {name} left"),
        Duration::from_secs(120),
        || {
            let (_, out, _) = c.kubectl(
                &[
                    "get",
                    "flinkdeployment,deployment,service,configmap,pods",
                    "-n",
                    NAMESPACE,
                    "-o",
                    "name",
                ],
                None,
            );
            !out.lines().any(|l| l.contains(name))
        },
    );
}

/// A FlinkDeployment with the shared data directory mounted at DATA_MOUNT
/// (savepoints and checkpoints go there). `config` adds flinkConfiguration
/// lines, `rest` what follows the resources (nonces, the job).
fn with_data(name: &str, data: &Path, slots: u32, config: &str, rest: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "{slots}"
{config}    state.savepoints.dir: file://{DATA_MOUNT}/savepoints
    state.checkpoints.dir: file://{DATA_MOUNT}/checkpoints
  serviceAccount: flink
  podTemplate:
    spec:
      containers:
        - name: flink-main-container
          volumeMounts: [{{name: flink-data, mountPath: {DATA_MOUNT}}}]
      volumes:
        - name: flink-data
          hostPath: {{path: {data}, type: Directory}}
  jobManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  taskManager:
    resource: {{memory: 1024m, cpu: 0.5}}
{rest}"#,
        data = data.display()
    )
}

/// An operator-style application: the operator's examples' image and jar.
pub(crate) fn application(name: &str, state: &str, data: &Path, nonce: i64) -> String {
    with_data(
        name,
        data,
        1,
        "    execution.checkpointing.interval: 5 s\n",
        &format!(
            r#"  restartNonce: {nonce}
  job:
    jarURI: local:///opt/flink/examples/streaming/StateMachineExample.jar
    parallelism: 2
    upgradeMode: savepoint
    state: {state}
"#
        ),
    )
}

pub(crate) fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&c.must(&all, None)).unwrap_or(Value::Null)
}

pub(crate) fn pods(c: &Cluster, selector: &str) -> Vec<Value> {
    json(c, &["get", "pods", "-n", NAMESPACE, "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
}

/// The JobManager's REST base, through its Service (kube-proxy), as the
/// controller reaches it.
fn rest(c: &Cluster, name: &str) -> Option<String> {
    let (ok, ip, _) = c.kubectl(
        &[
            "get",
            "service",
            "-n",
            NAMESPACE,
            &format!("{name}-rest"),
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    (ok && !ip.trim().is_empty()).then(|| format!("http://{}:8081", ip.trim()))
}

/// Flink calls a job RUNNING once it is scheduling; its tasks run only when
/// TaskManagers have registered and taken them.
fn all_tasks_running(rest: &str, jid: &str) -> bool {
    flink_get(rest, &format!("/jobs/{jid}"))
        .and_then(|j| j["vertices"].as_array().cloned())
        .is_some_and(|v| !v.is_empty() && v.iter().all(|x| x["status"] == "RUNNING"))
}

fn real_nodes(c: &Cluster) -> Vec<String> {
    json(c, &["get", "nodes", "-l", "flinkgate.io/node-kind=real"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// Waits until the job `jid` is RUNNING with every subtask running, and
/// returns the REST base.
pub(crate) fn await_running(c: &Cluster, name: &str, jid: &str, timeout: Duration) -> String {
    let mut base = String::new();
    wait(
        &format!("job {jid} of {name} RUNNING in Flink with every task, status STABLE"),
        timeout,
        || {
            let Some(r) = rest(c, name) else { return false };
            base = r;
            let s = c.status("flinkdeployment", NAMESPACE, name);
            flink_job_state(&base, jid).as_deref() == Some("RUNNING")
                && all_tasks_running(&base, jid)
                && str_at(&s, "/jobStatus/jobId") == jid
                && str_at(&s, "/lifecycleState") == "STABLE"
        },
    );
    base
}

/// Native application mode, end to end on real pods.
pub fn native_application_lifecycle(c: &mut Cluster) {
    let name = "statemachine";
    let data = data_dir(c);
    let t0 = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(&application(name, "running", &data, 1)),
    );
    let uid = c.get_json("flinkdeployment", NAMESPACE, name)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = flinkgate::controller::job_id::job_id(&uid, 1);
    let rest = await_running(c, name, &first, Duration::from_secs(240));
    eprintln!(
        "real-nodes: kubectl apply -> job RUNNING and STABLE in {:.1}s (native application mode)",
        t0.elapsed().as_secs_f64()
    );

    // Where it runs: a JobManager pod and Flink's own TaskManager pods, on real nodes.
    let nodes = real_nodes(c);
    assert_eq!(nodes.len(), NODES, "real nodes: {nodes:?}");
    let jm = pods(c, &format!("app={name},component=jobmanager"));
    assert_eq!(jm.len(), 1, "one JobManager pod");
    assert!(running(&jm[0]));
    let jm_node = jm[0]["spec"]["nodeName"].as_str().unwrap_or_default();
    assert!(
        nodes.iter().any(|n| n == jm_node),
        "JobManager on {jm_node}"
    );
    let tms = pods(c, &format!("app={name},component=taskmanager"));
    assert_eq!(
        tms.len(),
        2,
        "parallelism 2 at one slot each: two TaskManagers"
    );
    for tm in &tms {
        assert!(running(tm), "{}", tm["metadata"]["name"]);
        let tm_name = tm["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            tm_name.starts_with(&format!("{name}-taskmanager-")),
            "Flink names its TaskManager pods: {tm_name}"
        );
        assert_eq!(
            tm["metadata"]["labels"]["type"], "flink-native-kubernetes",
            "created by Flink's native mode"
        );
        assert_eq!(
            tm["metadata"]["ownerReferences"][0]["kind"], "Deployment",
            "owned by the JobManager Deployment"
        );
        assert_eq!(
            tm["metadata"]["labels"]["flinkgate.io/e2e"], "real-nodes",
            "the webhook admitted it (policy pod labels)"
        );
        assert_eq!(
            tm["spec"]["schedulerName"], "flinkgate",
            "the webhook routed it to flinkgate's scheduler profile"
        );
        let node = tm["spec"]["nodeName"].as_str().unwrap_or_default();
        assert!(nodes.iter().any(|n| n == node), "TaskManager on {node}");
    }
    // Flink sees those TaskManagers, and every subtask runs.
    let tm_ids: Vec<String> = flink_get(&rest, "/taskmanagers").unwrap()["taskmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str().map(String::from))
        .collect();
    for tm in &tms {
        let pod_name = tm["metadata"]["name"].as_str().unwrap();
        assert!(
            tm_ids.iter().any(|id| id == pod_name),
            "Flink registered TaskManager {pod_name}: {tm_ids:?}"
        );
    }

    // Suspend with a savepoint, resume from it.
    wait("a completed checkpoint", Duration::from_secs(60), || {
        flink_get(&rest, &format!("/jobs/{first}/checkpoints"))
            .and_then(|v| v.pointer("/counts/completed")?.as_u64())
            .is_some_and(|n| n >= 1)
    });
    let t_suspend = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(&application(name, "suspended", &data, 1)),
    );
    let mut savepoint = String::new();
    wait(
        "suspended with a savepoint, pods gone",
        Duration::from_secs(120),
        || {
            let s = c.status("flinkdeployment", NAMESPACE, name);
            savepoint = str_at(&s, "/jobStatus/upgradeSavepointPath").to_owned();
            str_at(&s, "/lifecycleState") == "SUSPENDED"
                && !savepoint.is_empty()
                && pods(c, &format!("app={name}")).is_empty()
        },
    );
    assert!(
        savepoint.contains("/savepoints/"),
        "savepoint under state.savepoints.dir: {savepoint}"
    );
    let on_disk = savepoint
        .trim_start_matches("file:")
        .trim_start_matches("//");
    let host_path = data.join(
        on_disk
            .strip_prefix(&format!("{DATA_MOUNT}/"))
            .unwrap_or(on_disk),
    );
    assert!(
        host_path.join("_metadata").exists(),
        "the savepoint is on the shared volume: {}",
        host_path.display()
    );
    c.must(
        &["apply", "-f", "-"],
        Some(&application(name, "running", &data, 1)),
    );
    let second = flinkgate::controller::job_id::job_id(&uid, 2);
    let rest = await_running(c, name, &second, Duration::from_secs(240));
    eprintln!(
        "real-nodes: suspend with savepoint + resume round trip in {:.1}s",
        t_suspend.elapsed().as_secs_f64()
    );
    assert_eq!(
        restored_from(&rest, &second).as_deref().map(strip_scheme),
        Some(strip_scheme(&savepoint)),
        "the resumed job restored from the suspend savepoint"
    );

    // A spec change (restartNonce) upgrades through a fresh savepoint.
    c.must(
        &["apply", "-f", "-"],
        Some(&application(name, "running", &data, 2)),
    );
    let third = flinkgate::controller::job_id::job_id(&uid, 3);
    let rest = await_running(c, name, &third, Duration::from_secs(240));
    let upgrade_from = str_at(
        &c.status("flinkdeployment", NAMESPACE, name),
        "/jobStatus/upgradeSavepointPath",
    )
    .to_owned();
    assert!(
        !upgrade_from.is_empty() && upgrade_from != savepoint,
        "a fresh savepoint for the upgrade: {upgrade_from}"
    );
    assert_eq!(
        restored_from(&rest, &third).as_deref().map(strip_scheme),
        Some(strip_scheme(&upgrade_from)),
        "the upgraded job restored from the upgrade savepoint"
    );
    let ev = c.events(NAMESPACE, name);
    assert!(ev.contains("Upgrading"), "an Upgrading Event: {ev}");

    // Delete: nothing of it is left.
    delete_deployments(c, &[name]);
    wait_nothing_left(c, name);
}

fn strip_scheme(p: &str) -> &str {
    p.trim_start_matches("file:").trim_start_matches("//")
}

/// On failure: what the cluster looked like, into the kept logs.
/// Writes the cluster's state and every pod's log under `logs`; with
/// `print`, also the state and the test pods' last log lines to stderr.
pub fn dump_state(c: &Cluster, logs: &Path, print: bool) {
    let (_, out, _) = c.kubectl(
        &[
            "get",
            "nodes,pods,deployments,services,flinkdeployments,events",
            "-A",
            "-o",
            "wide",
        ],
        None,
    );
    if print {
        eprintln!("--- cluster state at the failure:\n{out}");
    }
    let _ = std::fs::write(logs.join("cluster-state.txt"), out);
    for kinds in [
        "flinkdeployments,flinksessionjobs",
        "pods",
        "configmaps,deployments,services",
    ] {
        let (_, out, _) = c.kubectl(&["get", kinds, "-A", "-o", "yaml"], None);
        let _ = std::fs::write(logs.join(format!("{}.yaml", kinds.replace(',', "-"))), out);
    }
    for p in json(c, &["get", "pods", "-A"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let (ns, pod) = (
            p["metadata"]["namespace"].as_str().unwrap_or_default(),
            p["metadata"]["name"].as_str().unwrap_or_default(),
        );
        let (_, out, err) = c.kubectl(&["logs", "-n", ns, pod, "--all-containers"], None);
        if print && ns == NAMESPACE {
            // CI keeps only what is printed: the end of each test pod's log.
            let lines: Vec<&str> = out.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            eprintln!("--- last lines of pod {ns}/{pod}:\n{tail}{err}");
        }
        let _ = std::fs::write(logs.join(format!("pod-{ns}-{pod}.log")), out + &err);
    }
}

/// The example jar the image build resolved (all streaming examples), for a
/// session job to submit.
pub fn examples_jar() -> std::path::PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let jar = Path::new(&home).join(
        ".m2/repository/org/apache/flink/flink-examples-streaming/1.20.0/flink-examples-streaming-1.20.0.jar",
    );
    assert!(
        jar.exists(),
        "{} (resolved by hack/images) is missing",
        jar.display()
    );
    jar
}

fn session_cluster(name: &str, data: &Path) -> String {
    with_data(
        name,
        data,
        2,
        "    execution.checkpointing.interval: 5 s\n",
        "",
    )
}

fn session_job(name: &str, session: &str, jar_url: &str, state: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  deploymentName: {session}
  job:
    jarURI: {jar_url}
    entryClass: org.apache.flink.streaming.examples.statemachine.StateMachineExample
    parallelism: 2
    upgradeMode: savepoint
    state: {state}
"#
    )
}

/// A native session cluster on real pods, and a FlinkSessionJob whose jar
/// flinkgate downloads over HTTPS and submits: Flink creates TaskManager pods
/// for it; suspend and resume keep its state.
pub fn native_session_job_lifecycle(c: &mut Cluster, jar_url: &str) {
    let (session, job) = ("session", "statemachine-job");
    let data = data_dir(c);
    c.must(
        &["apply", "-f", "-"],
        Some(&session_cluster(session, &data)),
    );
    c.wait_stable(NAMESPACE, session, Duration::from_secs(180));
    assert!(
        pods(c, &format!("app={session},component=taskmanager")).is_empty(),
        "an idle native session cluster has no TaskManagers yet"
    );
    let t = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job(job, session, jar_url, "running")),
    );
    let uid = c.get_json("flinksessionjob", NAMESPACE, job)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = flinkgate::controller::job_id::job_id(&uid, 1);
    let mut base = String::new();
    wait(
        "the session job RUNNING with every task, on TaskManager pods Flink made for it",
        Duration::from_secs(180),
        || {
            let Some(r) = rest(c, session) else {
                return false;
            };
            base = r;
            let s = c.status("flinksessionjob", NAMESPACE, job);
            str_at(&s, "/jobStatus/jobId") == first
                && str_at(&s, "/jobStatus/state") == "RUNNING"
                && all_tasks_running(&base, &first)
        },
    );
    eprintln!(
        "real-nodes: session job apply -> RUNNING in {:.1}s (jar over HTTPS, TaskManagers created on demand)",
        t.elapsed().as_secs_f64()
    );
    let tms = pods(c, &format!("app={session},component=taskmanager"));
    assert!(
        !tms.is_empty() && tms.iter().all(running),
        "TaskManager pods run"
    );

    wait("a completed checkpoint", Duration::from_secs(60), || {
        flink_get(&base, &format!("/jobs/{first}/checkpoints"))
            .and_then(|v| v.pointer("/counts/completed")?.as_u64())
            .is_some_and(|n| n >= 1)
    });
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job(job, session, jar_url, "suspended")),
    );
    let mut savepoint = String::new();
    wait(
        "the session job SUSPENDED with a savepoint",
        Duration::from_secs(120),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, job);
            savepoint = str_at(&s, "/jobStatus/upgradeSavepointPath").to_owned();
            str_at(&s, "/lifecycleState") == "SUSPENDED" && !savepoint.is_empty()
        },
    );
    assert_eq!(
        flink_job_state(&base, &first).as_deref(),
        Some("FINISHED"),
        "stopped with the savepoint"
    );
    c.must(
        &["apply", "-f", "-"],
        Some(&session_job(job, session, jar_url, "running")),
    );
    let second = flinkgate::controller::job_id::job_id(&uid, 2);
    wait(
        "the resumed session job RUNNING",
        Duration::from_secs(180),
        || {
            let s = c.status("flinksessionjob", NAMESPACE, job);
            str_at(&s, "/jobStatus/jobId") == second
                && str_at(&s, "/jobStatus/state") == "RUNNING"
                && all_tasks_running(&base, &second)
        },
    );
    assert_eq!(
        restored_from(&base, &second).as_deref().map(strip_scheme),
        Some(strip_scheme(&savepoint)),
        "the resumed session job restored from its savepoint"
    );

    c.must(
        &[
            "delete",
            "flinksessionjob",
            "-n",
            NAMESPACE,
            job,
            "--wait=false",
        ],
        None,
    );
    wait(
        "deleting the session job cancels it",
        Duration::from_secs(60),
        || flink_job_state(&base, &second).as_deref() == Some("CANCELED"),
    );
    delete_deployments(c, &[session]);
    wait_nothing_left(c, session);
}

fn standalone_session(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  mode: standalone
  flinkConfiguration:
    taskmanager.numberOfTaskSlots: "1"
  serviceAccount: flink
  jobManager:
    resource: {{memory: 1024m, cpu: 0.5}}
  taskManager:
    replicas: {replicas}
    resource: {{memory: 1024m, cpu: 0.25}}
"#
    )
}

/// Standalone mode: the TaskManager Deployment's replicas are real
/// TaskManagers that register with the JobManager.
pub fn standalone_taskmanagers_register(c: &mut Cluster) {
    let name = "standalone";
    c.must(&["apply", "-f", "-"], Some(&standalone_session(name, 2)));
    let mut base = String::new();
    let mut last_seen = String::new();
    wait(
        "two standalone TaskManagers with a slot each registered with the JobManager, status STABLE",
        Duration::from_secs(180),
        || {
            let Some(r) = rest(c, name) else { return false };
            base = r;
            let registered = flink_get(&base, "/taskmanagers")
                .and_then(|v| v["taskmanagers"].as_array().map(Vec::len))
                .unwrap_or(0);
            // One slot each; slots show once a TaskManager's registration completes.
            let slots = flink_get(&base, "/overview").and_then(|o| o["slots-total"].as_u64());
            let lifecycle = str_at(
                &c.status("flinkdeployment", NAMESPACE, name),
                "/lifecycleState",
            )
            .to_string();
            let seen = format!("{registered} registered, slots {slots:?}, {lifecycle}");
            if seen != last_seen {
                eprintln!("real-nodes: standalone: {seen}");
                last_seen = seen;
            }
            registered == 2 && slots == Some(2) && lifecycle == "STABLE"
        },
    );
    let tms = pods(c, &format!("app={name},component=taskmanager"));
    assert_eq!(tms.len(), 2, "the TaskManager Deployment's pods");
    assert!(tms.iter().all(running));
    assert_eq!(
        tms[0]["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet",
        "from the TaskManager Deployment, not from Flink"
    );
    delete_deployments(c, &[name]);
    wait(
        "the standalone cluster is gone",
        Duration::from_secs(120),
        || pods(c, &format!("app={name}")).is_empty(),
    );
}

fn ha_application(name: &str, data: &Path, entry_class: Option<&str>) -> String {
    let entry = entry_class
        .map(|e| format!("    entryClass: {e}\n"))
        .unwrap_or_default();
    with_data(
        name,
        data,
        2,
        &format!(
            "    high-availability.type: kubernetes\n    high-availability.storageDir: file://{DATA_MOUNT}/ha\n    execution.checkpointing.interval: 3 s\n"
        ),
        &format!(
            r#"  job:
    jarURI: local:///opt/flink/examples/streaming/StateMachineExample.jar
{entry}    parallelism: 2
    upgradeMode: last-state
"#
        ),
    )
}

/// Kubernetes HA: the JobManager pod is killed; its replacement recovers the
/// same job from its latest checkpoint. Then a `last-state` upgrade resumes
/// from the HA metadata instead of a savepoint, and deletion removes it.
pub fn ha_jobmanager_kill_recovers_from_checkpoint(c: &mut Cluster) {
    let name = "ha";
    let data = data_dir(c);
    c.must(
        &["apply", "-f", "-"],
        Some(&ha_application(name, &data, None)),
    );
    let uid = c.get_json("flinkdeployment", NAMESPACE, name)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let jid = flinkgate::controller::job_id::job_id(&uid, 1);
    let rest_base = await_running(c, name, &jid, Duration::from_secs(240));
    wait("two completed checkpoints", Duration::from_secs(60), || {
        flink_get(&rest_base, &format!("/jobs/{jid}/checkpoints"))
            .and_then(|v| v.pointer("/counts/completed")?.as_u64())
            .is_some_and(|n| n >= 2)
    });
    let jm = pods(c, &format!("app={name},component=jobmanager"));
    let jm_name = jm[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let t = Instant::now();
    c.must(
        &[
            "delete",
            "pod",
            "-n",
            NAMESPACE,
            &jm_name,
            "--grace-period=0",
            "--force",
        ],
        None,
    );
    let mut restored = None;
    wait(
        "a new JobManager runs the same job again, restored from a checkpoint",
        Duration::from_secs(240),
        || {
            let Some(r) = rest(c, name) else { return false };
            restored = restored_from(&r, &jid);
            let new_jm = pods(c, &format!("app={name},component=jobmanager"))
                .iter()
                .any(|p| running(p) && p["metadata"]["name"] != jm_name.as_str());
            new_jm && all_tasks_running(&r, &jid) && restored.is_some()
        },
    );
    eprintln!(
        "real-nodes: JobManager killed -> job {jid} RUNNING again with HA in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let restored = restored.unwrap();
    assert!(
        restored.contains(&format!("/checkpoints/{jid}/chk-")),
        "restored from one of its checkpoints: {restored}"
    );

    // A last-state upgrade (parallelism 2 -> 1): no savepoint; the new
    // JobManager runs the new job graph under the same job id, from the
    // latest checkpoint in the HA metadata.
    // The recovered JobManager's statistics start empty: wait for one of
    // its own checkpoints.
    let mut checkpoint_before = 0;
    wait(
        "a checkpoint completed by the recovered JobManager",
        Duration::from_secs(60),
        || {
            checkpoint_before = rest(c, name)
                .and_then(|r| flink_get(&r, &format!("/jobs/{jid}/checkpoints")))
                .and_then(|v| v.pointer("/latest/completed/id")?.as_u64())
                .unwrap_or(0);
            checkpoint_before > 0
        },
    );
    let jm_before = pods(c, &format!("app={name},component=jobmanager"))
        .iter()
        .filter(|p| running(p))
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect::<Vec<_>>();
    let t = Instant::now();
    c.must(
        &["apply", "-f", "-"],
        Some(
            &ha_application(name, &data, None)
                .replace("    parallelism: 2\n", "    parallelism: 1\n"),
        ),
    );
    let mut upgraded = None;
    wait(
        "the upgraded job runs with parallelism 1, restored from a checkpoint",
        Duration::from_secs(240),
        || {
            let Some(r) = rest(c, name) else { return false };
            let new_jm = pods(c, &format!("app={name},component=jobmanager"))
                .iter()
                .any(|p| {
                    running(p)
                        && !jm_before
                            .iter()
                            .any(|b| p["metadata"]["name"] == b.as_str())
                });
            let job = flink_get(&r, &format!("/jobs/{jid}"));
            let parallelism_one = job
                .as_ref()
                .and_then(|j| j["vertices"].as_array().cloned())
                .is_some_and(|v| !v.is_empty() && v.iter().all(|x| x["parallelism"] == 1));
            upgraded = flink_get(&r, &format!("/jobs/{jid}/checkpoints"))
                .and_then(|v| v.pointer("/latest/restored").cloned());
            new_jm && parallelism_one && all_tasks_running(&r, &jid) && upgraded.is_some()
        },
    );
    eprintln!(
        "real-nodes: last-state upgrade from HA metadata -> RUNNING in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let upgraded = upgraded.unwrap();
    assert_eq!(
        upgraded["is_savepoint"], false,
        "a checkpoint, not a savepoint: {upgraded}"
    );
    let path = upgraded["external_path"].as_str().unwrap_or_default();
    assert!(
        path.contains(&format!("/checkpoints/{jid}/chk-")),
        "{upgraded}"
    );
    assert!(
        upgraded["id"].as_u64().unwrap_or(0) >= checkpoint_before,
        "the latest checkpoint, not an older one: {upgraded} (before the upgrade: {checkpoint_before})"
    );
    let s = c.status("flinkdeployment", NAMESPACE, name);
    assert_eq!(str_at(&s, "/jobStatus/jobId"), jid, "the same job id: {s}");
    assert!(
        c.events(NAMESPACE, name).contains("JobKeptInHaMetadata"),
        "{}",
        c.events(NAMESPACE, name)
    );

    delete_deployments(c, &[name]);
    let ha_config_maps = || {
        json(
            c,
            &[
                "get",
                "configmaps",
                "-n",
                NAMESPACE,
                "-l",
                &format!("app={name},configmap-type=high-availability"),
            ],
        )["items"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    wait(
        "the HA cluster and its HA metadata are gone",
        Duration::from_secs(120),
        || pods(c, &format!("app={name}")).is_empty() && ha_config_maps() == 0,
    );
}

/// Failures show: an image that cannot be pulled, an application whose main
/// class does not exist, a job that fails in Flink and TaskManagers that
/// keep crashing each become FAILED with the cause in status.error and a
/// Warning Event, within a bounded time.
pub fn failures_show_in_status_and_events(c: &mut Cluster) {
    let data = data_dir(c);
    let bad_image = application("bad-image", "running", &data, 1)
        .replace("image: flink:1.20", "image: flink:0.0-does-not-exist");
    c.must(&["apply", "-f", "-"], Some(&bad_image));
    let mut s = Value::Null;
    wait(
        "an image that cannot be pulled is FAILED with the reason",
        Duration::from_secs(120),
        || {
            s = c.status("flinkdeployment", NAMESPACE, "bad-image");
            str_at(&s, "/lifecycleState") == "FAILED"
                && str_at(&s, "/jobManagerDeploymentStatus") == "ERROR"
        },
    );
    let err = str_at(&s, "/error");
    assert!(
        err.contains("ErrImagePull") || err.contains("ImagePullBackOff"),
        "{err}"
    );
    assert!(err.contains("bad-image-"), "names the pod: {err}");
    let ev = c.events(NAMESPACE, "bad-image");
    assert!(ev.contains("JobManagerPodsFailing"), "{ev}");

    // A main class that is not in the jar: Flink's entrypoint exits, so the
    // JobManager crash-loops.
    c.must(
        &["apply", "-f", "-"],
        Some(&ha_application(
            "bad-class",
            &data,
            Some("com.example.DoesNotExist"),
        )),
    );
    wait(
        "an application whose main class is missing is FAILED",
        Duration::from_secs(240),
        || {
            s = c.status("flinkdeployment", NAMESPACE, "bad-class");
            str_at(&s, "/lifecycleState") == "FAILED"
        },
    );
    let err = str_at(&s, "/error");
    assert!(
        err.contains("CrashLoopBackOff") || err.contains("keeps crashing"),
        "the JobManager's crash loop: {err}"
    );

    // A job that fails at run time, with no restarts: Flink reports it
    // FAILED (the JobManager outlives it), and so does the status.
    let failing = ha_application(
        "failing-job",
        &data,
        Some("org.apache.flink.streaming.examples.wordcount.WordCount"),
    )
    .replace(
        "    parallelism: 2\n",
        "    args: [\"--input\", \"file:///does/not/exist\"]\n    parallelism: 2\n",
    )
    .replace(
        "    taskmanager.numberOfTaskSlots: \"2\"\n",
        "    taskmanager.numberOfTaskSlots: \"2\"\n    restart-strategy.type: none\n",
    );
    c.must(&["apply", "-f", "-"], Some(&failing));
    wait(
        "a job that fails in Flink is FAILED with Flink's root exception",
        Duration::from_secs(240),
        || {
            s = c.status("flinkdeployment", NAMESPACE, "failing-job");
            str_at(&s, "/lifecycleState") == "FAILED" && str_at(&s, "/jobStatus/state") == "FAILED"
        },
    );
    let err = str_at(&s, "/error");
    assert!(err.contains("failed in Flink"), "{err}");
    let ev = c.events(NAMESPACE, "failing-job");
    assert!(ev.contains("JobFailed"), "{ev}");
    delete_deployments(c, &["bad-image", "bad-class", "failing-job"]);

    // TaskManagers whose JVM cannot start: Flink deletes each failed pod and
    // asks for another, so only the controller's pod watch sees the loop.
    let tm_crash = application("tm-crash", "running", &data, 1).replace(
        "    taskmanager.numberOfTaskSlots: \"1\"\n",
        "    taskmanager.numberOfTaskSlots: \"1\"\n    env.java.opts.taskmanager: -javaagent:/does/not/exist.jar\n",
    );
    c.must(&["apply", "-f", "-"], Some(&tm_crash));
    let t = Instant::now();
    wait(
        "TaskManagers that keep failing make the deployment FAILED",
        Duration::from_secs(240),
        || {
            s = c.status("flinkdeployment", NAMESPACE, "tm-crash");
            str_at(&s, "/lifecycleState") == "FAILED"
        },
    );
    eprintln!(
        "real-nodes: TaskManager crash loop -> FAILED in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let err = str_at(&s, "/error");
    assert!(
        err.contains("TaskManager pods keep failing") && err.contains("tm-crash-taskmanager-"),
        "names the failing TaskManager pod: {err}"
    );
    assert_eq!(
        str_at(&s, "/jobManagerDeploymentStatus"),
        "READY",
        "the JobManager itself is fine"
    );
    let ev = c.events(NAMESPACE, "tm-crash");
    assert!(ev.contains("TaskManagerPodsFailing"), "{ev}");
    delete_deployments(c, &["tm-crash"]);
}

/// `kubectl delete flinkdeployment` without waiting for the finalizer.
fn delete_deployments(c: &Cluster, names: &[&str]) {
    for name in names {
        c.delete_nowait("flinkdeployment", NAMESPACE, name);
    }
}

/// What the host holds of real-node clusters: bridges, run dirs, cgroups,
/// mounts, iptables rules and chains, processes, and the sysctls `up` sets.
fn host_footprint(dir: &Path) -> Vec<String> {
    let sh = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let dir = dir.display();
    let mut out = Vec::new();
    for (what, cmd) in [
        (
            "bridges",
            "ip -o link show type bridge | grep -o ' fg[0-9a-f]*[nh][0-9]*' | sort".to_string(),
        ),
        ("run dirs", "ls /run | grep '^fg-' | sort".into()),
        (
            "cgroups",
            "ls /sys/fs/cgroup/*/ | grep '^fg-' | sort -u".into(),
        ),
        (
            "mounts",
            format!("grep -e ' {dir}' -e ' /run/fg-' /proc/self/mountinfo | cut -d' ' -f5 | sort"),
        ),
        (
            "iptables",
            "iptables-save | grep -e KUBE- -e 'comment fg-' | sort".into(),
        ),
        (
            "processes",
            format!("ps -eo args | grep -v grep | grep -e '{dir}/' -e '/run/fg-' | sort"),
        ),
        (
            "sysctls",
            "sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.route_localnet".into(),
        ),
    ] {
        out.push(format!("{what}: {}", sh(&cmd).trim()));
    }
    out
}

/// `up --real-nodes` killed with SIGKILL once its first kubelet runs, then
/// `down`: the host is as it was before.
pub fn killed_up_then_down_leaves_nothing(dir: &Path) {
    let before = host_footprint(dir);
    let mut up = Command::new(repo("hack/cluster"))
        .args([
            "up",
            "--dir",
            dir.to_str().unwrap(),
            "--real-nodes",
            "1",
            "--nodes",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cluster up");
    wait(
        "the kubelet of the killed up is started",
        Duration::from_secs(120),
        || dir.join("pids/kubelet-node-0.pid").exists(),
    );
    std::thread::sleep(Duration::from_secs(2));
    up.kill().expect("SIGKILL up");
    let _ = up.wait();
    let during = host_footprint(dir);
    assert_ne!(
        during, before,
        "the killed up left its nodes running: {during:?}"
    );
    let down = Command::new(repo("hack/cluster"))
        .args(["down", "--dir", dir.to_str().unwrap()])
        .status()
        .expect("cluster down");
    assert!(down.success(), "down after a killed up");
    assert_eq!(host_footprint(dir), before, "down left something behind");
    assert!(!dir.exists(), "the state dir is removed");
}

/// `cluster slow-node`: a CPU quota on the node's cgroup root, while its
/// capacity and allocatable (what the scheduler sees) stay as they were.
pub fn slow_node_is_invisible_to_the_scheduler(c: &mut Cluster) {
    use sha2::Digest;
    let tag: String = sha2::Sha256::digest(c.dir.to_string_lossy().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..6]
        .to_owned();
    let quota_file = format!("/sys/fs/cgroup/cpu/fg-{tag}-n1/cpu.cfs_quota_us");
    let node = |c: &Cluster| c.get_json("node", "", "node-1")["status"].clone();
    let before = node(c);
    let slow = |spec: &str| {
        slow_node(c, spec);
        std::fs::read_to_string(&quota_file)
            .unwrap_or_else(|e| panic!("{quota_file}: {e}"))
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let nodes = real_nodes(c).len() as i64;
    assert_eq!(
        slow("node-1=0.5"),
        cpus * 100_000 / nodes / 2,
        "half of a node's share of the host's CPUs"
    );
    std::thread::sleep(Duration::from_secs(6)); // a node status update
    let after = node(c);
    assert_eq!(after["capacity"], before["capacity"]);
    assert_eq!(after["allocatable"], before["allocatable"]);
    assert_eq!(slow("node-1=off"), -1, "no limit");
    let bad = Command::new(repo("hack/cluster"))
        .args(["slow-node", "--dir", c.dir.to_str().unwrap(), "node-1=2"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "a fraction above 1 is refused");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("(0, 1]"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Between scenarios: every Flink resource of the namespace deleted and its
/// pods gone, so a failed scenario does not starve the next of CPU.
pub fn reset(c: &Cluster) {
    let _ = c.kubectl(
        &[
            "delete",
            "flinksessionjob,flinkdeployment",
            "--all",
            "-n",
            NAMESPACE,
            "--wait=false",
        ],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !pods(c, "app").is_empty() {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `hack/cluster slow-node SPEC` on the test cluster.
fn slow_node(c: &Cluster, spec: &str) {
    let ok = Command::new(repo("hack/cluster"))
        .args(["slow-node", "--dir", c.dir.to_str().unwrap(), spec])
        .status()
        .expect("cluster slow-node")
        .success();
    assert!(ok, "cluster slow-node {spec}");
}

/// A labelled metric of flinkgate's: the first series of `name` whose
/// labels contain every `label="value"` given.
fn labelled_metric(c: &Cluster, name: &str, labels: &[&str]) -> Option<f64> {
    let text = c.metrics()?;
    series(&text, name).find_map(|(set, value)| {
        (!set.is_empty() && labels.iter().all(|want| set.contains(want))).then_some(value)
    })
}

/// Placement on real nodes: a node made slow is measured below the floor
/// from a running job, filtered out for new TaskManagers (a NodesFiltered
/// Event on the pod), and, with `scheduling.rebalance` on, one TaskManager
/// is moved off it; the job restarts from its checkpoint. F(x) shows in
/// `kubectl get flinkdep`.
pub fn slow_node_filtered_and_rebalanced(c: &mut Cluster) {
    let name = "placed";
    let data = data_dir(c);
    let slow = |spec: &str| slow_node(c, spec);
    c.set_policy(&format!(
        "{}\nscheduling:\n  collectionIntervalSeconds: 3\n  minSamples: 4\n  rebalance: {{enabled: true, belowFloorSeconds: 10, cooldownSeconds: 3600}}\n",
        pod_policy()
    ));
    let manifest = application(name, "running", &data, 1)
        .replace(
            "local:///opt/flink/examples/streaming/StateMachineExample.jar",
            "local:///opt/flink/examples/streaming/CpuBound.jar",
        )
        .replace("    parallelism: 2\n", "    parallelism: 6\n")
        // The JobManager (0.5 CPU) would not fit in node-1's quota.
        .replace(
            "  jobManager:\n    resource: {memory: 1024m, cpu: 0.5}\n",
            "  jobManager:\n    resource: {memory: 1024m, cpu: 0.5}\n    podTemplate:\n      spec:\n        nodeSelector: {kubernetes.io/hostname: node-0}\n",
        )
        .replace(
            "  taskManager:\n    resource: {memory: 1024m, cpu: 0.5}",
            "  taskManager:\n    resource: {memory: 1024m, cpu: 0.15}",
        );
    c.must(&["apply", "-f", "-"], Some(&manifest));
    let uid = c.get_json("flinkdeployment", NAMESPACE, name)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let jid = flinkgate::controller::job_id::job_id(&uid, 1);
    let rest_base = await_running(c, name, &jid, Duration::from_secs(240));
    let tm_selector = format!("app={name},component=taskmanager");
    let first: Vec<(String, String)> = pods(c, &tm_selector)
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        first.iter().any(|(_, n)| n == "node-1"),
        "default spreading put a TaskManager on node-1: {first:?}"
    );
    // Slowed once the job runs (JVMs start slowly on a starved node): its
    // TaskManagers, 0.15 CPU each, now share 0.15 CPU (a pod's limit must
    // fit in the node's quota on cgroup v1).
    slow("node-1=0.15");
    let mut f_slow = 1.0;
    wait(
        "the slow node's F_n below the floor",
        Duration::from_secs(180),
        || {
            f_slow = labelled_metric(c, "flinkgate_node_task_performance", &["node=\"node-1\""])
                .unwrap_or(1.0);
            f_slow < 0.6
        },
    );
    eprintln!("real-nodes: slow node measured at F_n {f_slow:.2}");
    let t = Instant::now();
    wait(
        "a TaskManager moved off the slow node",
        Duration::from_secs(180),
        || c.events(NAMESPACE, name).contains("TaskManagerMoved"),
    );
    let ev = c.events(NAMESPACE, name);
    assert!(
        ev.contains("on node-1") && ev.contains("below the floor"),
        "the move names the node and the reason: {ev}"
    );
    let moves = || {
        labelled_metric(
            c,
            "flinkgate_rebalance_moves_total",
            &["namespace=\"rn\"", &format!("name=\"{name}\"")],
        )
    };
    assert_eq!(moves(), Some(1.0));
    wait(
        "the job runs again, restored from a checkpoint, with a replacement TaskManager",
        Duration::from_secs(240),
        || {
            let replaced = pods(c, &tm_selector).iter().any(|p| {
                running(p)
                    && !first
                        .iter()
                        .any(|(n, _)| p["metadata"]["name"] == n.as_str())
            });
            replaced
                && all_tasks_running(&rest_base, &jid)
                && restored_from(&rest_base, &jid).is_some()
        },
    );
    eprintln!(
        "real-nodes: TaskManager moved, job running again in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    for p in pods(c, &tm_selector) {
        let pod = p["metadata"]["name"].as_str().unwrap_or_default();
        if first.iter().any(|(n, _)| n == pod) {
            continue;
        }
        assert_eq!(
            p["spec"]["nodeName"], "node-0",
            "the replacement avoided the slow node: {pod}"
        );
        let pod_events = c.events(NAMESPACE, pod);
        assert!(
            pod_events.contains("NodesFiltered") && pod_events.contains("node node-1"),
            "{pod}: {pod_events}"
        );
    }
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(moves(), Some(1.0), "one move per cooldown");
    let listed = c.must(&["get", "flinkdep", "-n", NAMESPACE, name], None);
    assert!(listed.contains("F(X)"), "the F(x) column: {listed}");
    let s = c.status("flinkdeployment", NAMESPACE, name);
    assert!(
        s.pointer("/taskPerformance/job")
            .and_then(Value::as_f64)
            .is_some(),
        "status.taskPerformance: {s}"
    );
    delete_deployments(c, &[name]);
    slow("node-1=off");
    c.set_policy(&pod_policy());
    wait(
        "the placed cluster is gone",
        Duration::from_secs(120),
        || pods(c, &format!("app={name}")).is_empty(),
    );
}
