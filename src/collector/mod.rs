//! The score collector: reads per-subtask metrics from running Flink
//! JobManagers, maps each subtask to the node it ran on, and publishes per-node
//! mean task performance for the scheduler extender. Only the elected leader
//! collects and writes; every replica's extender reads what it publishes.

pub mod compute;
pub mod discovery;
#[cfg(feature = "test-support")]
pub mod fake_jobmanager;
pub mod placement;
pub mod rebalance;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::flink::rest::{FlinkRestClient, FlinkRestOptions};
use crate::k8s::NamespacedName;
use crate::leader::{Leadership, RENEW_EVERY};
use crate::policy::PolicyStore;
use crate::scheduler::score::NodeScore;
use crate::scheduler::scores::{SCORES_KEY, ScoreBoard, ScoreTable, now_unix};
use crate::telemetry::{CollectionErrorLabels, JobLabels, Metrics, NodeLabels};
use placement::PodCache;

pub use discovery::JobManagerTarget;

pub struct CollectorConfig {
    pub scores: NamespacedName,
    /// Controller-side override of JobManager discovery (tests, or JobManagers
    /// outside the cluster). Never taken from a user-settable annotation.
    pub jobmanagers: Vec<JobManagerTarget>,
    pub concurrency: usize,
    /// Resolve Service names through this DNS server (flinkgate outside the cluster).
    pub cluster_dns: Option<crate::cluster_dns::ClusterDnsConfig>,
}

struct State {
    table: ScoreTable,
    /// job id -> (F(x), unix seconds measured)
    jobs: BTreeMap<String, (f64, f64)>,
    /// One connection pool for every JobManager, kept across cycles (a
    /// client per JobManager would load the system's root certificates each).
    http: Option<reqwest::Client>,
    rebalance: rebalance::RebalanceState,
    /// `status.taskPerformance` last written, per FlinkDeployment.
    published_performance: std::collections::HashMap<String, serde_json::Value>,
}

pub async fn run(
    client: Client,
    cfg: CollectorConfig,
    policy: Arc<PolicyStore>,
    board: Arc<ScoreBoard>,
    metrics: Metrics,
    leadership: Leadership,
    stop: CancellationToken,
) {
    let pods = PodCache::start(client.clone(), stop.child_token());
    let mut leading = false;
    let mut last_cycle: Option<Instant> = None;
    let mut state: Option<State> = None;
    loop {
        let now_leading = leadership.is_leading();
        if now_leading != leading {
            // A new leader continues from what was published.
            state = now_leading.then(|| State {
                table: (*board.current()).clone(),
                jobs: BTreeMap::new(),
                http: crate::cluster_dns::client_builder(
                    cfg.cluster_dns
                        .as_ref()
                        .map(crate::cluster_dns::ClusterDns::new)
                        .as_ref(),
                )
                .connect_timeout(FlinkRestOptions::default().connect_timeout)
                .build()
                .inspect_err(|e| tracing::error!(error = %e, "cannot build the Flink REST client"))
                .ok(),
                rebalance: rebalance::RebalanceState::default(),
                published_performance: Default::default(),
            });
        }
        leading = now_leading;
        let rules = policy
            .current()
            .map(|p| p.rules_for(None).scheduling.clone())
            .unwrap_or_default();
        let due = last_cycle
            .is_none_or(|t| t.elapsed().as_secs_f64() >= rules.collection_interval_seconds);
        if leading
            && due
            && let Some(st) = state.as_mut()
        {
            last_cycle = Some(Instant::now());
            // A walk can wait on slow JobManagers for seconds; shutdown
            // must not, since the Lease is released only after it.
            let walk = async {
                cycle(&client, &cfg, &pods, &rules, &metrics, st).await;
                board.replace(st.table.clone());
                publish(&client, &cfg.scores, &st.table).await;
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                () = walk => {}
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
    }
}

async fn cycle(
    client: &Client,
    cfg: &CollectorConfig,
    pods: &PodCache,
    rules: &crate::policy::SchedulingRules,
    metrics: &Metrics,
    st: &mut State,
) {
    let targets = if cfg.jobmanagers.is_empty() {
        let found = discovery::discover(client).await;
        for e in &found.errors {
            tracing::warn!(error = %e, "JobManager discovery incomplete");
        }
        found.targets
    } else {
        cfg.jobmanagers.clone()
    };
    let concurrency = cfg.concurrency;
    // Each poll owns its inputs (a client clone shares the pool), so the
    // joined future stays Send.
    let polls = targets.into_iter().map(|t| {
        let client = match &st.http {
            Some(http) => {
                FlinkRestClient::with_client(&t.url, http.clone(), &FlinkRestOptions::default())
            }
            None => Err(crate::flink::rest::FlinkRestError::Client(
                "no HTTP client".into(),
            )),
        };
        async move {
            match client {
                Ok(c) => {
                    let result = c.snapshot(concurrency).await;
                    (t, Some(c), result)
                }
                Err(e) => (t, None, Err(e)),
            }
        }
    });
    let snapshots = join_all(polls).await;
    let index = pods.index();
    let now = now_unix();
    let mut per_node: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut running = Vec::new();
    for (target, rest, result) in snapshots {
        match result {
            Ok(snapshot) => {
                if let Some(rest) = rest {
                    running.extend(snapshot.jobs.iter().map(|j| {
                        rebalance::RunningJob {
                            cluster: target.id.clone(),
                            rest: rest.clone(),
                            jid: j.jid.clone(),
                            all_running: j
                                .vertices
                                .iter()
                                .all(|v| v.subtasks.len() == v.parallelism as usize),
                        }
                    }));
                }
                let r = compute::compute(&snapshot, |tm, host| index.node_of(tm, host));
                for (node, fs) in r.per_node {
                    per_node.entry(node).or_default().extend(fs);
                }
                let all: Vec<f64> = r.per_job.values().copied().collect();
                if let Some(f) = crate::scheduler::score::mean_performance(all) {
                    st.jobs.insert(target.id.clone(), (f, now));
                }
                if r.unplaced > 0 {
                    tracing::debug!(jobmanager = %target.id, unplaced = r.unplaced, "subtasks whose pod or node is unknown");
                }
            }
            Err(e) => {
                // The last figures stay until they age out of the window.
                metrics
                    .collection_errors
                    .get_or_create(&CollectionErrorLabels {
                        jobmanager: target.id.clone(),
                    })
                    .inc();
                tracing::warn!(jobmanager = %target.id, error = %e, "cannot read the JobManager");
            }
        }
    }
    // Fold in the new samples; let the rest decay and expire.
    let mut nodes = std::collections::HashMap::new();
    let names: Vec<String> = st
        .table
        .nodes
        .keys()
        .chain(per_node.keys())
        .cloned()
        .collect();
    for node in names {
        let prev = st.table.nodes.get(&node).copied();
        let samples = per_node.get(&node).map(Vec::as_slice).unwrap_or(&[]);
        let updated = if samples.is_empty() {
            prev.filter(|p| p.decayed(now, rules).is_some())
        } else {
            NodeScore::update(prev, samples, now, rules)
        };
        if let Some(s) = updated {
            nodes.insert(node, s);
        }
    }
    metrics.node_performance.clear();
    for (node, s) in &nodes {
        if let Some(d) = s.decayed(now, rules) {
            metrics
                .node_performance
                .get_or_create(&NodeLabels { node: node.clone() })
                .set(d.performance(rules));
        }
    }
    st.jobs
        .retain(|_, (_, at)| now - *at <= rules.window_seconds);
    metrics.job_performance.clear();
    for (id, (f, _)) in &st.jobs {
        let (namespace, name) = id.split_once('/').unwrap_or(("", id));
        metrics
            .job_performance
            .get_or_create(&JobLabels {
                namespace: namespace.into(),
                name: name.into(),
            })
            .set(*f);
    }
    let decayed: BTreeMap<String, NodeScore> = nodes
        .iter()
        .filter_map(|(n, s)| Some((n.clone(), s.decayed(now, rules)?)))
        .collect();
    st.table = ScoreTable {
        generated: now,
        nodes,
        jobs: st.jobs.iter().map(|(k, (f, _))| (k.clone(), *f)).collect(),
    };
    let taskmanager_pods = pods.pods();
    let figures = st
        .jobs
        .iter()
        .map(|(cluster, (f, _))| {
            let (ns, name) = cluster.split_once('/').unwrap_or(("", cluster));
            let nodes: BTreeMap<String, f64> =
                rebalance::taskmanagers_of(&taskmanager_pods, ns, name)
                    .into_iter()
                    .filter_map(|tm| {
                        let f = decayed.get(&tm.node)?.performance(rules);
                        Some((tm.node, f))
                    })
                    .collect();
            (cluster.clone(), status::task_performance(*f, &nodes))
        })
        .collect();
    status::publish(client, figures, &mut st.published_performance).await;
    rebalance::heal(
        client,
        &running,
        &taskmanager_pods,
        &decayed,
        &mut st.rebalance,
        now,
        rules,
        metrics,
    )
    .await;
    metrics.collection_cycles.inc();
}

/// Writes the table into the scores ConfigMap (server-side apply).
async fn publish(client: &Client, cm: &NamespacedName, table: &ScoreTable) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cm.namespace);
    let text = match serde_json::to_string(table) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the scores");
            return;
        }
    };
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm.name, "namespace": cm.namespace, "labels": {"app.kubernetes.io/managed-by": "flinkgate"}},
        "data": {SCORES_KEY: text}
    });
    if let Err(e) = api
        .patch(
            &cm.name,
            &PatchParams::apply("flinkgate-collector").force(),
            &Patch::Apply(&body),
        )
        .await
    {
        tracing::warn!(configmap = %cm, error = %e, "cannot publish the scores");
    }
}
