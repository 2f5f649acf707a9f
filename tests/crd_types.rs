//! The Rust types of the operator's resources keep every field they do not
//! model: an object read and written back is the same object.

use flinkgate::flink::crd::{FlinkDeployment, FlinkSessionJob};
use serde_json::json;

#[test]
fn flinkdeployment_round_trips_with_unknown_fields() {
    let original = json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "basic", "namespace": "default", "labels": {"a": "b"}},
        "spec": {
            "image": "flink:1.20",
            "flinkVersion": "v1_20",
            "serviceAccount": "flink",
            "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2", "nested": {"deep": {"key": 1}}},
            "futureTopLevel": {"x": [1, 2, 3]},
            "job": {"jarURI": "local:///job.jar", "parallelism": 2, "vendorFlag": true,
                    "initialStateReference": {"name": "snap", "extra": "kept"}},
            "jobManager": {"resource": {"cpu": 1.5, "memory": "2048m", "gpu": 1}, "replicas": 1, "newThing": "x"},
            "taskManager": {"resources": {"limits": {"memory": "4Gi"}, "claims": [{"name": "c"}]}},
            "ingress": {"template": "{{name}}.example.com", "tls": [{"hosts": ["a"], "secretName": "s", "more": 1}]},
            "podTemplate": {"spec": {"containers": [{"name": "flink-main-container", "env": [{"name": "A", "value": "1"}]}]}},
            "logConfiguration": {"log4j-console.properties": "rootLogger.level = INFO"},
            "mode": "native"
        },
        "status": {"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING", "savepointInfo": {"x": 1}},
                   "clusterInfo": {"flink-version": "1.20.1"}, "taskManager": {"replicas": 2, "labelSelector": "a=b"}}
    });
    let typed: FlinkDeployment = serde_json::from_value(original.clone()).unwrap();
    assert_eq!(typed.spec.job.as_ref().unwrap().parallelism, Some(2));
    assert_eq!(typed.spec.extra["futureTopLevel"], json!({"x": [1, 2, 3]}));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back, original);
}

#[test]
fn flinksessionjob_round_trips_with_unknown_fields() {
    let original = json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkSessionJob",
        "metadata": {"name": "job", "namespace": "default"},
        "spec": {"deploymentName": "session", "job": {"jarURI": "https://x/j.jar", "args": ["a"], "unknown": 1},
                 "restartNonce": 3, "later": "field"}
    });
    let typed: FlinkSessionJob = serde_json::from_value(original.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), original);
}
