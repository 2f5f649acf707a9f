//! The Kubernetes objects a FlinkDeployment's cluster is made of, built as
//! server-side-apply bodies: the configuration ConfigMap, the JobManager
//! Deployment, its REST and RPC Services, and in standalone mode the
//! TaskManager Deployment. Names and labels follow Flink's own Kubernetes
//! integration (`<name>`, `<name>-rest`, `flink-config-<name>`,
//! `app`/`component`/`type`), so tools written for the operator find them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::flink_config::{
    self, BLOB_PORT, FlatConfig, REST_PORT, RPC_PORT, TM_RPC_PORT, is_application, is_standalone,
    memory_quantity,
};
use super::pod_template;
use crate::flink::crd::{FlinkDeployment, PreservedJson, Resource, ResourceRequirements};

pub const MAIN_CONTAINER: &str = "flink-main-container";
pub const CONFIG_VOLUME: &str = "flink-config-volume";
pub const CONF_DIR: &str = "/opt/flink/conf";
pub const TM_TEMPLATE_FILE: &str = "taskmanager-pod-template.yaml";
/// Where a native JobManager reads the TaskManager pod template: Flink's
/// resource manager loads it from this fixed directory, never from the
/// configuration key (which only its command-line client reads).
pub const POD_TEMPLATE_DIR: &str = "/opt/flink/pod-template";
pub const POD_TEMPLATE_VOLUME: &str = "pod-template-volume";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "flinkgate");

/// Pod template annotation holding a hash of the configuration.
pub const CONFIG_HASH_ANNOTATION: &str = "flinkgate.io/config-hash";

fn hash_of(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn config_map_name(name: &str) -> String {
    format!("flink-config-{name}")
}
pub fn rest_service_name(name: &str) -> String {
    format!("{name}-rest")
}
pub fn taskmanager_name(name: &str) -> String {
    format!("{name}-taskmanager")
}

/// Everything to apply for one FlinkDeployment.
#[derive(Debug, Clone)]
pub struct ClusterObjects {
    pub config_map: Value,
    pub jobmanager: Value,
    pub rest_service: Value,
    pub rpc_service: Value,
    /// Standalone mode only; native Flink creates TaskManager pods itself.
    pub taskmanager: Option<Value>,
}

impl ClusterObjects {
    /// A hash of everything to apply: equal hashes, nothing to do.
    pub fn hash(&self) -> String {
        hash_of(&json!([
            self.config_map,
            self.jobmanager,
            self.rest_service,
            self.rpc_service,
            self.taskmanager
        ]))
    }
}

/// Replica counts the lifecycle decides (0 while suspended).
#[derive(Debug, Clone, Copy)]
pub struct Replicas {
    pub jobmanager: i32,
    pub taskmanager: i32,
}

/// `type` label value Flink uses for each mode.
fn cluster_type(d: &FlinkDeployment) -> &'static str {
    if is_standalone(d) {
        "flink-standalone-kubernetes"
    } else {
        "flink-native-kubernetes"
    }
}

pub fn selector(d: &FlinkDeployment, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".into(), d.metadata.name.clone().unwrap_or_default()),
        ("component".into(), component.into()),
        ("type".into(), cluster_type(d).into()),
    ])
}

pub fn owner_reference(d: &FlinkDeployment) -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "name": d.metadata.name,
        "uid": d.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn metadata(d: &FlinkDeployment, name: &str, component: Option<&str>) -> Value {
    let mut labels = json!({
        MANAGED_BY.0: MANAGED_BY.1,
        "app": d.metadata.name,
        "type": cluster_type(d),
    });
    if let Some(c) = component {
        labels["component"] = json!(c);
    }
    json!({
        "name": name,
        "namespace": d.metadata.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(d)],
    })
}

/// Builds every object for `d` from its effective configuration.
pub fn cluster_objects(
    d: &FlinkDeployment,
    conf: &FlatConfig,
    replicas: Replicas,
) -> ClusterObjects {
    let name = d.metadata.name.clone().unwrap_or_default();
    let by_name = conf
        .get(pod_template::MERGE_BY_NAME_KEY)
        .is_some_and(|v| v == "true");
    let common = d.spec.pod_template.as_ref().map(PreservedJson::value);
    let jm_spec = d.spec.job_manager.as_ref();
    let tm_spec = d.spec.task_manager.as_ref();
    let jm_own = jm_spec
        .and_then(|j| j.pod_template.as_ref())
        .map(PreservedJson::value);
    let tm_own = tm_spec
        .and_then(|t| t.pod_template.as_ref())
        .map(PreservedJson::value);
    let jm_template = pod_template::merge(common.as_ref(), jm_own.as_ref(), by_name);
    let tm_template = pod_template::merge(common.as_ref(), tm_own.as_ref(), by_name);

    let file = flink_config::config_file_name(d.spec.flink_version.as_deref());
    let mut conf = conf.clone();
    let mut data = flink_config::log_files(d);
    if !is_standalone(d) {
        // Native Flink builds TaskManager pods from this file.
        let tm_pod = pod(
            d,
            &tm_template,
            PodRole::NativeTaskManagerTemplate,
            tm_spec.and_then(|t| t.resource.as_ref()),
            tm_spec.and_then(|t| t.resources.as_ref()),
            Vec::new(),
        );
        data.insert(TM_TEMPLATE_FILE.into(), tm_pod.to_string());
        conf.insert(
            "kubernetes.pod-template-file.taskmanager".into(),
            format!("{POD_TEMPLATE_DIR}/{TM_TEMPLATE_FILE}"),
        );
    }
    data.insert(file.into(), flink_config::render(&conf, file));
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(d, &config_map_name(&name), None),
        "data": data,
    });

    let jm_args = jobmanager_args(d);
    let jm_pod = pod(
        d,
        &jm_template,
        PodRole::JobManager {
            native: !is_standalone(d),
        },
        jm_spec.and_then(|j| j.resource.as_ref()),
        jm_spec.and_then(|j| j.resources.as_ref()),
        jm_args,
    );
    // Pods read the configuration once, at start: a changed configuration
    // (a new job id, a resume, a spec change) must roll them.
    let config_hash = hash_of(&config_map["data"]);
    let with_hash = |mut pod: Value| {
        pod["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] = json!(config_hash);
        pod
    };
    let jm_pod = with_hash(jm_pod);
    let jobmanager = deployment(d, &name, "jobmanager", replicas.jobmanager, jm_pod);

    let taskmanager = is_standalone(d).then(|| {
        let tm_pod = pod(
            d,
            &tm_template,
            PodRole::StandaloneTaskManager,
            tm_spec.and_then(|t| t.resource.as_ref()),
            tm_spec.and_then(|t| t.resources.as_ref()),
            vec!["taskmanager".into()],
        );
        deployment(
            d,
            &taskmanager_name(&name),
            "taskmanager",
            replicas.taskmanager,
            with_hash(tm_pod),
        )
    });

    let jm_selector = selector(d, "jobmanager");
    let rest_service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(d, &rest_service_name(&name), Some("jobmanager")),
        "spec": {
            "type": "ClusterIP",
            "selector": jm_selector,
            "ports": [{"name": "rest", "port": REST_PORT, "targetPort": REST_PORT}],
        },
    });
    let rpc_service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(d, &name, Some("jobmanager")),
        "spec": {
            "clusterIP": "None",
            "selector": jm_selector,
            "ports": [
                {"name": "jobmanager-rpc", "port": RPC_PORT, "targetPort": RPC_PORT},
                {"name": "blobserver", "port": BLOB_PORT, "targetPort": BLOB_PORT},
            ],
        },
    });
    ClusterObjects {
        config_map,
        jobmanager,
        rest_service,
        rpc_service,
        taskmanager,
    }
}

/// The JobManager container's arguments for the image's docker-entrypoint.
fn jobmanager_args(d: &FlinkDeployment) -> Vec<String> {
    match (is_standalone(d), is_application(d)) {
        (true, false) => vec!["jobmanager".into()],
        (true, true) => vec!["standalone-job".into()],
        (false, app) => {
            let entry = if app {
                "kubernetes-application"
            } else {
                "kubernetes-session"
            };
            vec![
                "bash".into(),
                "-c".into(),
                format!("$FLINK_HOME/bin/kubernetes-jobmanager.sh {entry}"),
            ]
        }
    }
}

fn deployment(
    d: &FlinkDeployment,
    name: &str,
    component: &str,
    replicas: i32,
    pod: Value,
) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(d, name, Some(component)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(d, component)},
            // A JobManager must never run twice side by side.
            "strategy": {"type": "Recreate"},
            "template": pod,
        },
    })
}

/// Which pod a template is for; it decides what flinkgate adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodRole {
    /// A JobManager; a native one also gets the TaskManager pod template.
    JobManager {
        native: bool,
    },
    StandaloneTaskManager,
    /// The template native Flink builds TaskManager pods from: Flink adds
    /// the configuration volume and the RPC port itself, and refuses
    /// duplicates of them.
    NativeTaskManagerTemplate,
}

impl PodRole {
    fn component(self) -> &'static str {
        match self {
            Self::JobManager { .. } => "jobmanager",
            Self::StandaloneTaskManager | Self::NativeTaskManagerTemplate => "taskmanager",
        }
    }
}

/// A pod template: the merged user template, with flinkgate's fields laid
/// over the main container (image, args, ports, resources, config mount).
fn pod(
    d: &FlinkDeployment,
    template: &Value,
    role: PodRole,
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
    args: Vec<String>,
) -> Value {
    let name = d.metadata.name.clone().unwrap_or_default();
    let component = role.component();
    let built_by_flink = role == PodRole::NativeTaskManagerTemplate;
    let mut pod = json!({
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    // Only labels and annotations of the template's metadata apply to pods.
    if let Some(meta) = pod["metadata"].as_object_mut() {
        meta.retain(|k, _| k == "labels" || k == "annotations");
    }
    for (k, v) in selector(d, component) {
        pod["metadata"]["labels"][k] = json!(v);
    }
    let spec = &mut pod["spec"];
    if let Some(sa) = &d.spec.service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    let mut containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let index = match containers
        .iter()
        .position(|c| c.get("name").and_then(Value::as_str) == Some(MAIN_CONTAINER))
    {
        Some(i) => i,
        None => {
            containers.insert(0, json!({"name": MAIN_CONTAINER}));
            0
        }
    };
    let main = &mut containers[index];
    main["image"] = json!(d.spec.image.as_deref().unwrap_or("flink"));
    if let Some(p) = &d.spec.image_pull_policy {
        main["imagePullPolicy"] = json!(p);
    }
    if !args.is_empty() {
        main["args"] = json!(args);
    }
    match role {
        PodRole::JobManager { .. } => {
            main["ports"] = json!([
                {"name": "rest", "containerPort": REST_PORT},
                {"name": "jobmanager-rpc", "containerPort": RPC_PORT},
                {"name": "blobserver", "containerPort": BLOB_PORT},
            ]);
        }
        PodRole::StandaloneTaskManager => {
            main["ports"] = json!([{"name": "rpc", "containerPort": TM_RPC_PORT}]);
        }
        PodRole::NativeTaskManagerTemplate => {}
    }
    if let Some(r) = container_resources(resource, resources) {
        main["resources"] = r;
    }
    let mut mounts = main
        .get("volumeMounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    mounts.retain(|m| {
        let n = m.get("name").and_then(Value::as_str);
        n != Some(CONFIG_VOLUME) && n != Some(POD_TEMPLATE_VOLUME)
    });
    if !built_by_flink {
        mounts.push(json!({"name": CONFIG_VOLUME, "mountPath": CONF_DIR}));
    }
    if role == (PodRole::JobManager { native: true }) {
        mounts.push(json!({"name": POD_TEMPLATE_VOLUME, "mountPath": POD_TEMPLATE_DIR}));
    }
    main["volumeMounts"] = json!(mounts);
    let mut env = main
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !env
        .iter()
        .any(|e| e.get("name").and_then(Value::as_str) == Some("_POD_IP_ADDRESS"))
    {
        env.push(json!({"name": "_POD_IP_ADDRESS", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}));
    }
    main["env"] = json!(env);
    spec["containers"] = json!(containers);
    let mut volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    volumes.retain(|v| {
        let n = v.get("name").and_then(Value::as_str);
        n != Some(CONFIG_VOLUME) && n != Some(POD_TEMPLATE_VOLUME)
    });
    if !built_by_flink {
        volumes.push(json!({"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(&name)}}));
    }
    if role == (PodRole::JobManager { native: true }) {
        volumes.push(json!({"name": POD_TEMPLATE_VOLUME, "configMap": {
            "name": config_map_name(&name),
            "items": [{"key": TM_TEMPLATE_FILE, "path": TM_TEMPLATE_FILE}],
        }}));
    }
    spec["volumes"] = json!(volumes);
    pod
}

/// Kubernetes requests/limits: `resources` as given, else Flink's
/// `resource` (cpu, memory) as both requests and limits, as the operator does.
fn container_resources(
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
) -> Option<Value> {
    if let Some(r) = resources
        && (r.requests.is_some() || r.limits.is_some())
    {
        let mut out = json!({});
        if let Some(req) = &r.requests {
            out["requests"] = json!(req);
        }
        if let Some(lim) = &r.limits {
            out["limits"] = json!(lim);
        }
        return Some(out);
    }
    let r = resource?;
    let mut amounts = serde_json::Map::new();
    if let Some(cpu) = r.cpu {
        amounts.insert("cpu".into(), json!(cpu.to_string()));
    }
    if let Some(m) = r.memory.as_deref().and_then(memory_quantity) {
        amounts.insert("memory".into(), json!(m));
    }
    if let Some(e) = &r.ephemeral_storage {
        amounts.insert("ephemeral-storage".into(), json!(e));
    }
    (!amounts.is_empty()).then(|| json!({"requests": amounts, "limits": amounts}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn deployment_of(spec: Value) -> FlinkDeployment {
        FlinkDeployment {
            metadata: ObjectMeta {
                name: Some("orders".into()),
                namespace: Some("team-a".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: serde_json::from_value(spec).expect("test spec"),
            status: None,
        }
    }

    fn build(spec: Value) -> ClusterObjects {
        let d = deployment_of(spec);
        let conf = flink_config::effective(&d, &BTreeMap::new(), None, None);
        cluster_objects(
            &d,
            &conf,
            Replicas {
                jobmanager: 1,
                taskmanager: 2,
            },
        )
    }

    #[test]
    fn native_session_cluster() {
        let o = build(json!({
            "image": "flink:1.20", "flinkVersion": "v1_20", "serviceAccount": "flink",
            "jobManager": {"resource": {"memory": "2048m", "cpu": 1}},
            "taskManager": {"resource": {"memory": "4g", "cpu": 2},
                            "podTemplate": {"spec": {"nodeSelector": {"pool": "tm"}}}},
        }));
        assert!(o.taskmanager.is_none(), "native Flink creates TaskManagers");
        let jm = &o.jobmanager;
        assert_eq!(jm["metadata"]["name"], "orders");
        assert_eq!(jm["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(jm["spec"]["replicas"], 1);
        let pod = &jm["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"]["component"], "jobmanager");
        assert_eq!(pod["spec"]["serviceAccountName"], "flink");
        let main = &pod["spec"]["containers"][0];
        assert_eq!(main["name"], MAIN_CONTAINER);
        assert_eq!(main["image"], "flink:1.20");
        assert!(
            main["args"][2]
                .as_str()
                .unwrap_or_default()
                .ends_with("kubernetes-session")
        );
        assert_eq!(main["resources"]["limits"]["memory"], "2048Mi");
        assert!(
            pod["spec"].get("nodeSelector").is_none(),
            "TM template stays off the JM"
        );
        let data = &o.config_map["data"];
        assert_eq!(o.config_map["metadata"]["name"], "flink-config-orders");
        let conf = data["config.yaml"].as_str().unwrap_or_default();
        assert!(conf.contains("kubernetes.cluster-id: \"orders\""));
        assert!(conf.contains("kubernetes.pod-template-file.taskmanager"));
        let tm: Value = serde_json::from_str(data[TM_TEMPLATE_FILE].as_str().unwrap_or("{}"))
            .unwrap_or_default();
        assert_eq!(tm["spec"]["nodeSelector"]["pool"], "tm");
        let tm_main = &tm["spec"]["containers"][0];
        assert!(
            tm_main.get("ports").is_none()
                && tm["spec"]["volumes"].as_array().is_none_or(Vec::is_empty)
                && tm_main["volumeMounts"].as_array().is_none_or(Vec::is_empty),
            "Flink adds the RPC port and the config volume to its TaskManager pods itself: {tm}"
        );
        assert!(conf.contains(
            "kubernetes.pod-template-file.taskmanager: \"/opt/flink/pod-template/taskmanager-pod-template.yaml\""
        ));
        assert!(
            pod["spec"]["volumes"]
                .to_string()
                .contains(POD_TEMPLATE_VOLUME)
                && main["volumeMounts"]
                    .to_string()
                    .contains("\"/opt/flink/pod-template\""),
            "the JobManager reads the TaskManager template from Flink's fixed directory"
        );
        assert_eq!(
            tm["spec"]["containers"][0]["resources"]["requests"]["memory"],
            "4096Mi"
        );
        assert_eq!(o.rest_service["metadata"]["name"], "orders-rest");
        assert_eq!(o.rest_service["spec"]["ports"][0]["port"], 8081);
        assert_eq!(o.rpc_service["spec"]["clusterIP"], "None");
    }

    #[test]
    fn standalone_has_a_taskmanager_deployment() {
        let o = build(json!({"mode": "standalone", "image": "flink:1.20",
            "podTemplate": {"spec": {"containers": [{"name": "sidecar", "image": "s"}]}}}));
        let tm = o.taskmanager.expect("standalone TaskManagers");
        assert_eq!(tm["metadata"]["name"], "orders-taskmanager");
        assert_eq!(tm["spec"]["replicas"], 2);
        let containers = &tm["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[0]["name"], MAIN_CONTAINER,
            "main container added first"
        );
        assert_eq!(containers[1]["name"], "sidecar", "user's sidecar kept");
        assert_eq!(containers[0]["args"][0], "taskmanager");
        assert_eq!(
            o.jobmanager["spec"]["template"]["spec"]["containers"][0]["args"][0],
            "jobmanager"
        );
    }

    #[test]
    fn a_configuration_change_rolls_the_pods() {
        let d = deployment_of(json!({"mode": "standalone", "job": {"jarURI": "local:///a.jar"}}));
        let hash = |job_id: &str| {
            let conf = flink_config::effective(&d, &BTreeMap::new(), Some(job_id), None);
            let o = cluster_objects(
                &d,
                &conf,
                Replicas {
                    jobmanager: 1,
                    taskmanager: 1,
                },
            );
            let jm = o.jobmanager["spec"]["template"]["metadata"]["annotations"]
                [CONFIG_HASH_ANNOTATION]
                .clone();
            let tm = o.taskmanager.map(|t| {
                t["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION].clone()
            });
            assert_eq!(Some(jm.clone()), tm, "both roles carry the same hash");
            jm
        };
        assert_eq!(hash("a"), hash("a"), "stable for the same configuration");
        assert_ne!(hash("a"), hash("b"), "changes with it");
    }

    #[test]
    fn suspended_cluster_has_zero_replicas() {
        let d = deployment_of(json!({"mode": "standalone"}));
        let conf = flink_config::effective(&d, &BTreeMap::new(), None, None);
        let o = cluster_objects(
            &d,
            &conf,
            Replicas {
                jobmanager: 0,
                taskmanager: 0,
            },
        );
        assert_eq!(o.jobmanager["spec"]["replicas"], 0);
        assert_eq!(
            o.taskmanager.map(|t| t["spec"]["replicas"].clone()),
            Some(json!(0))
        );
    }
}
