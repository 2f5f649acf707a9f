//! The CustomResourceDefinitions flinkgate installs, generated from the Rust
//! types. The operator's CRDs prune unknown fields (no
//! `x-kubernetes-preserve-unknown-fields` in spec), so the markers kube adds
//! for our catch-all `extra` maps are removed from `spec`; they stay only
//! where a field is free-form by design (flinkConfiguration, pod templates)
//! and on `status`, which the controller writes.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::crd::{FlinkDeployment, FlinkSessionJob};
use super::state_snapshot::FlinkStateSnapshot;

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

/// The three CRDs, ready to apply.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        FlinkDeployment::crd(),
        FlinkSessionJob::crd(),
        FlinkStateSnapshot::crd(),
    ]
    .into_iter()
    .map(tidy)
    .collect()
}

/// `<plural>.yaml` file name and YAML text of each CRD.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_yaml_ng::Error> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.spec.names.plural);
            let yaml = serde_yaml_ng::to_string(&crd)?;
            Ok((name, format!("# Generated from the types in src/flink by `flinkgate crds --out-dir deploy/crds`; do not edit.\n{yaml}")))
        })
        .collect()
}

fn tidy(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut v = serde_json::to_value(&crd).unwrap_or(Value::Null);
    if let Some(versions) = v
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for version in versions {
            if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                if let Some(obj) = schema.as_object_mut() {
                    obj.remove("description");
                    obj.insert(
                        "description".into(),
                        Value::String(
                            "Apache Flink Kubernetes Operator resource, as validated by flinkgate"
                                .into(),
                        ),
                    );
                }
                if let Some(spec) = schema.pointer_mut("/properties/spec") {
                    strip_catch_all(spec);
                }
            }
        }
    }
    serde_json::from_value(v).unwrap_or(crd)
}

/// Removes the preserve marker from every typed object (one that lists
/// `properties`); free-form objects keep it.
fn strip_catch_all(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties") {
        obj.remove(PRESERVE);
    }
    for key in ["properties"] {
        if let Some(Value::Object(props)) = obj.get_mut(key) {
            for child in props.values_mut() {
                strip_catch_all(child);
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = obj.get_mut(key) {
            strip_catch_all(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subresources_match_the_operator() {
        let crds = crds();
        let fd = &crds[0];
        assert_eq!(
            fd.metadata.name.as_deref(),
            Some("flinkdeployments.flink.apache.org")
        );
        assert_eq!(
            fd.spec.names.short_names.as_deref(),
            Some(&["flinkdep".to_string()][..])
        );
        let v = &fd.spec.versions[0];
        assert_eq!(v.name, "v1beta1");
        let sub = v.subresources.as_ref().unwrap();
        assert!(sub.status.is_some());
        assert_eq!(
            sub.scale.as_ref().unwrap().spec_replicas_path,
            ".spec.taskManager.replicas"
        );
        let sj = &crds[1];
        assert_eq!(
            sj.spec.names.short_names.as_deref(),
            Some(&["sessionjob".to_string()][..])
        );
        assert!(
            sj.spec.versions[0]
                .subresources
                .as_ref()
                .unwrap()
                .scale
                .is_none()
        );
    }

    #[test]
    fn spec_prunes_unknown_fields_except_free_form_ones() {
        let fd = serde_json::to_value(&crds()[0]).unwrap();
        let spec = fd
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
            .unwrap();
        assert!(spec.get(PRESERVE).is_none());
        assert!(
            spec.pointer("/properties/job")
                .unwrap()
                .get(PRESERVE)
                .is_none()
        );
        assert_eq!(
            spec.pointer("/properties/flinkConfiguration").unwrap()[PRESERVE],
            true
        );
        assert_eq!(
            spec.pointer("/properties/podTemplate").unwrap()[PRESERVE],
            true
        );
        let status = fd
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status")
            .unwrap();
        assert_eq!(status[PRESERVE], true);
    }
}
