//! Mutation: fills what the user left out from the policy's defaults. It
//! reads the object typed and writes RFC 6902 `add` operations straight
//! away, only at paths that are absent (or null) or hold another value
//! flinkgate must set, so fields no type knows are never touched and the
//! object is never copied or compared whole. The user's explicit value wins
//! (limits, not mutation, say whether it is allowed). Applying the patch
//! and mutating again gives no patch.

use std::collections::BTreeMap;

use json_patch::Patch;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::admission::component_memory;
use crate::admission::object::Metadata;
use crate::flink::crd::{FlinkDeploymentSpec, FlinkSessionJobSpec, Resource, ResourceRequirements};
use crate::flink::pod::{Component, MAIN_CONTAINER};
use crate::flink::{config, memory};
use crate::policy::{PodComponentRules, ResourceDefaults, Rules};

/// Marks objects flinkgate admitted (and mutated where it had to).
pub const ADMITTED_LABEL: &str = "flinkgate.io/admitted";
/// The label the operator puts on session jobs, naming their cluster.
pub const TARGET_SESSION_LABEL: &str = "target.session";
const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// What pod mutation reads of a pod; everything else is skipped unread.
#[derive(Debug, Deserialize)]
pub struct PodView {
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub spec: Option<PodSpecView>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    #[serde(default)]
    pub restart_policy: Option<String>,
    #[serde(default)]
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub containers: Option<Vec<ContainerView>>,
}

#[derive(Debug, Deserialize)]
pub struct ContainerView {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub resources: Option<Value>,
}

/// A mutation's RFC 6902 patch, as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchText(Vec<u8>);

impl PatchText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The operations, typed, for applying the patch here (`flinkgate check`).
    pub fn to_patch(&self) -> Result<Patch, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }
}

/// The operations of one mutation, written as the patch's text in the
/// order they are found. Mutation only adds, so nothing is kept typed to be
/// serialised later: building typed operations, then writing and dropping
/// them, took twice the instructions writing the text does.
#[derive(Default)]
struct Ops(Vec<u8>);

impl Ops {
    fn add<const N: usize, T: PatchValue + ?Sized>(&mut self, path: [&str; N], value: &T) {
        self.add_at(&path, value);
    }

    fn add_at<T: PatchValue + ?Sized>(&mut self, tokens: &[&str], value: &T) {
        if self.0.is_empty() {
            self.0.reserve(1024);
            self.0.push(b'[');
        } else {
            self.0.push(b',');
        }
        self.0.extend_from_slice(br#"{"op":"add","path":"#);
        write_pointer(&mut self.0, tokens);
        self.0.extend_from_slice(br#","value":"#);
        value.write(&mut self.0);
        self.0.push(b'}');
    }

    /// Adds `entries` as members of the object at `path`, of which the
    /// first `present` levels exist: the missing levels are added whole, in
    /// one operation; under an existing object each entry is its own, so
    /// the members already there stay.
    fn add_entries<'a, V: PatchValue>(
        &mut self,
        path: &[&str],
        present: usize,
        entries: impl IntoIterator<Item = (&'a str, V)>,
    ) {
        let mut entries = entries.into_iter().peekable();
        if entries.peek().is_none() {
            return;
        }
        if present >= path.len() {
            let mut tokens = path.to_vec();
            tokens.push("");
            for (key, value) in entries {
                *tokens.last_mut().expect("pushed above") = key;
                self.add_at(&tokens, &value);
            }
            return;
        }
        let entries: Vec<(&str, V)> = entries.collect();
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "entries come from a map, in order"
        );
        self.add_at(
            &path[..=present],
            &Nested {
                levels: &path[present + 1..],
                entries: &entries,
            },
        );
    }

    /// `None` when nothing changes: the response then carries no patch.
    fn into_patch(mut self) -> Option<PatchText> {
        if self.0.is_empty() {
            return None;
        }
        self.0.push(b']');
        Some(PatchText(self.0))
    }
}

/// A value an operation adds, written as JSON.
trait PatchValue {
    fn write(&self, out: &mut Vec<u8>);
}

impl PatchValue for str {
    fn write(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
}

impl PatchValue for i32 {
    fn write(&self, out: &mut Vec<u8>) {
        write_json(out, self);
    }
}

impl PatchValue for Value {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::String(s) => write_str(out, s),
            other => write_json(out, other),
        }
    }
}

impl<T: PatchValue + ?Sized> PatchValue for &T {
    fn write(&self, out: &mut Vec<u8>) {
        (**self).write(out);
    }
}

/// An object added whole, written as text: `levels` nested around
/// `entries` (distinct keys, in order, as a JSON object of them would be).
struct Nested<'a, V> {
    levels: &'a [&'a str],
    entries: &'a [(&'a str, V)],
}

impl<V: PatchValue> PatchValue for Nested<'_, V> {
    fn write(&self, out: &mut Vec<u8>) {
        for level in self.levels {
            out.push(b'{');
            write_str(out, level);
            out.push(b':');
        }
        out.push(b'{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            value.write(out);
        }
        out.push(b'}');
        for _ in self.levels {
            out.push(b'}');
        }
    }
}

/// Numbers, strings and JSON values: writing them to memory cannot fail (a
/// Value's keys are strings, and it holds no NaN).
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

/// What one scan of `bytes` finds: whether a byte needs escaping in a JSON
/// string (serde_json's set: quote, backslash, control characters) or,
/// with `TILDE`, is RFC 6901's `~`; and how many bytes are `/`. Scanned in
/// blocks of 32 bytes, the last one padded, so each block is a few vector
/// compares (a byte loop over the tail cost more than the blocks).
fn scan<const TILDE: bool>(bytes: &[u8]) -> (bool, usize) {
    let (blocks, tail) = bytes.as_chunks::<32>();
    let mut last = [b'a'; 32];
    last[..tail.len()].copy_from_slice(tail);
    let (mut special, mut slashes) = (0u8, 0usize);
    for block in blocks.iter().chain(std::iter::once(&last)) {
        special |= block.iter().fold(0, |found, &b| {
            found
                | u8::from(b < 0x20)
                | u8::from(b == b'"')
                | u8::from(b == b'\\')
                | u8::from(TILDE & (b == b'~'))
        });
        // At most 32 in a block: a u8 cannot overflow.
        slashes += usize::from(block.iter().fold(0u8, |n, &b| n + u8::from(b == b'/')));
    }
    (special != 0, slashes)
}

/// `s` as a JSON string: copied as it is when nothing needs escaping (the
/// usual keys and values), else escaped by serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if scan::<false>(s.as_bytes()).0 {
        write_json(out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// The RFC 6901 pointer to `tokens` as a JSON string. Written straight into
/// `out`, then checked in one scan: it stands when nothing in it needs a
/// JSON escape, there is no `~`, and the only `/` are the separators.
/// Otherwise it is written again, escaped.
fn write_pointer(out: &mut Vec<u8>, tokens: &[&str]) {
    let start = out.len();
    out.push(b'"');
    for token in tokens {
        out.push(b'/');
        out.extend_from_slice(token.as_bytes());
    }
    let (special, slashes) = scan::<true>(&out[start + 1..]);
    if special || slashes != tokens.len() {
        out.truncate(start);
        write_json(out, &pointer(tokens));
    } else {
        out.push(b'"');
    }
}

pub fn flink_deployment(
    metadata: Option<&Metadata>,
    spec: Option<&FlinkDeploymentSpec>,
    rules: &Rules,
) -> Option<PatchText> {
    let d = &rules.defaults;
    let mut ops = Ops::default();
    labels(&mut ops, metadata, label_pairs(&d.labels), None);
    let Some(spec) = spec else {
        return ops.into_patch();
    };
    let cfg = spec.flink_configuration.as_ref();
    // A default applies where Flink would find no value; a member of that
    // very name (say a nested object) is never replaced.
    let mut flat = config::flatten(cfg);
    let missing = d
        .flink_configuration
        .iter()
        .filter(|(k, _)| !flat.contains_key(*k) && !cfg.is_some_and(|c| c.contains_key(*k)))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let present = if cfg.is_some() { 2 } else { 1 };
    ops.add_entries(&["spec", "flinkConfiguration"], present, missing);
    if let Some(job) = &spec.job {
        job_defaults(
            &mut ops,
            job.parallelism,
            job.upgrade_mode.as_deref(),
            rules,
        );
    }
    // The configuration as it will be, the policy's additions included:
    // where it sizes a process by itself (even with only finer keys such as
    // jobmanager.memory.heap.size), a default pod memory would override
    // that, and possibly with a total smaller than its parts.
    for (k, v) in &d.flink_configuration {
        if memory::reads_key(k) && !flat.contains_key(k) {
            flat.insert(k.clone(), v.clone());
        }
    }
    let jm = spec.job_manager.as_ref();
    let tm = spec.task_manager.as_ref();
    component_resource(
        &mut ops,
        "jobManager",
        jm.is_some(),
        jm.and_then(|j| j.resource.as_ref()),
        jm.and_then(|j| j.resources.as_ref()),
        component_memory::sized_by_configuration(Component::JobManager, &flat),
        d.job_manager.as_ref(),
    );
    component_resource(
        &mut ops,
        "taskManager",
        tm.is_some(),
        tm.and_then(|t| t.resource.as_ref()),
        tm.and_then(|t| t.resources.as_ref()),
        component_memory::sized_by_configuration(Component::TaskManager, &flat),
        d.task_manager.as_ref(),
    );
    ops.into_patch()
}

pub fn flink_session_job(
    metadata: Option<&Metadata>,
    spec: Option<&FlinkSessionJobSpec>,
    rules: &Rules,
) -> Option<PatchText> {
    let mut ops = Ops::default();
    // The operator finds a session's jobs by this label, so it follows
    // deploymentName, overwriting a stale value.
    let session = spec
        .and_then(|s| s.deployment_name.as_deref())
        .filter(|n| !n.is_empty())
        .map(|n| (TARGET_SESSION_LABEL, n));
    labels(
        &mut ops,
        metadata,
        label_pairs(&rules.defaults.labels),
        session,
    );
    if let Some(job) = spec.and_then(|s| s.job.as_ref()) {
        job_defaults(
            &mut ops,
            job.parallelism,
            job.upgrade_mode.as_deref(),
            rules,
        );
    }
    ops.into_patch()
}

pub fn flink_pod(pod: &PodView, component: Component, rules: &Rules) -> Option<PatchText> {
    let pr: &PodComponentRules = match component {
        Component::JobManager => &rules.pods.job_manager,
        Component::TaskManager => &rules.pods.task_manager,
    };
    let mut ops = Ops::default();
    labels(
        &mut ops,
        pod.metadata.as_ref(),
        label_pairs(&rules.pods.labels),
        None,
    );
    let Some(spec) = &pod.spec else {
        return ops.into_patch();
    };
    if let Some(rp) = &pr.restart_policy
        && spec.restart_policy.as_ref() != Some(rp)
    {
        ops.add(["spec", "restartPolicy"], rp.as_str());
    }
    if let Some(scheduler) = &pr.scheduler_name {
        let current = spec.scheduler_name.as_deref();
        // The API server defaults schedulerName before admission, so the
        // default value cannot be told from an explicit one; anything else
        // was the user's choice and stays.
        if current.is_none_or(|s| s == DEFAULT_SCHEDULER) && current != Some(scheduler) {
            ops.add(["spec", "schedulerName"], scheduler.as_str());
        }
    }
    if let Some(res) = &pr.resources
        && let Some(containers) = &spec.containers
    {
        let idx = containers
            .iter()
            .position(|c| c.name.as_deref() == Some(MAIN_CONTAINER))
            .unwrap_or(0);
        let empty = containers.get(idx).is_some_and(|c| {
            c.resources
                .as_ref()
                .is_none_or(|r| r.as_object().is_none_or(|m| m.values().all(is_empty)))
        });
        let mut r = Map::new();
        for (kind, map) in [("requests", &res.requests), ("limits", &res.limits)] {
            if !map.is_empty() {
                let values = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                r.insert(kind.into(), Value::Object(values));
            }
        }
        if empty && !r.is_empty() {
            let idx = idx.to_string();
            ops.add(
                ["spec", "containers", idx.as_str(), "resources"],
                &Value::Object(r),
            );
        }
    }
    ops.into_patch()
}

/// The RFC 6901 pointer to `tokens`, in one allocation.
fn pointer(tokens: &[&str]) -> String {
    let mut text = String::with_capacity(tokens.iter().map(|t| t.len() + 3).sum());
    for token in tokens {
        text.push('/');
        if token.contains('~') || token.contains('/') {
            text.push_str(&token.replace('~', "~0").replace('/', "~1"));
        } else {
            text.push_str(token);
        }
    }
    text
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn label_pairs(labels: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Adds the labels the object does not have yet, plus flinkgate's own;
/// `set` also replaces a different value.
fn labels<'a>(
    ops: &mut Ops,
    metadata: Option<&Metadata>,
    missing: impl Iterator<Item = (&'a str, &'a str)>,
    set: Option<(&'a str, &'a str)>,
) {
    let existing = metadata.and_then(|m| m.labels.as_ref());
    let has = |k: &str| existing.is_some_and(|l| l.contains_key(k));
    let mut wanted: BTreeMap<&str, &str> = missing
        .chain(std::iter::once((ADMITTED_LABEL, "true")))
        .filter(|(k, _)| !has(k))
        .collect();
    if let Some((k, v)) = set
        && existing.and_then(|l| l.get(k)).map(String::as_str) != Some(v)
    {
        wanted.insert(k, v);
    }
    let present = match (metadata, existing) {
        (None, _) => 0,
        (Some(_), None) => 1,
        (Some(_), Some(_)) => 2,
    };
    ops.add_entries(&["metadata", "labels"], present, wanted);
}

/// `spec.job` defaults, when the job spec is there.
fn job_defaults(
    ops: &mut Ops,
    parallelism: Option<i32>,
    upgrade_mode: Option<&str>,
    rules: &Rules,
) {
    if parallelism.is_none()
        && let Some(p) = rules.defaults.parallelism
    {
        let capped = rules
            .limits
            .max_parallelism
            .map_or(p, |max| p.min(max))
            .max(rules.limits.min_parallelism);
        ops.add(["spec", "job", "parallelism"], &capped);
    }
    if upgrade_mode.is_none()
        && let Some(m) = &rules.defaults.upgrade_mode
    {
        ops.add(["spec", "job", "upgradeMode"], m.as_str());
    }
}

/// Fills `spec.<name>.resource.cpu|memory` when no cpu / memory is given by
/// any of the operator's means.
fn component_resource(
    ops: &mut Ops,
    name: &str,
    component_present: bool,
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
    memory_in_config: bool,
    defaults: Option<&ResourceDefaults>,
) {
    let Some(defaults) = defaults else { return };
    let in_resources = |key: &str| {
        resources.is_some_and(|r| {
            [&r.requests, &r.limits]
                .into_iter()
                .any(|m| m.as_ref().is_some_and(|m| m.contains_key(key)))
        })
    };
    let cpu_given = resource.is_some_and(|r| r.cpu.is_some()) || in_resources("cpu");
    let memory_given =
        resource.is_some_and(|r| r.memory.is_some()) || in_resources("memory") || memory_in_config;
    let cpu = defaults.cpu.filter(|_| !cpu_given);
    let memory = defaults.memory.as_ref().filter(|_| !memory_given);
    let values = [
        cpu.map(|c| ("cpu", Value::from(c))),
        memory.map(|m| ("memory", Value::String(m.clone()))),
    ];
    let present = match (component_present, resource) {
        (false, _) => 1,
        (true, None) => 2,
        (true, Some(_)) => 3,
    };
    ops.add_entries(
        &["spec", name, "resource"],
        present,
        values.into_iter().flatten(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_that_needs_escaping_is_found_wherever_it_is() {
        for len in [1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100] {
            for at in 0..len {
                for (special, json, tilde, slash) in [
                    ('"', true, true, false),
                    ('\\', true, true, false),
                    ('\n', true, true, false),
                    ('\u{1f}', true, true, false),
                    ('~', false, true, false),
                    ('/', false, false, true),
                ] {
                    let mut s: Vec<char> = "a".repeat(len).chars().collect();
                    s[at] = special;
                    let s: String = s.into_iter().collect();
                    assert_eq!(
                        scan::<false>(s.as_bytes()),
                        (json, usize::from(slash)),
                        "{s:?}"
                    );
                    assert_eq!(
                        scan::<true>(s.as_bytes()),
                        (tilde, usize::from(slash)),
                        "{s:?}"
                    );
                }
            }
            let plain = "é-a.b_c/".repeat(len);
            assert_eq!(scan::<true>(plain.as_bytes()), (false, len));
        }
    }

    #[test]
    fn entries_add_missing_levels_whole_and_existing_ones_per_key() {
        let entries = || [("a/b", Value::from(1)), ("c", Value::from(2))];
        let ops = |present| {
            let mut ops = Ops::default();
            ops.add_entries(&["metadata", "labels"], present, entries());
            serde_json::from_slice::<Value>(ops.into_patch().unwrap().as_bytes()).unwrap()
        };
        assert_eq!(
            ops(0),
            serde_json::json!([{"op": "add", "path": "/metadata",
                                "value": {"labels": {"a/b": 1, "c": 2}}}])
        );
        assert_eq!(
            ops(1),
            serde_json::json!([{"op": "add", "path": "/metadata/labels",
                                "value": {"a/b": 1, "c": 2}}])
        );
        assert_eq!(
            ops(2),
            serde_json::json!([
                {"op": "add", "path": "/metadata/labels/a~1b", "value": 1},
                {"op": "add", "path": "/metadata/labels/c", "value": 2}
            ])
        );
        let mut none = Ops::default();
        none.add_entries(&["spec"], 0, [] as [(&str, &str); 0]);
        assert!(none.into_patch().is_none());
    }

    /// The text is the patch the typed operations would have been, for
    /// keys and values that need escaping in the pointer, in JSON, or both.
    #[test]
    fn the_written_text_is_the_typed_patch() {
        use json_patch::jsonptr::PointerBuf;
        use json_patch::{AddOperation, PatchOperation};
        let awkward = [
            "plain",
            "a/b~c",
            "quote\"back\\slash",
            "tab\tnew\nline\u{1}",
            "ü€𝄞",
            "",
        ];
        let mut ops = Ops::default();
        let mut typed = Vec::new();
        for (i, key) in awkward.iter().enumerate() {
            let value = Value::from(awkward[awkward.len() - 1 - i]);
            ops.add(["metadata", "labels", key], &value);
            typed.push(PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens(["metadata", "labels", key]),
                value,
            }));
        }
        ops.add(["spec", "job", "parallelism"], &3);
        typed.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["spec", "job", "parallelism"]),
            value: Value::from(3),
        }));
        let text = ops.into_patch().expect("operations were added");
        assert_eq!(text.to_patch().unwrap(), Patch(typed));
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        assert_eq!(
            pointer(&["metadata", "labels", "flinkgate.io/admitted"]).as_str(),
            "/metadata/labels/flinkgate.io~1admitted"
        );
        assert_eq!(pointer(&["a~/b", "", "c"]).as_str(), "/a~0~1b//c");
        for tokens in [
            &["x", "a/b~c"][..],
            &["~1"],
            &[],
            &["~", "/", "~~//", "ü/~0"],
        ] {
            use json_patch::jsonptr::PointerBuf;
            let built = pointer(tokens);
            assert_eq!(
                built,
                PointerBuf::from_tokens(tokens.iter().copied()).as_str()
            );
        }
    }
}
