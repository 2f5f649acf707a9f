//! flinkgate: admission webhook (and, later, scheduler extender and
//! controller) for Apache Flink on Kubernetes. See the README and
//! `../shared/architecture.md` for the picture.

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
