//! The operator's record of what it last deployed:
//! `status.reconciliationStatus.lastReconciledSpec`, a JSON string. The
//! current format wraps the spec as `{"spec": …, "resource_metadata": …}`;
//! older operators stored the spec itself (with an `apiVersion` beside it).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The spec inside a `lastReconciledSpec` string, as JSON.
pub fn spec_value(text: &str) -> Option<Value> {
    let mut wrapper: Value = serde_json::from_str(text).ok()?;
    let obj = wrapper.as_object_mut()?;
    if obj.contains_key("resource_metadata") {
        return obj.remove("spec");
    }
    obj.remove("apiVersion");
    Some(wrapper)
}

/// The spec inside a `lastReconciledSpec` string, typed; `None` when it
/// cannot be read (a record the operator wrote is never held against a user).
pub fn spec<S: DeserializeOwned>(text: &str) -> Option<S> {
    serde_json::from_value(spec_value(text)?).ok()
}

/// `lastReconciledSpec` of a `reconciliationStatus` object.
pub fn last_reconciled_spec(reconciliation_status: Option<&Value>) -> Option<Value> {
    spec_value(reconciliation_status?.get("lastReconciledSpec")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_formats() {
        let current = json!({"spec": {"flinkVersion": "v1_20"},
                             "resource_metadata": {"apiVersion": "flink.apache.org/v1beta1"}})
        .to_string();
        assert_eq!(spec_value(&current), Some(json!({"flinkVersion": "v1_20"})));
        let old =
            json!({"flinkVersion": "v1_19", "apiVersion": "flink.apache.org/v1beta1"}).to_string();
        assert_eq!(spec_value(&old), Some(json!({"flinkVersion": "v1_19"})));
        assert_eq!(spec_value("not json"), None);
        assert_eq!(spec_value("[1]"), None);
        let status = json!({"lastReconciledSpec": current});
        assert_eq!(
            last_reconciled_spec(Some(&status)),
            Some(json!({"flinkVersion": "v1_20"}))
        );
    }
}
