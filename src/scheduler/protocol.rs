//! The kube-scheduler extender wire format (`k8s.io/kube-scheduler/extender/v1`).
//! The Go structs carry no json tags, so the keys are the Go field names
//! (PascalCase); the embedded Pod and NodeList keep Kubernetes' camelCase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `ExtenderArgs`: the pod and either the candidate nodes' names
/// (`nodeCacheCapable: true`) or the full NodeList; the unused one is null.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExtenderArgs {
    #[serde(default)]
    pub pod: Option<PodMeta>,
    #[serde(default)]
    pub nodes: Option<NodeList>,
    #[serde(default)]
    pub node_names: Option<Vec<String>>,
}

/// The parts of the pod the extender reads.
#[derive(Debug, Default, Deserialize)]
pub struct PodMeta {
    #[serde(default)]
    pub metadata: PodMetadata,
}

#[derive(Debug, Default, Deserialize)]
pub struct PodMetadata {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A NodeList whose items are kept as raw JSON: the filter answer must carry
/// the very same Node objects back, and only their names are needed.
#[derive(Debug, Deserialize)]
pub struct NodeList {
    #[serde(default)]
    pub items: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct NodeName {
    metadata: NodeNameMeta,
}

#[derive(Deserialize)]
struct NodeNameMeta {
    name: String,
}

impl NodeList {
    /// Name of every item; an item without `metadata.name` is an error.
    pub fn names(&self) -> Result<Vec<String>, String> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                serde_json::from_str::<NodeName>(raw.get())
                    .map(|n| n.metadata.name)
                    .map_err(|e| format!("Nodes.items[{i}] has no metadata.name: {e}"))
            })
            .collect()
    }
}

/// The NodeList sent back: the kept items, unchanged.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeListOut<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub items: Vec<&'a RawValue>,
}

/// `ExtenderFilterResult`.
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct FilterResult<'a> {
    pub nodes: Option<NodeListOut<'a>>,
    pub node_names: Option<Vec<String>>,
    pub failed_nodes: BTreeMap<String, String>,
    pub failed_and_unresolvable_nodes: BTreeMap<String, String>,
    pub error: String,
}

/// One entry of the `HostPriorityList` prioritize returns (a bare array).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HostPriority {
    pub host: String,
    pub score: i64,
}

/// Highest score the scheduler accepts from an extender (it does not clamp).
pub const MAX_EXTENDER_PRIORITY: i64 = 10;

impl ExtenderArgs {
    /// The candidate nodes, from whichever form was sent.
    pub fn candidate_names(&self) -> Result<Vec<String>, String> {
        match (&self.node_names, &self.nodes) {
            (Some(names), _) => Ok(names.clone()),
            (None, Some(list)) => list.names(),
            (None, None) => Err("ExtenderArgs has neither NodeNames nor Nodes".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms() {
        let names: ExtenderArgs = serde_json::from_str(
            r#"{"Pod":{"metadata":{"name":"p","labels":{"a":"b"}}},"Nodes":null,"NodeNames":["n1","n2"]}"#,
        )
        .unwrap();
        assert_eq!(names.candidate_names().unwrap(), ["n1", "n2"]);
        let full: ExtenderArgs = serde_json::from_str(
            r#"{"Pod":{"metadata":{"name":"p"}},"Nodes":{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"n1","labels":{}},"status":{}}]},"NodeNames":null}"#,
        )
        .unwrap();
        assert_eq!(full.candidate_names().unwrap(), ["n1"]);
        let none: ExtenderArgs =
            serde_json::from_str(r#"{"Pod":null,"Nodes":null,"NodeNames":null}"#).unwrap();
        assert!(none.candidate_names().is_err());
    }

    #[test]
    fn writes_pascal_case() {
        let r = FilterResult {
            node_names: Some(vec!["n1".into()]),
            ..FilterResult::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["NodeNames"][0], "n1");
        assert!(v["Nodes"].is_null());
        assert_eq!(v["Error"], "");
        assert!(v["FailedNodes"].as_object().unwrap().is_empty());
        let p = serde_json::to_value(vec![HostPriority {
            host: "n1".into(),
            score: 5,
        }])
        .unwrap();
        assert_eq!(p, serde_json::json!([{"Host": "n1", "Score": 5}]));
    }
}
