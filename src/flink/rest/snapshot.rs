//! `snapshot`: one walk of a whole JobManager (running jobs, their vertices,
//! running subtasks and their rate metrics) with bounded concurrency, for
//! the collector.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use super::client::{
    FlinkRestClient, FlinkRestError, JobDetails, JobPlan, JobSummary, JobVertex, SubtaskMetrics,
    VertexDetails, WireJob, WireMetric, WireOverview, WirePlanResponse, WireVertex, metrics_from,
    parse_plan, running_only,
};

/// Everything `snapshot` saw on one JobManager.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSnapshot {
    pub jobs: Vec<JobSnapshot>,
    /// HTTP requests made, failed ones included.
    pub requests: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSnapshot {
    pub jid: String,
    pub name: String,
    pub vertices: Vec<VertexSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VertexSnapshot {
    pub id: String,
    pub name: String,
    pub parallelism: u32,
    pub is_source: bool,
    /// RUNNING subtasks only, by index.
    pub subtasks: Vec<SubtaskSample>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubtaskSample {
    pub index: u32,
    pub taskmanager_id: Option<String>,
    pub host: Option<String>,
    pub metrics: SubtaskMetrics,
}

impl FlinkRestClient {
    /// Walks every RUNNING job → vertices → RUNNING subtasks → metrics, with
    /// at most `concurrency` requests in flight in total (0 counts as 1).
    /// A job that answers 404 part-way (it ended and was cleaned up) is left
    /// out; any other failure fails the snapshot.
    pub async fn snapshot(&self, concurrency: usize) -> Result<ClusterSnapshot, FlinkRestError> {
        let walk = Walk {
            client: self,
            // One semaphore for every level of the walk, so nested
            // buffer_unordered stages cannot multiply the bound.
            permits: Semaphore::new(concurrency.max(1)),
            concurrency: concurrency.max(1),
            requests: AtomicUsize::new(0),
        };
        let overview: WireOverview = walk
            .get(self.url(&["jobs", "overview"]))
            .await
            .map_err(WalkError::into_rest)?;
        let jobs = running_only(overview);
        let mut walked: Vec<(usize, JobSnapshot)> = stream::iter(jobs.into_iter().enumerate())
            .map(|(i, job)| {
                let walk = &walk;
                async move {
                    match walk.job(job).await {
                        Ok(snapshot) => Ok(Some((i, snapshot))),
                        Err(WalkError::Gone(e)) => {
                            tracing::debug!(error = %e, "job vanished during the walk; skipped");
                            Ok(None)
                        }
                        Err(WalkError::Rest(e)) => Err(e),
                    }
                }
            })
            .buffer_unordered(walk.concurrency)
            .try_filter_map(|x| futures::future::ready(Ok(x)))
            .try_collect()
            .await?;
        walked.sort_by_key(|(i, _)| *i);
        Ok(ClusterSnapshot {
            jobs: walked.into_iter().map(|(_, j)| j).collect(),
            requests: walk.requests.load(Ordering::Relaxed),
        })
    }
}

/// Shared state of one `snapshot`.
struct Walk<'a> {
    client: &'a FlinkRestClient,
    permits: Semaphore,
    concurrency: usize,
    requests: AtomicUsize,
}

/// A 404 below the overview means the job went away; kept apart from real
/// failures so the walk can skip the job.
enum WalkError {
    Gone(FlinkRestError),
    Rest(FlinkRestError),
}

impl WalkError {
    fn into_rest(self) -> FlinkRestError {
        match self {
            Self::Gone(e) | Self::Rest(e) => e,
        }
    }
}

impl Walk<'_> {
    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, WalkError> {
        // The semaphore is never closed, so acquire cannot fail; the permit
        // is held until the body is read and parsed.
        let _permit = self.permits.acquire().await.ok();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.client.get_json(url).await.map_err(|e| {
            if e.is_not_found() {
                WalkError::Gone(e)
            } else {
                WalkError::Rest(e)
            }
        })
    }

    async fn job(&self, summary: JobSummary) -> Result<JobSnapshot, WalkError> {
        let jid = summary.jid.as_str();
        let wire: WireJob = self.get(self.client.url(&["jobs", jid])).await?;
        let details = JobDetails::from(wire);
        // Flink embeds the plan in the job details; ask for it only if not.
        let plan = match details.plan.clone() {
            Some(plan) => Some(plan),
            None => match self
                .get::<WirePlanResponse>(self.client.url(&["jobs", jid, "plan"]))
                .await
            {
                Ok(wire) => wire.plan.and_then(parse_plan),
                // A later 404 tells whether the job is gone; until then the
                // vertex names will do.
                Err(WalkError::Gone(_)) => None,
                Err(e) => return Err(e),
            },
        };
        let mut vertices: Vec<(usize, VertexSnapshot)> =
            stream::iter(details.vertices.iter().enumerate())
                .map(|(i, vertex)| {
                    let plan = plan.as_ref();
                    async move { Ok::<_, WalkError>((i, self.vertex(jid, vertex, plan).await?)) }
                })
                .buffer_unordered(self.concurrency)
                .try_collect()
                .await?;
        vertices.sort_by_key(|(i, _)| *i);
        Ok(JobSnapshot {
            jid: details.jid,
            name: details.name,
            vertices: vertices.into_iter().map(|(_, v)| v).collect(),
        })
    }

    async fn vertex(
        &self,
        jid: &str,
        vertex: &JobVertex,
        plan: Option<&JobPlan>,
    ) -> Result<VertexSnapshot, WalkError> {
        let wire: WireVertex = self
            .get(self.client.url(&["jobs", jid, "vertices", &vertex.id]))
            .await?;
        let details = VertexDetails::from(wire);
        let running = details
            .subtasks
            .into_iter()
            .filter(|s| s.status == "RUNNING");
        let mut subtasks: Vec<SubtaskSample> = stream::iter(running)
            .map(|s| async move {
                let wire: Vec<WireMetric> = self
                    .get(self.client.metrics_url(jid, &vertex.id, s.index))
                    .await?;
                Ok::<_, WalkError>(SubtaskSample {
                    index: s.index,
                    taskmanager_id: s.taskmanager_id,
                    host: s.host,
                    metrics: metrics_from(&wire),
                })
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        subtasks.sort_by_key(|s| s.index);
        Ok(VertexSnapshot {
            id: vertex.id.clone(),
            name: vertex.name.clone(),
            parallelism: vertex.parallelism,
            is_source: is_source(plan, vertex),
            subtasks,
        })
    }
}

/// A source has no inputs in the plan; without a plan entry, Flink's naming
/// ("Source: ...") is the best remaining hint.
fn is_source(plan: Option<&JobPlan>, vertex: &JobVertex) -> bool {
    plan.and_then(|p| p.has_inputs(&vertex.id))
        .map(|has_inputs| !has_inputs)
        .unwrap_or_else(|| vertex.name.starts_with("Source"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_from_plan_then_name() {
        let plan: JobPlan = serde_json::from_value(serde_json::json!({"nodes": [
            {"id": "a"}, {"id": "b", "inputs": [{"num": 0, "id": "a"}]}
        ]}))
        .expect("plan parses");
        let v = |id: &str, name: &str| JobVertex {
            id: id.into(),
            name: name.into(),
            parallelism: 1,
            status: "RUNNING".into(),
        };
        assert!(is_source(Some(&plan), &v("a", "Map")));
        assert!(!is_source(Some(&plan), &v("b", "Source: x")));
        assert!(is_source(Some(&plan), &v("c", "Source: x")));
        assert!(!is_source(None, &v("c", "Sink")));
    }
}
