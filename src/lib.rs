//! flinkgate: an admission webhook, scheduler extender and controller for
//! Apache Flink on Kubernetes, in one binary (see the README).
//!
//! How the pieces fit:
//! - [`server`] composes `flinkgate serve`: a checked [`server::Config`],
//!   the router, and every background task, stopped in order on SIGTERM.
//! - [`http`] is the HTTP plumbing the handlers share (errors, bodies, TLS
//!   accept loop); [`admission`] (`/validate`, `/mutate`) and [`scheduler`]
//!   (`/scheduler/*`) hold the handlers and their pure decisions.
//! - [`policy`] is the policy document and where it comes from; [`flink`]
//!   is what flinkgate knows of Flink (CRDs, configuration, memory model,
//!   the REST client).
//! - [`controller`] reconciles FlinkDeployment, FlinkSessionJob and
//!   FlinkStateSnapshot; [`collector`] measures F(x) from running jobs and
//!   publishes node scores; both run only on the [`leader`].
//! - [`k8s`] builds the client and the watches; [`tasks`] owns background
//!   tasks; [`check`] and [`register`] are the offline and cluster-admin
//!   commands.

pub mod address;
pub mod admission;
pub mod certs;
pub mod check;
pub mod cli;
pub mod cluster_dns;
pub mod collector;
pub mod controller;
pub mod flink;
pub mod http;
pub mod k8s;
pub mod leader;
pub mod policy;
pub mod quantity;
pub mod register;
pub mod scheduler;
pub mod server;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod watch;
