//! `flinkgate check`: the webhook's validation and mutation, offline. Each
//! object is mutated first and the result validated, as kube-apiserver calls
//! the two webhooks. Exit 0: all allowed; 1: something denied; 2: bad input.

use std::io::Read;
use std::process::ExitCode;

use kube::core::admission::Operation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::cluster_view::{ClusterView, KnownResources};
use crate::admission::decide::{
    Endpoint, Source, Subject, Target, classify_object, denial_message, evaluate,
};
use crate::admission::violation::Violation;
use crate::cli::{CheckArgs, CheckOperation, OutputFormat};
use crate::flink::crd::FlinkDeploymentSpec;
use crate::policy::{Mode, Policy};

#[derive(Debug, Serialize)]
pub struct Report {
    pub source: String,
    /// 1-based document number within the source.
    pub document: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `allowed`, `denied`, or `skipped` (not a Flink resource).
    pub verdict: &'static str,
    pub mode: &'static str,
    pub violations: Vec<Violation>,
    pub warnings: Vec<String>,
    /// RFC 6902 patch the mutating webhook would return; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<json_patch::Patch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Checks one object under a policy.
pub fn check_object(
    policy: &Policy,
    obj: &Value,
    default_ns: &str,
    operation: &Operation,
    cluster: &dyn ClusterView,
) -> Report {
    let target = classify_object(obj);
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_ns)
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let rules = policy.rules_for(Some(&namespace));
    let mut report = Report {
        source: String::new(),
        document: 0,
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
        verdict: "skipped",
        mode: rules.mode.as_str(),
        violations: Vec::new(),
        warnings: Vec::new(),
        patch: None,
        error: None,
    };
    if target == Target::Other
        || (matches!(target, Target::FlinkPod(_)) && *operation != Operation::Create)
    {
        return report;
    }
    let subject = Subject {
        target,
        operation,
        namespace: &namespace,
        name: &name,
    };
    let mutated = evaluate(
        Endpoint::Mutate,
        rules,
        &subject,
        Source::Json(obj),
        None,
        cluster,
    );
    if let Some(m) = mutated.malformed {
        report.verdict = "denied";
        report.error = Some(format!("malformed: {m}"));
        return report;
    }
    let mut patched = obj.clone();
    let patch = match mutated.patch.as_ref().map(|p| p.to_patch()).transpose() {
        Ok(p) => p,
        Err(e) => {
            report.verdict = "denied";
            report.error = Some(format!(
                "internal error: the computed patch is not a JSON Patch: {e}"
            ));
            return report;
        }
    };
    if let Some(p) = &patch
        && let Err(e) = json_patch::patch(&mut patched, p)
    {
        report.verdict = "denied";
        report.error = Some(format!(
            "internal error: the computed patch does not apply: {e}"
        ));
        return report;
    }
    report.patch = patch;
    let validated = evaluate(
        Endpoint::Validate,
        rules,
        &subject,
        Source::Json(&patched),
        None,
        cluster,
    );
    if let Some(m) = validated.malformed {
        report.verdict = "denied";
        report.error = Some(format!("malformed: {m}"));
        return report;
    }
    report.verdict = if validated.violations.is_empty() || rules.mode != Mode::Enforce {
        "allowed"
    } else {
        "denied"
    };
    if rules.mode == Mode::Warn {
        report.warnings = validated
            .violations
            .iter()
            .map(ToString::to_string)
            .collect();
    }
    report.warnings.extend(validated.warnings);
    if report.verdict == "denied" {
        report.error = Some(denial_message(&subject, &validated.violations));
    }
    report.violations = validated.violations;
    report
}

/// Splits a multi-document YAML (or JSON) text into objects.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        match v {
            Value::Null => continue,
            Value::Object(_) => out.push(v),
            _ => {
                return Err(format!(
                    "document {}: not a Kubernetes object (a mapping)",
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

pub async fn run(args: CheckArgs) -> ExitCode {
    let policy = match &args.policy {
        None => Policy::builtin(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => return bad_input(&format!("cannot read policy {}: {e}", path.display())),
            Ok(text) => match Policy::parse(&text, path.display().to_string()) {
                Ok(p) => p,
                Err(e) => return bad_input(&format!("policy {}: {e}", path.display())),
            },
        },
    };
    let operation = match args.operation {
        CheckOperation::Create => Operation::Create,
        CheckOperation::Update => Operation::Update,
    };
    // Every object first: a session job is checked against a session
    // cluster given in the same run.
    let mut objects: Vec<(String, usize, Value)> = Vec::new();
    for file in &args.files {
        let text = match read_source(file) {
            Ok(t) => t,
            Err(e) => return bad_input(&format!("cannot read {file}: {e}")),
        };
        let docs = match documents(&text) {
            Ok(d) => d,
            Err(e) => return bad_input(&format!("{file}: {e}")),
        };
        for (i, obj) in docs.into_iter().enumerate() {
            // A List (kubectl get -o yaml) contributes its items.
            let is_list = obj
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"));
            match obj.get("items").and_then(Value::as_array) {
                Some(items) if is_list => {
                    objects.extend(items.iter().map(|it| (file.clone(), i + 1, it.clone())));
                }
                _ => objects.push((file.clone(), i + 1, obj)),
            }
        }
    }
    let cluster = resources_among(objects.iter().map(|(_, _, o)| o), &args.namespace);
    let mut reports = Vec::new();
    for (file, document, item) in &objects {
        let mut r = check_object(&policy, item, &args.namespace, &operation, &cluster);
        r.source = file.clone();
        r.document = *document;
        reports.push(r);
    }
    match args.output {
        OutputFormat::Json => match serde_json::to_string_pretty(&reports) {
            Ok(s) => println!("{s}"),
            Err(e) => return bad_input(&format!("cannot encode the report: {e}")),
        },
        OutputFormat::Text => print_text(&reports),
    }
    if reports.iter().any(|r| r.verdict == "denied") {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The FlinkDeployments and FlinkSessionJobs among `objects`, for the rules
/// that need another resource.
fn resources_among<'a>(
    objects: impl Iterator<Item = &'a Value>,
    default_ns: &str,
) -> KnownResources {
    let mut known = KnownResources::new("it is not among the documents checked");
    for obj in objects {
        let target = classify_object(obj);
        let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_ns);
        match target {
            Target::FlinkDeployment => {
                let spec = obj.get("spec").cloned().unwrap_or_default();
                if let Ok(spec) = serde_json::from_value::<FlinkDeploymentSpec>(spec) {
                    known.insert(namespace, name, spec);
                }
            }
            Target::FlinkSessionJob => known.insert_session_job(namespace, name),
            _ => {}
        }
    }
    known
}

fn read_source(file: &str) -> std::io::Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(file)
    }
}

fn bad_input(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn print_text(reports: &[Report]) {
    for r in reports {
        let id = if r.namespace.is_empty() {
            r.name.clone()
        } else {
            format!("{}/{}", r.namespace, r.name)
        };
        println!(
            "{}#{} {} {}: {} (mode {})",
            r.source,
            r.document,
            if r.kind.is_empty() {
                "<no kind>"
            } else {
                &r.kind
            },
            id,
            r.verdict.to_uppercase(),
            r.mode
        );
        if let Some(e) = &r.error
            && r.violations.is_empty()
        {
            println!("  error: {e}");
        }
        for (i, v) in r.violations.iter().enumerate() {
            println!("  {}. {v}", i + 1);
        }
        for w in &r.warnings {
            println!("  warning: {w}");
        }
        if let Some(p) = &r.patch {
            println!("  patch: {}", serde_json::to_string(p).unwrap_or_default());
        }
    }
}
