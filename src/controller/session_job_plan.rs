//! The FlinkSessionJob reconcile's decision, as a pure function of what it
//! observed; `session_job` carries it out.

use super::status::{JobState, Lifecycle};
use crate::flink::status::Reported;

/// What the reconcile knows once the session cluster answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `job.state` is not `suspended`.
    pub want_running: bool,
    /// The recorded job's state in Flink; `None` when no id is recorded or
    /// Flink does not know it.
    pub job: Option<Reported<JobState>>,
    /// A job id is recorded in status.
    pub has_recorded_id: bool,
    /// The upgrade-relevant spec differs from the last reconciled one.
    pub spec_changed: bool,
    pub lifecycle: Option<Lifecycle>,
}

/// The one thing this reconcile does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It runs as specified: report it (stable once RUNNING).
    Report { stable: bool },
    /// It runs but the spec changed (or a restartNonce): stop, resubmit.
    Upgrade,
    /// It ended because we stopped it (suspend, a spec change): submit again.
    Resubmit,
    /// It finished or failed on its own: report, do not restart it (Flink's
    /// restart strategy already had its say).
    ReportEnded { failed: bool },
    /// The id is recorded but Flink does not know it: the last attempt died
    /// before Flink ran it. Submit under the same id.
    SubmitRecordedId,
    /// Nothing recorded: submit under a new id.
    SubmitNext,
    /// It should be suspended and still runs: stop it.
    Suspend,
    /// Suspended and not running: record that.
    StaySuspended,
}

/// A job Flink still runs (or will): any state but a terminal one, an
/// unknown state included, so nothing is resubmitted over a live job.
fn live(state: &Reported<JobState>) -> bool {
    !state.known().is_some_and(JobState::is_terminal)
}

pub fn plan(s: &Seen) -> Step {
    match (s.want_running, &s.job) {
        (true, Some(j)) if live(j) && !s.spec_changed => Step::Report {
            stable: *j == JobState::Running,
        },
        (true, Some(j)) if live(j) => Step::Upgrade,
        (true, Some(j)) => {
            let ours = matches!(
                s.lifecycle,
                Some(Lifecycle::Suspended | Lifecycle::Upgrading)
            );
            if ours || s.spec_changed {
                Step::Resubmit
            } else {
                Step::ReportEnded {
                    failed: *j == JobState::Failed,
                }
            }
        }
        (true, None) if s.has_recorded_id => Step::SubmitRecordedId,
        (true, None) => Step::SubmitNext,
        (false, Some(j)) if live(j) => Step::Suspend,
        (false, _) => Step::StaySuspended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(want_running: bool, job: Option<JobState>, lifecycle: Option<Lifecycle>) -> Seen {
        Seen {
            want_running,
            job: job.map(Reported::Known),
            has_recorded_id: job.is_some(),
            spec_changed: false,
            lifecycle,
        }
    }

    #[test]
    fn the_lifecycle_table() {
        use JobState::*;
        use Lifecycle::{Deployed, Stable, Suspended, Upgrading};
        let changed = |s: Seen| Seen {
            spec_changed: true,
            ..s
        };
        let table = [
            ("new: submit", seen(true, None, None), Step::SubmitNext),
            (
                "recorded, unknown to Flink: the same id again",
                Seen {
                    has_recorded_id: true,
                    ..seen(true, None, Some(Deployed))
                },
                Step::SubmitRecordedId,
            ),
            (
                "running",
                seen(true, Some(Running), Some(Stable)),
                Step::Report { stable: true },
            ),
            (
                "restarting is not stable",
                seen(true, Some(Restarting), Some(Stable)),
                Step::Report { stable: false },
            ),
            (
                "spec changed: upgrade",
                changed(seen(true, Some(Running), Some(Stable))),
                Step::Upgrade,
            ),
            (
                "suspend",
                seen(false, Some(Running), Some(Stable)),
                Step::Suspend,
            ),
            (
                "suspended and stopped",
                seen(false, Some(Finished), Some(Suspended)),
                Step::StaySuspended,
            ),
            (
                "suspended, nothing recorded",
                seen(false, None, None),
                Step::StaySuspended,
            ),
            (
                "resume",
                seen(true, Some(Finished), Some(Suspended)),
                Step::Resubmit,
            ),
            (
                "an upgrade's stop went through: resubmit",
                seen(true, Some(Canceled), Some(Upgrading)),
                Step::Resubmit,
            ),
            (
                "finished on its own",
                seen(true, Some(Finished), Some(Stable)),
                Step::ReportEnded { failed: false },
            ),
            (
                "failed on its own",
                seen(true, Some(Failed), Some(Stable)),
                Step::ReportEnded { failed: true },
            ),
            (
                "failed, then the spec changed: resubmit",
                changed(seen(true, Some(Failed), Some(Stable))),
                Step::Resubmit,
            ),
        ];
        for (what, s, step) in table {
            assert_eq!(plan(&s), step, "{what}");
        }
    }

    #[test]
    fn an_unknown_state_counts_as_live() {
        let s = Seen {
            job: Some(Reported::Other("HIBERNATING".into())),
            ..seen(true, Some(JobState::Running), Some(Lifecycle::Stable))
        };
        assert_eq!(plan(&s), Step::Report { stable: false });
        let s = Seen {
            want_running: false,
            ..s
        };
        assert_eq!(plan(&s), Step::Suspend, "never left running unseen");
    }
}
