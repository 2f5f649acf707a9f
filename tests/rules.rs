//! Every validation rule and every mutation, through the same path the
//! webhook takes (mutate, apply the patch, validate), one test per rule.

use flinkgate::admission::cluster_view::NoClusterView;
use flinkgate::check::{Report, check_object, documents};
use flinkgate::policy::Policy;
use kube::core::admission::Operation;
use serde_json::{Value, json};

/// A FlinkDeployment every rule accepts under the built-in policy.
fn valid_deployment() -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "basic", "namespace": "team-a"},
        "spec": {
            "image": "flink:1.20",
            "flinkVersion": "v1_20",
            "serviceAccount": "flink",
            "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
            "jobManager": {"resource": {"memory": "2048m", "cpu": 1}},
            "taskManager": {"resource": {"memory": "2048m", "cpu": 1}},
            "job": {"jarURI": "local:///opt/flink/examples/streaming/StateMachineExample.jar", "parallelism": 2, "upgradeMode": "stateless"}
        }
    })
}

fn valid_session_job() -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkSessionJob",
        "metadata": {"name": "job-a", "namespace": "team-a"},
        "spec": {
            "deploymentName": "session-cluster",
            "job": {"jarURI": "https://repo.example.com/jobs/top-speed.jar", "parallelism": 2, "upgradeMode": "stateless"}
        }
    })
}

fn flink_pod(component: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "basic-taskmanager-1-1", "namespace": "team-a",
                     "labels": {"type": "flink-native-kubernetes", "component": component, "app": "basic"}},
        "spec": {
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "containers": [{"name": "flink-main-container", "image": "flink:1.20"}]
        }
    })
}

fn set(obj: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = obj
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    target
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
}

fn remove(obj: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    obj.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
}

fn check_with(policy: &Policy, obj: &Value) -> Report {
    check_object(
        policy,
        obj,
        "default",
        &Operation::Create,
        &NoClusterView("test"),
    )
}

fn check(obj: &Value) -> Report {
    check_with(&Policy::builtin(), obj)
}

fn policy(yaml: &str) -> Policy {
    Policy::parse(yaml, "test").unwrap()
}

/// Asserts a denial with a violation at `path` whose text contains `needle`.
fn assert_denied(r: &Report, path: &str, needle: &str) {
    assert_eq!(r.verdict, "denied", "expected a denial at {path}: {r:#?}");
    assert!(
        r.violations
            .iter()
            .any(|v| v.path == path && v.to_string().contains(needle)),
        "no violation at {path} containing {needle:?}: {:#?}",
        r.violations
    );
    for v in &r.violations {
        assert!(!v.fix.is_empty(), "every violation names a fix: {v:?}");
    }
}

#[test]
fn the_valid_objects_are_allowed() {
    for obj in [
        valid_deployment(),
        valid_session_job(),
        flink_pod("taskmanager"),
        flink_pod("jobmanager"),
    ] {
        let r = check(&obj);
        assert_eq!(r.verdict, "allowed", "{r:#?}");
    }
}

// --- the Flink operator's rules -------------------------------------------

#[test]
fn name_must_be_a_dns_label() {
    for bad in ["Basic", "1basic", "basic-", "basic_job"] {
        let mut d = valid_deployment();
        set(&mut d, "/metadata/name", json!(bad));
        assert_denied(&check(&d), "metadata.name", bad);
    }
}

#[test]
fn name_is_at_most_45_characters() {
    let mut d = valid_deployment();
    set(&mut d, "/metadata/name", json!("a".repeat(46)));
    assert_denied(&check(&d), "metadata.name", "at most 45");
    set(&mut d, "/metadata/name", json!("a".repeat(45)));
    assert_eq!(check(&d).verdict, "allowed");
}

#[test]
fn flink_version_is_required() {
    let mut d = valid_deployment();
    remove(&mut d, "/spec/flinkVersion");
    assert_denied(&check(&d), "spec.flinkVersion", "is missing");
}

#[test]
fn flink_version_must_be_at_least_1_15() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/flinkVersion", json!("v1_14"));
    assert_denied(&check(&d), "spec.flinkVersion", "v1_15");
    set(&mut d, "/spec/flinkVersion", json!("v1_15"));
    assert_eq!(check(&d).verdict, "allowed");
    set(&mut d, "/spec/flinkVersion", json!("1.20"));
    assert_denied(&check(&d), "spec.flinkVersion", "not a Flink version");
}

#[test]
fn operator_owned_config_keys_are_forbidden() {
    for key in [
        "kubernetes.namespace",
        "kubernetes.cluster-id",
        "high-availability.cluster-id",
    ] {
        let mut d = valid_deployment();
        set(
            &mut d,
            &format!("/spec/flinkConfiguration/{key}"),
            json!("x"),
        );
        assert_denied(
            &check(&d),
            &format!("spec.flinkConfiguration[{key}]"),
            "operator sets",
        );
    }
}

#[test]
fn nested_config_form_is_also_checked() {
    let mut d = valid_deployment();
    set(
        &mut d,
        "/spec/flinkConfiguration/kubernetes",
        json!({"cluster-id": "x"}),
    );
    assert_denied(
        &check(&d),
        "spec.flinkConfiguration[kubernetes.cluster-id]",
        "operator sets",
    );
}

#[test]
fn stateful_upgrade_modes_need_a_checkpoint_dir() {
    for mode in ["last-state", "savepoint"] {
        let mut d = valid_deployment();
        set(&mut d, "/spec/job/upgradeMode", json!(mode));
        assert_denied(
            &check(&d),
            "spec.flinkConfiguration[execution.checkpointing.dir]",
            mode,
        );
        set(
            &mut d,
            "/spec/flinkConfiguration/state.checkpoints.dir",
            json!("s3://b/cp"),
        );
        set(
            &mut d,
            "/spec/flinkConfiguration/state.savepoints.dir",
            json!("s3://b/sp"),
        );
        assert_eq!(check(&d).verdict, "allowed", "{mode}");
    }
}

#[test]
fn savepoints_need_a_savepoint_dir() {
    let base = || {
        let mut d = valid_deployment();
        set(
            &mut d,
            "/spec/flinkConfiguration/execution.checkpointing.dir",
            json!("s3://b/cp"),
        );
        d
    };
    let mut d = base();
    set(&mut d, "/spec/job/upgradeMode", json!("savepoint"));
    assert_denied(
        &check(&d),
        "spec.flinkConfiguration[execution.checkpointing.savepoint-dir]",
        "upgradeMode savepoint",
    );
    let mut d = base();
    set(&mut d, "/spec/job/savepointTriggerNonce", json!(1));
    assert_denied(
        &check(&d),
        "spec.flinkConfiguration[execution.checkpointing.savepoint-dir]",
        "savepointTriggerNonce",
    );
    let mut d = base();
    set(
        &mut d,
        "/spec/flinkConfiguration/kubernetes.operator.periodic.savepoint.interval",
        json!("1h"),
    );
    assert_denied(
        &check(&d),
        "spec.flinkConfiguration[execution.checkpointing.savepoint-dir]",
        "periodic",
    );
    set(
        &mut d,
        "/spec/flinkConfiguration/execution.checkpointing.savepoint-dir",
        json!("s3://b/sp"),
    );
    assert_eq!(check(&d).verdict, "allowed");
}

#[test]
fn jobmanager_replicas_at_least_one() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/jobManager/replicas", json!(0));
    assert_denied(&check(&d), "spec.jobManager.replicas", "below 1");
}

#[test]
fn standby_jobmanagers_need_high_availability() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/jobManager/replicas", json!(2));
    assert_denied(&check(&d), "spec.jobManager.replicas", "high availability");
    set(
        &mut d,
        "/spec/flinkConfiguration/high-availability.type",
        json!("kubernetes"),
    );
    assert_eq!(check(&d).verdict, "allowed");
}

#[test]
fn taskmanager_replicas_at_least_one_when_set() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/taskManager/replicas", json!(0));
    assert_denied(&check(&d), "spec.taskManager.replicas", "below 1");
}

#[test]
fn parallelism_at_least_one_without_taskmanager_replicas() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/job/parallelism", json!(0));
    let r = check(&d);
    assert_denied(
        &r,
        "spec.job.parallelism",
        "0 is below the minimum 1; set spec.job.parallelism to at least 1",
    );
}

#[test]
fn memory_must_be_given() {
    // No defaults in this policy, so nothing is injected.
    let p = policy("limits: {}");
    let mut d = valid_deployment();
    remove(&mut d, "/spec/jobManager/resource/memory");
    assert_denied(
        &check_with(&p, &d),
        "spec.jobManager.resource.memory",
        "no JobManager memory",
    );
    let mut d = valid_deployment();
    remove(&mut d, "/spec/taskManager");
    assert_denied(
        &check_with(&p, &d),
        "spec.taskManager.resource.memory",
        "no TaskManager memory",
    );
    // The Flink memory keys count as given.
    set(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.process.size",
        json!("4g"),
    );
    assert_eq!(check_with(&p, &d).verdict, "allowed");
}

#[test]
fn memory_must_parse() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/jobManager/resource/memory", json!("lots"));
    assert_denied(&check(&d), "spec.jobManager.resource.memory", "lots");
    let mut d = valid_deployment();
    set(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.process.size",
        json!("much"),
    );
    // The pod memory replaces the process size, so Flink never reads it...
    assert_eq!(check(&d).verdict, "allowed");
    // ...but without one, Flink must.
    remove(&mut d, "/spec/taskManager/resource/memory");
    assert_denied(&check(&d), "spec.flinkConfiguration", "much");
}

#[test]
fn memory_from_fine_grained_flink_keys_gets_no_default() {
    // Flink derives complete memory models from these; the policy's default
    // resource.memory must not be added (a 2048m JobManager total would be
    // smaller than a 4g heap, and Flink would refuse to start).
    let mut d = valid_deployment();
    remove(&mut d, "/spec/jobManager/resource/memory");
    remove(&mut d, "/spec/taskManager/resource/memory");
    set(
        &mut d,
        "/spec/flinkConfiguration/jobmanager.memory.heap.size",
        json!("4g"),
    );
    set(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.task.heap.size",
        json!("4g"),
    );
    set(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.managed.size",
        json!("1g"),
    );
    let r = check(&d);
    assert_eq!(r.verdict, "allowed", "{r:#?}");
    let patch = serde_json::to_string(&r.patch).unwrap();
    assert!(!patch.contains("memory"), "no memory default: {patch}");
    // Only a process size too small for its fixed parts is refused.
    set(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.process.size",
        json!("64m"),
    );
    remove(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.task.heap.size",
    );
    remove(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.managed.size",
    );
    assert_denied(&check(&d), "spec.flinkConfiguration", "64m");
    // A pod memory too small for the configured parts is refused where it is written.
    let mut d = valid_deployment();
    set(&mut d, "/spec/taskManager/resource/memory", json!("512m"));
    set(
        &mut d,
        "/spec/flinkConfiguration/taskmanager.memory.task.heap.size",
        json!("1g"),
    );
    assert_denied(
        &check(&d),
        "spec.taskManager.resource.memory",
        "taskmanager.memory.process.size",
    );
}

#[test]
fn resources_requests_within_limits_and_positive() {
    let mut d = valid_deployment();
    remove(&mut d, "/spec/taskManager/resource");
    set(
        &mut d,
        "/spec/taskManager/resources",
        json!({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "1", "memory": "4Gi"}}),
    );
    assert_denied(
        &check(&d),
        "spec.taskManager.resources.requests.cpu",
        "above the limit",
    );
    set(
        &mut d,
        "/spec/taskManager/resources",
        json!({"requests": {"cpu": "1", "memory": "-1Gi"}}),
    );
    assert_denied(
        &check(&d),
        "spec.taskManager.resources.requests.memory",
        "positive",
    );
}

#[test]
fn log_configuration_keys_are_restricted() {
    let mut d = valid_deployment();
    set(
        &mut d,
        "/spec/logConfiguration",
        json!({"log4j-console.properties": "x", "log4j.properties": "y"}),
    );
    assert_denied(
        &check(&d),
        "spec.logConfiguration[log4j.properties]",
        "log4j-console.properties",
    );
}

#[test]
fn ingress_needs_a_template_that_makes_a_url() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/ingress", json!({"className": "nginx"}));
    assert_denied(&check(&d), "spec.ingress.template", "is missing");
    set(
        &mut d,
        "/spec/ingress",
        json!({"template": "{{name}}.{{namespace}}.flink.example.com"}),
    );
    assert_eq!(check(&d).verdict, "allowed");
    // What Java's URL refuses (the operator's own check) ...
    set(
        &mut d,
        "/spec/ingress",
        json!({"template": "{{name}}.example.com:http"}),
    );
    assert_denied(
        &check(&d),
        "spec.ingress.template",
        "URL the operator can read",
    );
    // ... and a host Java takes but Kubernetes refuses on the Ingress.
    for template in [
        "exa mple.com/{{name}}",
        "{{name}}.Example.com",
        "10.0.0.1/{{name}}",
    ] {
        set(&mut d, "/spec/ingress", json!({ "template": template }));
        assert_denied(&check(&d), "spec.ingress.template", "Kubernetes refuses");
    }
    // Path templates have no host, and the case of a placeholder does not
    // matter, as in the operator.
    for template in [
        "/{{namespace}}/{{name}}(/|$)(.*)",
        "HTTPS://{{NAME}}.x.io:8443/p",
    ] {
        set(&mut d, "/spec/ingress", json!({ "template": template }));
        assert_eq!(check(&d).verdict, "allowed", "{template}");
    }
}

#[test]
fn service_account_is_required() {
    let mut d = valid_deployment();
    remove(&mut d, "/spec/serviceAccount");
    assert_denied(&check(&d), "spec.serviceAccount", "is missing");
}

#[test]
fn session_job_needs_a_valid_deployment_name() {
    let mut j = valid_session_job();
    remove(&mut j, "/spec/deploymentName");
    assert_denied(&check(&j), "spec.deploymentName", "is missing");
    set(&mut j, "/spec/deploymentName", json!("Not_Valid"));
    assert_denied(&check(&j), "spec.deploymentName", "Not_Valid");
}

/// `status.reconciliationStatus` as the operator writes it after deploying `spec`.
fn deployed(obj: &mut Value, spec: &Value) {
    let record =
        json!({"spec": spec, "resource_metadata": {"apiVersion": "flink.apache.org/v1beta1"}});
    set(
        obj,
        "/status",
        json!({"reconciliationStatus": {"lastReconciledSpec": record.to_string(), "state": "DEPLOYED"}}),
    );
}

#[test]
fn session_job_deployment_name_cannot_change_once_deployed() {
    use flinkgate::admission::decide::{Endpoint, Source, Subject, Target, evaluate};
    let p = Policy::builtin();
    let old = valid_session_job();
    let mut new = old.clone();
    set(&mut new, "/spec/deploymentName", json!("other-cluster"));
    let subject = Subject {
        target: Target::FlinkSessionJob,
        operation: &Operation::Update,
        namespace: "team-a",
        name: "job-a",
    };
    let run = |new: &Value| {
        evaluate(
            Endpoint::Validate,
            p.rules_for(Some("team-a")),
            &subject,
            Source::Raw(&new.to_string()),
            Some(Source::Raw(&old.to_string())),
            &NoClusterView("test"),
        )
    };
    // Never deployed: the operator lets it move, and so does flinkgate.
    let out = run(&new);
    assert!(out.violations.is_empty(), "{:?}", out.violations);
    // Deployed to session-cluster: it stays there.
    deployed(&mut new, &old["spec"]);
    let out = run(&new);
    assert!(
        out.violations
            .iter()
            .any(|v| v.path == "spec.deploymentName" && v.message.contains("cannot change")),
        "{:?}",
        out.violations
    );
    // `flinkgate check` reads the same record from a parsed object.
    assert_denied(&check(&new), "spec.deploymentName", "cannot change");
}

#[test]
fn session_job_needs_a_job() {
    let mut j = valid_session_job();
    remove(&mut j, "/spec/job");
    assert_denied(&check(&j), "spec.job", "is missing");
}

#[test]
fn session_job_jar_uri_scheme_must_be_allowed() {
    let mut j = valid_session_job();
    set(
        &mut j,
        "/spec/job/jarURI",
        json!("http://repo.example.com/job.jar"),
    );
    assert_denied(&check(&j), "spec.job.jarURI", "scheme 'http'");
    let p = policy("limits: {jarUriSchemes: [https, s3]}");
    set(&mut j, "/spec/job/jarURI", json!("s3://bucket/job.jar"));
    assert_eq!(check_with(&p, &j).verdict, "allowed");
}

#[test]
fn session_job_jar_uri_must_not_point_inside() {
    for host in [
        "127.0.0.1",
        "localhost",
        "10.0.0.7",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",
        "[::1]",
        "[fd12::1]",
    ] {
        let mut j = valid_session_job();
        set(
            &mut j,
            "/spec/job/jarURI",
            json!(format!("https://{host}/job.jar")),
        );
        assert_denied(&check(&j), "spec.job.jarURI", "inside the cluster");
    }
}

#[test]
fn session_job_jar_uri_outside_the_policys_cluster_domain() {
    let mut j = valid_session_job();
    let pod_name = "https://10-0-0-7.team-a.pod.corp.internal/job.jar";
    set(&mut j, "/spec/job/jarURI", json!(pod_name));
    // The default domain is cluster.local: corp.internal is a name like any.
    assert_eq!(check(&j).verdict, "allowed");
    let p = policy("limits: {clusterDomain: Corp.Internal.}");
    assert_denied(
        &check_with(&p, &j),
        "spec.job.jarURI",
        "is in the cluster's DNS domain",
    );
    set(
        &mut j,
        "/spec/job/jarURI",
        json!("https://10-0-0-7.team-a.pod.cluster.local/job.jar"),
    );
    assert_denied(&check(&j), "spec.job.jarURI", "inside the cluster");
}

// --- the policy's limits ----------------------------------------------------

#[test]
fn policy_allowed_flink_versions() {
    let p = policy("limits: {flinkVersions: [v1_19, v1_20]}");
    let mut d = valid_deployment();
    assert_eq!(check_with(&p, &d).verdict, "allowed");
    set(&mut d, "/spec/flinkVersion", json!("v1_18"));
    assert_denied(&check_with(&p, &d), "spec.flinkVersion", "v1_19, v1_20");
}

#[test]
fn policy_allowed_image_registries() {
    let p = policy("limits: {imageRegistries: [registry.example.com]}");
    let mut d = valid_deployment();
    assert_denied(&check_with(&p, &d), "spec.image", "registry.example.com");
    set(
        &mut d,
        "/spec/image",
        json!("registry.example.com/flink:1.20"),
    );
    assert_eq!(check_with(&p, &d).verdict, "allowed");
}

#[test]
fn policy_parallelism_range() {
    let p = policy("limits: {minParallelism: 2, maxParallelism: 8}");
    let mut d = valid_deployment();
    set(&mut d, "/spec/job/parallelism", json!(9));
    assert_denied(
        &check_with(&p, &d),
        "spec.job.parallelism",
        "above the maximum 8",
    );
    set(&mut d, "/spec/job/parallelism", json!(1));
    assert_denied(
        &check_with(&p, &d),
        "spec.job.parallelism",
        "below the minimum 2",
    );
}

#[test]
fn policy_max_cpu_and_memory() {
    let p = policy(
        "limits: {jobManager: {maxCpu: 2, maxMemory: 4Gi}, taskManager: {maxCpu: 4, maxMemory: 8Gi}}",
    );
    let mut d = valid_deployment();
    set(
        &mut d,
        "/spec/jobManager/resource",
        json!({"cpu": 3, "memory": "8g"}),
    );
    let r = check_with(&p, &d);
    assert_denied(&r, "spec.jobManager.resource.cpu", "maximum of 2");
    assert_denied(&r, "spec.jobManager.resource.memory", "maximum of 4Gi");
    let mut d = valid_deployment();
    remove(&mut d, "/spec/taskManager/resource");
    set(
        &mut d,
        "/spec/taskManager/resources",
        json!({"limits": {"cpu": "5", "memory": "16Gi"}}),
    );
    let r = check_with(&p, &d);
    assert_denied(&r, "spec.taskManager.resources.limits.cpu", "maximum of 4");
    assert_denied(
        &r,
        "spec.taskManager.resources.limits.memory",
        "maximum of 8Gi",
    );
}

#[test]
fn policy_requires_resources() {
    let p = policy("limits: {requireResources: true}");
    let mut d = valid_deployment();
    remove(&mut d, "/spec/taskManager/resource/cpu");
    assert_denied(
        &check_with(&p, &d),
        "spec.taskManager.resource.cpu",
        "resources are required",
    );
}

#[test]
fn policy_requires_checkpointing() {
    let p = policy("limits: {requireCheckpointing: true}");
    let mut d = valid_deployment();
    let r = check_with(&p, &d);
    assert_denied(
        &r,
        "spec.flinkConfiguration[execution.checkpointing.interval]",
        "required",
    );
    assert_denied(
        &r,
        "spec.flinkConfiguration[execution.checkpointing.dir]",
        "required",
    );
    set(
        &mut d,
        "/spec/flinkConfiguration/execution.checkpointing.interval",
        json!("60 s"),
    );
    set(
        &mut d,
        "/spec/flinkConfiguration/execution.checkpointing.dir",
        json!("s3://b/cp"),
    );
    assert_eq!(check_with(&p, &d).verdict, "allowed");
}

#[test]
fn policy_extra_forbidden_keys() {
    let p = policy("limits: {forbiddenConfigKeys: [kubernetes.hostnetwork.enabled]}");
    let mut d = valid_deployment();
    set(
        &mut d,
        "/spec/flinkConfiguration/kubernetes.hostnetwork.enabled",
        json!("true"),
    );
    assert_denied(
        &check_with(&p, &d),
        "spec.flinkConfiguration[kubernetes.hostnetwork.enabled]",
        "forbidden by policy",
    );
    let mut j = valid_session_job();
    set(
        &mut j,
        "/spec/flinkConfiguration",
        json!({"kubernetes.hostnetwork.enabled": "true"}),
    );
    assert_denied(
        &check_with(&p, &j),
        "spec.flinkConfiguration[kubernetes.hostnetwork.enabled]",
        "forbidden by policy",
    );
}

#[test]
fn policy_limits_are_per_namespace() {
    let p = policy(
        "limits: {maxParallelism: 100}\nnamespaces:\n  team-a:\n    limits: {maxParallelism: 4}\n",
    );
    let d = valid_deployment(); // parallelism 2 in team-a
    assert_eq!(check_with(&p, &d).verdict, "allowed");
    let mut d8 = d.clone();
    set(&mut d8, "/spec/job/parallelism", json!(8));
    assert_denied(
        &check_with(&p, &d8),
        "spec.job.parallelism",
        "maximum 4 allowed in namespace team-a",
    );
    set(&mut d8, "/metadata/namespace", json!("team-b"));
    assert_eq!(check_with(&p, &d8).verdict, "allowed");
}

#[test]
fn every_violation_is_listed_not_only_the_first() {
    let mut d = valid_deployment();
    remove(&mut d, "/spec/flinkVersion");
    remove(&mut d, "/spec/serviceAccount");
    set(&mut d, "/spec/job/parallelism", json!(0));
    let r = check(&d);
    assert!(r.violations.len() >= 3, "{:#?}", r.violations);
}

// --- Flink pods -----------------------------------------------------------

#[test]
fn pod_resources_required_and_within_limits() {
    let p = policy("limits: {requireResources: true, taskManager: {maxCpu: 2, maxMemory: 4Gi}}");
    let pod = flink_pod("taskmanager");
    assert_denied(
        &check_with(&p, &pod),
        "spec.containers[flink-main-container].resources.limits.cpu",
        "sets no cpu",
    );
    let mut big = pod.clone();
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "3", "memory": "8Gi"}});
    let r = check_with(&p, &big);
    assert_denied(
        &r,
        "spec.containers[flink-main-container].resources.limits.cpu",
        "maximum of 2",
    );
    assert_denied(
        &r,
        "spec.containers[flink-main-container].resources.limits.memory",
        "maximum of 4Gi",
    );
}

#[test]
fn pod_image_registry_allowed() {
    let p = policy("limits: {imageRegistries: [registry.example.com]}");
    let mut pod = flink_pod("jobmanager");
    pod["spec"]["initContainers"] =
        json!([{"name": "init", "image": "registry.example.com/busybox"}]);
    assert_denied(
        &check_with(&p, &pod),
        "spec.containers[flink-main-container].image",
        "allowed registry",
    );
}

#[test]
fn other_pods_are_untouched() {
    let mut pod = flink_pod("taskmanager");
    pod["metadata"]["labels"] = json!({"app": "nginx"});
    let r = check(&pod);
    assert_eq!(r.verdict, "skipped");
    assert!(r.patch.is_none());
}

// --- mutation -------------------------------------------------------------

fn patched(obj: &Value, r: &Report) -> Value {
    let mut out = obj.clone();
    json_patch::patch(&mut out, r.patch.as_ref().expect("a patch")).unwrap();
    out
}

#[test]
fn a_bare_deployment_gets_the_builtin_defaults() {
    let bare = json!({
        "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
        "metadata": {"name": "bare"},
        "spec": {"image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
                 "job": {"jarURI": "local:///opt/flink/job.jar"}}
    });
    let r = check(&bare);
    assert_eq!(r.verdict, "allowed", "{r:#?}");
    let out = patched(&bare, &r);
    assert_eq!(
        out["spec"]["flinkConfiguration"]["restart-strategy.type"],
        "exponential-delay"
    );
    assert_eq!(
        out["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"],
        "2"
    );
    assert_eq!(out["spec"]["job"]["parallelism"], 2);
    assert_eq!(out["spec"]["job"]["upgradeMode"], "stateless");
    assert_eq!(out["spec"]["jobManager"]["resource"]["memory"], "2048m");
    assert_eq!(out["spec"]["taskManager"]["resource"]["cpu"], 1.0);
    assert_eq!(out["metadata"]["labels"]["flinkgate.io/admitted"], "true");
}

#[test]
fn mutation_is_idempotent() {
    for obj in [
        valid_deployment(),
        valid_session_job(),
        flink_pod("taskmanager"),
    ] {
        let r = check(&obj);
        let once = patched(&obj, &r);
        let again = check(&once);
        assert!(
            again.patch.is_none(),
            "second pass patched {:?}",
            again.patch
        );
    }
}

#[test]
fn the_users_explicit_values_win() {
    let mut d = valid_deployment();
    set(
        &mut d,
        "/spec/flinkConfiguration/restart-strategy.type",
        json!("fixed-delay"),
    );
    set(&mut d, "/spec/job/parallelism", json!(7));
    let out = patched(&d, &check(&d));
    assert_eq!(
        out["spec"]["flinkConfiguration"]["restart-strategy.type"],
        "fixed-delay"
    );
    assert_eq!(out["spec"]["job"]["parallelism"], 7);
    // Nested form counts as set, too.
    let mut n = valid_deployment();
    set(
        &mut n,
        "/spec/flinkConfiguration/restart-strategy",
        json!({"type": "none"}),
    );
    let out = patched(&n, &check(&n));
    assert!(
        out["spec"]["flinkConfiguration"]
            .get("restart-strategy.type")
            .is_none()
    );
}

#[test]
fn default_parallelism_is_capped_by_the_maximum() {
    let p = policy("defaults: {parallelism: 16}\nlimits: {maxParallelism: 4}");
    let mut d = valid_deployment();
    remove(&mut d, "/spec/job/parallelism");
    let out = patched(&d, &check_with(&p, &d));
    assert_eq!(out["spec"]["job"]["parallelism"], 4);
}

#[test]
fn session_jobs_get_the_target_session_label() {
    let j = valid_session_job();
    let out = patched(&j, &check(&j));
    assert_eq!(
        out["metadata"]["labels"]["target.session"],
        "session-cluster"
    );
}

#[test]
fn flink_pods_get_restart_policy_scheduler_resources_and_labels() {
    let p = policy(
        "pods:\n  labels: {team: data}\n  taskManager:\n    restartPolicy: Never\n    schedulerName: flinkgate-scheduler\n    resources: {requests: {cpu: '1', memory: 2Gi}, limits: {memory: 2Gi}}\n",
    );
    let pod = flink_pod("taskmanager");
    let out = patched(&pod, &check_with(&p, &pod));
    assert_eq!(out["spec"]["restartPolicy"], "Never");
    assert_eq!(out["spec"]["schedulerName"], "flinkgate-scheduler");
    assert_eq!(
        out["spec"]["containers"][0]["resources"]["requests"]["memory"],
        "2Gi"
    );
    assert_eq!(out["metadata"]["labels"]["team"], "data");
    // A scheduler the user picked stays.
    let mut own = pod.clone();
    own["spec"]["schedulerName"] = json!("my-scheduler");
    let out = patched(&own, &check_with(&p, &own));
    assert_eq!(out["spec"]["schedulerName"], "my-scheduler");
    // JobManager pods follow their own section (none here).
    let jm = flink_pod("jobmanager");
    let out = patched(&jm, &check_with(&p, &jm));
    assert_eq!(out["spec"]["schedulerName"], "default-scheduler");
}

/// The patch is written from the typed object, not diffed: every shape of
/// absent, null or partial parents must still get operations that apply,
/// fill the defaults, and leave nothing to do on a second pass.
#[test]
fn mutation_applies_to_every_shape_of_object() {
    let p = policy(
        "defaults:\n  parallelism: 3\n  upgradeMode: savepoint\n  flinkConfiguration: {a.b: x}\n  \
         jobManager: {cpu: 1, memory: 1g}\n  taskManager: {cpu: 2, memory: 2g}\n  \
         labels: {team/x~y: data}\n\
         pods:\n  labels: {team/x~y: data}\n  taskManager:\n    restartPolicy: Never\n    \
         schedulerName: flinkgate\n    resources: {limits: {memory: 2Gi}}\n",
    );
    let d = |edit: &dyn Fn(&mut Value)| {
        let mut v = valid_deployment();
        for key in ["flinkConfiguration", "jobManager", "taskManager", "job"] {
            remove(&mut v, &format!("/spec/{key}"));
        }
        edit(&mut v);
        v
    };
    let deployments = [
        d(&|_| {}),
        d(&|v| v["metadata"]["labels"] = Value::Null),
        d(&|v| v["metadata"]["labels"] = json!({"team/x~y": "mine", "other": "1"})),
        d(&|v| {
            v["spec"]["flinkConfiguration"] = Value::Null;
            v["spec"]["jobManager"] = Value::Null;
            v["spec"]["job"] = json!({"jarURI": "local:///x.jar", "parallelism": null});
        }),
        d(&|v| {
            v["spec"]["flinkConfiguration"] = json!({"c": "d"});
            v["spec"]["jobManager"] = json!({"replicas": 1});
            v["spec"]["taskManager"] = json!({"resource": {"cpu": 4}});
            v["spec"]["job"] = json!({"jarURI": "local:///x.jar"});
        }),
        d(&|v| v["spec"]["taskManager"] = json!({"resource": null, "replicas": 2})),
    ];
    for obj in &deployments {
        let out = patched(obj, &check_with(&p, obj));
        assert!(out["metadata"]["labels"]["team/x~y"].is_string(), "{out}");
        assert_eq!(out["metadata"]["labels"]["flinkgate.io/admitted"], "true");
        assert_eq!(out["spec"]["flinkConfiguration"]["a.b"], "x", "{out}");
        assert!(
            out["spec"]["jobManager"]["resource"]["memory"].is_string(),
            "{out}"
        );
        assert!(
            out["spec"]["taskManager"]["resource"]["cpu"].is_number(),
            "{out}"
        );
        if obj["spec"]["job"].is_object() {
            assert_eq!(out["spec"]["job"]["parallelism"], 3, "{out}");
            assert_eq!(out["spec"]["job"]["upgradeMode"], "savepoint", "{out}");
        }
        assert!(check_with(&p, &out).patch.is_none(), "second pass on {out}");
    }
    // The user's values stay.
    let own = &deployments[2];
    assert_eq!(
        patched(own, &check_with(&p, own))["metadata"]["labels"]["team/x~y"],
        "mine"
    );
    let partial = patched(&deployments[4], &check_with(&p, &deployments[4]));
    assert_eq!(
        partial["spec"]["taskManager"]["resource"],
        json!({"cpu": 4, "memory": "2g"})
    );
    assert_eq!(partial["spec"]["flinkConfiguration"]["c"], "d");

    let pod = |edit: &dyn Fn(&mut Value)| {
        let mut v = flink_pod("taskmanager");
        edit(&mut v);
        v
    };
    for obj in [
        pod(&|_| {}),
        pod(&|v| v["metadata"]["labels"]["team/x~y"] = json!("mine")),
        pod(&|v| v["spec"]["containers"][0]["resources"] = json!({})),
        pod(&|v| v["spec"]["containers"][0]["resources"] = json!({"limits": null})),
        pod(&|v| {
            v["spec"]["containers"] =
                json!([{"name": "sidecar"}, {"name": "flink-main-container"}]);
            v["spec"]["restartPolicy"] = json!("Never");
            v["spec"].as_object_mut().unwrap().remove("schedulerName");
        }),
    ] {
        let out = patched(&obj, &check_with(&p, &obj));
        assert_eq!(out["spec"]["restartPolicy"], "Never", "{out}");
        assert_eq!(out["spec"]["schedulerName"], "flinkgate", "{out}");
        let main = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "flink-main-container")
            .unwrap();
        assert_eq!(main["resources"]["limits"]["memory"], "2Gi", "{out}");
        assert!(out["metadata"]["labels"]["team/x~y"].is_string());
        assert!(check_with(&p, &out).patch.is_none(), "second pass on {out}");
    }
    // A pod the policy already satisfies gets no patch at all.
    let done = pod(&|v| {
        v["metadata"]["labels"]["team/x~y"] = json!("data");
        v["metadata"]["labels"]["flinkgate.io/admitted"] = json!("true");
        v["spec"]["restartPolicy"] = json!("Never");
        v["spec"]["schedulerName"] = json!("flinkgate");
        v["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}});
    });
    assert!(check_with(&p, &done).patch.is_none());
}

#[test]
fn unknown_fields_survive_mutation() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/futureField", json!({"x": [1, 2]}));
    set(&mut d, "/spec/job/vendorExtension", json!("keep me"));
    let out = patched(&d, &check(&d));
    assert_eq!(out["spec"]["futureField"], json!({"x": [1, 2]}));
    assert_eq!(out["spec"]["job"]["vendorExtension"], "keep me");
}

// --- modes and malformed objects -----------------------------------------------

#[test]
fn warn_mode_allows_with_warnings_and_audit_allows_silently() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/job/parallelism", json!(0));
    let warn = check_with(&policy("mode: warn"), &d);
    assert_eq!(warn.verdict, "allowed");
    assert!(
        warn.warnings
            .iter()
            .any(|w| w.contains("spec.job.parallelism")),
        "{warn:#?}"
    );
    let audit = check_with(&policy("mode: audit"), &d);
    assert_eq!(audit.verdict, "allowed");
    assert!(audit.warnings.is_empty());
    assert!(!audit.violations.is_empty());
}

#[test]
fn a_malformed_object_is_denied_with_the_field() {
    let mut d = valid_deployment();
    set(&mut d, "/spec/job/parallelism", json!("two"));
    let r = check(&d);
    assert_eq!(r.verdict, "denied");
    let e = r.error.unwrap();
    assert!(e.contains("spec.job.parallelism"), "{e}");
}

#[test]
fn multi_document_yaml_is_split() {
    let docs = documents("---\na: 1\n---\n---\nb: 2\n").unwrap();
    assert_eq!(docs.len(), 2);
    assert!(documents("- not\n- an object\n").is_err());
    assert!(documents("a: [").is_err());
}

#[test]
fn updates_that_leave_the_spec_alone_are_admitted_even_when_it_violates_the_policy() {
    use flinkgate::admission::decide::{Endpoint, Source, Subject, Target, evaluate};
    let p = Policy::builtin();
    // Stored before the policy forbade it: parallelism over the limit.
    let mut old = valid_deployment();
    set(&mut old, "/spec/job/parallelism", json!(100_000));
    let subject = Subject {
        target: Target::FlinkDeployment,
        operation: &Operation::Update,
        namespace: "team-a",
        name: "basic",
    };
    let run = |endpoint, new: &Value| {
        evaluate(
            endpoint,
            p.rules_for(Some("team-a")),
            &subject,
            Source::Json(new),
            Some(Source::Raw(&old.to_string())),
            &NoClusterView("test"),
        )
    };
    // A controller adds (or removes) its finalizer: same spec.
    let mut finalized = old.clone();
    set(
        &mut finalized,
        "/metadata/finalizers",
        json!(["flinkgate.io/finalizer"]),
    );
    assert!(run(Endpoint::Validate, &finalized).violations.is_empty());
    assert!(
        run(Endpoint::Mutate, &finalized).patch.is_none(),
        "no defaults forced in"
    );
    // An edit of the spec is checked as always.
    let mut edited = old.clone();
    set(&mut edited, "/spec/job/parallelism", json!(100_001));
    assert!(
        run(Endpoint::Validate, &edited)
            .violations
            .iter()
            .any(|v| v.path.contains("parallelism")),
        "a spec edit is validated"
    );
}

#[test]
fn a_finalizer_update_through_the_webhook_path_gets_no_patch_and_no_denial() {
    use flinkgate::admission::decide::{Endpoint, decide};
    use flinkgate::admission::review::{parse, parse_typed};
    let p = Policy::builtin();
    // Invalid under the policy (parallelism 0) and missing defaults.
    let mut old = valid_deployment();
    set(&mut old, "/spec/job/parallelism", json!(0));
    remove(&mut old, "/spec/flinkConfiguration");
    let mut new = old.clone();
    set(
        &mut new,
        "/metadata/finalizers",
        json!(["flinkgate.io/finalizer"]),
    );
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "flink.apache.org", "version": "v1beta1", "kind": "FlinkDeployment"},
            "resource": {"group": "flink.apache.org", "version": "v1beta1", "resource": "flinkdeployments"},
            "name": "basic", "namespace": "team-a", "operation": "UPDATE",
            "userInfo": {"username": "flinkgate"},
            "object": new, "oldObject": old
        }
    });
    for parse in [parse, parse_typed] {
        let req = parse(review.to_string().as_bytes()).expect("a valid review");
        let mutate = decide(Endpoint::Mutate, &p, &req, &NoClusterView("test"));
        assert!(!mutate.patched, "no defaults forced into an unchanged spec");
        let validate = decide(Endpoint::Validate, &p, &req, &NoClusterView("test"));
        assert_eq!(validate.violations, 0, "no denial for a finalizer");
        assert!(validate.response.allowed);
    }
}

/// The server reads Flink objects typed during the review's parse and
/// falls back to the general parse for anything that pass cannot read;
/// every review must get the same answer, byte for byte, either way.
#[test]
fn the_one_pass_parse_answers_exactly_as_the_general_one() {
    use flinkgate::admission::decide::{Endpoint, decide};
    use flinkgate::admission::review::{encode, parse, parse_typed};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut reviews = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        reviews.push(serde_json::from_str::<Value>(&text).unwrap());
    }
    let deployment = reviews
        .iter()
        .find(|r| {
            r["request"]["kind"]["kind"] == "FlinkDeployment"
                && r["request"]["operation"] == "CREATE"
                && r["request"]["object"]["spec"]["job"]["parallelism"].is_null()
        })
        .cloned()
        .unwrap_or_else(|| reviews[0].clone());
    let variant = |edit: &dyn Fn(&mut Value)| {
        let mut r = deployment.clone();
        edit(&mut r);
        r
    };
    reviews.extend([
        variant(&|r| r["request"]["object"]["spec"]["job"]["parallelism"] = json!("two")),
        variant(&|r| r["request"]["object"]["metadata"]["labels"] = json!({"n": 1})),
        variant(&|r| {
            r["request"]["object"]["metadata"]["labels"] = json!({"flink.apache.org/canary": "TRUE"})
        }),
        variant(&|r| r["request"]["object"]["spec"] = Value::Null),
        variant(&|r| r["request"]["object"]["spec"] = json!([])),
        variant(&|r| r["request"]["object"]["status"] = json!({"reconciliationStatus": 7})),
        variant(&|r| r["request"]["object"] = json!({"spec": {}})),
        variant(&|r| r["request"]["object"] = json!("text")),
        variant(&|r| r["request"]["object"] = Value::Null),
        variant(&|r| r["request"]["object"]["metadata"] = json!(3)),
        variant(&|r| r["request"]["uid"] = Value::Null),
        variant(&|r| r["request"]["name"] = json!("")),
        variant(&|r| r["request"]["name"] = Value::Null),
        variant(&|r| r["request"]["kind"]["kind"] = json!("FlinkSessionJob")),
        variant(&|r| r["request"]["operation"] = json!("UPDATE")),
        variant(&|r| {
            r["request"]["operation"] = json!("UPDATE");
            r["request"]["oldObject"] = r["request"]["object"].clone();
        }),
        variant(&|r| {
            r["request"]["operation"] = json!("UPDATE");
            let mut old = r["request"]["object"].clone();
            old["spec"]["job"]["parallelism"] = json!(100_000);
            old["status"] = json!({"reconciliationStatus": {"lastReconciledSpec": "{\"job\":{\"upgradeMode\":\"savepoint\"},\"mode\":\"standalone\"}"}});
            r["request"]["oldObject"] = old;
        }),
        variant(&|r| r["request"]["subResource"] = json!("status")),
        variant(&|r| r["request"]["operation"] = json!("DELETE")),
    ]);
    let mut texts: Vec<String> = reviews.iter().map(Value::to_string).collect();
    // Key orders kube-apiserver does not write: object before kind, and a
    // field twice.
    let review = deployment.to_string();
    let object = deployment["request"]["object"].to_string();
    let reordered = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"object":{object},"uid":"u","kind":{{"group":"flink.apache.org","version":"v1beta1","kind":"FlinkDeployment"}},"operation":"CREATE"}}}}"#
    );
    texts.push(reordered);
    texts.push(review.replacen(r#""uid":"#, r#""uid":"twice","uid":"#, 1));
    texts.push(review.replacen(r#""object":"#, r#""object":{"metadata":{}},"object":"#, 1));
    // The one pass really reads the Flink objects typed.
    let typed = parse_typed(review.as_bytes()).unwrap();
    assert!(typed.typed.is_some() && typed.object.is_none());
    let session_job = texts
        .iter()
        .find(|t| t.contains(r#""kind":"FlinkSessionJob""#))
        .unwrap();
    assert!(parse_typed(session_job.as_bytes()).unwrap().typed.is_some());
    let p = Policy::builtin();
    for text in &texts {
        let answer =
            |parse: fn(&[u8]) -> Result<flinkgate::admission::review::Request, _>| match parse(
                text.as_bytes(),
            ) {
                Ok(req) => [Endpoint::Validate, Endpoint::Mutate]
                    .map(|e| {
                        String::from_utf8(encode(
                            decide(e, &p, &req, &NoClusterView("test")).response,
                        ))
                        .unwrap()
                    })
                    .join("\n"),
                Err(e) => format!("bad review: {e}"),
            };
        assert_eq!(answer(parse_typed), answer(parse), "for {text}");
    }
}
