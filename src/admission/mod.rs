//! The admission webhook: AdmissionReview in, verdict and JSON Patch out.

mod checks;
mod component_memory;
pub mod decide;
mod diff;
pub mod mutate;
mod operator_options;
pub mod review;
pub mod server;
pub mod session_cache;
pub mod sessions;
pub mod validate;
pub mod violation;

pub use decide::{Endpoint, Outcome, Subject, Target};
