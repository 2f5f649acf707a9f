//! Pod template merging the way the Flink operator does it: the role's
//! template (`jobManager.podTemplate` / `taskManager.podTemplate`) is merged
//! over the common `spec.podTemplate`. Objects merge key by key; arrays merge
//! element by element at the same index, or, with
//! `kubernetes.operator.pod-template.merge-arrays-by-name: true`, elements
//! with the same `name` merge and the others are appended.

use serde_json::Value;

pub const MERGE_BY_NAME_KEY: &str = "kubernetes.operator.pod-template.merge-arrays-by-name";

/// `overlay` merged over `base`.
pub fn merge(base: Option<&Value>, overlay: Option<&Value>, by_name: bool) -> Value {
    match (base, overlay) {
        (None, None) => Value::Object(Default::default()),
        (Some(b), None) => b.clone(),
        (None, Some(o)) => o.clone(),
        (Some(b), Some(o)) => merge_values(b, o, by_name),
    }
}

fn merge_values(base: &Value, overlay: &Value, by_name: bool) -> Value {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, ov) in o {
                let merged = match out.get(k) {
                    Some(bv) if !ov.is_null() => merge_values(bv, ov, by_name),
                    // An explicit null in the overlay keeps the base value.
                    Some(bv) => bv.clone(),
                    None => ov.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(b), Value::Array(o)) if by_name && all_named(b) && all_named(o) => {
            let mut out = b.clone();
            for item in o {
                let name = item.get("name");
                match out.iter_mut().find(|x| x.get("name") == name) {
                    Some(slot) => *slot = merge_values(slot, item, by_name),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        (Value::Array(b), Value::Array(o)) => {
            let len = b.len().max(o.len());
            Value::Array(
                (0..len)
                    .map(|i| match (b.get(i), o.get(i)) {
                        (Some(bv), Some(ov)) => merge_values(bv, ov, by_name),
                        (Some(v), None) | (None, Some(v)) => v.clone(),
                        (None, None) => Value::Null,
                    })
                    .collect(),
            )
        }
        (_, o) => o.clone(),
    }
}

fn all_named(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.get("name").and_then(Value::as_str).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> Value {
        json!({"metadata": {"labels": {"team": "a"}},
               "spec": {"serviceAccountName": "x",
                        "containers": [{"name": "flink-main-container", "env": [{"name": "A", "value": "1"}]},
                                       {"name": "sidecar", "image": "s:1"}]}})
    }

    #[test]
    fn objects_merge_and_role_wins() {
        let role =
            json!({"metadata": {"labels": {"role": "jm"}}, "spec": {"serviceAccountName": "y"}});
        let m = merge(Some(&common()), Some(&role), false);
        assert_eq!(m["metadata"]["labels"], json!({"team": "a", "role": "jm"}));
        assert_eq!(m["spec"]["serviceAccountName"], "y");
        assert_eq!(m["spec"]["containers"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn arrays_merge_by_index_by_default() {
        let role = json!({"spec": {"containers": [{"name": "other", "image": "o:1"}]}});
        let m = merge(Some(&common()), Some(&role), false);
        let c = &m["spec"]["containers"];
        assert_eq!(c[0]["name"], "other", "index 0 merged, overlay's name wins");
        assert_eq!(
            c[0]["env"][0]["name"], "A",
            "base fields at that index stay"
        );
        assert_eq!(c[1]["name"], "sidecar");
    }

    #[test]
    fn arrays_merge_by_name_when_asked() {
        let role = json!({"spec": {"containers": [
            {"name": "sidecar", "image": "s:2"},
            {"name": "extra", "image": "e:1"}]}});
        let m = merge(Some(&common()), Some(&role), true);
        let c = m["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0]["name"], "flink-main-container");
        assert_eq!(c[1]["image"], "s:2");
        assert_eq!(c[2]["name"], "extra");
    }

    #[test]
    fn absent_templates() {
        assert_eq!(merge(None, None, false), json!({}));
        assert_eq!(merge(None, Some(&common()), false), common());
        assert_eq!(merge(Some(&common()), None, false), common());
    }
}
