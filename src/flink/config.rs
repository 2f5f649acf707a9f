//! Flink configuration keys flinkgate reads, and lookups that accept both
//! the flat (`a.b.c: v`) and the nested YAML form of `flinkConfiguration`.

use std::collections::BTreeMap;

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
pub const LAST_STATE_MAX_CHECKPOINT_AGE_KEY: &str =
    "kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age";
pub const HA_KEYS: &[&str] = &["high-availability.type", "high-availability"];

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

/// `flinkConfiguration` as Flink reads it (see [`flatten`]). Rules that look
/// up many keys read this once: each lookup is then one search that
/// borrows, where [`get`] walks the nested form and copies the value.
pub type Flat = BTreeMap<String, String>;

/// The first of `keys` set in `flat`, with its value: Flink's order of
/// current, deprecated and fallback keys.
pub fn first_in<'f, 'k, S: AsRef<str>>(
    flat: &'f Flat,
    keys: &'k [S],
) -> Option<(&'k str, &'f str)> {
    keys.iter()
        .find_map(|k| flat.get(k.as_ref()).map(|v| (k.as_ref(), v.as_str())))
}

/// The configuration as Flink reads it: one flat `key -> value` map, nested
/// YAML joined with dots, lists in Flink's `a;b;c` notation. A flat key wins
/// over the same key written nested.
pub fn flatten(config: Option<&FlinkConfiguration>) -> Flat {
    fn walk(key: String, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(format!("{key}.{k}"), v, out);
                }
            }
            Value::Null => {}
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.entry(key).or_insert_with(|| parts.join(";"));
            }
            other => {
                if let Some(text) = scalar_to_string(other) {
                    out.entry(key).or_insert(text);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    let Some(config) = config else { return out };
    // Flat keys first, so they win over nested duplicates.
    for (k, v) in config.iter().filter(|(_, v)| !v.is_object()) {
        walk(k.clone(), v, &mut out);
    }
    for (k, v) in config.iter().filter(|(_, v)| v.is_object()) {
        walk(k.clone(), v, &mut out);
    }
    out
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

/// A boolean as Flink reads one: `true` or `false` in any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A double as Java's `Double.parseDouble` reads one (surrounding blanks and
/// a `d`/`f` suffix allowed).
pub fn parse_double(text: &str) -> Option<f64> {
    let t = text.trim();
    let t = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    match t {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        // Rust also takes "inf" and "nan" in any case; Java does not.
        _ if t
            .chars()
            .any(|c| c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E')) =>
        {
            None
        }
        _ => t.parse().ok(),
    }
}

/// A duration as Flink's `TimeUtils.parseDuration` reads one: a whole
/// number, then an optional unit (milliseconds when none), e.g. `60 s`,
/// `5min`, `1 h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(format!("'{text}' does not start with a number"));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{number}' is too large"))?;
    let unit = unit.trim().to_lowercase();
    let nanos_per: u64 = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "d" | "day" | "days" => 86_400 * 1_000_000_000,
        "h" | "hour" | "hours" => 3_600 * 1_000_000_000,
        "m" | "min" | "minute" | "minutes" => 60 * 1_000_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        other => {
            return Err(format!(
                "unit '{other}' is not one of d, h, min, s, ms, µs, ns"
            ));
        }
    };
    n.checked_mul(nanos_per)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("'{text}' is too long a duration"))
}

/// True when high availability is switched on (any type but NONE).
pub fn high_availability_enabled(flat: &Flat) -> bool {
    first_in(flat, HA_KEYS)
        .is_some_and(|(_, v)| !v.trim().is_empty() && !v.eq_ignore_ascii_case("none"))
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
    fn flattens_nested_form() {
        let c = cfg(
            json!({"taskmanager": {"memory": {"process.size": "2g"}, "numberOfTaskSlots": 2},
                           "taskmanager.numberOfTaskSlots": "4", "empty": null}),
        );
        let flat = flatten(Some(&c));
        assert_eq!(
            flat.get("taskmanager.memory.process.size")
                .map(String::as_str),
            Some("2g")
        );
        assert_eq!(
            flat.get("taskmanager.numberOfTaskSlots")
                .map(String::as_str),
            Some("4")
        );
        assert!(!flat.contains_key("empty"));
        let lists = cfg(json!({"pipeline": {"jars": ["a.jar", "b.jar"]}}));
        assert_eq!(flatten(Some(&lists))["pipeline.jars"], "a.jar;b.jar");
        assert!(flatten(None).is_empty());
    }

    #[test]
    fn values_read_as_flink_reads_them() {
        use std::time::Duration;
        assert_eq!(parse_bool(" TRUE "), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_double("0.7"), Some(0.7));
        assert_eq!(parse_double(" 1e-1 "), Some(0.1));
        assert_eq!(parse_double("2d"), Some(2.0));
        assert_eq!(parse_double("inf"), None);
        assert_eq!(parse_double("seventy"), None);
        // The cases checked against Flink 1.20's TimeUtils.parseDuration.
        assert_eq!(parse_duration("60 s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("15 MIN"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2 hours"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1 d"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "PT1M",
            "1.5s",
            "-1s",
            "",
            "5 fortnights",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn high_availability_detection() {
        let on = |v: Value| high_availability_enabled(&flatten(Some(&cfg(v))));
        assert!(on(json!({"high-availability.type": "kubernetes"})));
        // The nested form and the older key count too.
        assert!(on(json!({"high-availability": {"type": "kubernetes"}})));
        assert!(on(json!({"high-availability": "kubernetes"})));
        assert!(!on(json!({"high-availability.type": "NONE"})));
        assert!(!on(json!({"high-availability.type": " "})));
        assert!(!high_availability_enabled(&Flat::new()));
    }
}
