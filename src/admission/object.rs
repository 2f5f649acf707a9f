//! What admission reads of a Flink resource, typed: its name and labels,
//! its spec, and the spec the operator last deployed. The server reads it
//! while it parses the review (one pass over the text, see
//! [`super::review::parse_typed`]); `flinkgate check` and the fallback read
//! it from a parsed or raw object.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::flink::crd::{FlinkDeploymentSpec, FlinkSessionJobSpec};
use crate::flink::reconciled;
use crate::flink::state_snapshot::FlinkStateSnapshotSpec;

/// The label of the operator's health-check canaries (`"true"`, any case):
/// the operator exempts them from validation, and so does flinkgate.
pub const CANARY_LABEL: &str = "flink.apache.org/canary";

/// `metadata` as far as admission reads it.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A Flink resource as the rules and mutation read it. `None` where the
/// object has no such field (or null), so a patch adds it whole.
#[derive(Debug, Clone, Deserialize)]
pub struct FlinkObject<S> {
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub spec: Option<S>,
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<StatusView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusView {
    #[serde(default, rename = "reconciliationStatus")]
    reconciliation_status: Option<ReconciliationView>,
}

#[derive(Debug, Clone, Deserialize)]
struct ReconciliationView {
    #[serde(default, rename = "lastReconciledSpec")]
    last_reconciled_spec: Option<String>,
}

/// The status is the operator's: a shape flinkgate does not expect makes
/// the spec-change rules skip, never the object malformed.
pub fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

impl<S: DeserializeOwned> FlinkObject<S> {
    /// The operator's canaries are left alone.
    pub fn is_canary(&self) -> bool {
        self.labels()
            .and_then(|l| l.get(CANARY_LABEL))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.as_ref().and_then(|m| m.labels.as_ref())
    }

    /// The spec the operator last deployed, when it recorded one.
    pub fn last_reconciled(&self) -> Option<S> {
        self.status
            .as_ref()
            .and_then(|s| s.reconciliation_status.as_ref())
            .and_then(|r| r.last_reconciled_spec.as_deref())
            .and_then(reconciled::spec)
    }
}

/// A Flink resource read typed during the review's parse.
#[derive(Debug)]
pub enum Typed {
    FlinkDeployment(Box<FlinkObject<FlinkDeploymentSpec>>),
    FlinkSessionJob(Box<FlinkObject<FlinkSessionJobSpec>>),
}

impl Typed {
    pub fn metadata(&self) -> Option<&Metadata> {
        match self {
            Typed::FlinkDeployment(o) => o.metadata.as_ref(),
            Typed::FlinkSessionJob(o) => o.metadata.as_ref(),
        }
    }
}

/// A spec type the review parse may have read already.
pub trait Spec: DeserializeOwned + Default + PartialEq + Clone {
    fn from_typed(typed: &Typed) -> Option<&FlinkObject<Self>>;
}

impl Spec for FlinkDeploymentSpec {
    fn from_typed(typed: &Typed) -> Option<&FlinkObject<Self>> {
        match typed {
            Typed::FlinkDeployment(o) => Some(o),
            Typed::FlinkSessionJob(_) => None,
        }
    }
}

impl Spec for FlinkSessionJobSpec {
    fn from_typed(typed: &Typed) -> Option<&FlinkObject<Self>> {
        match typed {
            Typed::FlinkSessionJob(o) => Some(o),
            Typed::FlinkDeployment(_) => None,
        }
    }
}

/// Snapshots are always read from the raw object.
impl Spec for FlinkStateSnapshotSpec {
    fn from_typed(_: &Typed) -> Option<&FlinkObject<Self>> {
        None
    }
}
