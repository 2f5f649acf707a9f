//! Manifests the end-to-end scenarios apply.

/// The start every FlinkDeployment here shares: the image and its Flink
/// version, the `flink` service account.
fn deployment_head(name: &str, ns: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  serviceAccount: flink
"#
    )
}

pub fn deployment(name: &str, ns: &str, parallelism: i64) -> String {
    deployment_head(name, ns)
        + &format!(
            r#"  jobManager:
    resource: {{memory: 2048m, cpu: 1}}
  taskManager:
    resource: {{memory: 2048m, cpu: 1}}
  job:
    jarURI: local:///opt/flink/examples/streaming/TopSpeedWindowing.jar
    parallelism: {parallelism}
"#
        )
}

/// A deployment with no resources, no parallelism, no config: the defaults fill it.
pub fn bare_deployment(name: &str, ns: &str) -> String {
    deployment_head(name, ns)
        + "  job:\n    jarURI: local:///opt/flink/examples/streaming/TopSpeedWindowing.jar\n"
}

pub fn session_cluster_and_job(ns: &str) -> String {
    format!(
        r#"apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: session
  namespace: {ns}
spec:
  image: flink:1.20
  flinkVersion: v1_20
  serviceAccount: flink
---
apiVersion: flink.apache.org/v1beta1
kind: FlinkSessionJob
metadata:
  name: top-speed
  namespace: {ns}
spec:
  deploymentName: session
  job:
    jarURI: https://repo.example.com/flink/TopSpeedWindowing.jar
    parallelism: 2
"#
    )
}

pub fn taskmanager_pod(name: &str, ns: &str, cpu_limit: &str) -> String {
    let resources = if cpu_limit.is_empty() {
        String::new()
    } else {
        format!("\n    resources:\n      limits: {{cpu: \"{cpu_limit}\", memory: 2Gi}}")
    };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{type: flink-native-kubernetes, component: taskmanager, app: basic}}
spec:
  containers:
  - name: flink-main-container
    image: flink:1.20{resources}
"#
    )
}

pub fn plain_pod(name: &str, ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: web}}
spec:
  containers:
  - name: web
    image: nginx:1.27
"#
    )
}

/// The policy ConfigMap flinkgate watches, holding `policy`.
pub fn policy_configmap(policy: &str) -> String {
    let indented: String = policy.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flinkgate-policy\n  namespace: flinkgate-system\ndata:\n  policy.yaml: |\n{indented}"
    )
}
