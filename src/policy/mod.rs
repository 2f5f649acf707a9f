//! The policy: one YAML document of global rules plus per-namespace
//! overrides, checked completely before it may take effect.

mod document;
mod model;
pub mod source;
mod store;

pub use document::{BUILTIN_YAML, Policy, PolicyError};
pub use model::{
    ComponentLimits, Defaults, Limits, Mode, PodComponentRules, PodResources, PodRules,
    RebalanceRules, ResourceDefaults, Rules, SchedulingRules,
};
pub use store::PolicyStore;
