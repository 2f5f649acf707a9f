//! What the webhook knows of session clusters. A few of the operator's
//! session job rules need the target FlinkDeployment's spec (is it an
//! application cluster? its `flinkConfiguration` under the job's); the
//! server reads it from a watch cache, `flinkgate check` from the documents
//! it was given. Never a call to the API server per review.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::flink::crd::FlinkDeploymentSpec;

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

pub trait SessionLookup: Send + Sync {
    fn session(&self, namespace: &str, name: &str) -> SessionCluster;
}

/// No cluster connection: nothing is known.
pub struct NoSessions(pub &'static str);

impl SessionLookup for NoSessions {
    fn session(&self, _: &str, _: &str) -> SessionCluster {
        SessionCluster::Unchecked(self.0.to_string())
    }
}

/// FlinkDeployments by namespace and name, e.g. the documents `flinkgate
/// check` reads; one not among them is unchecked.
#[derive(Default)]
pub struct KnownSessions {
    by_name: BTreeMap<(String, String), Arc<FlinkDeploymentSpec>>,
    absent: String,
}

impl KnownSessions {
    pub fn new(absent: impl Into<String>) -> Self {
        Self {
            by_name: BTreeMap::new(),
            absent: absent.into(),
        }
    }

    pub fn insert(&mut self, namespace: &str, name: &str, spec: FlinkDeploymentSpec) {
        self.by_name
            .insert((namespace.to_string(), name.to_string()), Arc::new(spec));
    }
}

impl SessionLookup for KnownSessions {
    fn session(&self, namespace: &str, name: &str) -> SessionCluster {
        match self.by_name.get(&(namespace.to_string(), name.to_string())) {
            Some(spec) => SessionCluster::Found(spec.clone()),
            None => SessionCluster::Unchecked(self.absent.clone()),
        }
    }
}
