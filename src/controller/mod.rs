//! The controller: launches and runs Flink from FlinkDeployment and
//! FlinkSessionJob resources, as the Apache Flink Kubernetes Operator does.
//! Only the elected leader reconciles (see [`crate::leader`]); a replica that
//! loses the lease drops its controllers, in-flight reconciles included. On
//! `stop` (shutdown) they stop taking work and finish what is in flight.

pub mod context;
pub mod deployment;
pub mod deployment_plan;
#[cfg(feature = "test-support")]
pub mod fault;
pub mod flink_config;
pub mod ha_metadata;
pub mod job_id;
pub mod pod_health;
pub mod pod_template;
pub mod resources;
pub mod session_job;
pub mod session_job_plan;
pub mod snapshot;
pub mod status;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio_util::sync::CancellationToken;

use crate::flink::crd::{FlinkDeployment, FlinkSessionJob};
use crate::flink::state_snapshot::FlinkStateSnapshot;
use crate::leader::Leadership;
use crate::telemetry::{ReconcileKindLabels, ReconcileLabels};
use context::{Context, ReconcileError};

/// Runs the controllers whenever this replica leads, until `stop`; then
/// lets in-flight reconciles finish (the caller bounds how long).
pub async fn run(ctx: Arc<Context>, mut leadership: Leadership, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = leadership.until_leading() => {}
        }
        tracing::info!(
            namespaces = ?ctx.config.namespaces,
            "leading: starting the FlinkDeployment and FlinkSessionJob controllers"
        );
        let mut lost = leadership.clone();
        tokio::select! {
            _ = lost.until_not_leading() => {
                tracing::warn!("lost the lease: stopping the controllers");
            }
            _ = controllers(ctx.clone(), stop.clone()) => {
                tracing::info!("controllers stopped");
                return;
            }
        }
    }
}

/// The controllers over the watched namespaces, driven until `stop`, when
/// they take no new work and finish the reconciles in flight.
async fn controllers(ctx: Arc<Context>, stop: CancellationToken) {
    let mut runs: Vec<BoxStream<'static, ()>> = Vec::new();
    for api in apis::<FlinkDeployment>(&ctx) {
        runs.push(
            taskmanager_exits(ctx.clone(), owned_api::<Pod>(&ctx, &api))
                .take_until(stop.clone().cancelled_owned())
                .boxed(),
        );
        let owned = owned_api::<Deployment>(&ctx, &api);
        let c = Controller::new(api, watcher::Config::default())
            .with_config(runtime_config(&ctx))
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .owns(
                owned,
                watcher::Config::default().labels("app.kubernetes.io/managed-by=flinkgate"),
            )
            .run(
                |d, ctx| {
                    timed(
                        "FlinkDeployment",
                        ctx.clone(),
                        deployment::reconcile(d, ctx),
                    )
                },
                error_policy::<FlinkDeployment>,
                ctx.clone(),
            )
            .map(log_result)
            .boxed();
        runs.push(c);
    }
    for api in apis::<FlinkSessionJob>(&ctx) {
        let c = Controller::new(api, watcher::Config::default())
            .with_config(runtime_config(&ctx))
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .run(
                |j, ctx| {
                    timed(
                        "FlinkSessionJob",
                        ctx.clone(),
                        session_job::reconcile(j, ctx),
                    )
                },
                error_policy::<FlinkSessionJob>,
                ctx.clone(),
            )
            .map(log_result)
            .boxed();
        runs.push(c);
    }
    for api in apis::<FlinkStateSnapshot>(&ctx) {
        let c = Controller::new(api, watcher::Config::default())
            .with_config(runtime_config(&ctx))
            .graceful_shutdown_on(stop.clone().cancelled_owned())
            .run(
                |s, ctx| {
                    timed(
                        "FlinkStateSnapshot",
                        ctx.clone(),
                        snapshot::reconcile(s, ctx),
                    )
                },
                error_policy::<FlinkStateSnapshot>,
                ctx.clone(),
            )
            .map(log_result)
            .boxed();
        runs.push(c);
    }
    stream::select_all(runs).for_each(|_| async {}).await;
}

/// Watches native TaskManager pods and remembers those that end with an
/// error: Flink deletes them at once and asks for new ones, so only a watch
/// sees a TaskManager crash loop (reported by the FlinkDeployment reconcile).
fn taskmanager_exits(ctx: Arc<Context>, pods: Api<Pod>) -> BoxStream<'static, ()> {
    let config =
        watcher::Config::default().labels("component=taskmanager,type=flink-native-kubernetes");
    watcher::watcher(pods, config)
        .default_backoff()
        .applied_objects()
        .map(move |event| match event {
            Ok(pod) => {
                let Some(why) = pod_health::taskmanager_exit(&pod) else {
                    return;
                };
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                let Some(app) = pod.metadata.labels.as_ref().and_then(|l| l.get("app")) else {
                    return;
                };
                let cluster = format!("{ns}/{app}");
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                if ctx.record_taskmanager_exit(&cluster, name, why.clone()) {
                    tracing::info!(flinkdeployment = %cluster, %why, "a TaskManager pod ended with an error");
                }
            }
            Err(e) => tracing::warn!(error = %e, "watching TaskManager pods"),
        })
        .boxed()
}

/// Bounded parallelism: a burst of thousands of objects must not become
/// thousands of simultaneous API calls and DNS lookups.
fn runtime_config(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(ctx.config.concurrency)
        .debounce(std::time::Duration::from_millis(200))
}

/// One Api per watched namespace, or one for all.
fn apis<K>(ctx: &Context) -> Vec<Api<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    }
}

/// The owned kind's Api in the same scope as `main`.
fn owned_api<K>(ctx: &Context, main: &Api<FlinkDeployment>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match main.namespace() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

fn log_result<K: Resource, E: std::fmt::Display>(
    r: Result<(kube::runtime::reflector::ObjectRef<K>, Action), E>,
) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "controller event");
    }
}

async fn timed(
    kind: &'static str,
    ctx: Arc<Context>,
    reconcile: impl Future<Output = Result<Action, ReconcileError>>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile.await;
    ctx.metrics
        .reconcile_duration
        .get_or_create(&ReconcileKindLabels { kind })
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind,
            result: match &result {
                Ok(_) => "ok",
                Err(ReconcileError::Waiting(_)) => "waiting",
                Err(_) => "error",
            },
        })
        .inc();
    result
}

/// How soon a reconcile that waits for the cluster looks again.
const WAITING_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Errors requeue with per-object exponential backoff and leave a Warning
/// Event and the message in `status.error`.
fn error_policy<K>(obj: Arc<K>, error: &ReconcileError, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + Send
        + Sync
        + serde::Serialize
        + serde::de::DeserializeOwned
        + 'static,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    if let ReconcileError::Waiting(why) = error {
        tracing::debug!(kind = %K::kind(&()), object = ?obj.meta().name, %why, "waiting");
        return Action::requeue(WAITING_RETRY);
    }
    let key = obj.meta().uid.clone().unwrap_or_default();
    let delay = ctx.backoff(&key);
    let name = format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    );
    tracing::warn!(kind = %K::kind(&()), object = %name, error = %error, retry_in = ?delay, "reconcile failed");
    let (reason, message) = (error.reason(), error.to_string());
    tokio::spawn(async move {
        ctx.event(obj.as_ref(), true, reason, message.clone()).await;
        let api: Api<K> = Api::namespaced(
            ctx.client.clone(),
            obj.meta().namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({"status": {"error": message}});
        if let Some(n) = obj.meta().name.as_deref()
            && let Err(e) = api
                .patch_status(
                    n,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
        {
            tracing::debug!(error = %e, "cannot record the error in status");
        }
    });
    Action::requeue(delay)
}
