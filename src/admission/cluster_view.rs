//! What the webhook knows of the Flink resources in the cluster. A few of
//! the operator's rules need another resource: a session job's target
//! FlinkDeployment (is it an application cluster? its `flinkConfiguration`
//! under the job's), a FlinkStateSnapshot's job. The server reads them from
//! a watch cache, `flinkgate check` from the documents it was given. Never a
//! call to the API server per review.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::flink::crd::FlinkDeploymentSpec;
use crate::flink::state_snapshot::KIND_FLINK_DEPLOYMENT;

/// The answer for one session job's `deploymentName`.
#[derive(Debug, Clone)]
pub enum SessionCluster {
    /// Not known either way; the reason goes into a warning.
    Unchecked(String),
    /// The cache is complete and has no such FlinkDeployment. The operator
    /// admits the job then (it waits for its cluster).
    Missing,
    Found(Arc<FlinkDeploymentSpec>),
}

/// Whether a FlinkDeployment or FlinkSessionJob exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Presence {
    Unchecked(String),
    Missing,
    Found,
}

pub trait ClusterView: Send + Sync {
    fn session(&self, namespace: &str, name: &str) -> SessionCluster;
    /// `kind` is `FlinkDeployment` or `FlinkSessionJob`.
    fn presence(&self, kind: &str, namespace: &str, name: &str) -> Presence;
}

/// No cluster connection: nothing is known.
pub struct NoClusterView(pub &'static str);

impl ClusterView for NoClusterView {
    fn session(&self, _: &str, _: &str) -> SessionCluster {
        SessionCluster::Unchecked(self.0.to_string())
    }

    fn presence(&self, _: &str, _: &str, _: &str) -> Presence {
        Presence::Unchecked(self.0.to_string())
    }
}

/// FlinkDeployments and FlinkSessionJobs by namespace and name, e.g. the
/// documents `flinkgate check` reads; one not among them is unchecked.
#[derive(Default)]
pub struct KnownResources {
    by_name: BTreeMap<(String, String), Arc<FlinkDeploymentSpec>>,
    session_jobs: std::collections::BTreeSet<(String, String)>,
    /// Why an absent one is unchecked; `None`: the set is complete, so an
    /// absent one is missing (as a synced cache says).
    absent: Option<String>,
}

impl KnownResources {
    pub fn new(absent: impl Into<String>) -> Self {
        Self {
            by_name: BTreeMap::new(),
            session_jobs: Default::default(),
            absent: Some(absent.into()),
        }
    }

    /// A complete set: what is not in it does not exist.
    pub fn complete() -> Self {
        Self::default()
    }

    pub fn insert_session_job(&mut self, namespace: &str, name: &str) {
        self.session_jobs
            .insert((namespace.to_string(), name.to_string()));
    }

    pub fn insert(&mut self, namespace: &str, name: &str, spec: FlinkDeploymentSpec) {
        self.by_name
            .insert((namespace.to_string(), name.to_string()), Arc::new(spec));
    }
}

impl ClusterView for KnownResources {
    fn session(&self, namespace: &str, name: &str) -> SessionCluster {
        match self.by_name.get(&(namespace.to_string(), name.to_string())) {
            Some(spec) => SessionCluster::Found(spec.clone()),
            None => match &self.absent {
                Some(why) => SessionCluster::Unchecked(why.clone()),
                None => SessionCluster::Missing,
            },
        }
    }

    fn presence(&self, kind: &str, namespace: &str, name: &str) -> Presence {
        let key = (namespace.to_string(), name.to_string());
        let found = match kind {
            KIND_FLINK_DEPLOYMENT => self.by_name.contains_key(&key),
            _ => self.session_jobs.contains(&key),
        };
        match (found, &self.absent) {
            (true, _) => Presence::Found,
            (false, Some(why)) => Presence::Unchecked(why.clone()),
            (false, None) => Presence::Missing,
        }
    }
}
