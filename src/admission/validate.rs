//! Validation: the Flink operator's rules that need no cluster state, then
//! the policy's limits. Every rule adds to one list, so a denial names every
//! problem at once.

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;

use crate::admission::checks::{
    cluster_name, image_allowed, internal_host_reason, java_uri_host, java_uri_problem,
};
use crate::admission::cluster_view::{ClusterView, Presence, SessionCluster};
use crate::admission::violation::{Violation, show};
use crate::admission::{component_memory, ingress, operator_options};
use crate::flink::config::{
    self, CHECKPOINT_DIR_KEYS, CHECKPOINT_INTERVAL_KEYS, Flat, LAST_STATE_MAX_CHECKPOINT_AGE_KEY,
    OPERATOR_OWNED_KEYS, PERIODIC_SAVEPOINT_INTERVAL_KEY, SAVEPOINT_DIR_KEYS,
};
use crate::flink::crd::{
    FlinkDeploymentSpec, FlinkSessionJobSpec, JobSpec, Resource, ResourceRequirements,
};
use crate::flink::pod::{Component, MAIN_CONTAINER};
use crate::flink::schema::FLINK_VERSIONS;
use crate::flink::state_snapshot::{
    FlinkStateSnapshotSpec, KIND_FLINK_DEPLOYMENT, KIND_FLINK_SESSION_JOB, SnapshotState,
};
use crate::flink::version::FlinkVersion;
use crate::policy::{ComponentLimits, Rules};
use crate::quantity::{format_bytes, parse_flink_memory, parse_quantity, parse_quantity_value};

const LOG_CONFIG_KEYS: &[&str] = &["log4j-console.properties", "logback-console.xml"];

/// Everything a rule may need besides the spec.
pub struct Context<'a> {
    pub rules: &'a Rules,
    pub name: &'a str,
    pub namespace: &'a str,
    /// The other Flink resources, for the rules that need one.
    pub cluster: &'a dyn ClusterView,
}

/// `last` is the spec the operator last deployed
/// (`status.reconciliationStatus.lastReconciledSpec`), for the rules on
/// what an update may change.
pub fn flink_deployment(
    spec: &FlinkDeploymentSpec,
    last: Option<&FlinkDeploymentSpec>,
    ctx: &Context,
) -> Vec<Violation> {
    let mut v = Vec::new();
    v.extend(cluster_name("metadata.name", ctx.name));
    flink_version(spec.flink_version.as_deref(), ctx, &mut v);
    let flat = config::flatten(spec.flink_configuration.as_ref());
    forbidden_keys(&flat, ctx, &mut v);
    operator_options::check(&flat, &mut v);
    if let Some(last) = last {
        spec_change(spec, last, &mut v);
    }
    if let Some(job) = &spec.job {
        let tm_replicas = spec.task_manager.as_ref().and_then(|t| t.replicas);
        job_fields(job, &mut v);
        deployment_parallelism(job, tm_replicas, ctx, &mut v);
        state_directories(job, &flat, &mut v);
    }
    replicas(spec, &flat, &mut v);
    let jm = spec.job_manager.as_ref();
    let tm = spec.task_manager.as_ref();
    component_resources(
        "spec.jobManager",
        Component::JobManager,
        jm.and_then(|j| j.resource.as_ref()),
        jm.and_then(|j| j.resources.as_ref()),
        &flat,
        &ctx.rules.limits.job_manager,
        ctx.rules.limits.require_resources,
        &mut v,
    );
    component_resources(
        "spec.taskManager",
        Component::TaskManager,
        tm.and_then(|t| t.resource.as_ref()),
        tm.and_then(|t| t.resources.as_ref()),
        &flat,
        &ctx.rules.limits.task_manager,
        ctx.rules.limits.require_resources,
        &mut v,
    );
    if let Some(logs) = &spec.log_configuration {
        for key in logs
            .keys()
            .filter(|k| !LOG_CONFIG_KEYS.contains(&k.as_str()))
        {
            v.push(Violation::new(
                format!("spec.logConfiguration[{key}]"),
                format!("'{key}' is not a log configuration file Flink reads"),
                format!("use one of {}", LOG_CONFIG_KEYS.join(", ")),
            ));
        }
    }
    if let Some(ingress) = &spec.ingress {
        ingress_template(ingress.template.as_deref(), ctx, &mut v);
    }
    if spec
        .service_account
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        v.push(Violation::new(
            "spec.serviceAccount",
            "is missing",
            "set spec.serviceAccount to the service account the Flink pods run as (e.g. flink)",
        ));
    }
    if let Some(mode) = &spec.mode
        && !["native", "standalone"].contains(&mode.as_str())
    {
        v.push(Violation::new(
            "spec.mode",
            format!("'{mode}' is not a deployment mode"),
            "use native or standalone",
        ));
    }
    if let Some(image) = &spec.image
        && !image_allowed(image, &ctx.rules.limits.image_registries)
    {
        v.push(image_violation("spec.image", image, ctx));
    }
    if ctx.rules.limits.require_checkpointing {
        if config::first_in(&flat, CHECKPOINT_INTERVAL_KEYS).is_none() {
            v.push(Violation::new(
                "spec.flinkConfiguration[execution.checkpointing.interval]",
                format!(
                    "is not set, and checkpointing is required in namespace {}",
                    ctx.namespace
                ),
                "set execution.checkpointing.interval, e.g. '60 s'",
            ));
        }
        if config::first_in(&flat, CHECKPOINT_DIR_KEYS).is_none() {
            v.push(missing_checkpoint_dir(
                "checkpointing is required in this namespace",
            ));
        }
    }
    v
}

/// `last` is the spec the operator last deployed, as for [`flink_deployment`].
/// Returns the violations, and warnings for what could not be checked.
pub fn flink_session_job(
    spec: &FlinkSessionJobSpec,
    last: Option<&FlinkSessionJobSpec>,
    ctx: &Context,
) -> (Vec<Violation>, Vec<String>) {
    let mut v = Vec::new();
    let mut warnings = Vec::new();
    match spec.deployment_name.as_deref() {
        None | Some("") => v.push(Violation::new(
            "spec.deploymentName",
            "is missing",
            "set spec.deploymentName to the name of the session FlinkDeployment to run in",
        )),
        Some(name) => v.extend(cluster_name("spec.deploymentName", name)),
    }
    if let Some(last) = last
        && last.deployment_name != spec.deployment_name
    {
        v.push(Violation::new(
            "spec.deploymentName",
            format!(
                "cannot change from {} (deployed) to {}",
                show(&last.deployment_name),
                show(&spec.deployment_name)
            ),
            "delete the FlinkSessionJob and create it again to move it to another session cluster",
        ));
    }
    forbidden_keys(
        &config::flatten(spec.flink_configuration.as_ref()),
        ctx,
        &mut v,
    );
    match &spec.job {
        None => v.push(Violation::new(
            "spec.job",
            "is missing",
            "set spec.job with jarURI, or entryClass for a job on the session cluster's classpath",
        )),
        Some(job) => {
            job_fields(job, &mut v);
            session_job_parallelism(job, ctx, &mut v);
            // Without a jarURI the operator runs a class the session cluster has.
            if let Some(uri) = &job.jar_uri {
                jar_uri(uri, ctx, &mut v);
            }
            if let Some(name) = spec.deployment_name.as_deref().filter(|n| !n.is_empty()) {
                match ctx.cluster.session(ctx.namespace, name) {
                    SessionCluster::Found(cluster) => {
                        with_session_cluster(spec, job, name, &cluster, &mut v)
                    }
                    SessionCluster::Missing => warnings.push(format!(
                        "session cluster {}/{name} does not exist (yet); the job waits for it",
                        ctx.namespace
                    )),
                    SessionCluster::Unchecked(why) => warnings.push(format!(
                        "the rules that need session cluster {}/{name} were not checked: {why}",
                        ctx.namespace
                    )),
                }
            }
        }
    }
    (v, warnings)
}

/// The operator's rules for a session job on a known cluster: not an
/// application cluster, and the job's spec judged under the cluster's
/// configuration with the job's own on top.
fn with_session_cluster(
    spec: &FlinkSessionJobSpec,
    job: &JobSpec,
    name: &str,
    cluster: &FlinkDeploymentSpec,
    v: &mut Vec<Violation>,
) {
    if cluster.job.is_some() {
        v.push(Violation::new(
            "spec.deploymentName",
            format!("{name} is an application cluster; session jobs run only on session clusters"),
            "point spec.deploymentName at a FlinkDeployment without spec.job",
        ));
        return;
    }
    let mut effective = config::flatten(cluster.flink_configuration.as_ref());
    effective.extend(config::flatten(spec.flink_configuration.as_ref()));
    state_directories(job, &effective, v);
    if job.parallelism.is_none() {
        v.push(Violation::new(
            "spec.job.parallelism",
            "is missing; a session job is sized by its parallelism",
            "set spec.job.parallelism to at least 1",
        ));
    }
    operator_options::autoscaler(&effective, v);
}

/// A FlinkStateSnapshot, as the operator's validator judges one: exactly one
/// of savepoint and checkpoint; a savepoint that already exists needs its
/// path (flinkgate's addition: without it there is nothing to record);
/// anything else needs a job reference to a resource that exists, unless the
/// snapshot is past its trigger. `state` is `status.state`.
pub fn flink_state_snapshot(
    spec: &FlinkStateSnapshotSpec,
    state: Option<SnapshotState>,
    ctx: &Context,
) -> (Vec<Violation>, Vec<String>) {
    let mut v = Vec::new();
    let mut warnings = Vec::new();
    if spec.is_savepoint() == spec.is_checkpoint() {
        v.push(Violation::new(
            "spec",
            "sets both savepoint and checkpoint, or neither",
            "set exactly one of spec.savepoint and spec.checkpoint",
        ));
        return (v, warnings);
    }
    if spec.already_exists() {
        let path = spec.savepoint.as_ref().and_then(|s| s.path.as_deref());
        if path.is_none_or(|p| p.trim().is_empty()) {
            v.push(Violation::new(
                "spec.savepoint.path",
                "is missing, but spec.savepoint.alreadyExists says the savepoint is there",
                "set spec.savepoint.path to the savepoint's location",
            ));
        }
        return (v, warnings);
    }
    let reference = spec.job_reference.as_ref();
    let kind = reference.and_then(|r| r.kind.as_deref());
    let name = reference
        .and_then(|r| r.name.as_deref())
        .filter(|n| !n.is_empty());
    let (Some(kind), Some(name)) = (kind, name) else {
        v.push(Violation::new(
            "spec.jobReference",
            "is missing or incomplete, so there is no job to snapshot",
            "set spec.jobReference.kind (FlinkDeployment or FlinkSessionJob) and spec.jobReference.name",
        ));
        return (v, warnings);
    };
    if ![KIND_FLINK_DEPLOYMENT, KIND_FLINK_SESSION_JOB].contains(&kind) {
        v.push(Violation::new(
            "spec.jobReference.kind",
            format!("'{kind}' is not a kind that runs a job"),
            "use FlinkDeployment or FlinkSessionJob",
        ));
        return (v, warnings);
    }
    // Once the snapshot is under way or done, its target may go away.
    let pending = state.is_none_or(|s| s == SnapshotState::TriggerPending);
    match ctx.cluster.presence(kind, ctx.namespace, name) {
        Presence::Found => {}
        Presence::Missing if pending => v.push(Violation::new(
            "spec.jobReference.name",
            format!("{kind} {}/{name} does not exist", ctx.namespace),
            "name an existing FlinkDeployment or FlinkSessionJob in this namespace",
        )),
        Presence::Missing => {}
        Presence::Unchecked(why) => warnings.push(format!(
            "whether {kind} {}/{name} exists was not checked: {why}",
            ctx.namespace
        )),
    }
    (v, warnings)
}

/// Flink pods: resources present and within limits, images allowed.
pub fn flink_pod(pod: &Pod, component: Component, ctx: &Context) -> Vec<Violation> {
    let mut v = Vec::new();
    let Some(spec) = &pod.spec else {
        v.push(Violation::new(
            "spec",
            "is missing",
            "a pod needs a spec with containers",
        ));
        return v;
    };
    let limits = match component {
        Component::JobManager => &ctx.rules.limits.job_manager,
        Component::TaskManager => &ctx.rules.limits.task_manager,
    };
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("spec.initContainers", c))
        .chain(spec.containers.iter().map(|c| ("spec.containers", c)));
    for (list, c) in all {
        if let Some(image) = &c.image
            && !image_allowed(image, &ctx.rules.limits.image_registries)
        {
            v.push(image_violation(
                &format!("{list}[{}].image", c.name),
                image,
                ctx,
            ));
        }
    }
    if let Some((i, main)) = main_container(&spec.containers) {
        let path = format!("spec.containers[{}].resources", main.name);
        let res = main.resources.as_ref();
        let amount = |kind: &str,
                      key: &str|
         -> Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
            let map = if kind == "requests" {
                res?.requests.as_ref()
            } else {
                res?.limits.as_ref()
            };
            map?.get(key)
        };
        if ctx.rules.limits.require_resources {
            for key in ["cpu", "memory"] {
                if amount("requests", key).is_none() && amount("limits", key).is_none() {
                    v.push(Violation::new(
                        format!("{path}.limits.{key}"),
                        format!("the {component} container (#{i}) sets no {key}, and resources are required in namespace {}", ctx.namespace),
                        format!("set resources.requests.{key} and resources.limits.{key}"),
                    ));
                }
            }
        }
        for kind in ["requests", "limits"] {
            for key in ["cpu", "memory"] {
                if let Some(q) = amount(kind, key) {
                    let value = Value::String(q.0.clone());
                    check_amount(
                        &|| format!("{path}.{kind}.{key}"),
                        key,
                        &value,
                        limits,
                        component,
                        &mut v,
                    );
                }
            }
        }
    }
    v
}

/// Flink's main container by name, else the first one.
pub fn main_container(containers: &[Container]) -> Option<(usize, &Container)> {
    containers
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == MAIN_CONTAINER)
        .or_else(|| containers.first().map(|c| (0, c)))
}

fn flink_version(version: Option<&str>, ctx: &Context, v: &mut Vec<Violation>) {
    let path = "spec.flinkVersion";
    let Some(raw) = version else {
        v.push(Violation::new(
            path,
            "is missing",
            "set spec.flinkVersion to the image's Flink version, e.g. v1_20",
        ));
        return;
    };
    let Some(parsed) = FlinkVersion::parse(raw).filter(|_| FLINK_VERSIONS.contains(&raw)) else {
        v.push(Violation::new(
            path,
            format!("'{raw}' is not a Flink version the operator knows"),
            format!("use one of {}", FLINK_VERSIONS.join(", ")),
        ));
        return;
    };
    if parsed < FlinkVersion::MIN_SUPPORTED {
        v.push(Violation::new(
            path,
            format!(
                "{raw} is no longer supported; the oldest supported version is {}",
                FlinkVersion::MIN_SUPPORTED
            ),
            format!("upgrade to {} or newer", FlinkVersion::MIN_SUPPORTED),
        ));
        return;
    }
    let allowed = &ctx.rules.limits.flink_versions;
    if !allowed.is_empty() && !allowed.iter().any(|a| a == raw) {
        v.push(Violation::new(
            path,
            format!("{raw} is not allowed in namespace {}", ctx.namespace),
            format!("use one of {}", allowed.join(", ")),
        ));
    }
}

/// What an update may not change, judged against the spec the operator
/// last deployed.
fn spec_change(spec: &FlinkDeploymentSpec, last: &FlinkDeploymentSpec, v: &mut Vec<Violation>) {
    match (&last.job, &spec.job) {
        (None, Some(_)) => v.push(Violation::new(
            "spec.job",
            "is set, but this FlinkDeployment was deployed as a session cluster; a session cluster cannot become an application",
            "deploy the job as a new FlinkDeployment, or as a FlinkSessionJob on this session cluster",
        )),
        (Some(_), None) => v.push(Violation::new(
            "spec.job",
            "is removed, but this FlinkDeployment was deployed as an application; it cannot become a session cluster",
            "keep spec.job, or delete this FlinkDeployment and create a session cluster",
        )),
        _ => {}
    }
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "native".into());
    let (was, now) = (mode(&last.mode), mode(&spec.mode));
    if was != now {
        v.push(Violation::new(
            "spec.mode",
            format!("cannot change from {was} (deployed) to {now}"),
            format!("keep spec.mode {was}, or delete and recreate the FlinkDeployment"),
        ));
    }
    let (Some(last_job), Some(job)) = (&last.job, &spec.job) else {
        return;
    };
    if job.savepoint_redeploy_nonce.is_some()
        && job.savepoint_redeploy_nonce != last_job.savepoint_redeploy_nonce
        && job
            .initial_savepoint_path
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
    {
        v.push(Violation::new(
            "spec.job.initialSavepointPath",
            "is empty, but a new spec.job.savepointRedeployNonce redeploys from it",
            "set spec.job.initialSavepointPath to the savepoint to redeploy from",
        ));
    }
    let suspended_last_state = last_job.state.as_deref() == Some("suspended")
        && last_job.upgrade_mode.as_deref() == Some("last-state");
    let stateful = job.upgrade_mode.as_deref().unwrap_or("stateless") != "stateless";
    if suspended_last_state && stateful && last.flink_version != spec.flink_version {
        v.push(Violation::new(
            "spec.flinkVersion",
            format!(
                "cannot change from {} to {} while the job is suspended with last-state",
                show(&last.flink_version),
                show(&spec.flink_version)
            ),
            "resume the job with the current flinkVersion, then upgrade the version",
        ));
    }
}

fn forbidden_keys(flat: &Flat, ctx: &Context, v: &mut Vec<Violation>) {
    for key in OPERATOR_OWNED_KEYS {
        if let Some(value) = flat.get(*key) {
            v.push(Violation::new(
                format!("spec.flinkConfiguration[{key}]"),
                format!("is set to '{value}', but the operator sets {key} itself"),
                format!("remove {key} from spec.flinkConfiguration"),
            ));
        }
    }
    for key in &ctx.rules.limits.forbidden_config_keys {
        if let Some(value) = flat.get(key) {
            v.push(Violation::new(
                format!("spec.flinkConfiguration[{key}]"),
                format!(
                    "is set to '{value}', but {key} is forbidden by policy in namespace {}",
                    ctx.namespace
                ),
                format!("remove {key} from spec.flinkConfiguration"),
            ));
        }
    }
}

fn job_fields(job: &JobSpec, v: &mut Vec<Violation>) {
    if let Some(mode) = &job.upgrade_mode
        && !["stateless", "savepoint", "last-state"].contains(&mode.as_str())
    {
        v.push(Violation::new(
            "spec.job.upgradeMode",
            format!("'{mode}' is not an upgrade mode"),
            "use stateless, savepoint or last-state",
        ));
    }
    if let Some(state) = &job.state
        && !["running", "suspended"].contains(&state.as_str())
    {
        v.push(Violation::new(
            "spec.job.state",
            format!("'{state}' is not a job state"),
            "use running or suspended",
        ));
    }
}

/// The policy's ceiling, for every job.
fn parallelism_at_most(p: i32, ctx: &Context, v: &mut Vec<Violation>) {
    if let Some(max) = ctx.rules.limits.max_parallelism
        && p > max
    {
        v.push(Violation::new(
            "spec.job.parallelism",
            format!(
                "{p} is above the maximum {max} allowed in namespace {}",
                ctx.namespace
            ),
            format!("set spec.job.parallelism to at most {max}"),
        ));
    }
}

/// An application job's parallelism. With `taskManager.replicas` set, the
/// operator ignores it (replicas × slots decide), so only the ceiling
/// applies; without replicas it must be given and at least the minimum.
fn deployment_parallelism(
    job: &JobSpec,
    tm_replicas: Option<i32>,
    ctx: &Context,
    v: &mut Vec<Violation>,
) {
    let min = ctx.rules.limits.min_parallelism;
    match (job.parallelism, tm_replicas) {
        (Some(p), Some(_)) => parallelism_at_most(p, ctx, v),
        (Some(p), None) => {
            // min_parallelism is at least 1, which covers the operator's own rule.
            if p < min {
                v.push(parallelism_below(p, min));
            }
            parallelism_at_most(p, ctx, v);
        }
        (None, Some(_)) => {}
        (None, None) => v.push(Violation::new(
            "spec.job.parallelism",
            "is missing, and spec.taskManager.replicas is not set either, so nothing sizes the job",
            "set spec.job.parallelism (or spec.taskManager.replicas)",
        )),
    }
}

/// A session job's parallelism, when given. (Without it the operator
/// checks against the session cluster, which needs cluster state.)
fn session_job_parallelism(job: &JobSpec, ctx: &Context, v: &mut Vec<Violation>) {
    if let Some(p) = job.parallelism {
        let min = ctx.rules.limits.min_parallelism;
        if p < min {
            v.push(parallelism_below(p, min));
        }
        parallelism_at_most(p, ctx, v);
    }
}

fn parallelism_below(p: i32, min: i32) -> Violation {
    Violation::new(
        "spec.job.parallelism",
        format!("{p} is below the minimum {min}"),
        format!("set spec.job.parallelism to at least {min}"),
    )
}

fn missing_checkpoint_dir(why: &str) -> Violation {
    Violation::new(
        "spec.flinkConfiguration[execution.checkpointing.dir]",
        format!("no checkpoint directory is set, but {why}"),
        "set execution.checkpointing.dir (state.checkpoints.dir before Flink 2.0) to durable storage, e.g. s3://bucket/checkpoints",
    )
}

/// A directory key with a value that is not only blanks, as the operator
/// reads one.
fn directory_set(flat: &Flat, keys: &[&str]) -> bool {
    config::first_in(flat, keys).is_some_and(|(_, dir)| !dir.trim().is_empty())
}

fn state_directories(job: &JobSpec, flat: &Flat, v: &mut Vec<Violation>) {
    let mode = job.upgrade_mode.as_deref().unwrap_or("stateless");
    if mode != "stateless" && !directory_set(flat, CHECKPOINT_DIR_KEYS) {
        v.push(missing_checkpoint_dir(&format!(
            "spec.job.upgradeMode {mode} restores from checkpoints"
        )));
    }
    if directory_set(flat, SAVEPOINT_DIR_KEYS) {
        return;
    }
    let mut needs = Vec::new();
    if mode == "savepoint" {
        needs.push("spec.job.upgradeMode savepoint");
    }
    if job.savepoint_trigger_nonce.is_some() {
        needs.push("spec.job.savepointTriggerNonce");
    }
    if flat.contains_key(PERIODIC_SAVEPOINT_INTERVAL_KEY) {
        needs.push(PERIODIC_SAVEPOINT_INTERVAL_KEY);
    }
    // Past that age a last-state upgrade takes a savepoint instead.
    if flat.contains_key(LAST_STATE_MAX_CHECKPOINT_AGE_KEY) {
        needs.push(LAST_STATE_MAX_CHECKPOINT_AGE_KEY);
    }
    if !needs.is_empty() {
        v.push(Violation::new(
            "spec.flinkConfiguration[execution.checkpointing.savepoint-dir]",
            format!("no savepoint directory is set, but {} takes savepoints", needs.join(" and ")),
            "set execution.checkpointing.savepoint-dir (state.savepoints.dir before Flink 2.0), e.g. s3://bucket/savepoints",
        ));
    }
}

fn replicas(spec: &FlinkDeploymentSpec, flat: &Flat, v: &mut Vec<Violation>) {
    if let Some(r) = spec.job_manager.as_ref().and_then(|j| j.replicas) {
        if r < 1 {
            v.push(Violation::new(
                "spec.jobManager.replicas",
                format!("{r} is below 1"),
                "set spec.jobManager.replicas to 1 (or more with high availability)",
            ));
        } else if r > 1 && !config::high_availability_enabled(flat) {
            v.push(Violation::new(
                "spec.jobManager.replicas",
                format!("{r} standby JobManagers need high availability, which is off"),
                "set high-availability.type: kubernetes (and a storage dir) or set spec.jobManager.replicas to 1",
            ));
        }
    }
    if let Some(r) = spec.task_manager.as_ref().and_then(|t| t.replicas)
        && r < 1
    {
        v.push(Violation::new(
            "spec.taskManager.replicas",
            format!("{r} is below 1"),
            "set spec.taskManager.replicas to at least 1, or remove it to size by parallelism",
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn component_resources(
    base: &str,
    component: Component,
    resource: Option<&Resource>,
    resources: Option<&ResourceRequirements>,
    flat: &Flat,
    limits: &ComponentLimits,
    require: bool,
    v: &mut Vec<Violation>,
) {
    let title = component.title();
    let mut memory_given = false;
    let mut cpu_given = false;
    // Paths are written only for a violation: most reviews have none.
    if let Some(r) = resource {
        if let Some(mem) = &r.memory {
            memory_given = true;
            let path = || format!("{base}.resource.memory");
            match parse_flink_memory(mem) {
                Ok(bytes) => check_bytes(&path, &mem, bytes as f64, limits, title, v),
                Err(e) => v.push(Violation::new(
                    path(),
                    e.to_string(),
                    "write memory like 2048m, 2g or 2Gi",
                )),
            }
        }
        if let Some(storage) = &r.ephemeral_storage {
            ephemeral_storage(&|| format!("{base}.resource.ephemeralStorage"), storage, v);
        }
        if let Some(cpu) = r.cpu {
            cpu_given = true;
            check_amount(
                &|| format!("{base}.resource.cpu"),
                "cpu",
                &Value::from(cpu),
                limits,
                title,
                v,
            );
        }
    }
    if let Some(rr) = resources {
        for (kind, map) in [("requests", &rr.requests), ("limits", &rr.limits)] {
            for (key, q) in map.iter().flatten() {
                if key == "memory" {
                    memory_given = true;
                }
                if key == "cpu" {
                    cpu_given = true;
                }
                let path = || format!("{base}.resources.{kind}.{key}");
                if key == "cpu" || key == "memory" {
                    check_amount(&path, key, q, limits, title, v);
                } else {
                    other_quantity(&path, q, v);
                }
            }
        }
        requests_within_limits(base, rr, v);
    }
    let pod = component_memory::pod_memory(resource, resources);
    let total = component_memory::check(base, component, flat, pod.as_ref(), memory_given, v);
    // A pod memory is held to the maximum where it is written; a process
    // sized by the configuration alone, here.
    if let (None, Some(total)) = (&pod, total) {
        check_bytes(
            &|| "spec.flinkConfiguration".to_string(),
            &format_args!(
                "the derived process size {}",
                crate::flink::memory::size(total)
            ),
            total as f64,
            limits,
            title,
            v,
        );
    }
    if require && !cpu_given {
        v.push(Violation::new(
            format!("{base}.resource.cpu"),
            format!("no {title} cpu is given, and resources are required"),
            format!("set {base}.resource.cpu (e.g. 1) or {base}.resources.limits.cpu"),
        ));
    }
}

fn requests_within_limits(base: &str, rr: &ResourceRequirements, v: &mut Vec<Violation>) {
    let (Some(req), Some(lim)) = (&rr.requests, &rr.limits) else {
        return;
    };
    for (key, rq) in req {
        let (Some(lq), Ok(r), Some(Ok(l))) = (
            lim.get(key),
            parse_quantity_value(rq),
            lim.get(key).map(parse_quantity_value),
        ) else {
            continue;
        };
        if r > l {
            v.push(Violation::new(
                format!("{base}.resources.requests.{key}"),
                format!("{} is above the limit {}", show(rq), show(lq)),
                format!("lower resources.requests.{key} or raise resources.limits.{key}"),
            ));
        }
    }
}

/// A field path, written only when a violation names it.
type LazyPath<'a> = &'a dyn Fn() -> String;

fn ephemeral_storage(path: LazyPath, raw: &str, v: &mut Vec<Violation>) {
    match parse_quantity(raw) {
        Ok(bytes) if bytes < 0.0 => v.push(Violation::new(
            path(),
            format!("'{raw}' is negative"),
            "set a positive size such as 10Gi",
        )),
        Ok(_) => {}
        Err(e) => v.push(Violation::new(
            path(),
            e.to_string(),
            "write the size like 10Gi or 500M",
        )),
    }
}

/// Any other resource (ephemeral-storage, extended resources): a quantity
/// Kubernetes reads, and not negative.
fn other_quantity(path: LazyPath, value: &Value, v: &mut Vec<Violation>) {
    match parse_quantity_value(value) {
        Ok(x) if x < 0.0 => v.push(Violation::new(
            path(),
            format!("{} is negative", show(value)),
            "set a quantity of zero or more",
        )),
        Ok(_) => {}
        Err(e) => v.push(Violation::new(
            path(),
            e.to_string(),
            "write a Kubernetes quantity such as 10Gi or 1",
        )),
    }
}

/// A cpu or memory amount: parseable, positive, within the component's maximum.
fn check_amount(
    path: LazyPath,
    key: &str,
    value: &Value,
    limits: &ComponentLimits,
    component: impl std::fmt::Display,
    v: &mut Vec<Violation>,
) {
    // Memory is read as the operator reads it: Flink's sizes first, then
    // Kubernetes notation in any case ("2gi").
    let parsed = match (key, value) {
        ("memory", Value::String(text)) => parse_flink_memory(text)
            .map(|b| b as f64)
            .or_else(|_| parse_quantity_value(value)),
        _ => parse_quantity_value(value),
    };
    let amount = match parsed {
        Ok(a) => a,
        Err(e) => {
            v.push(Violation::new(
                path(),
                e.to_string(),
                format!(
                    "write {key} like {}",
                    if key == "cpu" { "500m or 2" } else { "2Gi" }
                ),
            ));
            return;
        }
    };
    if amount <= 0.0 {
        v.push(Violation::new(
            path(),
            format!("{} must be positive", show(value)),
            format!("set a positive {key}"),
        ));
        return;
    }
    if key == "cpu" {
        if let Some(max) = limits.max_cpu
            && amount > max
        {
            v.push(Violation::new(
                path(),
                format!(
                    "{} cores is above the {component} maximum of {max}",
                    show(value)
                ),
                format!("request at most {max} cpu"),
            ));
        }
    } else {
        check_bytes(path, value, amount, limits, component, v);
    }
}

/// `raw` is the amount as the user wrote it, for the message.
fn check_bytes(
    path: LazyPath,
    raw: &dyn std::fmt::Display,
    bytes: f64,
    limits: &ComponentLimits,
    component: impl std::fmt::Display,
    v: &mut Vec<Violation>,
) {
    if bytes <= 0.0 {
        v.push(Violation::new(
            path(),
            format!("{raw} must be positive"),
            "set a positive memory size",
        ));
        return;
    }
    if let (Some(max), Some(max_raw)) = (limits.max_memory_bytes, &limits.max_memory)
        && bytes > max
    {
        v.push(Violation::new(
            path(),
            format!(
                "{raw} ({}) is above the {component} maximum of {max_raw}",
                format_bytes(bytes)
            ),
            format!("request at most {max_raw}"),
        ));
    }
}

fn ingress_template(template: Option<&str>, ctx: &Context, v: &mut Vec<Violation>) {
    let path = "spec.ingress.template";
    let Some(t) = template.filter(|t| !t.trim().is_empty()) else {
        v.push(Violation::new(
            path,
            "is missing",
            "set spec.ingress.template, e.g. '{{name}}.{{namespace}}.flink.example.com' or '/{{namespace}}/{{name}}(/|$)(.*)'",
        ));
        return;
    };
    let url = ingress::url(t, ctx.name, ctx.namespace);
    match ingress::java_url_host(&url) {
        Err(e) => v.push(Violation::new(
            path,
            format!("'{t}' does not give a URL the operator can read ('{url}': {e})"),
            "use a host or path template with only {{name}} and {{namespace}} placeholders, and a numeric port if any",
        )),
        Ok(host) => {
            if let Some(problem) = ingress::ingress_host_problem(host) {
                v.push(Violation::new(
                    path,
                    format!("'{t}' gives the Ingress host '{host}', which Kubernetes refuses: it {problem}"),
                    "use a lowercase DNS name such as '{{name}}.{{namespace}}.flink.example.com', or a path template such as '/{{namespace}}/{{name}}(/|$)(.*)'",
                ));
            }
        }
    }
}

fn jar_uri(raw: &str, ctx: &Context, v: &mut Vec<Violation>) {
    let path = "spec.job.jarURI";
    let schemes = &ctx.rules.limits.jar_uri_schemes;
    let invalid = |why: String| {
        Violation::new(
            path,
            format!("'{raw}' is not a valid URI: {why}"),
            "use an absolute URI such as https://repo.example.com/job.jar, with spaces written %20",
        )
    };
    if raw.trim().is_empty() {
        v.push(Violation::new(
            path,
            "is empty",
            "set spec.job.jarURI to the job jar's URL, or remove it to run a class of the session cluster",
        ));
        return;
    }
    // Flink reads the URI with java.net.URI; what that refuses, Flink would.
    if let Some(why) = java_uri_problem(raw) {
        v.push(invalid(why));
        return;
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            v.push(invalid(e.to_string()));
            return;
        }
    };
    if !schemes.iter().any(|s| s.eq_ignore_ascii_case(url.scheme())) {
        v.push(Violation::new(
            path,
            format!(
                "scheme '{}' of '{raw}' is not allowed in namespace {}",
                url.scheme(),
                ctx.namespace
            ),
            format!("serve the jar over {}", schemes.join(" or ")),
        ));
    }
    if matches!(url.scheme(), "http" | "https") && java_uri_host(raw).is_none() {
        v.push(Violation::new(
            path,
            format!("'{raw}' has no host"),
            "write the server's name after the scheme, e.g. https://repo.example.com/job.jar",
        ));
        return;
    }
    if let Some(host) = url.host()
        && let Some(reason) = internal_host_reason(&host, &ctx.rules.limits.cluster_domain)
    {
        v.push(Violation::new(
            path,
            format!("host '{host}' of '{raw}' {reason}; the JobManager would fetch from inside the cluster"),
            "host the jar on an external artifact server",
        ));
    }
}

fn image_violation(path: &str, image: &str, ctx: &Context) -> Violation {
    Violation::new(
        path,
        format!(
            "image '{image}' is not from an allowed registry in namespace {}",
            ctx.namespace
        ),
        format!(
            "use an image from {}",
            ctx.rules.limits.image_registries.join(", ")
        ),
    )
}
