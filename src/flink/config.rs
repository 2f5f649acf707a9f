//! Flink configuration keys flinkgate reads, and lookups that accept both
//! the flat (`a.b.c: v`) and the nested YAML form of `flinkConfiguration`.

use serde_json::Value;

use super::crd::FlinkConfiguration;

/// Keys the operator owns; a user setting them would break the deployment.
pub const OPERATOR_OWNED_KEYS: &[&str] = &[
    "kubernetes.namespace",
    "kubernetes.cluster-id",
    "high-availability.cluster-id",
];

/// Checkpoint directory: the 2.x name first, then the 1.x one.
pub const CHECKPOINT_DIR_KEYS: &[&str] = &["execution.checkpointing.dir", "state.checkpoints.dir"];
pub const SAVEPOINT_DIR_KEYS: &[&str] = &[
    "execution.checkpointing.savepoint-dir",
    "state.savepoints.dir",
];
pub const CHECKPOINT_INTERVAL_KEYS: &[&str] = &["execution.checkpointing.interval"];
pub const PERIODIC_SAVEPOINT_INTERVAL_KEY: &str = "kubernetes.operator.periodic.savepoint.interval";
pub const HA_KEYS: &[&str] = &["high-availability.type", "high-availability"];

pub const JM_MEMORY_KEYS: &[&str] = &[
    "jobmanager.memory.process.size",
    "jobmanager.memory.flink.size",
];
pub const TM_MEMORY_KEYS: &[&str] = &[
    "taskmanager.memory.process.size",
    "taskmanager.memory.flink.size",
];

/// Looks a key up in either form and renders scalars as Flink would read them.
pub fn get(config: Option<&FlinkConfiguration>, key: &str) -> Option<String> {
    let config = config?;
    if let Some(v) = config.get(key) {
        return scalar_to_string(v);
    }
    if !key.contains('.') {
        return None;
    }
    // Nested form: walk the longest matching prefix at each level, because
    // segments themselves may contain dots ("a.b": {"c": 1}).
    lookup_nested(config, key)
}

/// The first of `keys` that is set, with its value.
pub fn first<'k>(
    config: Option<&FlinkConfiguration>,
    keys: &[&'k str],
) -> Option<(&'k str, String)> {
    keys.iter().find_map(|k| get(config, k).map(|v| (*k, v)))
}

pub fn contains(config: Option<&FlinkConfiguration>, key: &str) -> bool {
    get(config, key).is_some()
}

fn lookup_nested(map: &FlinkConfiguration, key: &str) -> Option<String> {
    for (k, v) in map {
        if key == k {
            return scalar_to_string(v);
        }
        if let Some(rest) = key
            .strip_prefix(k.as_str())
            .and_then(|r| r.strip_prefix('.'))
            && let Value::Object(inner) = v
            && let Some(found) = lookup_nested(inner, rest)
        {
            return Some(found);
        }
    }
    None
}

fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// True when high availability is switched on (any type but NONE).
pub fn high_availability_enabled(config: Option<&FlinkConfiguration>) -> bool {
    first(config, HA_KEYS)
        .map(|(_, v)| !v.trim().is_empty() && !v.eq_ignore_ascii_case("none"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> FlinkConfiguration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn flat_and_nested_lookups_agree() {
        let flat =
            cfg(json!({"state.checkpoints.dir": "s3://b/c", "taskmanager.numberOfTaskSlots": 2}));
        let nested = cfg(
            json!({"state": {"checkpoints": {"dir": "s3://b/c"}}, "taskmanager": {"numberOfTaskSlots": 2}}),
        );
        for c in [&flat, &nested] {
            assert_eq!(
                get(Some(c), "state.checkpoints.dir").as_deref(),
                Some("s3://b/c")
            );
            assert_eq!(
                get(Some(c), "taskmanager.numberOfTaskSlots").as_deref(),
                Some("2")
            );
            assert_eq!(get(Some(c), "state.savepoints.dir"), None);
        }
    }

    #[test]
    fn high_availability_detection() {
        assert!(high_availability_enabled(Some(&cfg(
            json!({"high-availability.type": "kubernetes"})
        ))));
        assert!(!high_availability_enabled(Some(&cfg(
            json!({"high-availability.type": "NONE"})
        ))));
        assert!(!high_availability_enabled(None));
    }
}
