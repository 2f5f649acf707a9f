//! The status values the operator writes, as enums spelled exactly as it
//! spells them, and [`Reported`], which reads them without losing a value
//! some other writer (a newer operator) put there.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Spells each variant as the operator does and parses it back.
macro_rules! spelled {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(
    /// `status.lifecycleState` (the operator's `ResourceLifecycleState`).
    Lifecycle {
        Created => "CREATED",
        Suspended => "SUSPENDED",
        Upgrading => "UPGRADING",
        Deployed => "DEPLOYED",
        Stable => "STABLE",
        RollingBack => "ROLLING_BACK",
        RolledBack => "ROLLED_BACK",
        Failed => "FAILED",
        Deleting => "DELETING",
        Deleted => "DELETED",
    }
);

spelled!(
    /// `status.jobManagerDeploymentStatus` (the operator's
    /// `JobManagerDeploymentStatus`).
    JobManagerDeploymentStatus {
        Ready => "READY",
        DeployedNotReady => "DEPLOYED_NOT_READY",
        Deploying => "DEPLOYING",
        Missing => "MISSING",
        Error => "ERROR",
    }
);

spelled!(
    /// `status.reconciliationStatus.state` (the operator's
    /// `ReconciliationState`).
    ReconciliationState {
        Deployed => "DEPLOYED",
        Upgrading => "UPGRADING",
        RollingBack => "ROLLING_BACK",
        RolledBack => "ROLLED_BACK",
    }
);

spelled!(
    /// `status.jobStatus.state`: Flink's `JobStatus`, plus the operator's
    /// `RECONCILING` while a job is being (re)submitted.
    JobState {
        Initializing => "INITIALIZING",
        Created => "CREATED",
        Running => "RUNNING",
        Failing => "FAILING",
        Failed => "FAILED",
        Cancelling => "CANCELLING",
        Canceled => "CANCELED",
        Finished => "FINISHED",
        Restarting => "RESTARTING",
        Suspended => "SUSPENDED",
        Reconciling => "RECONCILING",
    }
);

impl Lifecycle {
    /// The Event reason for entering this state.
    pub fn event_reason(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Suspended => "Suspended",
            Self::Upgrading => "Upgrading",
            Self::Deployed => "Deployed",
            Self::Stable => "Stable",
            Self::RollingBack => "RollingBack",
            Self::RolledBack => "RolledBack",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
            Self::Deleted => "Deleted",
        }
    }
}

impl JobState {
    /// Flink is done with the job: it will not run again by itself.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Canceled | Self::Failed)
    }
}

/// A status value as read: one of the known spellings, or the text as it
/// was, kept so nothing another writer put there is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reported<T> {
    Known(T),
    Other(String),
}

impl<T: Copy> Reported<T> {
    pub fn known(&self) -> Option<T> {
        match self {
            Self::Known(v) => Some(*v),
            Self::Other(_) => None,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Reported<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known(v) => v.fmt(f),
            Self::Other(text) => f.write_str(text),
        }
    }
}

impl<T: PartialEq> PartialEq<T> for Reported<T> {
    fn eq(&self, other: &T) -> bool {
        matches!(self, Self::Known(v) if v == other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_as_the_operator_spells_them_and_read_back() {
        for l in Lifecycle::ALL {
            let json = serde_json::to_value(l).unwrap();
            assert_eq!(json, l.as_str());
            assert_eq!(Lifecycle::parse(l.as_str()), Some(*l));
            assert_eq!(serde_json::from_value::<Lifecycle>(json).unwrap(), *l);
        }
        assert_eq!(
            JobManagerDeploymentStatus::DeployedNotReady.as_str(),
            "DEPLOYED_NOT_READY"
        );
        assert_eq!(ReconciliationState::RolledBack.to_string(), "ROLLED_BACK");
        assert!(JobState::Canceled.is_terminal() && !JobState::Restarting.is_terminal());
    }

    #[test]
    fn unknown_values_are_kept_as_written() {
        let known: Reported<Lifecycle> = serde_json::from_str(r#""STABLE""#).unwrap();
        assert_eq!(known, Lifecycle::Stable);
        let other: Reported<Lifecycle> = serde_json::from_str(r#""HIBERNATING""#).unwrap();
        assert_eq!(other, Reported::Other("HIBERNATING".into()));
        assert_eq!(other.known(), None);
        assert_eq!(serde_json::to_string(&other).unwrap(), r#""HIBERNATING""#);
        assert_eq!(other.to_string(), "HIBERNATING");
        assert_eq!(known.to_string(), "STABLE");
    }
}
