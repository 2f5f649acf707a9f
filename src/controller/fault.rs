//! Deliberate crash points, for the tests that prove a restarted controller
//! converges. Compiled only with the `test-support` feature (tests enable
//! it), so a release binary has neither the flag nor the code.

/// A deliberate crash point, for the tests that prove a restarted
/// controller converges (test builds only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Exit after the job id is persisted, before Flink is asked to run it.
    ExitBeforeSubmit,
    /// Exit right after Flink accepted the job, before status records it.
    ExitAfterSubmit,
    /// A background task of the server panics half a second after start
    /// (proves a dead task fails readiness and stops the process).
    PanicTask,
}
