//! A policy document, parsed and checked completely: global rules plus
//! per-namespace overrides.

use std::collections::HashMap;

use serde_json::Value;

use super::model::Rules;
use thiserror::Error;

use crate::flink::config::OPERATOR_OWNED_KEYS;
use crate::flink::version::FlinkVersion;
use crate::quantity::{parse_flink_memory, parse_quantity};

/// The built-in policy's YAML, also shipped as the deploy ConfigMap's default.
pub const BUILTIN_YAML: &str = include_str!("builtin.yaml");

const UPGRADE_MODES: &[&str] = &["stateless", "savepoint", "last-state"];
const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

#[derive(Debug, Error, Clone, PartialEq)]
pub enum PolicyError {
    #[error("policy is not a valid YAML document: {0}")]
    Syntax(String),
    #[error("policy field `{path}`: {message}")]
    Field { path: String, message: String },
}

fn field_error(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Field {
        path: path.into(),
        message: message.into(),
    }
}

/// A loaded, checked policy. Immutable: a reload builds a new one and swaps it in.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it came from (`builtin`, a file path, `configmap ns/name`).
    pub source: String,
    /// Increases by one with every policy put in force.
    pub generation: u64,
    global: Rules,
    namespaces: HashMap<String, Rules>,
}

impl Policy {
    /// Parses and checks a policy document.
    pub fn parse(yaml: &str, source: impl Into<String>) -> Result<Self, PolicyError> {
        let mut doc: Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        if doc.is_null() {
            doc = Value::Object(Default::default());
        }
        let Value::Object(ref mut top) = doc else {
            return Err(field_error("(root)", "must be a mapping of policy keys"));
        };
        let overrides = match top.remove("namespaces") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(field_error(
                    "namespaces",
                    "must be a mapping of namespace name to overrides",
                ));
            }
        };
        let global = rules_from_value(doc.clone(), "")?;
        let mut namespaces = HashMap::with_capacity(overrides.len());
        for (ns, overlay) in overrides {
            if !overlay.is_object() {
                return Err(field_error(
                    format!("namespaces.{ns}"),
                    "must be a mapping of policy keys",
                ));
            }
            let mut merged = doc.clone();
            merge(&mut merged, overlay);
            let rules = rules_from_value(merged, &format!("namespaces.{ns}."))?;
            namespaces.insert(ns, rules);
        }
        Ok(Self {
            source: source.into(),
            generation: 0,
            global,
            namespaces,
        })
    }

    /// The policy `flinkgate serve` runs with when given none.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_YAML, "builtin").expect("the built-in policy is checked by a unit test")
    }

    /// The rules in force for a namespace (cluster-scoped objects get the global ones).
    pub fn rules_for(&self, namespace: Option<&str>) -> &Rules {
        namespace
            .and_then(|ns| self.namespaces.get(ns))
            .unwrap_or(&self.global)
    }

    pub fn namespace_overrides(&self) -> impl Iterator<Item = &str> {
        self.namespaces.keys().map(String::as_str)
    }
}

/// Deep-merges `overlay` into `base`: mappings merge key by key, anything
/// else (scalars, lists, null) replaces.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn rules_from_value(value: Value, prefix: &str) -> Result<Rules, PolicyError> {
    let mut rules: Rules = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        field_error(format!("{prefix}{path}"), e.into_inner().to_string())
    })?;
    check_rules(&mut rules, prefix)?;
    Ok(rules)
}

/// Semantic checks serde cannot express; also precomputes parsed limits.
fn check_rules(rules: &mut Rules, prefix: &str) -> Result<(), PolicyError> {
    let p = |s: &str| format!("{prefix}{s}");
    let d = &rules.defaults;
    if let Some(par) = d.parallelism
        && par < 1
    {
        return Err(field_error(
            p("defaults.parallelism"),
            format!("{par} must be at least 1"),
        ));
    }
    if let Some(mode) = &d.upgrade_mode
        && !UPGRADE_MODES.contains(&mode.as_str())
    {
        return Err(field_error(
            p("defaults.upgradeMode"),
            format!("'{mode}' is not one of {}", UPGRADE_MODES.join(", ")),
        ));
    }
    for (name, res) in [
        ("jobManager", &d.job_manager),
        ("taskManager", &d.task_manager),
    ] {
        let Some(res) = res else { continue };
        if let Some(cpu) = res.cpu
            && !(cpu > 0.0 && cpu.is_finite())
        {
            return Err(field_error(
                p(&format!("defaults.{name}.cpu")),
                format!("{cpu} must be a positive number of cores"),
            ));
        }
        if let Some(mem) = &res.memory {
            parse_flink_memory(mem)
                .map_err(|e| field_error(p(&format!("defaults.{name}.memory")), e.to_string()))?;
        }
    }
    let l = &mut rules.limits;
    if l.min_parallelism < 1 {
        return Err(field_error(
            p("limits.minParallelism"),
            format!("{} must be at least 1", l.min_parallelism),
        ));
    }
    if let Some(max) = l.max_parallelism
        && max < l.min_parallelism
    {
        return Err(field_error(
            p("limits.maxParallelism"),
            format!("{max} is below limits.minParallelism {}", l.min_parallelism),
        ));
    }
    for v in &l.flink_versions {
        if FlinkVersion::parse(v).is_none() {
            return Err(field_error(
                p("limits.flinkVersions"),
                format!("'{v}' is not a Flink version such as v1_20"),
            ));
        }
    }
    if l.jar_uri_schemes.is_empty() {
        return Err(field_error(
            p("limits.jarUriSchemes"),
            "must list at least one scheme, e.g. [https]",
        ));
    }
    for s in &mut l.jar_uri_schemes {
        *s = s.to_ascii_lowercase();
    }
    l.cluster_domain = l.cluster_domain.trim_matches('.').to_ascii_lowercase();
    if !crate::address::is_host_name(&l.cluster_domain) {
        return Err(field_error(
            p("limits.clusterDomain"),
            format!(
                "'{}' is not a DNS domain such as cluster.local",
                l.cluster_domain
            ),
        ));
    }
    for (name, cl) in [
        ("jobManager", &mut l.job_manager),
        ("taskManager", &mut l.task_manager),
    ] {
        if let Some(cpu) = cl.max_cpu
            && !(cpu > 0.0 && cpu.is_finite())
        {
            return Err(field_error(
                p(&format!("limits.{name}.maxCpu")),
                format!("{cpu} must be a positive number of cores"),
            ));
        }
        cl.max_memory_bytes =
            match &cl.max_memory {
                None => None,
                Some(m) => Some(parse_flink_memory(m).map_err(|e| {
                    field_error(p(&format!("limits.{name}.maxMemory")), e.to_string())
                })? as f64),
            };
    }
    for key in d.flink_configuration.keys() {
        if OPERATOR_OWNED_KEYS.contains(&key.as_str()) || l.forbidden_config_keys.contains(key) {
            return Err(field_error(
                p(&format!("defaults.flinkConfiguration.{key}")),
                "is a forbidden configuration key and cannot be a default",
            ));
        }
    }
    for (name, pr) in [
        ("jobManager", &rules.pods.job_manager),
        ("taskManager", &rules.pods.task_manager),
    ] {
        if let Some(rp) = &pr.restart_policy
            && !RESTART_POLICIES.contains(&rp.as_str())
        {
            return Err(field_error(
                p(&format!("pods.{name}.restartPolicy")),
                format!("'{rp}' is not one of {}", RESTART_POLICIES.join(", ")),
            ));
        }
        if let Some(res) = &pr.resources {
            for (kind, map) in [("requests", &res.requests), ("limits", &res.limits)] {
                for (k, v) in map {
                    parse_quantity(v).map_err(|e| {
                        field_error(
                            p(&format!("pods.{name}.resources.{kind}.{k}")),
                            e.to_string(),
                        )
                    })?;
                }
            }
        }
    }
    let sc = &rules.scheduling;
    for (key, value, min) in [
        ("weight", sc.weight, 0.0),
        ("floor", sc.floor, 0.0),
        ("halfLifeSeconds", sc.half_life_seconds, f64::MIN_POSITIVE),
        ("windowSeconds", sc.window_seconds, f64::MIN_POSITIVE),
        (
            "collectionIntervalSeconds",
            sc.collection_interval_seconds,
            1.0,
        ),
        (
            "rebalance.belowFloorSeconds",
            sc.rebalance.below_floor_seconds,
            0.0,
        ),
        (
            "rebalance.cooldownSeconds",
            sc.rebalance.cooldown_seconds,
            0.0,
        ),
    ] {
        if !(value.is_finite() && value >= min) {
            return Err(field_error(
                p(&format!("scheduling.{key}")),
                format!("{value} must be a number of at least {min}"),
            ));
        }
    }
    if sc.floor >= 1.0 {
        return Err(field_error(
            p("scheduling.floor"),
            format!(
                "{} would filter out nodes as fast as their peers; use a value below 1.0",
                sc.floor
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Mode;

    #[test]
    fn builtin_policy_is_valid_and_injects_the_basics() {
        let p = Policy::parse(BUILTIN_YAML, "builtin").unwrap();
        let r = p.rules_for(None);
        assert_eq!(r.mode, Mode::Enforce);
        assert!(r.defaults.parallelism.is_some());
        assert!(
            r.defaults
                .flink_configuration
                .contains_key("restart-strategy.type")
        );
        assert!(
            r.defaults
                .flink_configuration
                .contains_key("taskmanager.numberOfTaskSlots")
        );
    }

    #[test]
    fn namespace_overrides_merge_over_global() {
        let p = Policy::parse(
            "mode: enforce\nlimits: {maxParallelism: 100, minParallelism: 2}\nnamespaces:\n  team-a:\n    mode: warn\n    limits: {maxParallelism: 8}\n",
            "test",
        )
        .unwrap();
        let a = p.rules_for(Some("team-a"));
        assert_eq!(a.mode, Mode::Warn);
        assert_eq!(a.limits.max_parallelism, Some(8));
        assert_eq!(
            a.limits.min_parallelism, 2,
            "unset keys come from the global rules"
        );
        let other = p.rules_for(Some("team-b"));
        assert_eq!(other.mode, Mode::Enforce);
        assert_eq!(other.limits.max_parallelism, Some(100));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Policy::parse("limits:\n  maxParalelism: 4\n", "t").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("limits") && msg.contains("maxParalelism"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_key_in_namespace_is_named_with_namespace() {
        let err = Policy::parse("namespaces:\n  a:\n    mdoe: warn\n", "t").unwrap_err();
        assert!(err.to_string().contains("namespaces.a"), "{err}");
    }

    #[test]
    fn semantic_errors_are_named() {
        let cases = [
            ("mode: strict", "mode"),
            ("limits: {minParallelism: 0}", "limits.minParallelism"),
            (
                "limits: {minParallelism: 4, maxParallelism: 2}",
                "limits.maxParallelism",
            ),
            (
                "limits: {flinkVersions: [\"1.20\"]}",
                "limits.flinkVersions",
            ),
            (
                "limits: {jobManager: {maxMemory: lots}}",
                "limits.jobManager.maxMemory",
            ),
            ("limits: {jarUriSchemes: []}", "limits.jarUriSchemes"),
            ("limits: {clusterDomain: \"\"}", "limits.clusterDomain"),
            (
                "limits: {clusterDomain: \"bad_domain\"}",
                "limits.clusterDomain",
            ),
            ("defaults: {parallelism: 0}", "defaults.parallelism"),
            ("defaults: {upgradeMode: sometimes}", "defaults.upgradeMode"),
            (
                "defaults: {flinkConfiguration: {kubernetes.cluster-id: x}}",
                "defaults.flinkConfiguration",
            ),
            (
                "pods: {taskManager: {restartPolicy: Sometimes}}",
                "pods.taskManager.restartPolicy",
            ),
            (
                "pods: {taskManager: {resources: {limits: {cpu: lots}}}}",
                "pods.taskManager.resources.limits.cpu",
            ),
            ("- a list", "(root)"),
            ("scheduling: {floor: 1.5}", "scheduling.floor"),
            (
                "scheduling: {halfLifeSeconds: 0}",
                "scheduling.halfLifeSeconds",
            ),
            (
                "scheduling: {collectionIntervalSeconds: 0.1}",
                "scheduling.collectionIntervalSeconds",
            ),
            (
                "scheduling: {rebalance: {cooldownSeconds: -1}}",
                "scheduling.rebalance.cooldownSeconds",
            ),
            (
                "scheduling: {rebalance: {enabled: yes please}}",
                "scheduling.rebalance.enabled",
            ),
            (
                "scheduling: {rebalance: {enable: true}}",
                "scheduling.rebalance",
            ),
        ];
        for (yaml, path) in cases {
            let err = Policy::parse(yaml, "t").expect_err(yaml);
            assert!(err.to_string().contains(path), "{yaml}: {err}");
        }
    }

    #[test]
    fn broken_yaml_is_a_syntax_error() {
        assert!(matches!(
            Policy::parse("mode: [", "t"),
            Err(PolicyError::Syntax(_))
        ));
    }

    #[test]
    fn empty_document_is_the_default_rules() {
        let p = Policy::parse("", "t").unwrap();
        assert_eq!(p.rules_for(None), &{
            let mut r = Rules::default();
            r.limits.jar_uri_schemes = vec!["https".into()];
            r
        });
    }
}
