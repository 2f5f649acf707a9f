//! The admission webhook: AdmissionReview in, verdict and JSON Patch out.

mod checks;
pub mod cluster_cache;
pub mod cluster_view;
mod component_memory;
pub mod decide;
pub mod handler;
pub mod ingress;
pub mod mutate;
pub mod object;
mod operator_options;
pub mod review;
pub mod validate;
pub mod violation;

pub use decide::{Endpoint, Outcome, Subject, Target};
