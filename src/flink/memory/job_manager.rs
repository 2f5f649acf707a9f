//! A JobManager's memory (FLIP-116), as `JobManagerProcessUtils` and
//! `JobManagerFlinkMemoryUtils` derive it: JVM heap and off-heap memory.

use std::collections::BTreeMap;

use super::error::{MemoryModelError, Process, Result, Shortfall, SumMismatch, Total};
use super::options::{
    Conf, JM_DIRECT_LIMIT, JM_FLINK, JM_HEAP, JM_JVM, JM_LEGACY_HEAP, JM_LEGACY_HEAP_MB,
    JM_OFF_HEAP, JM_PROCESS, configured_total, explicit_part,
};
use super::process::{FlinkOrigin, SizedBy, jvm_from_total_flink, jvm_from_total_process};
use super::size::size;

/// A JobManager's memory, in bytes, as Flink would start it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobManagerMemory {
    pub sized_by: SizedBy,
    /// `-Xmx` / `-Xms`.
    pub jvm_heap: u64,
    pub off_heap: u64,
    pub jvm_metaspace: u64,
    pub jvm_overhead: u64,
    /// JVM heap plus off-heap memory.
    pub total_flink: u64,
    /// Total Flink Memory plus JVM metaspace and overhead: the container size.
    pub total_process: u64,
    /// `jobmanager.memory.enable-jvm-direct-memory-limit`: whether the JVM
    /// gets `-XX:MaxDirectMemorySize` = `off_heap`.
    pub jvm_direct_memory_limit: bool,
}

/// Derives the memory model of a JobManager from a flat Flink configuration
/// (`JobManagerProcessUtils.processSpecFromConfigWithNewOptionToInterpretLegacyHeap`).
pub(super) fn derive(
    conf: &BTreeMap<String, String>,
) -> std::result::Result<JobManagerMemory, MemoryModelError> {
    let mut c = Conf::new(conf, Process::JobManager);
    c.map_legacy_heap(&JM_HEAP, &JM_LEGACY_HEAP, &JM_LEGACY_HEAP_MB)?;
    let (sized_by, heap, off_heap, jvm) = if c.contains(&JM_HEAP.opt) {
        let heap = c.size(&JM_HEAP)?;
        let mut off_heap = c.size(&JM_OFF_HEAP)?;
        if c.contains(&JM_FLINK.opt) {
            let total = configured_total("Total Flink Memory", c.size(&JM_FLINK)?);
            let parts = vec![
                explicit_part("JVM heap", heap),
                explicit_part("off-heap memory", off_heap),
            ];
            if off_heap.explicit {
                let sum = c.add(
                    &[heap.bytes, off_heap.bytes],
                    "JVM heap and off-heap memory",
                )?;
                if sum != total.bytes {
                    return Err(MemoryModelError::SumMismatch(Box::new(SumMismatch {
                        process: c.process,
                        total,
                        parts,
                    })));
                }
            } else {
                if total.bytes < heap.bytes {
                    return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
                        process: c.process,
                        total,
                        parts: vec![explicit_part("JVM heap", heap)],
                        rest: None,
                    })));
                }
                off_heap.bytes = total.bytes - heap.bytes;
            }
        }
        let total_flink = c.add(
            &[heap.bytes, off_heap.bytes],
            "JVM heap and off-heap memory",
        )?;
        let origin = FlinkOrigin {
            keys: vec![heap.key],
            note: Some(format!("JVM heap plus off-heap {}", size(off_heap.bytes))),
        };
        let jvm = jvm_from_total_flink(&c, &JM_JVM, total_flink, origin)?;
        (SizedBy::FineGrained, heap.bytes, off_heap.bytes, jvm)
    } else if c.contains(&JM_FLINK.opt) {
        let total = c.size(&JM_FLINK)?;
        let (heap, off_heap) =
            jm_flink_from_total(&c, &configured_total("Total Flink Memory", total))?;
        let origin = FlinkOrigin {
            keys: vec![total.key],
            note: None,
        };
        let jvm = jvm_from_total_flink(&c, &JM_JVM, total.bytes, origin)?;
        (SizedBy::TotalFlink, heap, off_heap, jvm)
    } else if c.contains(&JM_PROCESS.opt) {
        let (jvm, total) = jvm_from_total_process(&c, &JM_JVM)?;
        let (heap, off_heap) = jm_flink_from_total(&c, &total)?;
        (SizedBy::TotalProcess, heap, off_heap, jvm)
    } else {
        return Err(MemoryModelError::NotConfigured {
            process: Process::JobManager,
        });
    };
    let total_flink = c.add(&[heap, off_heap], "JVM heap and off-heap memory")?;
    let total_process = c.add(
        &[total_flink, jvm.metaspace, jvm.overhead],
        "Total Flink Memory, JVM metaspace and overhead",
    )?;
    let jvm_direct_memory_limit = c.boolean(&JM_DIRECT_LIMIT, false)?;
    Ok(JobManagerMemory {
        sized_by,
        jvm_heap: heap,
        off_heap,
        jvm_metaspace: jvm.metaspace,
        jvm_overhead: jvm.overhead,
        total_flink,
        total_process,
        jvm_direct_memory_limit,
    })
}

/// `JobManagerFlinkMemoryUtils.deriveFromTotalFlinkMemory`: heap is what the
/// off-heap memory leaves, and must not be empty (`compareTo(...) < 1`).
fn jm_flink_from_total(c: &Conf, total: &Total) -> Result<(u64, u64)> {
    let off_heap = c.size(&JM_OFF_HEAP)?;
    if total.bytes <= off_heap.bytes {
        return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
            process: c.process,
            total: total.clone(),
            parts: vec![explicit_part("off-heap memory", off_heap)],
            rest: Some("JVM heap"),
        })));
    }
    Ok((total.bytes - off_heap.bytes, off_heap.bytes))
}

#[cfg(test)]
mod tests {
    use super::super::size::{GIB, MIB};
    use super::*;
    use crate::flink::memory::conf;

    fn jm(pairs: &[(&str, &str)]) -> std::result::Result<JobManagerMemory, MemoryModelError> {
        derive(&conf(pairs))
    }

    fn jm_err(pairs: &[(&str, &str)]) -> MemoryModelError {
        match jm(pairs) {
            Ok(m) => panic!("expected an error for {pairs:?}, got {m:?}"),
            Err(e) => e,
        }
    }

    // Expected bytes below are what Flink 1.20.5's BashJavaUtils printed.

    #[test]
    fn job_manager_paths() {
        let m = jm(&[("jobmanager.memory.process.size", "1600m")]).unwrap();
        assert_eq!(m.sized_by, SizedBy::TotalProcess);
        assert_eq!(m.jvm_heap, GIB);
        assert_eq!(m.off_heap, 128 * MIB);
        assert_eq!(m.jvm_metaspace, 256 * MIB);
        assert_eq!(m.jvm_overhead, 192 * MIB);
        assert!(!m.jvm_direct_memory_limit);

        let m = jm(&[("jobmanager.memory.heap.size", "1g")]).unwrap();
        assert_eq!(m.sized_by, SizedBy::FineGrained);
        assert_eq!(m.total_flink, GIB + 128 * MIB);

        let m = jm(&[("jobmanager.heap.size", "1g")]).unwrap();
        assert_eq!(m.jvm_heap, GIB);
        assert_eq!(m.sized_by, SizedBy::FineGrained);

        let m = jm(&[
            ("jobmanager.memory.heap.size", "1g"),
            ("jobmanager.memory.flink.size", "1500m"),
        ])
        .unwrap();
        assert_eq!(m.off_heap, 1500 * MIB - GIB);

        let m = jm(&[("jobmanager.memory.flink.size", "1g")]).unwrap();
        assert_eq!(m.sized_by, SizedBy::TotalFlink);
        assert_eq!(m.jvm_heap, GIB - 128 * MIB);
    }

    #[test]
    fn job_manager_errors() {
        assert!(matches!(
            jm_err(&[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.off-heap.size", "1g"),
                ("jobmanager.memory.flink.size", "1g"),
            ]),
            MemoryModelError::SumMismatch(_)
        ));
        assert!(matches!(
            jm_err(&[
                ("jobmanager.memory.heap.size", "2g"),
                ("jobmanager.memory.flink.size", "1g"),
            ]),
            MemoryModelError::TooSmall(_)
        ));
        assert!(matches!(
            jm_err(&[("jobmanager.memory.flink.size", "100m")]),
            MemoryModelError::TooSmall(_)
        ));
        // Flink wants some heap: Total Flink Memory equal to off-heap fails.
        let e = jm_err(&[("jobmanager.memory.flink.size", "128m")]);
        assert!(matches!(e, MemoryModelError::TooSmall(_)), "{e:?}");
        assert!(e.to_string().contains("leaves no JVM heap"), "{e}");
        // A heap set explicitly may leave no off-heap memory.
        let m = jm(&[
            ("jobmanager.memory.heap.size", "1g"),
            ("jobmanager.memory.flink.size", "1g"),
        ])
        .unwrap();
        assert_eq!(m.off_heap, 0);
        assert!(matches!(
            jm_err(&[("jobmanager.memory.process.size", "500m")]),
            MemoryModelError::TooSmall(_)
        ));
        assert!(matches!(
            jm_err(&[("jobmanager.heap.mb", "-5")]),
            MemoryModelError::InvalidValue(_)
        ));
    }

    #[test]
    fn only_off_heap_is_not_configured() {
        assert!(jm_err(&[("jobmanager.memory.off-heap.size", "1g")]).is_not_configured());
    }

    #[test]
    fn invalid_values_name_the_key() {
        assert!(matches!(
            jm_err(&[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.enable-jvm-direct-memory-limit", "yes")
            ]),
            MemoryModelError::InvalidValue(_)
        ));
    }

    #[test]
    fn overflow_is_an_error() {
        let e = jm_err(&[("jobmanager.memory.heap.size", "9223372036854775807")]);
        assert!(matches!(e, MemoryModelError::Overflow { .. }), "{e:?}");
    }
}
