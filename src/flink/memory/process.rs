//! What TaskManagers and JobManagers share (`ProcessMemoryUtils`): the
//! three ways a process is sized, and the JVM metaspace and overhead that
//! surround its Total Flink Memory.

use super::error::{MemoryModelError, OutOfRange, Part, Result, Shortfall, Total};
use super::options::{Conf, JvmOpts, Range, explicit_part, ranged_part};
use super::size::size;

/// Which of Flink's three ways sized the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizedBy {
    /// TaskManager: task heap and managed memory; JobManager: JVM heap.
    FineGrained,
    /// `*.memory.flink.size` (or a legacy heap key mapped onto it).
    TotalFlink,
    /// `*.memory.process.size`.
    TotalProcess,
}

// ---------------------------------------------------------------------------
// JVM metaspace and overhead (ProcessMemoryUtils).

pub(super) struct Jvm {
    pub(super) metaspace: u64,
    pub(super) overhead: u64,
}

/// What Total Flink Memory came from, for messages.
pub(super) struct FlinkOrigin {
    pub(super) keys: Vec<&'static str>,
    pub(super) note: Option<String>,
}

/// `deriveJvmMetaspaceAndOverheadFromTotalFlinkMemory`.
pub(super) fn jvm_from_total_flink(
    c: &Conf,
    o: &JvmOpts,
    total_flink: u64,
    origin: FlinkOrigin,
) -> Result<Jvm> {
    let metaspace = c.size(&o.metaspace)?;
    let flink_and_metaspace = c.add(
        &[total_flink, metaspace.bytes],
        "Total Flink Memory and JVM metaspace",
    )?;
    let flink_part = Part {
        name: "Total Flink Memory",
        bytes: total_flink,
        keys: origin.keys,
        note: origin.note,
    };
    if c.contains(&o.process.opt) {
        // Everything but the overhead is fixed: the overhead is the rest and
        // must lie in its range.
        let process = c.size(&o.process)?;
        let total = Total {
            name: "Total Process Memory",
            bytes: process.bytes,
            key: process.key,
            derivation: None,
        };
        let parts = vec![flink_part, explicit_part("JVM metaspace", metaspace)];
        if process.bytes < flink_and_metaspace {
            return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
                process: c.process,
                total,
                parts,
                rest: None,
            })));
        }
        let overhead = process.bytes - flink_and_metaspace;
        let r = c.range(&o.overhead)?;
        left_over_in_range(c, "JVM overhead", overhead, &r, total, parts)?;
        Ok(Jvm {
            metaspace: metaspace.bytes,
            overhead,
        })
    } else {
        let r = c.range(&o.overhead)?;
        let (overhead, _) = c.with_inverse_fraction(flink_and_metaspace, &r, "JVM overhead")?;
        Ok(Jvm {
            metaspace: metaspace.bytes,
            overhead,
        })
    }
}

/// A component left over after explicitly set sizes (JVM overhead,
/// network memory) must lie in its configured range, as Flink checks; it
/// is not clamped.
pub(super) fn left_over_in_range(
    c: &Conf,
    component: &'static str,
    derived: u64,
    r: &Range,
    total: Total,
    parts: Vec<Part>,
) -> Result<()> {
    if derived > r.max.bytes || derived < r.min.bytes {
        return Err(MemoryModelError::DerivedOutOfRange(Box::new(OutOfRange {
            process: c.process,
            component,
            derived,
            total,
            parts,
            min_key: r.min.key,
            min: r.min.bytes,
            max_key: r.max.key,
            max: r.max.bytes,
        })));
    }
    Ok(())
}

/// `deriveJvmMetaspaceAndOverheadWithTotalProcessMemory`, returning also the
/// Total Flink Memory that is left.
pub(super) fn jvm_from_total_process(c: &Conf, o: &JvmOpts) -> Result<(Jvm, Total)> {
    let process = c.size(&o.process)?;
    let metaspace = c.size(&o.metaspace)?;
    let r = c.range(&o.overhead)?;
    let (overhead, clamp) = c.with_fraction(process.bytes, &r, "JVM overhead")?;
    let jvm = c.add(&[metaspace.bytes, overhead], "JVM metaspace and overhead")?;
    if jvm > process.bytes {
        return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
            process: c.process,
            total: Total {
                name: "Total Process Memory",
                bytes: process.bytes,
                key: process.key,
                derivation: None,
            },
            parts: vec![
                explicit_part("JVM metaspace", metaspace),
                ranged_part("JVM overhead", overhead, clamp, &r, process.key),
            ],
            rest: None,
        })));
    }
    let total_flink = Total {
        name: "Total Flink Memory",
        bytes: process.bytes - jvm,
        key: process.key,
        derivation: Some(format!(
            "{} {} minus JVM metaspace {} and JVM overhead {}",
            process.key,
            size(process.bytes),
            size(metaspace.bytes),
            size(overhead)
        )),
    };
    Ok((
        Jvm {
            metaspace: metaspace.bytes,
            overhead,
        },
        total_flink,
    ))
}
