//! A broken rule, phrased so a person can act on it: where, what, and the fix.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Field path in the object, e.g. `spec.job.parallelism`.
    pub path: String,
    /// What is wrong, quoting the offending value.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Violation {
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.path, self.message, self.fix)
    }
}

/// Renders a value for a message: strings quoted, the rest as JSON.
pub fn show(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "<unprintable>".into())
}
