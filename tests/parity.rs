//! Parity with the Apache Flink Kubernetes Operator's webhook: for each rule
//! of its validator (`DefaultValidator`, `FlinkValidator`, the autoscaler's
//! validator) a manifest it admits and one it refuses, each checked against
//! flinkgate under a policy that holds only the operator's rules (an empty
//! policy). The manifests are this project's own. Where flinkgate is
//! deliberately stricter, the README's "differences" table says so and the
//! case here is marked `stricter`.

use flinkgate::admission::cluster_view::KnownResources;
use flinkgate::check::{Report, check_object};
use flinkgate::policy::Policy;
use kube::core::admission::Operation;
use serde_json::{Value, json};

fn operator_rules() -> Policy {
    Policy::parse("{}", "operator-rules").expect("the empty policy parses")
}

/// What the webhook's FlinkDeployment cache holds in these tests: the
/// session cluster `shared-session` and the application `orders`.
fn sessions() -> KnownResources {
    let mut known = KnownResources::complete();
    let session = json!({
        "flinkVersion": "v1_20",
        "flinkConfiguration": {"execution.checkpointing.dir": "s3://b/cp",
                               "job.autoscaler.enabled": "true"}
    });
    known.insert(
        "team-a",
        "shared-session",
        serde_json::from_value(session).unwrap(),
    );
    known.insert(
        "team-a",
        "orders",
        serde_json::from_value(application()["spec"].clone()).unwrap(),
    );
    known.insert_session_job("team-a", "clicks");
    known
}

fn check(obj: &Value) -> Report {
    check_object(
        &operator_rules(),
        obj,
        "default",
        &Operation::Update,
        &sessions(),
    )
}

fn application() -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "orders", "namespace": "team-a"},
        "spec": {
            "image": "flink:1.20",
            "flinkVersion": "v1_20",
            "serviceAccount": "flink",
            "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
            "jobManager": {"resource": {"memory": "1600m", "cpu": 1}},
            "taskManager": {"resource": {"memory": "1728m", "cpu": 1}},
            "job": {"jarURI": "local:///opt/flink/usrlib/orders.jar", "parallelism": 2, "upgradeMode": "stateless"}
        }
    })
}

fn session_job() -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkSessionJob",
        "metadata": {"name": "clicks", "namespace": "team-a"},
        "spec": {
            "deploymentName": "shared-session",
            "job": {"jarURI": "https://artifacts.example.com/clicks.jar", "parallelism": 2, "upgradeMode": "stateless"}
        }
    })
}

/// Sets (or with `Value::Null`, removes) a field by JSON pointer, creating
/// parents; `~1` escapes a `/` in a key as in RFC 6901.
fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    let parts: Vec<String> = pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = parts.split_last().expect("a pointer has a key");
    let mut node = &mut obj;
    for p in parents {
        if !node.get(p).is_some_and(Value::is_object) {
            node[p.as_str()] = json!({});
        }
        node = &mut node[p.as_str()];
    }
    let map = node.as_object_mut().expect("parent is an object");
    if value.is_null() {
        map.remove(last);
    } else {
        map.insert(last.clone(), value);
    }
    obj
}

fn config(obj: Value, pairs: &[(&str, &str)]) -> Value {
    pairs.iter().fold(obj, |o, (k, v)| {
        with(
            o,
            &format!("/spec/flinkConfiguration/{}", k.replace('/', "~1")),
            json!(v),
        )
    })
}

/// The object as the operator leaves it after deploying `deployed_spec`.
fn deployed(obj: Value, deployed_spec: &Value) -> Value {
    let record = json!({"spec": deployed_spec,
                        "resource_metadata": {"apiVersion": "flink.apache.org/v1beta1"}});
    with(
        obj,
        "/status",
        json!({"reconciliationStatus": {"lastReconciledSpec": record.to_string(), "state": "DEPLOYED"}}),
    )
}

#[track_caller]
fn admits(obj: &Value) {
    let r = check(obj);
    assert_eq!(
        r.verdict, "allowed",
        "the operator admits this: {:#?}",
        r.violations
    );
}

#[track_caller]
fn refuses(obj: &Value, path: &str) {
    let r = check(obj);
    assert_eq!(r.verdict, "denied", "the operator refuses this ({path})");
    assert!(
        r.violations.iter().any(|v| v.path.contains(path)),
        "no violation at {path}: {:#?}",
        r.violations
    );
}

#[test]
fn the_base_manifests_are_admitted() {
    admits(&application());
    admits(&session_job());
}

#[test]
fn canaries_are_exempt() {
    // The operator's health-check canary carries no real spec at all.
    let canary = json!({
        "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
        "metadata": {"name": "canary", "labels": {"flink.apache.org/canary": "TRUE"}},
        "spec": {}
    });
    admits(&canary);
    let not_canary = with(
        canary.clone(),
        "/metadata/labels/flink.apache.org~1canary",
        json!("false"),
    );
    refuses(&not_canary, "spec.flinkVersion");
    let job = with(
        session_job(),
        "/metadata/labels",
        json!({"flink.apache.org/canary": "true"}),
    );
    admits(&with(job, "/spec", json!({})));
}

#[test]
fn deployment_name() {
    admits(&with(
        application(),
        "/metadata/name",
        json!("a".repeat(45)),
    ));
    refuses(
        &with(application(), "/metadata/name", json!("a".repeat(46))),
        "metadata.name",
    );
    refuses(
        &with(application(), "/metadata/name", json!("Orders")),
        "metadata.name",
    );
    refuses(
        &with(session_job(), "/spec/deploymentName", json!("9lives")),
        "spec.deploymentName",
    );
}

#[test]
fn flink_version() {
    for known in ["v1_15", "v1_20", "v2_0", "v2_3", "v2_4"] {
        admits(&with(application(), "/spec/flinkVersion", json!(known)));
    }
    for bad in ["v1_14", "v2_9", "1.20"] {
        refuses(
            &with(application(), "/spec/flinkVersion", json!(bad)),
            "spec.flinkVersion",
        );
    }
    refuses(
        &with(application(), "/spec/flinkVersion", Value::Null),
        "spec.flinkVersion",
    );
}

#[test]
fn forbidden_configuration_keys() {
    for key in [
        "kubernetes.namespace",
        "kubernetes.cluster-id",
        "high-availability.cluster-id",
    ] {
        refuses(&config(application(), &[(key, "x")]), key);
    }
}

#[test]
fn rollback_needs_high_availability() {
    let rollback = config(
        application(),
        &[("kubernetes.operator.deployment.rollback.enabled", "true")],
    );
    refuses(&rollback, "rollback.enabled");
    admits(&config(
        rollback,
        &[
            ("high-availability.type", "kubernetes"),
            ("high-availability.storageDir", "s3://b/ha"),
        ],
    ));
}

#[test]
fn health_check_needs_deployment_recovery() {
    let hc = config(
        application(),
        &[("kubernetes.operator.cluster.health-check.enabled", "true")],
    );
    admits(&hc);
    refuses(
        &config(
            hc,
            &[(
                "kubernetes.operator.jm-deployment-recovery.enabled",
                "false",
            )],
        ),
        "jm-deployment-recovery.enabled",
    );
}

#[test]
fn ingress_needs_a_template() {
    admits(&with(
        application(),
        "/spec/ingress",
        json!({"template": "{{name}}.{{namespace}}.flink.example.com"}),
    ));
    refuses(
        &with(
            application(),
            "/spec/ingress",
            json!({"className": "nginx"}),
        ),
        "spec.ingress.template",
    );
    // Placeholders and the scheme in any case; a path template has no host.
    for template in [
        "HTTP://{{NAME}}.{{Namespace}}.example.com:8080",
        "/{{namespace}}/{{name}}(/|$)(.*)",
    ] {
        admits(&with(
            application(),
            "/spec/ingress",
            json!({ "template": template }),
        ));
    }
    // Java's URL refuses a port that is not a number, or below -1.
    for template in ["{{name}}.example.com:80:90", "{{name}}.example.com:-2"] {
        refuses(
            &with(
                application(),
                "/spec/ingress",
                json!({ "template": template }),
            ),
            "spec.ingress.template",
        );
    }
}

#[test]
fn log_configuration_keys() {
    admits(&with(
        application(),
        "/spec/logConfiguration",
        json!({"log4j-console.properties": "rootLogger.level = INFO"}),
    ));
    refuses(
        &with(
            application(),
            "/spec/logConfiguration",
            json!({"log4j.properties": "x"}),
        ),
        "spec.logConfiguration",
    );
}

#[test]
fn stateful_upgrade_modes_need_a_checkpoint_directory() {
    let last_state = with(application(), "/spec/job/upgradeMode", json!("last-state"));
    refuses(&last_state, "execution.checkpointing.dir");
    refuses(
        &config(last_state.clone(), &[("state.checkpoints.dir", "   ")]),
        "execution.checkpointing.dir",
    );
    admits(&config(
        last_state,
        &[("execution.checkpointing.dir", "s3://b/cp")],
    ));
}

#[test]
fn savepoints_need_a_savepoint_directory() {
    let cp = config(
        application(),
        &[("execution.checkpointing.dir", "s3://b/cp")],
    );
    let cases = [
        with(cp.clone(), "/spec/job/upgradeMode", json!("savepoint")),
        with(cp.clone(), "/spec/job/savepointTriggerNonce", json!(1)),
        config(
            cp.clone(),
            &[("kubernetes.operator.periodic.savepoint.interval", "1 h")],
        ),
        config(
            with(cp.clone(), "/spec/job/upgradeMode", json!("last-state")),
            &[(
                "kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age",
                "10 min",
            )],
        ),
    ];
    for case in cases {
        refuses(&case, "savepoint-dir");
        admits(&config(case, &[("state.savepoints.dir", "s3://b/sp")]));
    }
}

#[test]
fn parallelism_and_replicas() {
    refuses(
        &with(application(), "/spec/job/parallelism", json!(0)),
        "spec.job.parallelism",
    );
    refuses(
        &with(application(), "/spec/job/parallelism", Value::Null),
        "spec.job.parallelism",
    );
    // With replicas set the operator ignores parallelism.
    let sized = with(application(), "/spec/taskManager/replicas", json!(2));
    admits(&with(sized.clone(), "/spec/job/parallelism", json!(0)));
    admits(&with(sized, "/spec/job/parallelism", Value::Null));
    refuses(
        &with(application(), "/spec/taskManager/replicas", json!(0)),
        "spec.taskManager.replicas",
    );
}

#[test]
fn job_manager_replicas() {
    refuses(
        &with(application(), "/spec/jobManager/replicas", json!(0)),
        "spec.jobManager.replicas",
    );
    let standby = with(application(), "/spec/jobManager/replicas", json!(2));
    refuses(&standby, "spec.jobManager.replicas");
    admits(&config(
        standby,
        &[
            ("high-availability.type", "kubernetes"),
            ("high-availability.storageDir", "s3://b/ha"),
        ],
    ));
}

#[test]
fn resource_values() {
    // Kubernetes suffixes in any case, as the operator reads them.
    admits(&with(
        application(),
        "/spec/taskManager/resource/memory",
        json!("2gi"),
    ));
    admits(&with(
        application(),
        "/spec/taskManager/resource/memory",
        json!("2 GiB"),
    ));
    refuses(
        &with(
            application(),
            "/spec/taskManager/resource/memory",
            json!("plenty"),
        ),
        "spec.taskManager.resource.memory",
    );
    admits(&with(
        application(),
        "/spec/taskManager/resource/ephemeralStorage",
        json!("10Gi"),
    ));
    for bad in ["lots", "-1Gi"] {
        refuses(
            &with(
                application(),
                "/spec/taskManager/resource/ephemeralStorage",
                json!(bad),
            ),
            "spec.taskManager.resource.ephemeralStorage",
        );
    }
}

#[test]
fn resource_requirements() {
    let tm = |r: Value| {
        with(
            with(application(), "/spec/taskManager/resource", Value::Null),
            "/spec/taskManager/resources",
            r,
        )
    };
    admits(&tm(
        json!({"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}),
    ));
    refuses(
        &tm(json!({"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "1"}})),
        "requests.cpu",
    );
    refuses(&tm(json!({"limits": {"memory": "0"}})), "limits.memory");
    refuses(
        &tm(json!({"requests": {"memory": "2Gi", "ephemeral-storage": "-1Gi"}})),
        "ephemeral-storage",
    );
    refuses(
        &tm(json!({"requests": {"memory": "2Gi", "ephemeral-storage": "lots"}})),
        "ephemeral-storage",
    );
}

#[test]
fn service_account_is_required() {
    refuses(
        &with(application(), "/spec/serviceAccount", Value::Null),
        "spec.serviceAccount",
    );
}

#[test]
fn autoscaler_options() {
    let bad_target = config(
        application(),
        &[("job.autoscaler.utilization.target", "1.5")],
    );
    admits(&bad_target);
    let on = config(bad_target, &[("job.autoscaler.enabled", "true")]);
    refuses(&on, "job.autoscaler.utilization.target");
    admits(&config(
        on.clone(),
        &[("job.autoscaler.utilization.target", "0.8")],
    ));
    refuses(
        &config(on.clone(), &[("job.autoscaler.utilization.target", "high")]),
        "utilization.target",
    );
    let fixed = config(on, &[("job.autoscaler.utilization.target", "0.8")]);
    refuses(
        &config(
            fixed.clone(),
            &[("job.autoscaler.scale-up.max-factor", "-2")],
        ),
        "scale-up.max-factor",
    );
    refuses(
        &config(fixed.clone(), &[("job.autoscaler.utilization.min", "0.9")]),
        "utilization.min",
    );
    refuses(
        &config(fixed, &[("job.autoscaler.metrics.window", "10 s")]),
        "metrics.window",
    );
}

#[test]
fn spec_changes_after_deployment() {
    let app = application();
    let session_cluster = with(application(), "/spec/job", Value::Null);
    // Application <-> session cluster.
    refuses(&deployed(session_cluster.clone(), &app["spec"]), "spec.job");
    refuses(&deployed(app.clone(), &session_cluster["spec"]), "spec.job");
    // Native <-> standalone (no mode is native).
    refuses(
        &deployed(
            with(app.clone(), "/spec/mode", json!("standalone")),
            &app["spec"],
        ),
        "spec.mode",
    );
    admits(&deployed(
        with(app.clone(), "/spec/mode", json!("native")),
        &app["spec"],
    ));
    // A new savepointRedeployNonce needs the savepoint to redeploy from.
    let redeploy = with(app.clone(), "/spec/job/savepointRedeployNonce", json!(2));
    refuses(
        &deployed(redeploy.clone(), &app["spec"]),
        "spec.job.initialSavepointPath",
    );
    admits(&deployed(
        with(
            redeploy,
            "/spec/job/initialSavepointPath",
            json!("s3://b/sp/savepoint-1"),
        ),
        &app["spec"],
    ));
    // flinkVersion may not change while suspended with last-state.
    let stateful = config(app.clone(), &[("execution.checkpointing.dir", "s3://b/cp")]);
    let last_state = with(stateful, "/spec/job/upgradeMode", json!("last-state"));
    let suspended = with(last_state.clone(), "/spec/job/state", json!("suspended"));
    let upgraded = with(last_state.clone(), "/spec/flinkVersion", json!("v2_0"));
    refuses(
        &deployed(upgraded.clone(), &suspended["spec"]),
        "spec.flinkVersion",
    );
    admits(&deployed(upgraded, &last_state["spec"]));
    // A record the operator wrote in an older format is read as well.
    let old_format = with(
        app.clone(),
        "/status",
        json!({"reconciliationStatus": {
        "lastReconciledSpec": json!({"apiVersion": "flink.apache.org/v1beta1", "job": null, "flinkVersion": "v1_20"}).to_string()}}),
    );
    refuses(&old_format, "spec.job");
}

#[test]
fn session_job_rules() {
    refuses(&with(session_job(), "/spec/job", Value::Null), "spec.job");
    refuses(
        &with(session_job(), "/spec/deploymentName", Value::Null),
        "spec.deploymentName",
    );
    // Without a jarURI the session cluster's own classes run.
    admits(&with(
        with(session_job(), "/spec/job/jarURI", Value::Null),
        "/spec/job/entryClass",
        json!("com.example.Clicks"),
    ));
    let moved = with(
        session_job(),
        "/spec/deploymentName",
        json!("other-session"),
    );
    admits(&moved);
    refuses(
        &deployed(moved, &session_job()["spec"]),
        "spec.deploymentName",
    );
}

#[test]
fn session_job_jar_uri_as_java_reads_it() {
    let jar = |uri: &str| with(session_job(), "/spec/job/jarURI", json!(uri));
    admits(&jar("https://artifacts.example.com/jobs/clicks%20v2.jar"));
    admits(&jar("HTTPS://artifacts.example.com/clicks.jar"));
    for bad in [
        "http://artifacts.example.com/clicks.jar", // not in the default allowlist
        "https:///clicks.jar",                     // no host
        "https:clicks.jar",                        // opaque: no host
        "https://artifacts.example.com/clicks v2.jar", // a space is not percent-encoded
        "https://127.0.0.1/clicks.jar",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/clicks.jar",
        "https://[fec0::7]/clicks.jar",
        "https://224.0.0.251/clicks.jar",
        "https://0.0.0.0/clicks.jar",
        "/opt/flink/usrlib/clicks.jar", // no scheme
    ] {
        refuses(&jar(bad), "spec.job.jarURI");
    }
}

#[test]
fn target_session_label_follows_the_deployment_name() {
    let stale = with(
        with(
            session_job(),
            "/metadata/labels",
            json!({"target.session": "shared-session"}),
        ),
        "/spec/deploymentName",
        json!("other-session"),
    );
    let r = check(&stale);
    let patch = r.patch.expect("a patch");
    let mut patched = stale.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched["metadata"]["labels"]["target.session"],
        "other-session"
    );
}

#[test]
fn memory_from_flink_keys() {
    let no_pod_memory = with(
        with(
            application(),
            "/spec/jobManager/resource/memory",
            Value::Null,
        ),
        "/spec/taskManager/resource/memory",
        Value::Null,
    );
    refuses(&no_pod_memory, "spec.jobManager.resource.memory");
    // Flink derives complete models from finer keys alone.
    admits(&config(
        no_pod_memory.clone(),
        &[
            ("jobmanager.memory.heap.size", "1g"),
            ("taskmanager.memory.task.heap.size", "1g"),
            ("taskmanager.memory.managed.size", "512m"),
        ],
    ));
    admits(&config(
        no_pod_memory.clone(),
        &[
            ("jobmanager.memory.flink.size", "1g"),
            ("taskmanager.memory.process.size", "1728m"),
        ],
    ));
    // Only the task heap is not enough for a TaskManager.
    refuses(
        &config(
            no_pod_memory.clone(),
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("taskmanager.memory.task.heap.size", "1g"),
            ],
        ),
        "spec.taskManager.resource.memory",
    );
    // Sized, but smaller than its fixed parts: Flink refuses to start.
    refuses(
        &config(
            no_pod_memory,
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("taskmanager.memory.process.size", "64m"),
            ],
        ),
        "spec.flinkConfiguration",
    );
}

#[test]
fn session_job_rules_with_the_cluster() {
    // Only on a session cluster.
    refuses(
        &with(session_job(), "/spec/deploymentName", json!("orders")),
        "spec.deploymentName",
    );
    // Sized by its parallelism.
    refuses(
        &with(session_job(), "/spec/job/parallelism", Value::Null),
        "spec.job.parallelism",
    );
    // The cluster's configuration counts: its checkpoint directory serves
    // the job's last-state upgrades...
    admits(&with(
        session_job(),
        "/spec/job/upgradeMode",
        json!("last-state"),
    ));
    // ...but a savepoint directory is still missing for savepoint upgrades.
    refuses(
        &with(session_job(), "/spec/job/upgradeMode", json!("savepoint")),
        "savepoint-dir",
    );
    // The cluster turns the autoscaler on; the job's own value is out of range.
    refuses(
        &config(
            session_job(),
            &[("job.autoscaler.utilization.target", "1.5")],
        ),
        "utilization.target",
    );
    // A cluster that does not exist (yet): admitted, with a warning.
    let elsewhere = with(
        session_job(),
        "/spec/deploymentName",
        json!("other-session"),
    );
    let r = check(&elsewhere);
    assert_eq!(r.verdict, "allowed", "{:#?}", r.violations);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("other-session") && w.contains("does not exist")),
        "{:?}",
        r.warnings
    );
}

fn snapshot(spec: Value) -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkStateSnapshot",
        "metadata": {"name": "orders-sp-1", "namespace": "team-a"},
        "spec": spec
    })
}

#[test]
fn state_snapshot_rules() {
    let of_orders = json!({"kind": "FlinkDeployment", "name": "orders"});
    admits(&snapshot(
        json!({"jobReference": of_orders, "savepoint": {}}),
    ));
    admits(&snapshot(
        json!({"jobReference": of_orders, "checkpoint": {}, "backoffLimit": 2}),
    ));
    admits(&snapshot(
        json!({"jobReference": {"kind": "FlinkSessionJob", "name": "clicks"},
                            "savepoint": {"path": "s3://b/sp", "formatType": "NATIVE"}}),
    ));
    // Exactly one of savepoint and checkpoint.
    refuses(&snapshot(json!({"jobReference": of_orders})), "spec");
    refuses(
        &snapshot(json!({"jobReference": of_orders, "savepoint": {}, "checkpoint": {}})),
        "spec",
    );
    // A job to snapshot, and one that exists...
    refuses(&snapshot(json!({"savepoint": {}})), "spec.jobReference");
    refuses(
        &snapshot(
            json!({"jobReference": {"kind": "FlinkDeployment", "name": "gone"}, "savepoint": {}}),
        ),
        "spec.jobReference.name",
    );
    // ...unless the snapshot is already past its trigger.
    let done = with(
        snapshot(
            json!({"jobReference": {"kind": "FlinkDeployment", "name": "gone"}, "savepoint": {}}),
        ),
        "/status",
        json!({"state": "COMPLETED", "path": "s3://b/sp/1"}),
    );
    admits(&done);
    // A savepoint that already exists needs no job, but its path.
    admits(&snapshot(
        json!({"savepoint": {"alreadyExists": true, "path": "s3://b/sp/old"}}),
    ));
    refuses(
        &snapshot(json!({"savepoint": {"alreadyExists": true}})),
        "spec.savepoint.path",
    );
}

#[test]
fn what_cannot_be_checked_is_a_warning_not_a_guess() {
    // As while the webhook's cache is not synced yet.
    let unknown = KnownResources::new("the webhook's cache is not synced yet");
    for obj in [
        session_job(),
        snapshot(
            json!({"jobReference": {"kind": "FlinkDeployment", "name": "orders"}, "savepoint": {}}),
        ),
    ] {
        let r = check_object(
            &operator_rules(),
            &obj,
            "default",
            &Operation::Create,
            &unknown,
        );
        assert_eq!(r.verdict, "allowed", "{:#?}", r.violations);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("not checked") && w.contains("not synced")),
            "{:?}",
            r.warnings
        );
    }
}
