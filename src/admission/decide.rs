//! The admission decision, independent of HTTP: which object this is, what
//! the rules say about it, and the response kube-apiserver gets. The server
//! and `flinkgate check` both come through here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::core::GroupVersionKind;
use kube::core::admission::{AdmissionResponse, Operation};
use serde::Deserialize;
use serde_json::Value;

use super::cluster_view::ClusterView;
use super::mutate::{self, PodView};
use super::object::{FlinkObject, Metadata, Spec, Typed, lenient};
use super::review::{self, Request};
use super::validate;
use super::violation::Violation;
use crate::flink::crd::{FlinkDeploymentSpec, FlinkSessionJobSpec};
use crate::flink::pod::{Component, flink_component};
use crate::flink::state_snapshot::{FlinkStateSnapshotSpec, SnapshotState};
use crate::policy::{Mode, Policy, Rules};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// What kind of object a request carries, as far as flinkgate cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    FlinkDeployment,
    FlinkSessionJob,
    FlinkStateSnapshot,
    FlinkPod(Component),
    /// Not a Flink pod, or a kind flinkgate does not handle: allowed untouched.
    Other,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::FlinkDeployment => "FlinkDeployment",
            Target::FlinkSessionJob => "FlinkSessionJob",
            Target::FlinkStateSnapshot => "FlinkStateSnapshot",
            Target::FlinkPod(_) => "Pod",
            Target::Other => "Other",
        }
    }
}

/// The verdict on one object, before the policy mode turns it into a response.
#[derive(Debug, Default)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// What could not be checked; shown whatever the verdict.
    pub warnings: Vec<String>,
    pub patch: Option<mutate::PatchText>,
    /// The object does not have the resource's shape; the reason.
    pub malformed: Option<String>,
}

/// The object's identity, for messages and namespace rules.
pub struct Subject<'a> {
    pub target: Target,
    pub operation: &'a Operation,
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Deserialize)]
struct LabelsOnly {
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize)]
struct NameOnly {
    #[serde(default)]
    metadata: MetaName,
}

#[derive(Deserialize, Default)]
struct MetaName {
    #[serde(default)]
    name: Option<String>,
}

fn is_flink_group(gvk: &GroupVersionKind) -> bool {
    gvk.group == "flink.apache.org"
}

/// Classifies a request; pods are read only as far as their labels.
pub fn classify(req: &Request) -> Target {
    if req.sub_resource.is_some() || matches!(req.operation, Operation::Delete | Operation::Connect)
    {
        return Target::Other;
    }
    match (req.kind.group.as_str(), req.kind.kind.as_str()) {
        (_, "FlinkDeployment") if is_flink_group(&req.kind) => Target::FlinkDeployment,
        (_, "FlinkSessionJob") if is_flink_group(&req.kind) => Target::FlinkSessionJob,
        (_, "FlinkStateSnapshot") if is_flink_group(&req.kind) => Target::FlinkStateSnapshot,
        // Pods are only shaped on the way in; their spec is immutable later.
        ("", "Pod") if req.operation == Operation::Create => {
            let labels = req
                .object
                .as_ref()
                .and_then(|raw| serde_json::from_str::<LabelsOnly>(raw.get()).ok())
                .and_then(|o| o.metadata.labels);
            flink_component(labels.as_ref()).map_or(Target::Other, Target::FlinkPod)
        }
        _ => Target::Other,
    }
}

/// Target of an object given as JSON (for `flinkgate check`).
pub fn classify_object(obj: &Value) -> Target {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    match (api_version, kind) {
        (v, "FlinkDeployment") if v.starts_with("flink.apache.org/") => Target::FlinkDeployment,
        (v, "FlinkSessionJob") if v.starts_with("flink.apache.org/") => Target::FlinkSessionJob,
        (v, "FlinkStateSnapshot") if v.starts_with("flink.apache.org/") => {
            Target::FlinkStateSnapshot
        }
        ("v1", "Pod") => {
            let labels: Option<BTreeMap<String, String>> = obj
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok());
            flink_component(labels.as_ref()).map_or(Target::Other, Target::FlinkPod)
        }
        _ => Target::Other,
    }
}

/// An object as the caller has it: parsed JSON (for `check`, which
/// applies patches), the raw request text, or already read typed by the
/// review's parse. The server never builds a `Value` of the object.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Json(&'a Value),
    Raw(&'a str),
    Typed(&'a Typed),
}

/// Reads a Flink resource for the rules; a wrong shape names the field.
fn flink_object<S: Spec>(src: Source<'_>) -> Result<Cow<'_, FlinkObject<S>>, String> {
    match src {
        Source::Typed(t) => S::from_typed(t)
            .map(Cow::Borrowed)
            .ok_or_else(|| "internal error: the object was read as another kind".into()),
        Source::Json(v) => typed(v, "").map(Cow::Owned),
        Source::Raw(raw) => serde_json::from_str(raw)
            .map(Cow::Owned)
            .map_err(|_| explain::<FlinkObject<S>>(raw, "")),
    }
}

/// The spec, or the empty one the operator would read.
fn spec_of<S: Spec>(o: &FlinkObject<S>) -> Cow<'_, S> {
    o.spec
        .as_ref()
        .map_or_else(|| Cow::Owned(S::default()), Cow::Borrowed)
}

/// Reads a whole object typed (pods; the review parse never types them).
fn read_whole<T: serde::de::DeserializeOwned>(src: Source) -> Result<T, String> {
    match src {
        Source::Json(v) => typed(v, "object"),
        Source::Raw(raw) => serde_json::from_str(raw).map_err(|_| explain::<T>(raw, "")),
        Source::Typed(_) => Err("internal error: a typed object where a pod was expected".into()),
    }
}

/// Re-reads text that failed to parse, tracking the path for the message.
fn explain<T: serde::de::DeserializeOwned>(raw: &str, prefix: &str) -> String {
    let mut de = serde_json::Deserializer::from_str(raw);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => "object could not be read".into(),
        Err(e) => {
            let path = e.path().to_string();
            format!("{prefix}{path}: {}", e.into_inner())
        }
    }
}

/// Reads a part of a parsed object typed, naming the field on failure.
fn typed<'v, T: Deserialize<'v>>(value: &'v Value, what: &str) -> Result<T, String> {
    // Path tracking costs on every field; pay it only to explain a failure.
    if let Ok(t) = T::deserialize(value) {
        return Ok(t);
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            what.to_string()
        } else if what.is_empty() {
            path
        } else {
            format!("{what}.{path}")
        };
        format!("{at}: {}", e.into_inner())
    })
}

/// Runs one endpoint's work on one object.
pub fn evaluate(
    endpoint: Endpoint,
    rules: &Rules,
    subject: &Subject,
    obj: Source,
    old: Option<Source>,
    cluster: &dyn ClusterView,
) -> Outcome {
    match evaluate_inner(endpoint, rules, subject, obj, old, cluster) {
        Ok(o) => o,
        Err(malformed) => Outcome {
            malformed: Some(malformed),
            ..Outcome::default()
        },
    }
}

fn evaluate_inner(
    endpoint: Endpoint,
    rules: &Rules,
    s: &Subject,
    obj: Source,
    old: Option<Source>,
    cluster: &dyn ClusterView,
) -> Result<Outcome, String> {
    let ctx = validate::Context {
        rules,
        name: s.name,
        namespace: s.namespace,
        cluster,
    };
    let mut out = Outcome::default();
    if spec_unchanged(s, obj, old) {
        // A label, an annotation, a finalizer (a controller's bookkeeping):
        // admitted as is, so a policy tightened later never blocks deleting
        // an object or its controller's writes.
        return Ok(out);
    }
    match (s.target, endpoint) {
        (Target::Other, _) => {}
        (Target::FlinkDeployment, Endpoint::Validate) => {
            let o = flink_object::<FlinkDeploymentSpec>(obj)?;
            if !o.is_canary() {
                out.violations =
                    validate::flink_deployment(&spec_of(&o), o.last_reconciled().as_ref(), &ctx);
            }
        }
        (Target::FlinkDeployment, Endpoint::Mutate) => {
            let o = flink_object::<FlinkDeploymentSpec>(obj)?;
            if !o.is_canary() {
                out.patch = mutate::flink_deployment(o.metadata.as_ref(), o.spec.as_ref(), rules);
            }
        }
        (Target::FlinkSessionJob, Endpoint::Validate) => {
            let o = flink_object::<FlinkSessionJobSpec>(obj)?;
            if !o.is_canary() {
                (out.violations, out.warnings) =
                    validate::flink_session_job(&spec_of(&o), o.last_reconciled().as_ref(), &ctx);
            }
        }
        (Target::FlinkSessionJob, Endpoint::Mutate) => {
            let o = flink_object::<FlinkSessionJobSpec>(obj)?;
            if !o.is_canary() {
                out.patch = mutate::flink_session_job(o.metadata.as_ref(), o.spec.as_ref(), rules);
            }
        }
        (Target::FlinkStateSnapshot, Endpoint::Validate) => {
            let o = flink_object::<FlinkStateSnapshotSpec>(obj)?;
            if !o.is_canary() {
                let state = snapshot_state(obj);
                (out.violations, out.warnings) =
                    validate::flink_state_snapshot(&spec_of(&o), state, &ctx);
            }
        }
        // The operator's mutator leaves snapshots as they are.
        (Target::FlinkStateSnapshot, Endpoint::Mutate) => {}
        (Target::FlinkPod(component), Endpoint::Validate) => {
            let pod: Pod = read_whole(obj)?;
            out.violations = validate::flink_pod(&pod, component, &ctx);
        }
        (Target::FlinkPod(component), Endpoint::Mutate) => {
            let pod: PodView = read_whole(obj)?;
            out.patch = mutate::flink_pod(&pod, component, rules);
        }
    }
    Ok(out)
}

/// Whether an UPDATE of a Flink resource leaves its spec as it was.
fn spec_unchanged(s: &Subject, obj: Source, old: Option<Source>) -> bool {
    fn same<S: Spec>(obj: Source, old: Source) -> bool {
        match (flink_object::<S>(obj), flink_object::<S>(old)) {
            (Ok(new), Ok(old)) => spec_of(&new) == spec_of(&old),
            _ => false,
        }
    }
    let (Operation::Update, Some(old)) = (s.operation, old) else {
        return false;
    };
    match s.target {
        Target::FlinkDeployment => same::<FlinkDeploymentSpec>(obj, old),
        Target::FlinkSessionJob => same::<FlinkSessionJobSpec>(obj, old),
        Target::FlinkStateSnapshot => same::<FlinkStateSnapshotSpec>(obj, old),
        _ => false,
    }
}

#[derive(Deserialize)]
struct SnapshotStatusView {
    #[serde(default, deserialize_with = "lenient")]
    status: Option<SnapshotStateView>,
}

#[derive(Deserialize)]
struct SnapshotStateView {
    #[serde(default)]
    state: Option<SnapshotState>,
}

/// `status.state` of a FlinkStateSnapshot, when it has one flinkgate can read.
fn snapshot_state(src: Source) -> Option<SnapshotState> {
    match src {
        Source::Json(v) => v
            .pointer("/status/state")
            .and_then(|s| serde_json::from_value(s.clone()).ok()),
        Source::Raw(raw) => serde_json::from_str::<SnapshotStatusView>(raw)
            .ok()
            .and_then(|v| v.status)
            .and_then(|s| s.state),
        Source::Typed(_) => None,
    }
}

/// The full path for the server: envelope in, response out.
pub fn decide(
    endpoint: Endpoint,
    policy: &Policy,
    req: &Request,
    cluster: &dyn ClusterView,
) -> Decision {
    let target = classify(req);
    let namespace = req.namespace.as_deref();
    let rules = policy.rules_for(namespace);
    let mode = rules.mode;
    if target == Target::Other {
        return Decision::new(target, mode, review::allow(&req.uid), false, 0);
    }
    let object = match (&req.typed, &req.object) {
        (Some(typed), _) => Source::Typed(typed),
        (None, Some(raw)) => Source::Raw(raw.get()),
        (None, None) => {
            let resp = review::deny(
                &req.uid,
                400,
                "BadRequest",
                "request.object is missing".into(),
            );
            return Decision::new(target, mode, resp, false, 0);
        }
    };
    // kube-apiserver fills request.name; read the object only when it did not.
    let name_from_object;
    let name = if req.name.is_empty() {
        name_from_object = match object {
            Source::Typed(t) => t.metadata().and_then(|m| m.name.clone()),
            Source::Raw(raw) => serde_json::from_str::<NameOnly>(raw)
                .ok()
                .and_then(|o| o.metadata.name),
            Source::Json(v) => v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
        .unwrap_or_default();
        name_from_object.as_str()
    } else {
        req.name.as_str()
    };
    let subject = Subject {
        target,
        operation: &req.operation,
        namespace: namespace.unwrap_or(""),
        name,
    };
    let old = match (&req.typed_old, &req.old_object) {
        (Some(typed), _) => Some(Source::Typed(typed)),
        (None, raw) => raw.as_ref().map(|o| Source::Raw(o.get())),
    };
    let outcome = evaluate(endpoint, rules, &subject, object, old, cluster);
    let violations = outcome.violations.len();
    let patched = outcome.patch.is_some();
    let resp = respond(&req.uid, &subject, mode, outcome);
    Decision::new(target, mode, resp, patched, violations)
}

/// The response plus what metrics and logs want to know about it.
pub struct Decision {
    pub target: Target,
    pub mode: Mode,
    pub response: AdmissionResponse,
    pub patched: bool,
    pub violations: usize,
}

impl Decision {
    fn new(
        target: Target,
        mode: Mode,
        response: AdmissionResponse,
        patched: bool,
        violations: usize,
    ) -> Self {
        Self {
            target,
            mode,
            response,
            patched,
            violations,
        }
    }
}

/// Turns an outcome into a response under the namespace's mode.
pub fn respond(uid: &str, s: &Subject, mode: Mode, outcome: Outcome) -> AdmissionResponse {
    if let Some(reason) = outcome.malformed {
        return review::deny(
            uid,
            400,
            "BadRequest",
            format!(
                "{} {} is malformed: {reason}",
                s.target.as_str(),
                display_name(s)
            ),
        );
    }
    let mut resp = if outcome.violations.is_empty() {
        review::allow(uid)
    } else {
        match mode {
            Mode::Enforce => review::deny(
                uid,
                403,
                "Forbidden",
                denial_message(s, &outcome.violations),
            ),
            Mode::Warn => {
                let mut r = review::allow(uid);
                r.warnings = Some(
                    outcome
                        .violations
                        .iter()
                        .map(|v| format!("flinkgate: {v}"))
                        .collect(),
                );
                r
            }
            Mode::Audit => {
                tracing::warn!(
                    uid = %uid,
                    kind = s.target.as_str(),
                    object = %display_name(s),
                    violations = %outcome.violations.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "),
                    "policy violations allowed in audit mode"
                );
                review::allow(uid)
            }
        }
    };
    if !outcome.warnings.is_empty() {
        let mut all = resp.warnings.take().unwrap_or_default();
        all.extend(outcome.warnings.iter().map(|w| format!("flinkgate: {w}")));
        resp.warnings = Some(all);
    }
    if let Some(patch) = outcome.patch
        && resp.allowed
    {
        resp = match review::with_patch(resp, patch.into_bytes()) {
            Ok(r) => r,
            Err(e) => review::deny(
                uid,
                500,
                "InternalError",
                format!("could not encode the patch: {e}"),
            ),
        };
    }
    resp
}

fn display_name(s: &Subject) -> String {
    if s.namespace.is_empty() {
        s.name.to_string()
    } else {
        format!("{}/{}", s.namespace, s.name)
    }
}

/// One line per violation, numbered, so kubectl shows them all.
pub fn denial_message(s: &Subject, violations: &[Violation]) -> String {
    let mut msg = format!(
        "{} {} violates {} flinkgate rule{}:",
        s.target.as_str(),
        display_name(s),
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for (i, v) in violations.iter().enumerate() {
        msg.push_str(&format!("\n  {}. {v}", i + 1));
    }
    msg
}
