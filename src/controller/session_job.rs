//! FlinkSessionJob → a job in its session cluster.
//!
//! Every submission gets a deterministic job id that is written to
//! `status.jobStatus.jobId` *before* Flink is asked to run it. A controller
//! that dies anywhere in between finds the id on its next reconcile and
//! either sees the job in Flink (and adopts it) or submits under that same id
//! (and Flink would refuse a second copy), so there is never more than one.
//! Savepoint triggers are persisted the same way before they are awaited.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use serde_json::{Value, json};

use super::context::{Context, FINALIZER, ReconcileError};
#[cfg(feature = "test-support")]
use super::fault::Fault;
use super::session_job_plan::{self, Seen, Step};
use super::status::{
    self, JobState, JobStatusPatch, Lifecycle, ReconciliationState, Reported, SavepointInfoPatch,
    StatusPatch,
};
use super::{deployment, job_id};
use crate::flink::config::SAVEPOINT_DIR_KEYS;
use crate::flink::crd::{FlinkDeployment, FlinkSessionJob, JobSpec};
use crate::flink::rest::FlinkRestClient;
use crate::flink::rest::{FlinkJob, RunRequest, SavepointProgress};

/// How soon to look again while a job is starting or changing.
const SOON: Duration = Duration::from_secs(3);
/// How often to look at a stable job.
const STEADY: Duration = Duration::from_secs(30);

pub async fn reconcile(
    job: Arc<FlinkSessionJob>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let api: Api<FlinkSessionJob> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, job, |event| async {
        match event {
            Finalizer::Apply(j) => apply(&j, &ctx).await,
            Finalizer::Cleanup(j) => cleanup(&j, &ctx).await,
        }
    })
    .await;
    super::context::flatten_finalizer_error(result)
}

/// Everything one reconcile of a session job works with.
struct Job<'a> {
    obj: &'a FlinkSessionJob,
    api: Api<FlinkSessionJob>,
    ctx: &'a Context,
    name: String,
    uid: String,
    spec: &'a JobSpec,
    status: Value,
}

impl Job<'_> {
    fn job_status(&self, key: &str) -> Option<&str> {
        self.status.get("jobStatus")?.get(key)?.as_str()
    }

    fn lifecycle(&self) -> Option<&str> {
        self.status.get("lifecycleState")?.as_str()
    }

    /// Merge-patches `status` and remembers it; announces lifecycle changes.
    async fn patch_status(&mut self, patch: StatusPatch) -> Result<(), ReconcileError> {
        let patch = patch.to_value();
        if status::is_noop(&self.status, &patch) {
            return Ok(());
        }
        let before = self.lifecycle().map(str::to_owned);
        self.api
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": patch})),
            )
            .await?;
        json_patch::merge(&mut self.status, &patch);
        if let Some(after) = patch.get("lifecycleState").and_then(Value::as_str)
            && before.as_deref() != Some(after)
        {
            let note = format!(
                "lifecycle {} -> {after}; job {} {}",
                before.as_deref().unwrap_or("(none)"),
                self.job_status("jobId").unwrap_or("-"),
                self.job_status("state").unwrap_or("-"),
            );
            let reason = status::lifecycle_reason(after);
            self.ctx.event(self.obj, false, reason, note).await;
        }
        Ok(())
    }
}

async fn apply(obj: &FlinkSessionJob, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let spec = obj
        .spec
        .job
        .as_ref()
        .ok_or_else(|| ReconcileError::Invalid("spec.job is required".into()))?;
    let session_name = obj
        .spec
        .deployment_name
        .clone()
        .ok_or_else(|| ReconcileError::Invalid("spec.deploymentName is required".into()))?;
    let mut job = Job {
        obj,
        api: Api::namespaced(ctx.client.clone(), &ns),
        ctx,
        name: obj.metadata.name.clone().unwrap_or_default(),
        uid: obj.metadata.uid.clone().unwrap_or_default(),
        spec,
        status: serde_json::to_value(&obj.status).unwrap_or(Value::Null),
    };
    if !job.status.is_object() {
        job.status = json!({});
    }
    if job.lifecycle().is_none() {
        job.patch_status(StatusPatch {
            lifecycle_state: Some(Lifecycle::Created),
            ..StatusPatch::default()
        })
        .await?;
    }

    let sessions: Api<FlinkDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(session) = sessions.get_opt(&session_name).await? else {
        let msg = format!("session cluster FlinkDeployment {ns}/{session_name} does not exist");
        job.patch_status(StatusPatch {
            error: Some(Some(msg.clone())),
            ..StatusPatch::default()
        })
        .await?;
        ctx.event(obj, true, "SessionClusterMissing", msg).await;
        return Ok(Action::requeue(Duration::from_secs(15)));
    };
    if session.spec.job.is_some() {
        return Err(ReconcileError::Invalid(format!(
            "FlinkDeployment {ns}/{session_name} is an application cluster, not a session cluster"
        )));
    }
    let flink = ctx.flink(&ns, &session_name)?;
    // Readiness of the session cluster: its REST API answers.
    flink.overview().await?;
    let savepoint_dir = savepoint_dir(obj, &session, ctx);

    finish_pending_savepoint(&mut job, &flink).await?;

    let current_id = job.job_status("jobId").map(str::to_owned);
    let observed = match &current_id {
        Some(id) => flink.job_state(id).await?,
        None => None,
    };
    let spec_json = serde_json::to_value(&obj.spec).unwrap_or(Value::Null);
    let last_spec =
        crate::flink::reconciled::last_reconciled_spec(job.status.get("reconciliationStatus"));
    let changed = last_spec
        .as_ref()
        .is_some_and(|l| status::upgrade_relevant(l) != status::upgrade_relevant(&spec_json));
    let want_running = spec.state.as_deref() != Some("suspended");
    let generation = obj.metadata.generation;

    let step = session_job_plan::plan(&Seen {
        want_running,
        job: observed.as_ref().map(|j| j.state.clone()),
        has_recorded_id: current_id.is_some(),
        spec_changed: changed,
        lifecycle: job.lifecycle().and_then(Lifecycle::parse),
    });
    match (step, observed) {
        (Step::Report { stable }, Some(j)) => {
            handle_savepoint_nonce(&mut job, &flink, &j, savepoint_dir.as_deref()).await?;
            let mut patch = StatusPatch {
                job_status: Some(job_status_of(&j)),
                error: Some(None),
                observed_generation: Some(generation),
                lifecycle_state: Some(if stable {
                    Lifecycle::Stable
                } else {
                    Lifecycle::Deployed
                }),
                ..StatusPatch::default()
            };
            if last_spec.is_none() || stable {
                patch.reconciliation_status = Some(status::reconciliation_status(
                    &spec_json,
                    generation,
                    stable,
                    ReconciliationState::Deployed,
                ));
            }
            job.patch_status(patch).await?;
            ctx.succeeded(&job.uid);
            Ok(Action::requeue(if stable { STEADY } else { SOON }))
        }
        (Step::Upgrade, Some(j)) => {
            job.patch_status(StatusPatch {
                lifecycle_state: Some(Lifecycle::Upgrading),
                ..StatusPatch::default()
            })
            .await?;
            ctx.event(
                obj,
                false,
                "SpecChanged",
                format!("upgrading job {} ({} mode)", j.jid, upgrade_mode(spec)),
            )
            .await;
            stop_job(&mut job, &flink, &j.jid, savepoint_dir.as_deref()).await?;
            submit_next(&mut job, &flink, &spec_json).await
        }
        (Step::Resubmit | Step::SubmitNext, _) => submit_next(&mut job, &flink, &spec_json).await,
        (Step::ReportEnded { failed }, Some(j)) => {
            job.patch_status(StatusPatch {
                job_status: Some(job_status_of(&j)),
                observed_generation: Some(generation),
                lifecycle_state: Some(if failed {
                    Lifecycle::Failed
                } else {
                    Lifecycle::Stable
                }),
                error: Some(failed.then(|| format!("job {} failed in Flink", j.jid))),
                ..StatusPatch::default()
            })
            .await?;
            Ok(Action::requeue(STEADY))
        }
        (Step::SubmitRecordedId, _) => match current_id {
            Some(id) => submit(&mut job, &flink, &id, &spec_json).await,
            None => submit_next(&mut job, &flink, &spec_json).await,
        },
        (Step::Suspend, Some(j)) => {
            stop_job(&mut job, &flink, &j.jid, savepoint_dir.as_deref()).await?;
            job.patch_status(suspended(&spec_json, generation)).await?;
            ctx.succeeded(&job.uid);
            Ok(Action::requeue(STEADY))
        }
        (Step::StaySuspended, observed) => {
            let mut patch = suspended(&spec_json, generation);
            patch.job_status = observed.as_ref().map(job_status_of);
            job.patch_status(patch).await?;
            ctx.succeeded(&job.uid);
            Ok(Action::requeue(STEADY))
        }
        // The plan names a job only when one was observed.
        (step, None) => Err(ReconcileError::Invalid(format!(
            "internal: step {step:?} needs the job Flink reported"
        ))),
    }
}

fn upgrade_mode(spec: &JobSpec) -> &str {
    spec.upgrade_mode.as_deref().unwrap_or("stateless")
}

/// `jobStatus` as the operator writes it from Flink's view of the job.
fn job_status_of(j: &FlinkJob) -> JobStatusPatch {
    JobStatusPatch {
        job_id: Some(j.jid.clone()),
        job_name: Some(j.name.clone()),
        state: Some(j.state.clone()),
        start_time: Some(j.start_time.to_string()),
        update_time: Some(status::now_millis().to_string()),
        ..JobStatusPatch::default()
    }
}

/// Suspended, with the spec recorded as reconciled.
fn suspended(spec_json: &Value, generation: Option<i64>) -> StatusPatch {
    StatusPatch {
        lifecycle_state: Some(Lifecycle::Suspended),
        observed_generation: Some(generation),
        reconciliation_status: Some(status::reconciliation_status(
            spec_json,
            generation,
            false,
            ReconciliationState::Deployed,
        )),
        ..StatusPatch::default()
    }
}

/// The savepoint directory: the session job's own configuration, then the
/// session cluster's effective one; `None` lets Flink use its default.
fn savepoint_dir(
    obj: &FlinkSessionJob,
    session: &FlinkDeployment,
    ctx: &Context,
) -> Option<String> {
    if let Some((_, v)) =
        crate::flink::config::first(obj.spec.flink_configuration.as_ref(), SAVEPOINT_DIR_KEYS)
    {
        return Some(v);
    }
    let conf = deployment::effective_config(session, ctx, None, None);
    SAVEPOINT_DIR_KEYS
        .iter()
        .find_map(|k| conf.get(*k).cloned())
}

/// Starts the next submission: a new id, persisted before anything runs.
async fn submit_next(
    job: &mut Job<'_>,
    flink: &FlinkRestClient,
    spec_json: &Value,
) -> Result<Action, ReconcileError> {
    let id = job_id::next(&job.uid, job.job_status("jobId"));
    let first = job_id::counter_of(&job.uid, &id) == Some(1);
    // The first submission may start from spec.job.initialSavepointPath;
    // later ones from the savepoint the previous job stopped with (or none,
    // when it was cancelled), which stop_job recorded.
    // A new savepointRedeployNonce also starts from the initial state.
    let last =
        crate::flink::reconciled::last_reconciled_spec(job.status.get("reconciliationStatus"));
    let restore = if first || status::redeploy_requested(last.as_ref(), spec_json) {
        let ns = job.obj.metadata.namespace.clone().unwrap_or_default();
        super::snapshot::initial_state(job.ctx, &ns, job.spec).await?
    } else {
        job.job_status("upgradeSavepointPath").map(str::to_owned)
    };
    job.patch_status(StatusPatch {
        job_status: Some(JobStatusPatch {
            job_id: Some(id.clone()),
            upgrade_savepoint_path: Some(restore),
            update_time: Some(status::now_millis().to_string()),
            ..JobStatusPatch::state(JobState::Reconciling)
        }),
        lifecycle_state: Some(if first {
            Lifecycle::Created
        } else {
            Lifecycle::Upgrading
        }),
        ..StatusPatch::default()
    })
    .await?;
    submit(job, flink, &id, spec_json).await
}

/// Runs the jar under `id` (already persisted in status).
async fn submit(
    job: &mut Job<'_>,
    flink: &FlinkRestClient,
    id: &str,
    spec_json: &Value,
) -> Result<Action, ReconcileError> {
    let ctx = job.ctx;
    #[cfg(feature = "test-support")]
    if ctx.config.fault == Some(Fault::ExitBeforeSubmit) {
        tracing::error!(
            job_id = id,
            "fault injection: exiting before the submission"
        );
        std::process::exit(86);
    }
    let uri = job
        .spec
        .jar_uri
        .clone()
        .ok_or_else(|| ReconcileError::Invalid("spec.job.jarURI is required".into()))?;
    let restore = job.job_status("upgradeSavepointPath").map(str::to_owned);
    let run = RunRequest {
        entry_class: job.spec.entry_class.clone(),
        program_args_list: job.spec.args.clone().unwrap_or_default(),
        parallelism: job.spec.parallelism,
        job_id: id.to_owned(),
        savepoint_path: restore.clone(),
        allow_non_restored_state: job.spec.allow_non_restored_state.unwrap_or(false),
    };
    if flink.job_state(id).await?.is_none() {
        let jar = ctx.fetch_jar(&uri).await?;
        let file_name = uri.rsplit('/').next().unwrap_or("job.jar").to_owned();
        let jar_id = flink.upload_jar(&file_name, jar).await?;
        let ran = flink.run_jar(&jar_id, &run).await;
        // The jar is not needed once the job graph is submitted.
        if let Err(e) = flink.delete_jar(&jar_id).await {
            tracing::debug!(error = %e, "cannot delete the uploaded jar");
        }
        if let Err(e) = ran {
            // A run that failed because the job already exists is success.
            if flink.job_state(id).await?.is_none() {
                return Err(e.into());
            }
        }
        #[cfg(feature = "test-support")]
        if ctx.config.fault == Some(Fault::ExitAfterSubmit) {
            tracing::error!(job_id = id, "fault injection: exiting after the submission");
            std::process::exit(86);
        }
        ctx.event(
            job.obj,
            false,
            "Submitted",
            format!(
                "job {id} submitted from {uri}{}",
                restore
                    .as_deref()
                    .map(|p| format!(", restoring {p}"))
                    .unwrap_or_default()
            ),
        )
        .await;
    }
    let generation = job.obj.metadata.generation;
    let observed = flink.job_state(id).await?;
    let js = observed.as_ref().map_or_else(
        || JobStatusPatch {
            job_id: Some(id.to_owned()),
            ..JobStatusPatch::state(JobState::Reconciling)
        },
        job_status_of,
    );
    job.patch_status(StatusPatch {
        job_status: Some(js),
        error: Some(None),
        observed_generation: Some(generation),
        lifecycle_state: Some(Lifecycle::Deployed),
        reconciliation_status: Some(status::reconciliation_status(
            spec_json,
            generation,
            false,
            ReconciliationState::Deployed,
        )),
        ..StatusPatch::default()
    })
    .await?;
    ctx.succeeded(&job.uid);
    Ok(Action::requeue(SOON))
}

/// Stops a running job the way its upgrade mode asks: with a savepoint for
/// `savepoint` and `last-state`, by cancelling for `stateless`. Records the
/// savepoint (or its absence) in `jobStatus.upgradeSavepointPath`.
async fn stop_job(
    job: &mut Job<'_>,
    flink: &FlinkRestClient,
    jid: &str,
    dir: Option<&str>,
) -> Result<(), ReconcileError> {
    if upgrade_mode(job.spec) == "stateless" {
        flink.cancel(jid).await?;
        wait_terminal(flink, jid, job.ctx.config.savepoint_timeout).await?;
        job.patch_status(StatusPatch::job(JobStatusPatch {
            upgrade_savepoint_path: Some(None),
            ..JobStatusPatch::state(JobState::Canceled)
        }))
        .await?;
        job.ctx
            .event(
                job.obj,
                false,
                "JobCancelled",
                format!("job {jid} cancelled (stateless)"),
            )
            .await;
        return Ok(());
    }
    let trigger = flink.stop_with_savepoint(jid, dir).await?;
    job.patch_status(StatusPatch::job(JobStatusPatch::savepoint(
        SavepointInfoPatch {
            trigger_id: Some(Some(trigger)),
            trigger_type: Some(Some("UPGRADE".into())),
            trigger_timestamp: Some(Some(status::now_millis())),
            ..SavepointInfoPatch::default()
        },
    )))
    .await?;
    finish_pending_savepoint(job, flink).await?;
    // The savepoint completes a moment before the job reaches FINISHED.
    wait_terminal(flink, jid, job.ctx.config.savepoint_timeout).await
}

/// Awaits a savepoint trigger recorded in status (also one a previous,
/// crashed reconcile left behind) and records where the savepoint went.
async fn finish_pending_savepoint(
    job: &mut Job<'_>,
    flink: &FlinkRestClient,
) -> Result<(), ReconcileError> {
    let info = job
        .status
        .get("jobStatus")
        .and_then(|j| j.get("savepointInfo"))
        .cloned()
        .unwrap_or(Value::Null);
    let (Some(trigger), Some(jid)) = (
        info.get("triggerId")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty()),
        job.job_status("jobId").map(str::to_owned),
    ) else {
        return Ok(());
    };
    let kind = info
        .get("triggerType")
        .and_then(Value::as_str)
        .unwrap_or("MANUAL")
        .to_owned();
    let cleared = StatusPatch::job(JobStatusPatch::savepoint(SavepointInfoPatch {
        trigger_id: Some(None),
        ..SavepointInfoPatch::default()
    }));
    let location = match flink
        .await_savepoint(&jid, trigger, job.ctx.config.savepoint_timeout)
        .await
    {
        Ok(SavepointProgress::Completed { location }) => location,
        Ok(SavepointProgress::Failed { cause }) => {
            job.patch_status(StatusPatch {
                error: Some(Some(cause.clone())),
                ..cleared
            })
            .await?;
            return Err(ReconcileError::Savepoint { job_id: jid, cause });
        }
        // The trigger stays in status: the next reconcile waits on.
        Ok(SavepointProgress::InProgress) => {
            return Err(ReconcileError::Savepoint {
                job_id: jid,
                cause: "still in progress at the timeout; will look again".into(),
            });
        }
        // A JobManager that restarted forgot the trigger: give up on it.
        Err(e) if e.is_not_found() => {
            job.patch_status(cleared).await?;
            return Err(ReconcileError::Savepoint {
                job_id: jid,
                cause: format!("the JobManager no longer knows savepoint trigger {trigger}"),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let now = status::now_millis();
    let mut last = json!({"location": location, "timeStamp": now, "triggerType": kind,
                          "formatType": "CANONICAL"});
    if let Some(n) = info.get("triggerNonce") {
        last["triggerNonce"] = n.clone();
    }
    let mut done = JobStatusPatch::savepoint(SavepointInfoPatch {
        trigger_id: Some(None),
        trigger_type: Some(None),
        trigger_timestamp: Some(None),
        trigger_nonce: Some(None),
        last_savepoint: Some(last),
    });
    if kind == "UPGRADE" {
        done.upgrade_savepoint_path = Some(Some(location.clone()));
        done.state = Some(Reported::Known(JobState::Finished));
    }
    job.patch_status(StatusPatch::job(done)).await?;
    job.ctx
        .event(
            job.obj,
            false,
            "SavepointCompleted",
            format!("{kind} savepoint of job {jid} at {location}"),
        )
        .await;
    if super::snapshot::records_snapshots(job.obj.spec.flink_configuration.as_ref()) {
        super::snapshot::record_savepoint(job.ctx, job.obj, &kind, &location).await;
    }
    Ok(())
}

/// `spec.job.savepointTriggerNonce` changed: take a savepoint, keep running.
async fn handle_savepoint_nonce(
    job: &mut Job<'_>,
    flink: &FlinkRestClient,
    running: &FlinkJob,
    dir: Option<&str>,
) -> Result<(), ReconcileError> {
    let Some(nonce) = job.spec.savepoint_trigger_nonce else {
        return Ok(());
    };
    let done = job
        .status
        .pointer("/jobStatus/savepointInfo/lastSavepoint/triggerNonce")
        .and_then(Value::as_i64);
    if done == Some(nonce) || !running.is(JobState::Running) {
        return Ok(());
    }
    let trigger = flink.trigger_savepoint(&running.jid, dir).await?;
    job.patch_status(StatusPatch::job(JobStatusPatch::savepoint(
        SavepointInfoPatch {
            trigger_id: Some(Some(trigger)),
            trigger_type: Some(Some("MANUAL".into())),
            trigger_timestamp: Some(Some(status::now_millis())),
            trigger_nonce: Some(Some(json!(nonce))),
            ..SavepointInfoPatch::default()
        },
    )))
    .await?;
    finish_pending_savepoint(job, flink).await
}

async fn wait_terminal(
    flink: &FlinkRestClient,
    jid: &str,
    timeout: Duration,
) -> Result<(), ReconcileError> {
    if flink.await_terminal(jid, timeout).await? {
        Ok(())
    } else {
        Err(ReconcileError::Invalid(format!(
            "job {jid} did not stop within {timeout:?}"
        )))
    }
}

/// Deletion: stop the job, then let the finalizer go. A session cluster
/// that is gone took its jobs with it; an unreachable one is retried.
async fn cleanup(obj: &FlinkSessionJob, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let Some(jid) = obj
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.job_id.clone())
    else {
        return Ok(Action::await_change());
    };
    let Some(session_name) = obj.spec.deployment_name.clone() else {
        return Ok(Action::await_change());
    };
    let sessions: Api<FlinkDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    match sessions.get_opt(&session_name).await? {
        None => return Ok(Action::await_change()),
        Some(s) if s.metadata.deletion_timestamp.is_some() => return Ok(Action::await_change()),
        Some(_) => {}
    }
    let flink = ctx.flink(&ns, &session_name)?;
    if let Some(j) = flink.job_state(&jid).await?
        && !j.is_terminal()
    {
        flink.cancel(&jid).await?;
        wait_terminal(&flink, &jid, ctx.config.savepoint_timeout).await?;
        ctx.event(
            obj,
            false,
            "JobCancelled",
            format!("job {jid} cancelled: the FlinkSessionJob is being deleted"),
        )
        .await;
    }
    Ok(Action::await_change())
}
