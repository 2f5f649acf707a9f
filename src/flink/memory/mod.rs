//! Flink's memory model (FLIP-49 for TaskManagers, FLIP-116 for JobManagers),
//! derived from a flat Flink configuration the way Flink 1.20 derives it when
//! a process starts, so a configuration can be judged without running Flink:
//! does it give a TaskManager / JobManager that starts, and if not, which keys
//! to change. `tests/memory_model.rs` checks it byte for byte against Flink
//! 1.20.5's `BashJavaUtils`. Flink 2.x derives sizes the same way, but it
//! dropped deprecated keys this module still reads (legacy heap keys, old
//! network keys, `taskmanager.network.numberOfBuffers`); that is unverified.
//!
//! Everything here follows `TaskExecutorProcessUtils.processSpecFromConfig`
//! and `JobManagerProcessUtils.processSpecFromConfigWithNewOptionToInterpretLegacyHeap`
//! (with the legacy heap keys mapped first, as `BashJavaUtils` does), through
//! `ProcessMemoryUtils`, `TaskExecutorFlinkMemoryUtils`,
//! `JobManagerFlinkMemoryUtils` and `MemorySize`:
//!
//! * One of three ways sizes a process, tried in this order: the fine-grained
//!   options (TaskManager: task heap *and* managed memory; JobManager: heap),
//!   the Total Flink Memory, the Total Process Memory. None of them is
//!   [`MemoryModelError::NotConfigured`].
//! * Options are read lazily: a malformed value only fails when Flink reads it
//!   (a broken `managed.fraction` is harmless while `managed.size` is set).
//! * Fractions are Java floats widened to double and must lie in `[0, 1)`;
//!   min must not exceed max. A size derived from a fraction is clamped to the
//!   range; a size left over after explicit sizes must already lie in it.
//! * `MemorySize.multiply` multiplies the byte count by
//!   `BigDecimal.valueOf(double)` (the decimal of `Double.toString`) and
//!   truncates, so sizes here are byte-exact with Flink's.
//! * Sizes are Java longs: any sum beyond 2^63 - 1 fails.
//! * Flink reads older keys after the current ones: `taskmanager.memory.size`
//!   for managed memory, `taskmanager.network.memory.{min,max,fraction}`;
//!   `taskmanager.heap.size` / `.mb` stand for the Total Flink Memory and
//!   `jobmanager.heap.size` / `.mb` for the JobManager heap when the new key
//!   is unset; `taskmanager.network.numberOfBuffers` times
//!   `taskmanager.memory.segment-size` is the network memory when no network
//!   key is set.
//! * A TaskManager also needs CPU cores (`taskmanager.cpu.cores`, else the
//!   number of slots, > 0); a JobManager needs a non-empty heap when sized by
//!   its Total Flink or Process Memory, and a boolean
//!   `jobmanager.memory.enable-jvm-direct-memory-limit`.
//!
//! Not modelled: the `FLINK_TM_HEAP` / `FLINK_JM_HEAP` environment variables
//! (which override the legacy heap keys), hexadecimal float literals (`0x1p-3`,
//! which Java accepts for fractions), non-ASCII digits in integers,
//! `external-resources`, values typed by a YAML parser (values are read as
//! the strings given), `Double.toString` outputs of JDK 17 and older that are
//! longer than the shortest form (none seen for fractions in 400k samples),
//! and the log-only warnings (JobManager heap below 128m, a fraction that
//! does not match explicitly set sizes).
//!
//! Submodules, leaf first: `java_number` (Java's number grammar), `size`
//! (Flink's `MemorySize`), `error`, `options` (keys, defaults, reading them),
//! `process` (JVM metaspace and overhead), then the two derivations,
//! `task_manager` and `job_manager`.

use std::collections::BTreeMap;

mod error;
mod java_number;
mod job_manager;
mod options;
mod process;
mod size;
mod task_manager;

pub use error::{
    Expected, InvalidValue, LegacyNetworkMismatch, MemoryModelError, OutOfRange, Part, Process,
    Shortfall, SumMismatch, Total,
};
pub use job_manager::JobManagerMemory;
pub use options::reads_key;
pub use process::SizedBy;
pub use size::{MAX_BYTES, parse_memory_size, size};
pub use task_manager::TaskManagerMemory;

/// Derives the memory model of a TaskManager from a flat Flink configuration.
pub fn task_manager(
    conf: &BTreeMap<String, String>,
) -> Result<TaskManagerMemory, MemoryModelError> {
    task_manager::derive(conf)
}

/// Derives the memory model of a JobManager from a flat Flink configuration.
pub fn job_manager(conf: &BTreeMap<String, String>) -> Result<JobManagerMemory, MemoryModelError> {
    job_manager::derive(conf)
}

/// A flat configuration from pairs, for the tests of the submodules.
#[cfg(test)]
fn conf(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        const KEYS: &[&str] = &[
            "taskmanager.memory.process.size",
            "taskmanager.memory.flink.size",
            "taskmanager.memory.task.heap.size",
            "taskmanager.memory.managed.size",
            "taskmanager.memory.size",
            "taskmanager.memory.managed.fraction",
            "taskmanager.memory.framework.heap.size",
            "taskmanager.memory.framework.off-heap.size",
            "taskmanager.memory.task.off-heap.size",
            "taskmanager.memory.network.min",
            "taskmanager.memory.network.max",
            "taskmanager.memory.network.fraction",
            "taskmanager.network.memory.fraction",
            "taskmanager.network.numberOfBuffers",
            "taskmanager.memory.segment-size",
            "taskmanager.memory.jvm-metaspace.size",
            "taskmanager.memory.jvm-overhead.min",
            "taskmanager.memory.jvm-overhead.max",
            "taskmanager.memory.jvm-overhead.fraction",
            "taskmanager.heap.size",
            "taskmanager.heap.mb",
            "taskmanager.cpu.cores",
            "taskmanager.numberOfTaskSlots",
            "jobmanager.memory.process.size",
            "jobmanager.memory.flink.size",
            "jobmanager.memory.heap.size",
            "jobmanager.memory.off-heap.size",
            "jobmanager.memory.jvm-metaspace.size",
            "jobmanager.memory.jvm-overhead.min",
            "jobmanager.memory.jvm-overhead.max",
            "jobmanager.memory.jvm-overhead.fraction",
            "jobmanager.memory.enable-jvm-direct-memory-limit",
            "jobmanager.heap.size",
            "jobmanager.heap.mb",
        ];

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                (
                    any::<u64>(),
                    prop::sample::select(vec!["", "b", "k", "m", "g", "t", "kb", " mb"])
                )
                    .prop_map(|(n, u)| format!("{n}{u}")),
                (0u64..5000, prop::sample::select(vec!["m", "g"]))
                    .prop_map(|(n, u)| format!("{n}{u}")),
                any::<f32>().prop_map(|f| f.to_string()),
                (-2.0f64..2.0).prop_map(|f| f.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                Just("NaN".to_string()),
                Just("-Infinity".to_string()),
                Just("9223372036854775807".to_string()),
                ".{0,12}",
            ]
        }

        proptest! {
            #[test]
            fn arbitrary_maps(entries in prop::collection::btree_map(prop::sample::select(KEYS), value(), 0..10)) {
                let map: BTreeMap<String, String> =
                    entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                if let Ok(m) = task_manager(&map) {
                    prop_assert_eq!(
                        m.total_process,
                        m.total_flink + m.jvm_metaspace + m.jvm_overhead
                    );
                    prop_assert_eq!(
                        m.total_flink,
                        m.framework_heap + m.task_heap + m.framework_off_heap
                            + m.task_off_heap + m.network + m.managed
                    );
                }
                if let Ok(m) = job_manager(&map) {
                    prop_assert_eq!(
                        m.total_process,
                        m.total_flink + m.jvm_metaspace + m.jvm_overhead
                    );
                }
                let _ = task_manager(&map).map_err(|e| e.to_string());
                let _ = job_manager(&map).map_err(|e| e.to_string());
            }
        }
    }
}
