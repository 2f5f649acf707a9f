//! Status fields written the way the Flink operator writes them, so its
//! users' dashboards and `kubectl get` columns keep working.

use serde_json::{Value, json};

use serde::Serialize;

pub use crate::flink::status::{
    JobManagerDeploymentStatus, JobState, Lifecycle, ReconciliationState, Reported,
};

/// A merge patch of a FlinkDeployment's or FlinkSessionJob's status. Unset
/// fields are left as they are; `Some(None)` writes null, which removes one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_state: Option<Lifecycle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_manager_deployment_status: Option<JobManagerDeploymentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatusPatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<TaskManagerPatch>,
    /// `{"flink-version": ...}`, as the operator writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_info: Option<Value>,
    /// Built by [`reconciliation_status`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation_status: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Reported<JobState>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_savepoint_path: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_info: Option<SavepointInfoPatch>,
}

/// `jobStatus.savepointInfo`: the savepoint in flight (its trigger) and the
/// last one taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointInfoPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_timestamp: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_nonce: Option<Option<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_savepoint: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerPatch {
    pub label_selector: String,
    pub replicas: i32,
}

impl StatusPatch {
    /// The JSON merge patch; a struct of strings and numbers always serialises.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl JobStatusPatch {
    /// A job in `state`.
    pub fn state(state: JobState) -> Self {
        Self {
            state: Some(Reported::Known(state)),
            ..Self::default()
        }
    }

    /// Only the savepoint information.
    pub fn savepoint(info: SavepointInfoPatch) -> Self {
        Self {
            savepoint_info: Some(info),
            ..Self::default()
        }
    }
}

impl StatusPatch {
    pub fn job(job: JobStatusPatch) -> Self {
        Self {
            job_status: Some(job),
            ..Self::default()
        }
    }
}

/// The Event reason for entering a lifecycle state.
pub fn lifecycle_reason(state: &str) -> &'static str {
    Lifecycle::parse(state).map_or("StatusChanged", Lifecycle::event_reason)
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `reconciliationStatus` after deploying `spec` of `generation`:
/// `lastReconciledSpec` is a JSON string of the spec with the resource's
/// metadata, as the operator serializes it.
pub fn reconciliation_status(
    spec: &Value,
    generation: Option<i64>,
    stable: bool,
    state: ReconciliationState,
) -> Value {
    let reconciled = json!({
        "spec": spec,
        "resource_metadata": {
            "apiVersion": "flink.apache.org/v1beta1",
            "metadata": {"generation": generation},
        },
    })
    .to_string();
    let mut s = json!({
        "reconciliationTimestamp": now_millis(),
        "lastReconciledSpec": reconciled,
        "state": state.as_str(),
    });
    if stable {
        s["lastStableSpec"] = s["lastReconciledSpec"].clone();
    }
    s
}

/// The job fields whose change needs a new submission (an upgrade): all of
/// `spec.job` except the state and the nonces handled on their own, plus
/// the spec's own `flinkConfiguration` and `restartNonce` (a restart is an
/// upgrade to the same spec).
pub fn upgrade_relevant(spec: &Value) -> Value {
    let mut job = spec.get("job").cloned().unwrap_or(Value::Null);
    if let Some(o) = job.as_object_mut() {
        for k in [
            "state",
            "savepointTriggerNonce",
            "checkpointTriggerNonce",
            "initialSavepointPath",
        ] {
            o.remove(k);
        }
    }
    json!({"job": job, "flinkConfiguration": spec.get("flinkConfiguration"),
           "restartNonce": spec.get("restartNonce")})
}

/// Whether `spec` asks for a redeploy from its initial state, as the
/// operator's `savepointRedeployNonce` does: a nonce that is set and differs
/// from the deployed spec's. The job then restarts from
/// `initialSavepointPath` (or `initialStateReference`), not from the
/// savepoint its stop took.
pub fn redeploy_requested(last: Option<&Value>, spec: &Value) -> bool {
    let nonce = |s: &Value| {
        s.pointer("/job/savepointRedeployNonce")
            .filter(|n| !n.is_null())
            .cloned()
    };
    match (last, nonce(spec)) {
        (Some(l), Some(n)) => nonce(l) != Some(n),
        _ => false,
    }
}

/// Fields that change on every write and say nothing new by themselves.
const VOLATILE: &[&str] = &["reconciliationTimestamp", "updateTime"];

/// Whether merge-patching `patch` into `current` changes nothing but
/// timestamps. Skipping such writes keeps a reconcile from triggering the
/// next one through its own status update.
pub fn is_noop(current: &Value, patch: &Value) -> bool {
    let mut merged = current.clone();
    json_patch::merge(&mut merged, patch);
    without_volatile(merged) == without_volatile(current.clone())
}

fn without_volatile(mut v: Value) -> Value {
    strip(&mut v);
    // A JSON string holding a spec is compared as written; it has no timestamps.
    v
}

fn strip(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !VOLATILE.contains(&k.as_str()));
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_writes_what_is_set_and_nulls_what_is_cleared() {
        let p = StatusPatch {
            lifecycle_state: Some(Lifecycle::Suspended),
            error: Some(None),
            job_status: Some(JobStatusPatch {
                upgrade_savepoint_path: Some(None),
                ..JobStatusPatch::state(JobState::Suspended)
            }),
            ..StatusPatch::default()
        };
        assert_eq!(
            p.to_value(),
            json!({"lifecycleState": "SUSPENDED", "error": null,
                   "jobStatus": {"state": "SUSPENDED", "upgradeSavepointPath": null}})
        );
        assert_eq!(StatusPatch::default().to_value(), json!({}));
    }

    #[test]
    fn a_new_redeploy_nonce_asks_for_a_redeploy() {
        let with = |n: Value| json!({"job": {"savepointRedeployNonce": n}});
        assert!(redeploy_requested(Some(&with(json!(1))), &with(json!(2))));
        assert!(redeploy_requested(
            Some(&json!({"job": {}})),
            &with(json!(1))
        ));
        assert!(!redeploy_requested(Some(&with(json!(2))), &with(json!(2))));
        assert!(!redeploy_requested(
            Some(&with(json!(2))),
            &json!({"job": {}})
        ));
        // Before the first deployment the initial state is used anyway.
        assert!(!redeploy_requested(None, &with(json!(1))));
    }
    use crate::flink::reconciled::last_reconciled_spec;

    #[test]
    fn timestamp_only_patches_are_noops() {
        let spec = json!({"job": {"jarURI": "j"}});
        let current = json!({"lifecycleState": "STABLE",
            "jobStatus": {"state": "RUNNING", "updateTime": "1"},
            "reconciliationStatus": reconciliation_status(&spec, Some(1), true, ReconciliationState::Deployed)});
        let again = json!({"lifecycleState": "STABLE",
            "jobStatus": {"state": "RUNNING", "updateTime": "2"},
            "reconciliationStatus": reconciliation_status(&spec, Some(1), true, ReconciliationState::Deployed)});
        assert!(is_noop(&current, &again));
        assert!(!is_noop(
            &current,
            &json!({"jobStatus": {"state": "FAILED"}})
        ));
        assert!(!is_noop(&current, &json!({"error": "boom"})));
        assert!(
            is_noop(&current, &json!({"error": null})),
            "removing an absent field"
        );
    }

    #[test]
    fn reconciled_spec_round_trips() {
        let spec = json!({"job": {"jarURI": "https://x/a.jar", "state": "running"}});
        let r = reconciliation_status(&spec, Some(3), true, ReconciliationState::Deployed);
        assert_eq!(last_reconciled_spec(Some(&r)), Some(spec));
        assert_eq!(r["lastStableSpec"], r["lastReconciledSpec"]);
        let text = r["lastReconciledSpec"].as_str().unwrap_or_default();
        assert!(text.contains("\"generation\":3"));
    }

    #[test]
    fn state_and_nonces_are_not_upgrades() {
        let a = json!({"job": {"jarURI": "j", "state": "running", "savepointTriggerNonce": 1}});
        let b = json!({"job": {"jarURI": "j", "state": "suspended", "savepointTriggerNonce": 2}});
        let c = json!({"job": {"jarURI": "k", "state": "running"}});
        assert_eq!(upgrade_relevant(&a), upgrade_relevant(&b));
        assert_ne!(upgrade_relevant(&a), upgrade_relevant(&c));
        let mut restarted = a.clone();
        restarted["restartNonce"] = json!(1);
        assert_ne!(upgrade_relevant(&a), upgrade_relevant(&restarted));
    }
}
