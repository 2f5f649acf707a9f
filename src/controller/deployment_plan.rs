//! The FlinkDeployment reconcile's decisions, as pure functions of what it
//! observed; `deployment` carries them out. Two points decide:
//! - [`transition`], before anything is applied: does the job stop, start,
//!   resume or upgrade?
//! - [`verdict`], after: what the cluster's status is, and when to look again.

use super::pod_health::Component;
use super::status::{JobManagerDeploymentStatus, JobState, Lifecycle};

/// What the reconcile knows before acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    /// An application cluster (a `job` in the spec), not a session cluster.
    pub application: bool,
    /// `job.state` is not `suspended`.
    pub want_running: bool,
    pub lifecycle: Option<Lifecycle>,
    /// A job id is recorded in status.
    pub has_job: bool,
    /// The upgrade-relevant spec differs from the last reconciled one.
    pub spec_changed: bool,
}

/// What happens to the job this reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transition {
    /// A running job's spec changed: stop it, start the new one.
    pub upgrade: bool,
    /// Stop the running job (suspend or upgrade) before the cluster changes.
    pub stop: bool,
    /// A suspended job is to run again.
    pub resume: bool,
    /// Submit a job under the next id: first start, resume or upgrade.
    pub start: bool,
}

impl Transition {
    /// The job's cluster changes under it (its state must be carried over).
    pub fn carries_state(self) -> bool {
        self.stop || self.resume
    }

    /// The lifecycle state while the new job is being started.
    pub fn starting_state(self) -> Lifecycle {
        if self.upgrade {
            Lifecycle::Upgrading
        } else {
            Lifecycle::Deployed
        }
    }
}

pub fn transition(b: Before) -> Transition {
    if !b.application {
        // A session cluster has no job of its own to carry.
        return Transition::default();
    }
    let suspended = b.lifecycle == Some(Lifecycle::Suspended);
    let upgrade = b.want_running && !suspended && b.has_job && b.spec_changed;
    Transition {
        upgrade,
        stop: (!b.want_running && !suspended) || upgrade,
        resume: b.want_running && suspended,
        start: b.want_running && (!b.has_job || suspended || upgrade),
    }
}

/// How the JobManager's REST API answered, if it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// No JobManager pod is available yet: not asked.
    NotAsked,
    /// Pods available, the API not answering yet.
    Silent,
    Answered,
}

/// What the reconcile saw after applying, for a running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub application: bool,
    pub rest: Rest,
    /// The job's state in Flink, when it was read.
    pub job: Option<JobState>,
    /// The JobManager Deployment's ReplicaFailure message.
    pub replica_failure: Option<String>,
    /// A failing pod (or crash-looping TaskManagers), when looked for.
    pub pod_failure: Option<(Component, String)>,
    /// Flink's message for a FAILED job.
    pub job_failure: Option<String>,
}

/// When to reconcile again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// All is well: the steady-state interval.
    Steady,
    /// The JobManager is up but not answering: soon, with backoff.
    NotReady,
    /// Waiting for pods or the job.
    Waiting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub jobmanager: JobManagerDeploymentStatus,
    pub lifecycle: Lifecycle,
    pub stable: bool,
    /// The Event reason and message of what failed.
    pub failure: Option<(&'static str, String)>,
    pub requeue: Requeue,
}

impl After {
    /// Whether it runs as it should before looking at pods: pod failures
    /// are looked for only when it does not.
    pub fn looks_healthy(&self) -> bool {
        self.rest == Rest::Answered && (!self.application || self.job == Some(JobState::Running))
    }
}

pub fn verdict(a: &After) -> Verdict {
    let mut jobmanager = match a.rest {
        Rest::NotAsked => JobManagerDeploymentStatus::Deploying,
        Rest::Silent => JobManagerDeploymentStatus::DeployedNotReady,
        Rest::Answered => JobManagerDeploymentStatus::Ready,
    };
    if matches!(a.pod_failure, Some((Component::JobManager, _))) {
        jobmanager = JobManagerDeploymentStatus::Error;
    }
    let failure = a
        .replica_failure
        .clone()
        .map(|m| (Component::JobManager.event_reason(), m))
        .or_else(|| a.pod_failure.clone().map(|(c, m)| (c.event_reason(), m)))
        .or_else(|| a.job_failure.clone().map(|m| ("JobFailed", m)));
    let stable = a.looks_healthy() && failure.is_none();
    let lifecycle = if failure.is_some() {
        Lifecycle::Failed
    } else if stable {
        Lifecycle::Stable
    } else {
        Lifecycle::Deployed
    };
    let requeue = if stable {
        Requeue::Steady
    } else if a.rest == Rest::Silent {
        Requeue::NotReady
    } else {
        Requeue::Waiting
    };
    Verdict {
        jobmanager,
        lifecycle,
        stable,
        failure,
        requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn before(want_running: bool, lifecycle: Option<Lifecycle>, has_job: bool) -> Before {
        Before {
            application: true,
            want_running,
            lifecycle,
            has_job,
            spec_changed: false,
        }
    }

    #[test]
    fn the_lifecycle_table() {
        use Lifecycle::*;
        let t = |b: Before| transition(b);
        // (what, before, upgrade, stop, resume, start)
        let table = [
            (
                "first start",
                before(true, None, false),
                false,
                false,
                false,
                true,
            ),
            (
                "created, no job yet",
                before(true, Some(Created), false),
                false,
                false,
                false,
                true,
            ),
            (
                "running, unchanged",
                before(true, Some(Stable), true),
                false,
                false,
                false,
                false,
            ),
            (
                "suspend a running job",
                before(false, Some(Stable), true),
                false,
                true,
                false,
                false,
            ),
            (
                "suspend a failed job",
                before(false, Some(Failed), true),
                false,
                true,
                false,
                false,
            ),
            (
                "stay suspended",
                before(false, Some(Suspended), true),
                false,
                false,
                false,
                false,
            ),
            (
                "resume",
                before(true, Some(Suspended), true),
                false,
                false,
                true,
                true,
            ),
            (
                "spec change while running: upgrade",
                Before {
                    spec_changed: true,
                    ..before(true, Some(Stable), true)
                },
                true,
                true,
                false,
                true,
            ),
            (
                "spec change while suspended: applied on resume",
                Before {
                    spec_changed: true,
                    ..before(false, Some(Suspended), true)
                },
                false,
                false,
                false,
                false,
            ),
            (
                "spec change before the first job: just a start",
                Before {
                    spec_changed: true,
                    ..before(true, Some(Deployed), false)
                },
                false,
                false,
                false,
                true,
            ),
        ];
        for (what, b, upgrade, stop, resume, start) in table {
            assert_eq!(
                t(b),
                Transition {
                    upgrade,
                    stop,
                    resume,
                    start
                },
                "{what}"
            );
        }
        let session = Before {
            application: false,
            spec_changed: true,
            ..before(false, Some(Stable), false)
        };
        assert_eq!(
            t(session),
            Transition::default(),
            "a session cluster carries no job"
        );
        let up = t(Before {
            spec_changed: true,
            ..before(true, Some(Stable), true)
        });
        assert_eq!(up.starting_state(), Upgrading);
        assert!(up.carries_state());
        assert_eq!(t(before(true, None, false)).starting_state(), Deployed);
    }

    fn after(rest: Rest, job: Option<JobState>) -> After {
        After {
            application: true,
            rest,
            job,
            replica_failure: None,
            pod_failure: None,
            job_failure: None,
        }
    }

    #[test]
    fn the_status_follows_what_was_seen() {
        use JobManagerDeploymentStatus as Jm;
        let v = verdict(&after(Rest::NotAsked, None));
        assert_eq!(
            (v.jobmanager, v.lifecycle, v.requeue),
            (Jm::Deploying, Lifecycle::Deployed, Requeue::Waiting)
        );
        let v = verdict(&after(Rest::Silent, None));
        assert_eq!(
            (v.jobmanager, v.requeue),
            (Jm::DeployedNotReady, Requeue::NotReady)
        );
        let v = verdict(&after(Rest::Answered, Some(JobState::Restarting)));
        assert_eq!(
            (v.jobmanager, v.lifecycle, v.stable),
            (Jm::Ready, Lifecycle::Deployed, false)
        );
        let v = verdict(&after(Rest::Answered, Some(JobState::Running)));
        assert_eq!(
            (v.lifecycle, v.stable, v.requeue),
            (Lifecycle::Stable, true, Requeue::Steady)
        );
        let session = After {
            application: false,
            ..after(Rest::Answered, None)
        };
        assert!(
            verdict(&session).stable,
            "a session cluster is stable once its REST API answers"
        );
    }

    #[test]
    fn failures_win_in_order_and_name_their_cause() {
        let failed_job = After {
            job_failure: Some("job x failed in Flink: boom".into()),
            ..after(Rest::Answered, Some(JobState::Failed))
        };
        let v = verdict(&failed_job);
        assert_eq!(v.lifecycle, Lifecycle::Failed);
        assert_eq!(
            v.failure,
            Some(("JobFailed", "job x failed in Flink: boom".into()))
        );

        let jm_pod = After {
            pod_failure: Some((Component::JobManager, "ErrImagePull".into())),
            ..failed_job.clone()
        };
        let v = verdict(&jm_pod);
        assert_eq!(v.jobmanager, JobManagerDeploymentStatus::Error);
        assert_eq!(
            v.failure.as_ref().map(|f| f.1.as_str()),
            Some("ErrImagePull"),
            "a pod's cause before the job's"
        );

        let no_pods = After {
            replica_failure: Some("quota".into()),
            ..jm_pod
        };
        assert_eq!(
            verdict(&no_pods).failure.map(|f| f.1),
            Some("quota".into()),
            "pods that cannot even be created first"
        );

        let crash_loop = After {
            pod_failure: Some((Component::TaskManager, "exit 1 twice".into())),
            ..after(Rest::Answered, Some(JobState::Running))
        };
        let v = verdict(&crash_loop);
        assert!(
            !v.stable && v.lifecycle == Lifecycle::Failed,
            "RUNNING in Flink, but TaskManagers crash-loop"
        );
        assert_eq!(v.jobmanager, JobManagerDeploymentStatus::Ready);
    }
}
