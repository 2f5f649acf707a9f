//! FlinkStateSnapshot → a savepoint or checkpoint of the referenced job,
//! as the operator takes one: TRIGGER_PENDING → IN_PROGRESS (the trigger id
//! is written to status before it is awaited) → COMPLETED with its path, or
//! back to TRIGGER_PENDING after a failure until `backoffLimit` retries are
//! spent (then FAILED). A snapshot whose job is not running is ABANDONED. A
//! savepoint that `alreadyExists` is recorded as COMPLETED at once.
//! Deleting a snapshot does not dispose of the savepoint's files (yet).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::context::{Context, ReconcileError};
use crate::flink::config::{self, SAVEPOINT_DIR_KEYS};
use crate::flink::crd::{FlinkDeployment, FlinkSessionJob, JobSpec};
use crate::flink::rest::FlinkRestClient;
use crate::flink::rest::SavepointProgress;
use crate::flink::state_snapshot::{
    FlinkStateSnapshot, FlinkStateSnapshotSpec, FlinkStateSnapshotStatus, KIND_FLINK_DEPLOYMENT,
    KIND_FLINK_SESSION_JOB, LABEL_JOB_REFERENCE_KIND, LABEL_JOB_REFERENCE_NAME,
    LABEL_SNAPSHOT_TYPE, LABEL_STATE, LABEL_TRIGGER_TYPE, SnapshotState,
};
use crate::flink::status::{JobState, Reported};

/// How soon to look at a snapshot in progress.
const POLL: Duration = Duration::from_secs(2);

// --- what to do (pure) ------------------------------------------------------

/// The next step for a snapshot, from its spec and status alone.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// COMPLETED, FAILED or ABANDONED: nothing more.
    Done,
    /// A savepoint that already exists: record it.
    Record {
        path: String,
    },
    Trigger,
    Poll {
        trigger_id: String,
    },
}

pub fn next_step(spec: &FlinkStateSnapshotSpec, status: Option<&FlinkStateSnapshotStatus>) -> Step {
    let state = status.and_then(|s| s.state);
    match state {
        Some(SnapshotState::Completed | SnapshotState::Failed | SnapshotState::Abandoned) => {
            Step::Done
        }
        Some(SnapshotState::InProgress) => match status.and_then(|s| s.trigger_id.clone()) {
            Some(trigger_id) => Step::Poll { trigger_id },
            // An in-progress snapshot without its trigger cannot be followed.
            None => Step::Trigger,
        },
        Some(SnapshotState::TriggerPending) | None => {
            match spec.savepoint.as_ref().filter(|_| spec.already_exists()) {
                Some(sp) => Step::Record {
                    path: sp.path.clone().unwrap_or_default(),
                },
                None => Step::Trigger,
            }
        }
    }
}

/// The status after a failed attempt: retried (TRIGGER_PENDING) while
/// `backoffLimit` allows (-1, the default, without end), else FAILED.
pub fn after_failure(
    status: Option<&FlinkStateSnapshotStatus>,
    backoff_limit: Option<i32>,
    error: &str,
    now: &str,
) -> Value {
    let failures = status.map_or(0, |s| s.failures) + 1;
    let limit = backoff_limit.unwrap_or(-1);
    if limit >= 0 && failures > limit {
        json!({"state": SnapshotState::Failed, "failures": failures, "error": error,
               "resultTimestamp": now, "triggerId": null})
    } else {
        json!({"state": SnapshotState::TriggerPending, "failures": failures, "error": error,
               "triggerId": null})
    }
}

/// Whether a snapshot in progress has waited longer than `limit` since
/// its trigger (an unreadable timestamp never counts as too long).
pub fn waited_too_long(
    status: Option<&FlinkStateSnapshotStatus>,
    now: &str,
    limit: Duration,
) -> bool {
    let parse = |t: &str| t.parse::<Timestamp>().ok();
    let (Some(triggered), Some(now)) = (
        status
            .and_then(|s| s.trigger_timestamp.as_deref())
            .and_then(parse),
        parse(now),
    ) else {
        return false;
    };
    now.duration_since(triggered).as_secs().max(0) as u64 > limit.as_secs()
}

/// The labels the operator puts on a snapshot, for selecting them.
pub fn labels(snapshot: &FlinkStateSnapshot, state: SnapshotState) -> Value {
    let spec = &snapshot.spec;
    let trigger = snapshot
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_TRIGGER_TYPE))
        .cloned()
        .unwrap_or_else(|| "MANUAL".into());
    let mut labels = json!({
        LABEL_SNAPSHOT_TYPE: if spec.is_savepoint() { "SAVEPOINT" } else { "CHECKPOINT" },
        LABEL_TRIGGER_TYPE: trigger,
        LABEL_STATE: state,
    });
    if let Some(r) = &spec.job_reference {
        if let Some(kind) = &r.kind {
            labels[LABEL_JOB_REFERENCE_KIND] = json!(kind);
        }
        if let Some(name) = &r.name {
            labels[LABEL_JOB_REFERENCE_NAME] = json!(name);
        }
    }
    labels
}

/// Whether the job's configuration keeps the operator's default of
/// recording its savepoints as FlinkStateSnapshot resources.
pub fn records_snapshots(cfg: Option<&crate::flink::crd::FlinkConfiguration>) -> bool {
    config::get(cfg, SNAPSHOT_RESOURCE_ENABLED)
        .and_then(|v| config::parse_bool(&v))
        .unwrap_or(true)
}

const SNAPSHOT_RESOURCE_ENABLED: &str = "kubernetes.operator.snapshot.resource.enabled";

/// The FlinkStateSnapshot recording a savepoint the controller took itself
/// (`trigger_type` UPGRADE or MANUAL), named as the operator names them:
/// `<resource>-savepoint-<trigger type>-<millis>`.
pub fn recorded_savepoint(
    kind: &str,
    namespace: &str,
    name: &str,
    trigger_type: &str,
    path: &str,
    millis: i64,
) -> Value {
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkStateSnapshot",
        "metadata": {
            "name": format!("{name}-savepoint-{}-{millis}", trigger_type.to_lowercase()),
            "namespace": namespace,
            "labels": {LABEL_TRIGGER_TYPE: trigger_type},
        },
        "spec": {
            "jobReference": {"kind": kind, "name": name},
            "savepoint": {"path": path, "alreadyExists": true, "formatType": "CANONICAL",
                          "disposeOnDelete": false},
            "backoffLimit": 0,
        },
    })
}

// --- doing it ---------------------------------------------------------------

/// Where a first start restores from: `initialStateReference` (a path, or a
/// COMPLETED FlinkStateSnapshot by name), else `initialSavepointPath`. A
/// referenced snapshot that is not COMPLETED yet makes the start wait.
pub async fn initial_state(
    ctx: &Context,
    namespace: &str,
    job: &JobSpec,
) -> Result<Option<String>, ReconcileError> {
    let Some(reference) = &job.initial_state_reference else {
        return Ok(job.initial_savepoint_path.clone());
    };
    if let Some(path) = reference.path.clone().filter(|p| !p.is_empty()) {
        return Ok(Some(path));
    }
    let Some(name) = reference.name.as_deref() else {
        return Ok(job.initial_savepoint_path.clone());
    };
    let ns = reference.namespace.as_deref().unwrap_or(namespace);
    let api: Api<FlinkStateSnapshot> = Api::namespaced(ctx.client.clone(), ns);
    let snapshot = api.get_opt(name).await?.ok_or_else(|| {
        ReconcileError::Invalid(format!(
            "spec.job.initialStateReference: FlinkStateSnapshot {ns}/{name} does not exist"
        ))
    })?;
    let status = snapshot.status.unwrap_or_default();
    match (status.state, status.path) {
        (Some(SnapshotState::Completed), Some(path)) => Ok(Some(path)),
        (Some(SnapshotState::Failed | SnapshotState::Abandoned), _) => {
            Err(ReconcileError::Invalid(format!(
                "spec.job.initialStateReference: FlinkStateSnapshot {ns}/{name} did not complete ({})",
                status.error.unwrap_or_default()
            )))
        }
        _ => Err(ReconcileError::Waiting(format!(
            "FlinkStateSnapshot {ns}/{name} to complete before the job starts from it"
        ))),
    }
}

/// Records a savepoint the controller took as a FlinkStateSnapshot (the
/// snapshot controller then marks it COMPLETED). A failure is logged and
/// an Event, never an error of the reconcile that took the savepoint.
pub async fn record_savepoint<K>(ctx: &Context, owner: &K, trigger_type: &str, path: &str)
where
    K: kube::Resource<DynamicType = ()>,
{
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let name = owner.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&()).to_string();
    let doc = recorded_savepoint(
        &kind,
        &ns,
        &name,
        trigger_type,
        path,
        super::status::now_millis(),
    );
    let api: Api<FlinkStateSnapshot> = Api::namespaced(ctx.client.clone(), &ns);
    let created = match serde_json::from_value::<FlinkStateSnapshot>(doc) {
        Ok(snapshot) => api
            .create(&kube::api::PostParams::default(), &snapshot)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = created {
        tracing::warn!(kind, namespace = ns, name, error = %e, "cannot record the savepoint as a FlinkStateSnapshot");
        ctx.event(
            owner,
            true,
            "SnapshotNotRecorded",
            format!("savepoint {path}: {e}"),
        )
        .await;
    }
}

pub async fn reconcile(
    snapshot: Arc<FlinkStateSnapshot>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ns = snapshot.metadata.namespace.clone().unwrap_or_default();
    let name = snapshot.metadata.name.clone().unwrap_or_default();
    let api: Api<FlinkStateSnapshot> = Api::namespaced(ctx.client.clone(), &ns);
    let status = snapshot.status.as_ref();
    let now = Timestamp::now().to_string();
    let key = format!("snapshot/{ns}/{name}");
    let patch = match next_step(&snapshot.spec, status) {
        Step::Done => return Ok(Action::await_change()),
        Step::Record { path } => json!({"state": SnapshotState::Completed, "path": path,
                                        "resultTimestamp": now, "error": null}),
        Step::Trigger => match trigger(&snapshot, &ns, &ctx).await {
            Ok(Triggered::Started(trigger_id)) => json!({
                "state": SnapshotState::InProgress, "triggerId": trigger_id,
                "triggerTimestamp": now}),
            Ok(Triggered::JobNotRunning(why)) => json!({
                "state": SnapshotState::Abandoned, "error": why, "resultTimestamp": now}),
            Err(e) => after_failure(status, snapshot.spec.backoff_limit, &e.to_string(), &now),
        },
        Step::Poll { trigger_id } => match poll(&snapshot, &ns, &trigger_id, &ctx).await {
            Ok(SavepointProgress::InProgress)
                if waited_too_long(status, &now, ctx.config.savepoint_timeout) =>
            {
                let why = format!(
                    "not complete {}s after its trigger",
                    ctx.config.savepoint_timeout.as_secs()
                );
                after_failure(status, snapshot.spec.backoff_limit, &why, &now)
            }
            Ok(SavepointProgress::InProgress) => return Ok(Action::requeue(POLL)),
            Ok(SavepointProgress::Completed { location }) => json!({
                "state": SnapshotState::Completed, "path": location,
                "resultTimestamp": now, "error": null}),
            Ok(SavepointProgress::Failed { cause }) => {
                after_failure(status, snapshot.spec.backoff_limit, &cause, &now)
            }
            Err(e) => after_failure(status, snapshot.spec.backoff_limit, &e.to_string(), &now),
        },
    };
    let state: SnapshotState = serde_json::from_value(patch["state"].clone())
        .map_err(|e| ReconcileError::Invalid(format!("internal: snapshot state: {e}")))?;
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": patch})),
    )
    .await?;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": labels(&snapshot, state)}})),
    )
    .await?;
    let note = match state {
        SnapshotState::Completed => Some((
            false,
            "SnapshotCompleted",
            format!(
                "{} at {}",
                kind_of(&snapshot.spec),
                patch["path"].as_str().unwrap_or("?")
            ),
        )),
        SnapshotState::Failed => Some((
            true,
            "SnapshotFailed",
            format!(
                "after {} attempts: {}",
                patch["failures"],
                patch["error"].as_str().unwrap_or("")
            ),
        )),
        SnapshotState::Abandoned => Some((
            true,
            "SnapshotAbandoned",
            patch["error"].as_str().unwrap_or("").to_owned(),
        )),
        SnapshotState::TriggerPending => Some((
            true,
            "SnapshotRetrying",
            format!(
                "attempt {} failed: {}",
                patch["failures"],
                patch["error"].as_str().unwrap_or("")
            ),
        )),
        SnapshotState::InProgress => None,
    };
    if let Some((warning, reason, text)) = note {
        ctx.event(snapshot.as_ref(), warning, reason, text).await;
    }
    Ok(match state {
        SnapshotState::InProgress => Action::requeue(POLL),
        SnapshotState::TriggerPending => Action::requeue(ctx.backoff(&key)),
        _ => {
            ctx.succeeded(&key);
            Action::await_change()
        }
    })
}

fn kind_of(spec: &FlinkStateSnapshotSpec) -> &'static str {
    if spec.is_savepoint() {
        "savepoint"
    } else {
        "checkpoint"
    }
}

enum Triggered {
    Started(String),
    JobNotRunning(String),
}

/// The referenced job: its JobManager, job id and state, and the savepoint
/// directory its configuration names.
struct Target {
    flink: FlinkRestClient,
    job_id: Option<String>,
    job_state: Option<Reported<JobState>>,
    savepoint_dir: Option<String>,
}

async fn target(
    spec: &FlinkStateSnapshotSpec,
    ns: &str,
    ctx: &Context,
) -> Result<Target, ReconcileError> {
    let reference = spec
        .job_reference
        .as_ref()
        .ok_or_else(|| ReconcileError::Invalid("spec.jobReference is required".into()))?;
    let name = reference.name.clone().unwrap_or_default();
    match reference.kind.as_deref() {
        Some(KIND_FLINK_DEPLOYMENT) => {
            let api: Api<FlinkDeployment> = Api::namespaced(ctx.client.clone(), ns);
            let d = api.get_opt(&name).await?.ok_or_else(|| {
                ReconcileError::Invalid(format!("FlinkDeployment {ns}/{name} does not exist"))
            })?;
            let job = d.status.as_ref().and_then(|s| s.job_status.as_ref());
            Ok(Target {
                flink: ctx.flink(ns, &name)?,
                job_id: job.and_then(|j| j.job_id.clone()),
                job_state: job.and_then(|j| j.state.clone()),
                savepoint_dir: config::first(
                    d.spec.flink_configuration.as_ref(),
                    SAVEPOINT_DIR_KEYS,
                )
                .map(|(_, v)| v),
            })
        }
        Some(KIND_FLINK_SESSION_JOB) => {
            let api: Api<FlinkSessionJob> = Api::namespaced(ctx.client.clone(), ns);
            let j = api.get_opt(&name).await?.ok_or_else(|| {
                ReconcileError::Invalid(format!("FlinkSessionJob {ns}/{name} does not exist"))
            })?;
            let cluster = j.spec.deployment_name.clone().unwrap_or_default();
            let sessions: Api<FlinkDeployment> = Api::namespaced(ctx.client.clone(), ns);
            let cluster_cfg = sessions
                .get_opt(&cluster)
                .await?
                .and_then(|d| d.spec.flink_configuration);
            let job = j.status.as_ref().and_then(|s| s.job_status.as_ref());
            Ok(Target {
                flink: ctx.flink(ns, &cluster)?,
                job_id: job.and_then(|j| j.job_id.clone()),
                job_state: job.and_then(|j| j.state.clone()),
                savepoint_dir: config::first(
                    j.spec.flink_configuration.as_ref(),
                    SAVEPOINT_DIR_KEYS,
                )
                .or_else(|| config::first(cluster_cfg.as_ref(), SAVEPOINT_DIR_KEYS))
                .map(|(_, v)| v),
            })
        }
        other => Err(ReconcileError::Invalid(format!(
            "spec.jobReference.kind {other:?} is not FlinkDeployment or FlinkSessionJob"
        ))),
    }
}

async fn trigger(
    snapshot: &FlinkStateSnapshot,
    ns: &str,
    ctx: &Context,
) -> Result<Triggered, ReconcileError> {
    let spec = &snapshot.spec;
    let t = target(spec, ns, ctx).await?;
    let running = t
        .job_state
        .as_ref()
        .is_some_and(|s| *s == JobState::Running);
    let (Some(jid), true) = (t.job_id.as_deref(), running) else {
        let state = t
            .job_state
            .as_ref()
            .map_or_else(|| "unknown".to_string(), ToString::to_string);
        return Ok(Triggered::JobNotRunning(format!(
            "the job is not running (state {state})"
        )));
    };
    let trigger_id = match &spec.savepoint {
        Some(sp) => {
            let dir = sp.path.clone().or(t.savepoint_dir);
            if dir.is_none() {
                return Err(ReconcileError::Invalid(
                    "no spec.savepoint.path and no savepoint directory in the job's configuration"
                        .into(),
                ));
            }
            let format = sp.format_type.as_deref().filter(|f| *f != "UNKNOWN");
            t.flink
                .trigger_savepoint_as(jid, dir.as_deref(), format)
                .await?
        }
        None => t.flink.trigger_checkpoint(jid).await?,
    };
    Ok(Triggered::Started(trigger_id))
}

async fn poll(
    snapshot: &FlinkStateSnapshot,
    ns: &str,
    trigger_id: &str,
    ctx: &Context,
) -> Result<SavepointProgress, ReconcileError> {
    let t = target(&snapshot.spec, ns, ctx).await?;
    let jid = t
        .job_id
        .ok_or_else(|| ReconcileError::Invalid("the job has no id any more".into()))?;
    Ok(if snapshot.spec.is_savepoint() {
        t.flink.savepoint_progress(&jid, trigger_id).await?
    } else {
        t.flink.checkpoint_progress(&jid, trigger_id).await?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> FlinkStateSnapshotSpec {
        serde_json::from_value(v).unwrap()
    }

    fn status(v: Value) -> FlinkStateSnapshotStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn steps_follow_the_state() {
        let sp = spec(
            json!({"savepoint": {}, "jobReference": {"kind": "FlinkDeployment", "name": "a"}}),
        );
        assert_eq!(next_step(&sp, None), Step::Trigger);
        assert_eq!(
            next_step(&sp, Some(&status(json!({"state": "TRIGGER_PENDING"})))),
            Step::Trigger
        );
        assert_eq!(
            next_step(
                &sp,
                Some(&status(json!({"state": "IN_PROGRESS", "triggerId": "t1"})))
            ),
            Step::Poll {
                trigger_id: "t1".into()
            }
        );
        for done in ["COMPLETED", "FAILED", "ABANDONED"] {
            assert_eq!(
                next_step(&sp, Some(&status(json!({"state": done})))),
                Step::Done
            );
        }
        let existing = spec(json!({"savepoint": {"alreadyExists": true, "path": "s3://b/sp"}}));
        assert_eq!(
            next_step(&existing, None),
            Step::Record {
                path: "s3://b/sp".into()
            }
        );
    }

    #[test]
    fn failures_retry_until_the_backoff_limit() {
        let now = "2026-12-05T00:00:00Z";
        // Default -1: retried without end.
        let p = after_failure(Some(&status(json!({"failures": 7}))), None, "boom", now);
        assert_eq!(p["state"], "TRIGGER_PENDING");
        assert_eq!(p["failures"], 8);
        // backoffLimit 1: the first failure is retried, the second is final.
        let p = after_failure(None, Some(1), "boom", now);
        assert_eq!(p["state"], "TRIGGER_PENDING");
        let p = after_failure(Some(&status(json!({"failures": 1}))), Some(1), "boom", now);
        assert_eq!(p["state"], "FAILED");
        assert_eq!(p["error"], "boom");
        // 0: no retry.
        assert_eq!(after_failure(None, Some(0), "boom", now)["state"], "FAILED");
    }

    #[test]
    fn savepoints_taken_are_recorded_as_the_operator_names_them() {
        let doc = recorded_savepoint(
            "FlinkSessionJob",
            "ns",
            "job",
            "UPGRADE",
            "file:///sp/1",
            42,
        );
        assert_eq!(doc["metadata"]["name"], "job-savepoint-upgrade-42");
        let snap: FlinkStateSnapshot = serde_json::from_value(doc).unwrap();
        assert!(snap.spec.already_exists());
        assert_eq!(
            next_step(&snap.spec, None),
            Step::Record {
                path: "file:///sp/1".into()
            }
        );
        let off: crate::flink::crd::FlinkConfiguration =
            serde_json::from_value(json!({SNAPSHOT_RESOURCE_ENABLED: "false"})).unwrap();
        assert!(!records_snapshots(Some(&off)));
        // Nested YAML is read too, and the default is on.
        let nested: crate::flink::crd::FlinkConfiguration = serde_json::from_value(
            json!({"kubernetes.operator": {"snapshot.resource.enabled": "false"}}),
        )
        .unwrap();
        assert!(!records_snapshots(Some(&nested)));
        assert!(records_snapshots(None));
    }

    #[test]
    fn a_snapshot_in_progress_times_out() {
        let st = status(json!({"state": "IN_PROGRESS", "triggerId": "t",
                                "triggerTimestamp": "2026-12-05T10:00:00Z"}));
        let limit = Duration::from_secs(600);
        assert!(!waited_too_long(Some(&st), "2026-12-05T10:09:00Z", limit));
        assert!(waited_too_long(Some(&st), "2026-12-05T10:11:00Z", limit));
        assert!(!waited_too_long(None, "2026-12-05T10:11:00Z", limit));
    }

    #[test]
    fn labels_as_the_operator_sets_them() {
        let snap: FlinkStateSnapshot = serde_json::from_value(json!({
            "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkStateSnapshot",
            "metadata": {"name": "s", "labels": {"snapshot.trigger-type": "UPGRADE"}},
            "spec": {"checkpoint": {}, "jobReference": {"kind": "FlinkSessionJob", "name": "j"}}
        }))
        .unwrap();
        let l = labels(&snap, SnapshotState::Completed);
        assert_eq!(l["snapshot.type"], "CHECKPOINT");
        assert_eq!(l["snapshot.trigger-type"], "UPGRADE");
        assert_eq!(l["snapshot.state"], "COMPLETED");
        assert_eq!(l["job-reference.kind"], "FlinkSessionJob");
        assert_eq!(l["job-reference.name"], "j");
    }
}
