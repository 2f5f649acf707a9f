//! FlinkDeployment → a Flink cluster: applies the owned objects with
//! server-side apply, watches the JobManager come up (Deployment available,
//! then its REST API answering) and writes the operator's status. An
//! application cluster's job is stopped (savepoint or cancel, by upgrade
//! mode) before the cluster is scaled to zero on suspend, and resumed from
//! that savepoint under the next deterministic job id; with `last-state` and
//! Kubernetes HA it is left to the HA metadata and resumed under the same id
//! (see [`super::ha_metadata`]).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::context::{Context, FIELD_MANAGER, FINALIZER, ReconcileError};
use super::deployment_plan::{self, After, Before, Requeue, Rest};
use super::flink_config::{self, FlatConfig, is_application, is_standalone};
use super::ha_metadata::{self, CarryOver};
use super::job_id;
use super::pod_health;
use super::resources::{self, Replicas};
use super::status::{
    self, JobManagerDeploymentStatus, JobState, JobStatusPatch, Lifecycle, ReconciliationState,
    StatusPatch, TaskManagerPatch,
};
use crate::flink::config::SAVEPOINT_DIR_KEYS;
use crate::flink::crd::FlinkDeployment;
use crate::flink::rest::SavepointProgress;

const STEADY: Duration = Duration::from_secs(60);
const WAITING: Duration = Duration::from_secs(30);

/// The effective Flink configuration of `d` under the current policy.
pub fn effective_config(
    d: &FlinkDeployment,
    ctx: &Context,
    job_id: Option<&str>,
    restore: Option<&str>,
) -> FlatConfig {
    let defaults = ctx
        .policy
        .current()
        .map(|p| {
            p.rules_for(d.metadata.namespace.as_deref())
                .defaults
                .flink_configuration
                .clone()
        })
        .unwrap_or_default();
    flink_config::effective(d, &defaults, job_id, restore)
}

pub async fn reconcile(
    d: Arc<FlinkDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let api: Api<FlinkDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, d, |event| async {
        match event {
            Finalizer::Apply(d) => apply(&d, &ctx, &api).await,
            Finalizer::Cleanup(d) => cleanup(&d, &ctx).await,
        }
    })
    .await;
    super::context::flatten_finalizer_error(result)
}

/// TaskManager replicas of a standalone cluster: `taskManager.replicas`, else
/// enough slots for the job's parallelism.
fn taskmanager_replicas(d: &FlinkDeployment, conf: &FlatConfig) -> i32 {
    if let Some(r) = d.spec.task_manager.as_ref().and_then(|t| t.replicas) {
        return r;
    }
    let slots = conf
        .get("taskmanager.numberOfTaskSlots")
        .and_then(|s| s.parse::<i32>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1);
    let parallelism = d
        .spec
        .job
        .as_ref()
        .and_then(|j| j.parallelism)
        .unwrap_or(1)
        .max(1);
    (parallelism + slots - 1) / slots
}

async fn apply(
    d: &FlinkDeployment,
    ctx: &Context,
    api: &Api<FlinkDeployment>,
) -> Result<Action, ReconcileError> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let generation = d.metadata.generation;
    let mut st = serde_json::to_value(&d.status).unwrap_or(Value::Null);
    if !st.is_object() {
        st = json!({});
    }
    let lifecycle = st
        .get("lifecycleState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if lifecycle.is_none() {
        patch_status(
            d,
            ctx,
            api,
            &mut st,
            StatusPatch {
                lifecycle_state: Some(Lifecycle::Created),
                ..StatusPatch::default()
            },
        )
        .await?;
    }
    let app = is_application(d);
    let job = d.spec.job.as_ref();
    let want_running = job.and_then(|j| j.state.as_deref()) != Some("suspended");
    let upgrade_mode = job
        .and_then(|j| j.upgrade_mode.as_deref())
        .unwrap_or("stateless")
        .to_owned();
    let flink = ctx.flink(&ns, &name)?;
    let mut job_id = st
        .pointer("/jobStatus/jobId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut restore = st
        .pointer("/jobStatus/upgradeSavepointPath")
        .and_then(Value::as_str)
        .map(str::to_owned);

    let spec_json = serde_json::to_value(&d.spec).unwrap_or(Value::Null);
    let last_spec = crate::flink::reconciled::last_reconciled_spec(st.get("reconciliationStatus"));
    let plan = deployment_plan::transition(Before {
        application: app,
        want_running,
        lifecycle: lifecycle.as_deref().and_then(Lifecycle::parse),
        has_job: job_id.is_some(),
        spec_changed: last_spec
            .as_ref()
            .is_some_and(|l| status::upgrade_relevant(l) != status::upgrade_relevant(&spec_json)),
    });
    let (upgrade, stopping) = (plan.upgrade, plan.stop);
    let carry = carry_over(d, ctx, &upgrade_mode, plan.carries_state(), &ns, &name).await?;
    if stopping && carry == CarryOver::HaMetadata {
        // last-state: the job runs on until its JobManager is scaled down or
        // replaced; Flink keeps its checkpoints in the HA metadata.
        if let Some(jid) = job_id.clone() {
            restore = None;
            patch_status(
                d,
                ctx,
                api,
                &mut st,
                StatusPatch {
                    job_status: Some(JobStatusPatch {
                        upgrade_savepoint_path: Some(None),
                        ..JobStatusPatch::state(JobState::Suspended)
                    }),
                    ..StatusPatch::default()
                },
            )
            .await?;
            ctx.event(d, false, "JobKeptInHaMetadata", format!("job {jid} is left to Flink's HA metadata: the next JobManager resumes it from its latest checkpoint (last-state)"))
                .await;
        }
    } else if stopping {
        // Stop the job (savepoint or cancel) before its cluster changes.
        if let Some(jid) = job_id.clone() {
            let stopped =
                stop_before_change(d, ctx, &flink, &jid, &upgrade_mode, &name, &ns).await?;
            restore = stopped.clone().flatten();
            if stopped.is_some() {
                let state = if restore.is_some() {
                    JobState::Finished
                } else {
                    JobState::Canceled
                };
                patch_status(
                    d,
                    ctx,
                    api,
                    &mut st,
                    StatusPatch {
                        job_status: Some(JobStatusPatch {
                            upgrade_savepoint_path: Some(restore.clone()),
                            ..JobStatusPatch::state(state)
                        }),
                        ..StatusPatch::default()
                    },
                )
                .await?;
                let how = restore
                    .as_deref()
                    .map(|p| format!(" with savepoint {p}"))
                    .unwrap_or_else(|| " (cancelled)".into());
                ctx.event(d, false, "JobStopped", format!("job {jid} stopped{how}"))
                    .await;
                if let Some(path) = &restore
                    && super::snapshot::records_snapshots(d.spec.flink_configuration.as_ref())
                {
                    super::snapshot::record_savepoint(ctx, d, "UPGRADE", path).await;
                }
            } else if upgrade
                && st.pointer("/jobStatus/state").and_then(Value::as_str) != Some("FINISHED")
            {
                // Nothing ran: the new job starts without state. (A job
                // FINISHED by our stop-with-savepoint keeps that savepoint,
                // recorded before a retry got here.)
                restore = None;
            }
        }
    }
    // A new savepointRedeployNonce: restart from the initial state instead
    // of the savepoint the stop took.
    if upgrade
        && status::redeploy_requested(last_spec.as_ref(), &spec_json)
        && let Some(j) = job
    {
        restore = super::snapshot::initial_state(ctx, &ns, j).await?;
    }
    if plan.start {
        // A first start, a resume or an upgrade: the next deterministic id,
        // persisted before the JobManager that runs it exists.
        let next = match &job_id {
            // last-state from HA: the same job id finds its checkpoints; the
            // stored job graph goes, so the new spec is what runs.
            Some(current) if restore.is_none() && carry == CarryOver::HaMetadata => {
                ha_metadata::remove_job_graphs(ctx, &ns, &name).await?;
                current.clone()
            }
            _ => job_id::next(&uid, job_id.as_deref()),
        };
        ctx.forget_taskmanager_exits(&format!("{ns}/{name}"));
        if job_id.is_none()
            && let Some(j) = job
        {
            restore = super::snapshot::initial_state(ctx, &ns, j).await?;
        }
        let state = plan.starting_state();
        // The spec is reconciled from here on: a retry of this reconcile
        // (the new JobManager not answering yet) must not upgrade again.
        let starting = StatusPatch {
            job_status: Some(JobStatusPatch {
                job_id: Some(next.clone()),
                upgrade_savepoint_path: Some(restore.clone()),
                ..JobStatusPatch::state(JobState::Reconciling)
            }),
            lifecycle_state: Some(state),
            reconciliation_status: Some(status::reconciliation_status(
                &spec_json,
                generation,
                false,
                ReconciliationState::Upgrading,
            )),
            ..StatusPatch::default()
        };
        patch_status(d, ctx, api, &mut st, starting).await?;
        job_id = Some(next);
    }

    let conf = effective_config(d, ctx, job_id.as_deref(), restore.as_deref());
    let replicas = if want_running {
        Replicas {
            jobmanager: d
                .spec
                .job_manager
                .as_ref()
                .and_then(|j| j.replicas)
                .unwrap_or(1),
            taskmanager: taskmanager_replicas(d, &conf),
        }
    } else {
        Replicas {
            jobmanager: 0,
            taskmanager: 0,
        }
    };
    let objects = resources::cluster_objects(d, &conf, replicas);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let mut jm_deployment = deployments.get_opt(&name).await?;
    let hash = objects.hash();
    // Unchanged objects are not re-applied; a deleted JobManager Deployment
    // (its watch triggers this reconcile) is.
    if !(jm_deployment.is_some() && ctx.already_applied(&uid, &hash)) {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        apply_object::<ConfigMap>(ctx, &ns, &objects.config_map, &params).await?;
        apply_object::<Service>(ctx, &ns, &objects.rpc_service, &params).await?;
        apply_object::<Service>(ctx, &ns, &objects.rest_service, &params).await?;
        apply_object::<Deployment>(ctx, &ns, &objects.jobmanager, &params).await?;
        if let Some(tm) = &objects.taskmanager {
            apply_object::<Deployment>(ctx, &ns, tm, &params).await?;
        }
        ctx.record_applied(&uid, Some(hash));
        jm_deployment = deployments.get_opt(&name).await?;
    }
    if !is_standalone(d) && (!want_running || upgrade) {
        remove_native_taskmanagers(ctx, &ns, &name).await?;
    }

    // Observe what came of it.
    let jm_deploy_status = jm_deployment.and_then(|dep| dep.status);
    let available = jm_deploy_status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    // Pods that cannot even be created (missing ServiceAccount, quota, a
    // refusing webhook) show only as a ReplicaFailure condition: surface it.
    let replica_failure = jm_deploy_status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        })
        .map(|c| {
            format!(
                "JobManager pods cannot be created: {}",
                c.message.as_deref().unwrap_or("ReplicaFailure")
            )
        });
    let pod_type = if is_standalone(d) {
        "flink-standalone-kubernetes"
    } else {
        "flink-native-kubernetes"
    };
    let mut patch = StatusPatch {
        observed_generation: Some(generation),
        task_manager: Some(TaskManagerPatch {
            label_selector: format!("app={name},component=taskmanager,type={pod_type}"),
            replicas: replicas.taskmanager,
        }),
        ..StatusPatch::default()
    };
    if !want_running {
        patch.job_manager_deployment_status = Some(JobManagerDeploymentStatus::Missing);
        patch.lifecycle_state = Some(Lifecycle::Suspended);
        patch.reconciliation_status = Some(status::reconciliation_status(
            &spec_json,
            generation,
            false,
            ReconciliationState::Deployed,
        ));
        patch.error = Some(None);
        patch_status(d, ctx, api, &mut st, patch).await?;
        ctx.succeeded(&uid);
        return Ok(Action::requeue(STEADY));
    }
    let rest_seen = if available < 1 {
        Rest::NotAsked
    } else {
        match flink.overview().await {
            Ok(o) => {
                patch.cluster_info = Some(json!({"flink-version": o.flink_version}));
                Rest::Answered
            }
            Err(e) => {
                tracing::info!(flinkdeployment = %format!("{ns}/{name}"), error = %e, "JobManager pods are available, its REST API not answering yet");
                Rest::Silent
            }
        }
    };
    let mut after = After {
        application: app,
        rest: rest_seen,
        job: None,
        replica_failure,
        pod_failure: None,
        job_failure: None,
    };
    if rest_seen == Rest::Answered
        && let Some(jid) = &job_id
    {
        // A JobManager being replaced may drop the request: not an error,
        // the next poll sees the new one.
        let job = flink.job_state(jid).await.unwrap_or_else(|e| {
            tracing::debug!(flinkdeployment = %format!("{ns}/{name}"), error = %e, "job state not readable yet");
            None
        });
        if let Some(j) = job {
            after.job = j.state.known();
            if j.is(JobState::Failed) {
                let cause = flink.root_exception(jid).await.ok().flatten();
                after.job_failure = Some(match cause {
                    Some(c) => format!("job {jid} failed in Flink: {c}"),
                    None => format!("job {jid} failed in Flink"),
                });
            }
            patch.job_status = Some(JobStatusPatch {
                job_id: Some(j.jid),
                job_name: Some(j.name),
                state: Some(j.state),
                start_time: Some(j.start_time.to_string()),
                update_time: Some(status::now_millis().to_string()),
                ..JobStatusPatch::default()
            });
        }
    }
    // A cluster that is not running: do its pods say why? Native
    // TaskManagers that keep failing are known from the pod watch, and count
    // even while Flink reports the job RUNNING (waiting for slots).
    after.pod_failure = if after.looks_healthy() {
        None
    } else {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await?;
        pod_health::failure(&list.items)
    }
    .or_else(|| {
        ctx.taskmanager_crash_loop(&format!("{ns}/{name}"))
            .map(|m| (pod_health::Component::TaskManager, m))
    });
    let verdict = deployment_plan::verdict(&after);
    patch.job_manager_deployment_status = Some(verdict.jobmanager);
    patch.lifecycle_state = Some(verdict.lifecycle);
    patch.reconciliation_status = Some(status::reconciliation_status(
        &spec_json,
        generation,
        verdict.stable,
        ReconciliationState::Deployed,
    ));
    patch.error = Some(verdict.failure.as_ref().map(|(_, m)| m.clone()));
    if let Some((reason, msg)) = &verdict.failure
        && st.get("error").and_then(Value::as_str) != Some(msg)
    {
        ctx.event(d, true, reason, msg.clone()).await;
    }
    patch_status(d, ctx, api, &mut st, patch).await?;
    ctx.succeeded(&uid);
    // Pods becoming available trigger a reconcile through the Deployment
    // watch; the requeue is a safety net. A JobManager that is up but not
    // answering yet is polled sooner.
    if verdict.requeue != Requeue::NotReady {
        ctx.ready(&uid);
    }
    Ok(Action::requeue(match verdict.requeue {
        Requeue::Steady => STEADY,
        Requeue::NotReady => ctx.not_ready_delay(&uid),
        Requeue::Waiting => WAITING,
    }))
}

/// How the job is carried over a suspend, resume or upgrade (`changing`):
/// by the upgrade mode, and for `last-state` whether Kubernetes HA holds a
/// checkpoint to resume from. Only a `last-state` change looks at the
/// configuration and the HA ConfigMaps; every other reconcile skips both.
async fn carry_over(
    d: &FlinkDeployment,
    ctx: &Context,
    upgrade_mode: &str,
    changing: bool,
    ns: &str,
    name: &str,
) -> Result<CarryOver, ReconcileError> {
    if !(changing && upgrade_mode == "last-state") {
        return Ok(ha_metadata::carry_over(upgrade_mode, false, false));
    }
    let ha = ha_metadata::kubernetes_ha(&effective_config(d, ctx, None, None));
    let checkpoints = ha && ha_metadata::has_checkpoints(&ha_metadata::list(ctx, ns, name).await?);
    Ok(ha_metadata::carry_over(upgrade_mode, ha, checkpoints))
}

/// Stops a running application job before its cluster is scaled down or
/// rolled: `Some(savepoint path or None when cancelled)`, or `None` when no
/// job ran. A JobManager that is up but does not answer is an error (retried)
/// unless the job is stateless: scaling it away would lose its state.
#[allow(clippy::too_many_arguments)]
async fn stop_before_change(
    d: &FlinkDeployment,
    ctx: &Context,
    flink: &crate::flink::rest::FlinkRestClient,
    jid: &str,
    upgrade_mode: &str,
    name: &str,
    ns: &str,
) -> Result<Option<Option<String>>, ReconcileError> {
    match flink.job_state(jid).await {
        Ok(Some(j)) if !j.is_terminal() => {
            let conf = effective_config(d, ctx, None, None);
            let dir = SAVEPOINT_DIR_KEYS
                .iter()
                .find_map(|k| conf.get(*k).cloned());
            let path = stop_application(flink, jid, upgrade_mode, dir.as_deref(), ctx).await?;
            Ok(Some(path))
        }
        Ok(_) => Ok(None),
        Err(e) => {
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            let running = deployments
                .get_opt(name)
                .await?
                .and_then(|dep| dep.status)
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                > 0;
            if running && upgrade_mode != "stateless" {
                Err(e.into())
            } else {
                Ok(None)
            }
        }
    }
}

/// Stops an application job by upgrade mode; the savepoint path, if any.
async fn stop_application(
    flink: &crate::flink::rest::FlinkRestClient,
    jid: &str,
    upgrade_mode: &str,
    dir: Option<&str>,
    ctx: &Context,
) -> Result<Option<String>, ReconcileError> {
    if upgrade_mode == "stateless" {
        flink.cancel(jid).await?;
        return Ok(None);
    }
    let trigger = flink.stop_with_savepoint(jid, dir).await?;
    let savepoint_error = |cause: String| ReconcileError::Savepoint {
        job_id: jid.into(),
        cause,
    };
    match flink
        .await_savepoint(jid, &trigger, ctx.config.savepoint_timeout)
        .await?
    {
        SavepointProgress::Completed { location } => Ok(Some(location)),
        SavepointProgress::Failed { cause } => Err(savepoint_error(cause)),
        SavepointProgress::InProgress => {
            Err(savepoint_error("still in progress at the timeout".into()))
        }
    }
}

/// Flink's native mode makes TaskManager pods owned by the JobManager
/// Deployment, so they outlive a JobManager scaled to zero (suspend) or
/// replaced (upgrade), and a new JobManager would adopt them. The operator
/// deletes the whole cluster in both cases; here the Deployment stays, so its
/// TaskManager pods go.
async fn remove_native_taskmanagers(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<(), ReconcileError> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("app={name},component=taskmanager,type=flink-native-kubernetes");
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    for pod in list.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let pod_name = pod.metadata.name.unwrap_or_default();
        match pods.delete(&pod_name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{pod_name}"), "removed a TaskManager of a stopped JobManager")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn apply_object<K>(
    ctx: &Context,
    ns: &str,
    body: &Value,
    params: &PatchParams,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| ReconcileError::Invalid("object without a name".into()))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(name, params, &Patch::Apply(body)).await?;
    Ok(())
}

async fn patch_status(
    d: &FlinkDeployment,
    ctx: &Context,
    api: &Api<FlinkDeployment>,
    current: &mut Value,
    patch: StatusPatch,
) -> Result<(), ReconcileError> {
    let patch = patch.to_value();
    if status::is_noop(current, &patch) {
        return Ok(());
    }
    let before = current
        .get("lifecycleState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = d.metadata.name.clone().unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": patch})),
    )
    .await?;
    json_patch::merge(current, &patch);
    let after = current.get("lifecycleState").and_then(Value::as_str);
    let jm = current
        .get("jobManagerDeploymentStatus")
        .and_then(Value::as_str)
        .unwrap_or("-");
    if after != before.as_deref()
        && let Some(after) = after
    {
        ctx.event(
            d,
            false,
            status::lifecycle_reason(after),
            format!(
                "lifecycle {} -> {after}; JobManager {jm}",
                before.as_deref().unwrap_or("(none)")
            ),
        )
        .await;
    }
    Ok(())
}

/// Deletion: remove what the controller created (only objects this
/// FlinkDeployment owns; garbage collection would too, this is faster).
async fn cleanup(d: &FlinkDeployment, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    if is_application(d)
        && let Some(jid) = d
            .status
            .as_ref()
            .and_then(|s| s.job_status.as_ref())
            .and_then(|j| j.job_id.clone())
        && let Ok(flink) = ctx.flink(&ns, &name)
        && let Ok(Some(j)) = flink.job_state(&jid).await
        && !j.is_terminal()
    {
        // Best effort: deleting the JobManager ends the job anyway.
        if let Err(e) = flink.cancel(&jid).await {
            tracing::info!(job = %jid, error = %e, "cannot cancel the job before deletion");
        }
    }
    delete_owned::<Deployment>(ctx, &ns, &name, &uid).await?;
    delete_owned::<Deployment>(ctx, &ns, &resources::taskmanager_name(&name), &uid).await?;
    delete_owned::<Service>(ctx, &ns, &resources::rest_service_name(&name), &uid).await?;
    delete_owned::<Service>(ctx, &ns, &name, &uid).await?;
    delete_owned::<ConfigMap>(ctx, &ns, &resources::config_map_name(&name), &uid).await?;
    // A JobManager still shutting down renews its leadership in the HA
    // ConfigMaps, which would recreate them: remove them once it is gone.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let jobmanagers = pods
        .list(&ListParams::default().labels(&format!("app={name},component=jobmanager")))
        .await?;
    if !jobmanagers.items.is_empty() {
        return Err(ReconcileError::Waiting(format!(
            "{} JobManager pod(s) of {ns}/{name} to stop before Flink's HA metadata is removed",
            jobmanagers.items.len()
        )));
    }
    ha_metadata::delete_all(ctx, &ns, &name).await?;
    ctx.record_applied(&uid, None);
    ctx.ready(&uid);
    ctx.succeeded(&uid);
    ctx.event(
        d,
        false,
        "Deleted",
        format!("removed the Flink cluster {ns}/{name}"),
    )
    .await;
    Ok(Action::await_change())
}

async fn delete_owned<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), ReconcileError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    let owned = obj
        .meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == owner_uid));
    if owned {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
