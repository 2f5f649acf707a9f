//! The operator's own options inside `flinkConfiguration`
//! (`kubernetes.operator.*`, `job.autoscaler.*`): the combinations the
//! operator's validator refuses, and its autoscaler validator's value ranges.
//! Defaults are Flink's and the operator's built-in ones.

use std::time::Duration;

use crate::admission::violation::Violation;
use crate::flink::config::{self, Flat, parse_bool, parse_double, parse_duration};

const ROLLBACK: &str = "kubernetes.operator.deployment.rollback.enabled";
const HEALTH_CHECK: &str = "kubernetes.operator.cluster.health-check.enabled";
const JM_RECOVERY: &[&str] = &[
    "kubernetes.operator.jm-deployment-recovery.enabled",
    "kubernetes.operator.reconciler.jm-deployment-recovery.enabled",
];
const RECONCILE_INTERVAL: &[&str] = &[
    "kubernetes.operator.reconcile.interval",
    "kubernetes.operator.reconciler.reschedule.interval",
];
/// `autoscaler_keys(&["enabled"])`, spelled out: every review asks, and
/// most stop there.
const AUTOSCALER_ENABLED: &[&str] = &[
    "job.autoscaler.enabled",
    "kubernetes.operator.job.autoscaler.enabled",
];
const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_METRICS_WINDOW: Duration = Duration::from_secs(15 * 60);
const DEFAULT_UTILIZATION_TARGET: f64 = 0.7;

/// Every rule here; each broken one adds a violation.
pub fn check(flat: &Flat, v: &mut Vec<Violation>) {
    if flag(flat, &[ROLLBACK], false, v) && !config::high_availability_enabled(flat) {
        v.push(Violation::new(
            key_path(ROLLBACK),
            "rolling back failed upgrades needs high availability, which is off",
            "set high-availability.type: kubernetes (with high-availability.storageDir), or remove the rollback option",
        ));
    }
    let health_check = flag(flat, &[HEALTH_CHECK], false, v);
    let recovery = flag(flat, JM_RECOVERY, true, v);
    if health_check && !recovery {
        v.push(Violation::new(
            key_path(JM_RECOVERY[0]),
            format!("is off, but {HEALTH_CHECK} needs the JobManager deployment recovered"),
            format!("remove {} or turn off {HEALTH_CHECK}", JM_RECOVERY[0]),
        ));
    }
    autoscaler(flat, v);
}

/// `job.autoscaler.<name>` and the operator's older
/// `kubernetes.operator.job.autoscaler.<name>`, in the order Flink tries them.
fn autoscaler_keys(names: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = names
        .iter()
        .map(|n| format!("job.autoscaler.{n}"))
        .collect();
    keys.extend(
        names
            .iter()
            .map(|n| format!("kubernetes.operator.job.autoscaler.{n}")),
    );
    keys
}

fn key_path(key: &str) -> String {
    format!("spec.flinkConfiguration[{key}]")
}

/// A boolean option; a value that is not one is reported and counts as the default.
fn flag<S: AsRef<str>>(flat: &Flat, keys: &[S], default: bool, v: &mut Vec<Violation>) -> bool {
    let Some((key, raw)) = config::first_in(flat, keys) else {
        return default;
    };
    parse_bool(raw).unwrap_or_else(|| {
        v.push(Violation::new(
            key_path(key),
            format!("'{raw}' is not a boolean"),
            "write true or false",
        ));
        default
    })
}

fn duration<S: AsRef<str>>(
    flat: &Flat,
    keys: &[S],
    default: Duration,
    v: &mut Vec<Violation>,
) -> (Option<String>, Duration) {
    let Some((key, raw)) = config::first_in(flat, keys) else {
        return (None, default);
    };
    match parse_duration(raw) {
        Ok(d) => (Some(key.to_string()), d),
        Err(e) => {
            v.push(Violation::new(
                key_path(key),
                format!("'{raw}' is not a duration: {e}"),
                "write a duration like 60 s, 5 min or 1 h",
            ));
            (None, default)
        }
    }
}

/// A number option within `[min, max]`; `None` when unset or unreadable
/// (then reported).
fn number_in<S: AsRef<str>>(
    flat: &Flat,
    keys: &[S],
    min: f64,
    max: Option<f64>,
    v: &mut Vec<Violation>,
) -> Option<f64> {
    let (key, raw) = config::first_in(flat, keys)?;
    let Some(x) = parse_double(raw) else {
        v.push(Violation::new(
            key_path(key),
            format!("'{raw}' is not a number"),
            "write a decimal number such as 0.7",
        ));
        return None;
    };
    let above = max.is_some_and(|m| x > m);
    // NaN compares false both ways; Java's range check lets it through too.
    if x < min || above {
        let upper = max.map_or("+Infinity".to_string(), |m| m.to_string());
        v.push(Violation::new(
            key_path(key),
            format!("{raw} is outside the autoscaler's range [{min}, {upper}]"),
            format!("set a value from {min} to {upper}"),
        ));
    }
    Some(x)
}

/// The autoscaler validator's rules (only when the autoscaler is on).
pub fn autoscaler(flat: &Flat, v: &mut Vec<Violation>) {
    if !flag(flat, AUTOSCALER_ENABLED, false, v) {
        return;
    }
    let k = autoscaler_keys;
    number_in(flat, &k(&["scale-down.max-factor"]), 0.0, None, v);
    number_in(flat, &k(&["scale-up.max-factor"]), 0.0, None, v);
    let target = number_in(
        flat,
        &k(&["utilization.target", "target.utilization"]),
        0.0,
        Some(1.0),
        v,
    )
    .unwrap_or(DEFAULT_UTILIZATION_TARGET);
    number_in(flat, &k(&["target.utilization.boundary"]), 0.0, None, v);
    number_in(flat, &k(&["utilization.max"]), target, Some(1.0), v);
    number_in(flat, &k(&["utilization.min"]), 0.0, Some(target), v);
    number_in(
        flat,
        &k(&["memory.gc-pressure.threshold"]),
        0.0,
        Some(1.0),
        v,
    );
    number_in(
        flat,
        &k(&["memory.heap-usage.threshold"]),
        0.0,
        Some(1.0),
        v,
    );
    // These take effect only with their feature on, so only then are they checked.
    for (feature, option, min) in [
        (
            "observed-scalability.enabled",
            "observed-scalability.coefficient-min",
            0.01,
        ),
        (
            "scaling.effectiveness.detection.enabled",
            "scaling.effectiveness.threshold",
            0.0,
        ),
        ("memory.tuning.enabled", "memory.tuning.overhead", 0.0),
    ] {
        if flag(flat, &k(&[feature]), false, v) {
            number_in(flat, &k(&[option]), min, Some(1.0), v);
        }
    }
    // One metric sample per reconcile: a window shorter than the interval
    // never holds the two samples scaling needs.
    let (window_key, window) = duration(flat, &k(&["metrics.window"]), DEFAULT_METRICS_WINDOW, v);
    let (_, interval) = duration(flat, RECONCILE_INTERVAL, DEFAULT_RECONCILE_INTERVAL, v);
    if window < interval {
        let key = window_key.unwrap_or_else(|| "job.autoscaler.metrics.window".into());
        v.push(Violation::new(
            key_path(&key),
            format!(
                "the metric window {}s is shorter than the operator's reconcile interval {}s, so autoscaling would never apply",
                window.as_secs_f64(),
                interval.as_secs_f64()
            ),
            format!("set {key} to at least the reconcile interval"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(cfg: Value) -> Vec<Violation> {
        let cfg: crate::flink::crd::FlinkConfiguration = serde_json::from_value(cfg).unwrap();
        let mut v = Vec::new();
        check(&config::flatten(Some(&cfg)), &mut v);
        v
    }

    #[test]
    fn the_enabled_keys_are_the_autoscaler_keys() {
        assert_eq!(autoscaler_keys(&["enabled"]), AUTOSCALER_ENABLED);
    }

    #[test]
    fn options_are_read_in_the_nested_form_too() {
        assert_eq!(
            run(json!({"kubernetes": {"operator": {"deployment.rollback.enabled": "true"}}})).len(),
            1
        );
        assert_eq!(
            run(json!({"job": {"autoscaler": {"enabled": true, "utilization": {"target": 1.5}}}}))
                .len(),
            1
        );
    }

    #[test]
    fn rollback_needs_high_availability() {
        assert_eq!(run(json!({ROLLBACK: "true"})).len(), 1);
        assert!(run(json!({ROLLBACK: "true", "high-availability.type": "kubernetes"})).is_empty());
        assert!(run(json!({ROLLBACK: "false"})).is_empty());
        let v = run(json!({ROLLBACK: "maybe"}));
        assert!(v[0].message.contains("not a boolean"), "{v:?}");
    }

    #[test]
    fn health_check_needs_deployment_recovery() {
        let v = run(json!({HEALTH_CHECK: "true", JM_RECOVERY[0]: "false"}));
        assert_eq!(v.len(), 1);
        assert!(v[0].path.contains(JM_RECOVERY[0]));
        // The deprecated key counts too; recovery is on by default.
        assert_eq!(
            run(json!({HEALTH_CHECK: "true", JM_RECOVERY[1]: "false"})).len(),
            1
        );
        assert!(run(json!({HEALTH_CHECK: "true"})).is_empty());
    }

    #[test]
    fn autoscaler_ranges_apply_only_when_it_is_on() {
        let bad = json!({"job.autoscaler.utilization.target": "1.5"});
        assert!(run(bad).is_empty());
        let v = run(json!({"job.autoscaler.enabled": "true",
                           "job.autoscaler.utilization.target": "1.5",
                           "job.autoscaler.scale-down.max-factor": "-1",
                           "job.autoscaler.memory.heap-usage.threshold": "lots"}));
        assert_eq!(v.len(), 3, "{v:?}");
        // The older operator prefix and the deprecated key are read too.
        let v = run(json!({"kubernetes.operator.job.autoscaler.enabled": "true",
                           "job.autoscaler.target.utilization": "2"}));
        assert_eq!(v.len(), 1, "{v:?}");
    }

    #[test]
    fn utilization_bounds_follow_the_target() {
        let on = |extra: Value| {
            let mut c = json!({"job.autoscaler.enabled": true});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            run(c)
        };
        assert!(on(json!({"job.autoscaler.utilization.max": "0.8"})).is_empty());
        assert_eq!(
            on(json!({"job.autoscaler.utilization.max": "0.6"})).len(),
            1
        );
        assert_eq!(
            on(json!({"job.autoscaler.utilization.target": "0.5",
                             "job.autoscaler.utilization.min": "0.6"}))
            .len(),
            1
        );
    }

    #[test]
    fn feature_options_only_with_their_feature() {
        let off = json!({"job.autoscaler.enabled": "true",
                         "job.autoscaler.memory.tuning.overhead": "5"});
        assert!(run(off).is_empty());
        let on = json!({"job.autoscaler.enabled": "true",
                        "job.autoscaler.memory.tuning.enabled": "true",
                        "job.autoscaler.memory.tuning.overhead": "5",
                        "job.autoscaler.observed-scalability.enabled": "true",
                        "job.autoscaler.observed-scalability.coefficient-min": "0.001"});
        assert_eq!(run(on).len(), 2);
    }

    #[test]
    fn metric_window_at_least_the_reconcile_interval() {
        let v = run(json!({"job.autoscaler.enabled": "true",
                           "job.autoscaler.metrics.window": "30 s"}));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            run(json!({"job.autoscaler.enabled": "true",
                           "job.autoscaler.metrics.window": "30 s",
                           "kubernetes.operator.reconcile.interval": "15 s"}))
            .is_empty()
        );
        let v = run(json!({"job.autoscaler.enabled": "true",
                           "job.autoscaler.metrics.window": "soon"}));
        assert!(v[0].message.contains("not a duration"), "{v:?}");
    }
}
