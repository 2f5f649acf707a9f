//! A named set of background tasks that the server owns: every task it
//! starts is joined at shutdown, and one that ends on its own (returns or
//! panics) is reported by name instead of vanishing.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub name: &'static str,
    /// The panic message, when it panicked.
    pub panic: Option<String>,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.panic {
            None => write!(f, "task {} ended", self.name),
            Some(why) => write!(f, "task {} panicked: {why}", self.name),
        }
    }
}

#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// For work that needs its own thread (and runtime).
    pub fn spawn_blocking(&mut self, name: &'static str, task: impl FnOnce() + Send + 'static) {
        let handle = self.set.spawn_blocking(task);
        self.names.insert(handle.id(), name);
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next task to end; pending forever when there is none, so it can
    /// sit in a `select!` beside other work.
    pub async fn next_ended(&mut self) -> Ended {
        let Some(result) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, panic) = match result {
            Ok((id, ())) => (id, None),
            Err(e) => {
                let id = e.id();
                let why = if e.is_cancelled() {
                    "cancelled".to_string()
                } else {
                    panic_message(e.into_panic())
                };
                (id, Some(why))
            }
        };
        Ended {
            name: self.names.remove(&id).unwrap_or("unnamed"),
            panic,
        }
    }

    /// Waits up to `timeout` for every task to end (their stop signal was
    /// given), then aborts the rest. Returns the names of those aborted.
    pub async fn join_all(mut self, timeout: Duration) -> Vec<&'static str> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.set.is_empty() {
            match tokio::time::timeout_at(deadline, self.next_ended()).await {
                Ok(ended) => {
                    if let Some(why) = &ended.panic {
                        tracing::error!(task = ended.name, panic = %why, "task panicked while stopping");
                    } else {
                        tracing::debug!(task = ended.name, "task stopped");
                    }
                }
                Err(_) => break,
            }
        }
        let mut aborted: Vec<&'static str> = self.names.values().copied().collect();
        aborted.sort_unstable();
        self.set.abort_all();
        aborted
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a non-text panic".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ended_tasks_are_named_and_panics_reported() {
        let mut tasks = Tasks::new();
        tasks.spawn("quiet", async {});
        let ended = tasks.next_ended().await;
        assert_eq!(
            ended,
            Ended {
                name: "quiet",
                panic: None
            }
        );
        tasks.spawn("broken", async { panic!("boom") });
        let ended = tasks.next_ended().await;
        assert_eq!(ended.name, "broken");
        assert_eq!(ended.panic.as_deref(), Some("boom"));
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn join_all_aborts_what_does_not_stop_in_time() {
        let mut tasks = Tasks::new();
        tasks.spawn("stuck", std::future::pending());
        tasks.spawn("done", async {});
        let aborted = tasks.join_all(Duration::from_millis(50)).await;
        assert_eq!(aborted, ["stuck"]);
    }
}
