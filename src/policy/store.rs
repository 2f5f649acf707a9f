//! The policy in force, swapped atomically: a request holds one `Arc<Policy>`
//! for its whole decision and never sees half of two policies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;

use super::document::Policy;
use crate::telemetry::Metrics;

pub struct PolicyStore {
    current: ArcSwapOption<Policy>,
    generation: AtomicU64,
    metrics: Metrics,
}

impl PolicyStore {
    /// An empty store: not ready until a policy is installed.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            metrics,
        }
    }

    /// Puts a checked policy in force; returns its generation.
    pub fn install(&self, mut policy: Policy) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        policy.generation = generation;
        self.current.store(Some(Arc::new(policy)));
        self.metrics.policy_generation.set(generation as i64);
        generation
    }

    /// Records a rejected policy document (the current one stays).
    pub fn record_rejection(&self) {
        self.metrics.policy_reload_errors.inc();
    }

    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    /// The policy in force for a short use that does not await, such as one
    /// admission decision. Unlike [`Self::current`] it touches no reference
    /// count: that is an atomic add on a cache line every worker thread
    /// shares, paid twice per review.
    pub fn borrow(&self) -> arc_swap::Guard<Option<Arc<Policy>>> {
        self.current.load()
    }

    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }
}
