//! `flinkgate register`: the cluster-admin step that points kube-apiserver at
//! the webhook. Server-side apply with a fixed field manager makes it
//! idempotent (a second run changes nothing); `--uninstall` deletes exactly
//! the two configurations it applies, and only if they carry its label.

use anyhow::{Context, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};

use crate::cli::{FailurePolicy, RegisterArgs};

const FIELD_MANAGER: &str = "flinkgate-register";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "flinkgate");

/// Where kube-apiserver sends reviews.
#[derive(Debug, Clone)]
pub enum Target {
    Url(String),
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
}

/// One webhook entry's shape, shared by the validating and mutating lists.
struct Hook {
    /// First label of the webhook name, e.g. `flink-resources`.
    id: &'static str,
    rules: Vec<RuleWithOperations>,
    object_selector: Option<LabelSelector>,
}

fn rule(group: &str, version: &str, resources: &[&str], operations: &[&str]) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![group.into()]),
        api_versions: Some(vec![version.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        operations: Some(operations.iter().map(|o| o.to_string()).collect()),
        scope: Some("Namespaced".into()),
    }
}

fn selector(exprs: &[(&str, &[&str])]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(
            exprs
                .iter()
                .map(|(key, values)| LabelSelectorRequirement {
                    key: key.to_string(),
                    operator: "In".into(),
                    values: Some(values.iter().map(|v| v.to_string()).collect()),
                })
                .collect(),
        ),
        match_labels: None,
    }
}

/// The three webhooks: Flink resources, Flink pods by Flink's labels, and
/// pods by flinkgate's own label (an objectSelector cannot say "or").
fn hooks() -> Vec<Hook> {
    use crate::flink::pod::{
        COMPONENT_LABEL, FLINK_POD_TYPES, FLINKGATE_COMPONENT_LABEL, TYPE_LABEL,
    };
    let components: &[&str] = &["jobmanager", "taskmanager"];
    vec![
        Hook {
            id: "flink-resources",
            rules: vec![rule(
                "flink.apache.org",
                "v1beta1",
                &[
                    "flinkdeployments",
                    "flinksessionjobs",
                    "flinkstatesnapshots",
                ],
                &["CREATE", "UPDATE"],
            )],
            object_selector: None,
        },
        Hook {
            id: "flink-pods",
            rules: vec![rule("", "v1", &["pods"], &["CREATE"])],
            object_selector: Some(selector(&[
                (COMPONENT_LABEL, components),
                (TYPE_LABEL, FLINK_POD_TYPES),
            ])),
        },
        Hook {
            id: "flinkgate-pods",
            rules: vec![rule("", "v1", &["pods"], &["CREATE"])],
            object_selector: Some(selector(&[(FLINKGATE_COMPONENT_LABEL, components)])),
        },
    ]
}

fn namespace_selector(own_namespace: &str) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "NotIn".into(),
            values: Some(vec!["kube-system".into(), own_namespace.into()]),
        }]),
        match_labels: None,
    }
}

fn client_config(target: &Target, path: &str, ca: &[u8]) -> WebhookClientConfig {
    let (url, service) = match target {
        Target::Url(base) => (Some(format!("{}{path}", base.trim_end_matches('/'))), None),
        Target::Service {
            namespace,
            name,
            port,
        } => (
            None,
            Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(path.into()),
                port: Some(*port),
            }),
        ),
    };
    WebhookClientConfig {
        ca_bundle: Some(ByteString(ca.to_vec())),
        url,
        service,
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
        ..ObjectMeta::default()
    }
}

pub fn validating(
    name: &str,
    target: &Target,
    ca: &[u8],
    own_ns: &str,
    timeout: i32,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: meta(name),
        webhooks: Some(
            hooks()
                .into_iter()
                .map(|h| ValidatingWebhook {
                    name: format!("{}.validate.flinkgate.io", h.id),
                    admission_review_versions: vec!["v1".into()],
                    client_config: client_config(target, "/validate", ca),
                    failure_policy: Some("Fail".into()),
                    match_policy: Some("Equivalent".into()),
                    namespace_selector: Some(namespace_selector(own_ns)),
                    object_selector: h.object_selector,
                    rules: Some(h.rules),
                    side_effects: "None".into(),
                    timeout_seconds: Some(timeout),
                    match_conditions: None,
                })
                .collect(),
        ),
    }
}

pub fn mutating(
    name: &str,
    target: &Target,
    ca: &[u8],
    own_ns: &str,
    timeout: i32,
    failure: FailurePolicy,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: meta(name),
        webhooks: Some(
            hooks()
                .into_iter()
                .map(|h| MutatingWebhook {
                    name: format!("{}.mutate.flinkgate.io", h.id),
                    admission_review_versions: vec!["v1".into()],
                    client_config: client_config(target, "/mutate", ca),
                    failure_policy: Some(failure.as_str().into()),
                    match_policy: Some("Equivalent".into()),
                    namespace_selector: Some(namespace_selector(own_ns)),
                    object_selector: h.object_selector,
                    reinvocation_policy: Some("Never".into()),
                    rules: Some(h.rules),
                    side_effects: "None".into(),
                    timeout_seconds: Some(timeout),
                    match_conditions: None,
                })
                .collect(),
        ),
    }
}

pub async fn run(args: RegisterArgs) -> anyhow::Result<()> {
    let Some(client) = crate::k8s::client(args.kubeconfig.as_deref()).await? else {
        bail!("no cluster: pass --kubeconfig or run inside a pod");
    };
    let validating_api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating_api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    if args.uninstall {
        return uninstall(&client, &args.name, &validating_api, &mutating_api).await;
    }
    let ca_file = args
        .ca_file
        .as_ref()
        .context("--ca-file is required (the CA that signed the serving certificate)")?;
    let ca = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
        bail!("{} does not contain a PEM certificate", ca_file.display());
    }
    let target = match (&args.url, &args.service) {
        (Some(url), None) => {
            if !url.starts_with("https://") {
                bail!(
                    "--url must start with https:// (kube-apiserver only calls webhooks over TLS)"
                );
            }
            Target::Url(url.clone())
        }
        (None, Some(svc)) => Target::Service {
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            port: args.service_port,
        },
        _ => {
            bail!("give exactly one of --url (local run) or --service NAMESPACE/NAME (in-cluster)")
        }
    };
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let v = validating(
        &args.name,
        &target,
        &ca,
        &args.namespace,
        args.timeout_seconds,
    );
    let m = mutating(
        &args.name,
        &target,
        &ca,
        &args.namespace,
        args.timeout_seconds,
        args.mutation_failure_policy,
    );
    let v_out = validating_api
        .patch(&args.name, &pp, &Patch::Apply(&v))
        .await
        .context("applying the ValidatingWebhookConfiguration")?;
    let m_out = mutating_api
        .patch(&args.name, &pp, &Patch::Apply(&m))
        .await
        .context("applying the MutatingWebhookConfiguration")?;
    println!(
        "registered ValidatingWebhookConfiguration/{} (resourceVersion {}) and MutatingWebhookConfiguration/{} (resourceVersion {})",
        args.name,
        v_out.metadata.resource_version.unwrap_or_default(),
        args.name,
        m_out.metadata.resource_version.unwrap_or_default()
    );
    Ok(())
}

async fn uninstall(
    _client: &Client,
    name: &str,
    validating_api: &Api<ValidatingWebhookConfiguration>,
    mutating_api: &Api<MutatingWebhookConfiguration>,
) -> anyhow::Result<()> {
    let ours = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels.and_then(|l| l.get(MANAGED_BY.0)).map(String::as_str) == Some(MANAGED_BY.1)
    };
    match validating_api.get_opt(name).await? {
        Some(v) if ours(v.metadata.labels.as_ref()) => {
            validating_api
                .delete(name, &DeleteParams::default())
                .await?;
            println!("deleted ValidatingWebhookConfiguration/{name}");
        }
        Some(_) => println!("left ValidatingWebhookConfiguration/{name}: not created by flinkgate"),
        None => println!("ValidatingWebhookConfiguration/{name} not found"),
    }
    match mutating_api.get_opt(name).await? {
        Some(m) if ours(m.metadata.labels.as_ref()) => {
            mutating_api.delete(name, &DeleteParams::default()).await?;
            println!("deleted MutatingWebhookConfiguration/{name}");
        }
        Some(_) => println!("left MutatingWebhookConfiguration/{name}: not created by flinkgate"),
        None => println!("MutatingWebhookConfiguration/{name} not found"),
    }
    Ok(())
}
