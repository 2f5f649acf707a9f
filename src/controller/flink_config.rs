//! The Flink configuration a FlinkDeployment's cluster runs with, built in
//! the operator's precedence, lowest first: policy defaults (the namespace's
//! override already merged in by the policy), `spec.flinkConfiguration`, then
//! values derived from the spec, which always win.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::flink::config;
use crate::flink::crd::{FlinkDeployment, Resource, ResourceRequirements};
use crate::quantity::{parse_flink_memory, parse_quantity, quantity_text};

/// Ports of the JobManager, as Flink's own Kubernetes integration uses them.
pub const REST_PORT: i32 = 8081;
pub const RPC_PORT: i32 = 6123;
pub const BLOB_PORT: i32 = 6124;
pub const TM_RPC_PORT: i32 = 6122;

/// Flat `key -> value` Flink configuration, sorted so renders are stable.
pub type FlatConfig = BTreeMap<String, String>;

/// Whether the deployment runs in standalone mode (else native).
pub fn is_standalone(d: &FlinkDeployment) -> bool {
    d.spec.mode.as_deref() == Some("standalone")
}

/// Whether the deployment is an application cluster (it has `spec.job`).
pub fn is_application(d: &FlinkDeployment) -> bool {
    d.spec.job.is_some()
}

/// Flink 1.19+ reads `config.yaml` (standard YAML); older ones `flink-conf.yaml`.
pub fn config_file_name(flink_version: Option<&str>) -> &'static str {
    let minor = flink_version
        .and_then(|v| v.strip_prefix("v1_"))
        .and_then(|m| m.parse::<u32>().ok());
    match (flink_version, minor) {
        (Some(v), _) if v.starts_with("v2") => "config.yaml",
        (_, Some(m)) if m < 19 => "flink-conf.yaml",
        _ => "config.yaml",
    }
}

/// Flink memory (`2048m`, `2g`, `2Gi`) as a Kubernetes quantity in Mi.
pub fn memory_quantity(flink_memory: &str) -> Option<String> {
    let bytes = parse_flink_memory(flink_memory).ok()?;
    Some(format!("{}Mi", bytes.div_ceil(1 << 20)))
}

/// Flink memory as Flink writes it (`2048m`), accepting Kubernetes notation.
fn flink_memory(value: &str) -> Option<String> {
    let bytes = parse_flink_memory(value).ok()?;
    Some(format!("{}m", bytes.div_ceil(1 << 20)))
}

/// The effective configuration for `d`, given the policy defaults for its
/// namespace. `job_id` is the deterministic id of an application cluster's
/// job; `restore_from` a savepoint to start it from.
pub fn effective(
    d: &FlinkDeployment,
    policy_defaults: &BTreeMap<String, String>,
    job_id: Option<&str>,
    restore_from: Option<&str>,
) -> FlatConfig {
    let mut conf: FlatConfig = policy_defaults.clone();
    if let Some(user) = &d.spec.flink_configuration {
        conf.extend(config::flatten(Some(user)));
    }
    let name = d.metadata.name.clone().unwrap_or_default();
    let namespace = d.metadata.namespace.clone().unwrap_or_default();
    let mut derived = FlatConfig::new();
    let mut set = |k: &str, v: String| {
        derived.insert(k.to_owned(), v);
    };
    set("kubernetes.cluster-id", name.clone());
    set("kubernetes.namespace", namespace.clone());
    set("jobmanager.rpc.address", format!("{name}.{namespace}"));
    set("jobmanager.rpc.port", RPC_PORT.to_string());
    set("blob.server.port", BLOB_PORT.to_string());
    set("taskmanager.rpc.port", TM_RPC_PORT.to_string());
    set("rest.port", REST_PORT.to_string());
    set("jobmanager.bind-host", "0.0.0.0".into());
    set("taskmanager.bind-host", "0.0.0.0".into());
    set("rest.address", format!("{name}-rest.{namespace}"));
    set("rest.bind-address", "0.0.0.0".into());
    if let Some(image) = &d.spec.image {
        set("kubernetes.container.image.ref", image.clone());
        set("kubernetes.container.image", image.clone());
    }
    if let Some(policy) = &d.spec.image_pull_policy {
        set("kubernetes.container.image.pull-policy", policy.clone());
    }
    if let Some(sa) = &d.spec.service_account {
        set("kubernetes.service-account", sa.clone());
    }
    let jm = d.spec.job_manager.as_ref();
    let tm = d.spec.task_manager.as_ref();
    derive_resource(
        jm.and_then(|j| j.resource.as_ref()),
        jm.and_then(|j| j.resources.as_ref()),
        "jobmanager.memory.process.size",
        "kubernetes.jobmanager.cpu.amount",
        &mut set,
    );
    derive_resource(
        tm.and_then(|t| t.resource.as_ref()),
        tm.and_then(|t| t.resources.as_ref()),
        "taskmanager.memory.process.size",
        "kubernetes.taskmanager.cpu.amount",
        &mut set,
    );
    if let Some(r) = jm.and_then(|j| j.replicas) {
        set("kubernetes.jobmanager.replicas", r.to_string());
    }
    if let Some(job) = &d.spec.job {
        if let Some(p) = job.parallelism {
            set("parallelism.default", p.to_string());
        }
        if let Some(jar) = &job.jar_uri {
            set("pipeline.jars", jar.clone());
        }
        if let Some(class) = &job.entry_class {
            set("$internal.application.main", class.clone());
        }
        if let Some(args) = &job.args {
            set("$internal.application.program-args", args.join(";"));
        }
        if let Some(id) = job_id {
            set("$internal.pipeline.job-id", id.to_owned());
        }
        if let Some(path) = restore_from {
            set("execution.savepoint.path", path.to_owned());
        }
    }
    let target = match (is_standalone(d), is_application(d)) {
        (true, _) => "remote",
        (false, true) => "kubernetes-application",
        (false, false) => "kubernetes-session",
    };
    set("execution.target", target.into());
    if is_application(d) {
        // As the operator does: the JobManager outlives its job, so a
        // finished or failed job can be observed (and a native cluster does
        // not delete its own Deployment); a job that fails in main() is
        // reported as FAILED instead of exiting the JobManager.
        set("execution.shutdown-on-application-finish", "false".into());
        set(
            "execution.submit-failed-job-on-application-error",
            "true".into(),
        );
    }
    conf.extend(derived);
    conf
}

/// The pod's memory and cpu into Flink's keys, as the operator does:
/// `resources` (request, else limit) when it has any entry, else `resource`.
/// Without either, the configuration sizes the process itself.
fn derive_resource(
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
    memory_key: &str,
    cpu_key: &str,
    set: &mut impl FnMut(&str, String),
) {
    if let Some(r) = resources.filter(|r| !r.is_empty()) {
        let text = |key| r.request_or_limit(key).map(|(_, q)| quantity_text(q));
        if let Some(m) = text("memory").as_deref().and_then(flink_memory) {
            set(memory_key, m);
        }
        if let Some(cpu) = text("cpu").and_then(|c| parse_quantity(&c).ok()) {
            set(cpu_key, cpu.to_string());
        }
        return;
    }
    let Some(r) = resource else { return };
    if let Some(m) = r.memory.as_deref().and_then(flink_memory) {
        set(memory_key, m);
    }
    if let Some(cpu) = r.cpu {
        set(cpu_key, cpu.to_string());
    }
}

/// Renders the configuration file. `config.yaml` is YAML, so values are
/// written as JSON strings (valid YAML); the legacy `flink-conf.yaml`
/// parser takes the text after `: ` literally, so values go in raw.
pub fn render(conf: &FlatConfig, file_name: &str) -> String {
    let mut out = String::from("# Written by flinkgate; edit spec.flinkConfiguration instead.\n");
    let yaml = file_name == "config.yaml";
    for (k, v) in conf {
        let value = if yaml {
            Value::String(v.clone()).to_string()
        } else {
            v.replace('\n', " ")
        };
        out.push_str(k);
        out.push_str(": ");
        out.push_str(&value);
        out.push('\n');
    }
    out
}

/// Log configuration files for the ConfigMap: the spec's, else a console
/// default so `kubectl logs` shows Flink's log.
pub fn log_files(d: &FlinkDeployment) -> BTreeMap<String, String> {
    match &d.spec.log_configuration {
        Some(files) if !files.is_empty() => files.clone(),
        _ => BTreeMap::from([(
            "log4j-console.properties".to_owned(),
            DEFAULT_LOG4J_CONSOLE.to_owned(),
        )]),
    }
}

const DEFAULT_LOG4J_CONSOLE: &str = "\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flink::crd::{FlinkDeploymentSpec, JobManagerSpec, JobSpec};
    use kube::api::ObjectMeta;

    fn deployment(spec: serde_json::Value) -> FlinkDeployment {
        FlinkDeployment {
            metadata: ObjectMeta {
                name: Some("orders".into()),
                namespace: Some("team-a".into()),
                ..Default::default()
            },
            spec: serde_json::from_value::<FlinkDeploymentSpec>(spec).expect("test spec"),
            status: None,
        }
    }

    #[test]
    fn precedence_policy_then_user_then_derived() {
        let d = deployment(serde_json::json!({
            "image": "flink:1.20",
            "flinkConfiguration": {
                "taskmanager.numberOfTaskSlots": "4",
                "state.savepoints.dir": "s3://user",
                "kubernetes.cluster-id": "hijack",
                "rest": {"port": 9999}
            },
            "jobManager": {"resource": {"memory": "2Gi", "cpu": 1.5}},
        }));
        let policy = BTreeMap::from([
            ("state.savepoints.dir".to_owned(), "s3://policy".to_owned()),
            (
                "execution.checkpointing.interval".to_owned(),
                "60s".to_owned(),
            ),
        ]);
        let conf = effective(&d, &policy, None, None);
        assert_eq!(
            conf["execution.checkpointing.interval"], "60s",
            "policy default kept"
        );
        assert_eq!(
            conf["state.savepoints.dir"], "s3://user",
            "user beats policy"
        );
        assert_eq!(conf["taskmanager.numberOfTaskSlots"], "4");
        assert_eq!(
            conf["kubernetes.cluster-id"], "orders",
            "derived beats user"
        );
        assert_eq!(
            conf["rest.port"], "8081",
            "nested user key flattened, then overridden"
        );
        assert_eq!(conf["kubernetes.namespace"], "team-a");
        assert_eq!(conf["kubernetes.container.image"], "flink:1.20");
        assert_eq!(conf["jobmanager.memory.process.size"], "2048m");
        assert_eq!(conf["kubernetes.jobmanager.cpu.amount"], "1.5");
        assert_eq!(conf["execution.target"], "kubernetes-session");
        assert!(
            !conf.contains_key("execution.shutdown-on-application-finish"),
            "application-only"
        );
    }

    #[test]
    fn resource_requirements_size_the_process_as_the_operator_does() {
        // Requests win over limits; `resources` wins over `resource`.
        let d = deployment(serde_json::json!({
            "taskManager": {
                "resource": {"memory": "1g", "cpu": 4},
                "resources": {"requests": {"memory": "3Gi", "cpu": "500m"},
                              "limits": {"memory": "4Gi", "cpu": "2"}}
            },
            "jobManager": {"resources": {"limits": {"memory": "1600Mi"}}},
        }));
        let conf = effective(&d, &BTreeMap::new(), None, None);
        assert_eq!(conf["taskmanager.memory.process.size"], "3072m");
        assert_eq!(conf["kubernetes.taskmanager.cpu.amount"], "0.5");
        assert_eq!(conf["jobmanager.memory.process.size"], "1600m");
        assert!(!conf.contains_key("kubernetes.jobmanager.cpu.amount"));
        // Without either, the user's finer keys size the process alone.
        let d = deployment(serde_json::json!({
            "flinkConfiguration": {"jobmanager.memory.heap.size": "1g"},
            "jobManager": {"resources": {}},
        }));
        let conf = effective(&d, &BTreeMap::new(), None, None);
        assert_eq!(conf["jobmanager.memory.heap.size"], "1g");
        assert!(!conf.contains_key("jobmanager.memory.process.size"));
    }

    #[test]
    fn application_job_settings_are_derived() {
        let mut d = deployment(serde_json::json!({}));
        d.spec.job = Some(JobSpec {
            jar_uri: Some("local:///opt/flink/usrlib/app.jar".into()),
            parallelism: Some(3),
            entry_class: Some("com.example.App".into()),
            args: Some(vec!["--a".into(), "1".into()]),
            ..Default::default()
        });
        d.spec.job_manager = Some(JobManagerSpec {
            replicas: Some(1),
            ..Default::default()
        });
        let conf = effective(
            &d,
            &BTreeMap::new(),
            Some("ab".repeat(16).as_str()),
            Some("file:/sp/1"),
        );
        assert_eq!(conf["execution.target"], "kubernetes-application");
        assert_eq!(conf["parallelism.default"], "3");
        assert_eq!(conf["$internal.application.program-args"], "--a;1");
        assert_eq!(
            conf["execution.shutdown-on-application-finish"], "false",
            "the JobManager outlives its job, as under the operator"
        );
        assert_eq!(
            conf["execution.submit-failed-job-on-application-error"],
            "true"
        );
        assert_eq!(conf["$internal.pipeline.job-id"], "ab".repeat(16));
        assert_eq!(conf["execution.savepoint.path"], "file:/sp/1");
    }

    #[test]
    fn render_quotes_for_yaml_only() {
        let conf = FlatConfig::from([("a.b".to_owned(), "x: y".to_owned())]);
        assert!(render(&conf, "config.yaml").contains("a.b: \"x: y\"\n"));
        assert!(render(&conf, "flink-conf.yaml").contains("a.b: x: y\n"));
        assert_eq!(config_file_name(Some("v1_17")), "flink-conf.yaml");
        assert_eq!(config_file_name(Some("v1_20")), "config.yaml");
        assert_eq!(config_file_name(Some("v2_0")), "config.yaml");
        assert_eq!(config_file_name(None), "config.yaml");
    }

    #[test]
    fn memory_becomes_a_kubernetes_quantity() {
        assert_eq!(memory_quantity("2048m").as_deref(), Some("2048Mi"));
        assert_eq!(memory_quantity("2Gi").as_deref(), Some("2048Mi"));
        assert_eq!(memory_quantity("lots"), None);
    }
}
