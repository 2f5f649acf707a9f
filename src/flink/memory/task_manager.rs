//! A TaskManager's memory (FLIP-49), as `TaskExecutorProcessUtils` and
//! `TaskExecutorFlinkMemoryUtils` derive it: framework and task heap and
//! off-heap, network and managed memory, CPU cores and slots.

use std::collections::BTreeMap;

use super::error::{
    Expected, LegacyNetworkMismatch, MemoryModelError, Part, Process, Result, Shortfall, Total,
};
use super::java_number::parse_java_double;
use super::options::{
    Conf, Range, Setting, TM_CPU_CORES, TM_FLINK, TM_FRAMEWORK_HEAP, TM_FRAMEWORK_OFF_HEAP, TM_JVM,
    TM_LEGACY_HEAP, TM_LEGACY_HEAP_MB, TM_MANAGED, TM_MANAGED_FRACTION, TM_NETWORK,
    TM_NETWORK_BUFFERS, TM_NETWORK_BUFFERS_DEFAULT, TM_PROCESS, TM_SEGMENT_SIZE, TM_SLOTS,
    TM_TASK_HEAP, TM_TASK_OFF_HEAP, configured_total, explicit_part, ranged_part,
};
use super::process::{
    FlinkOrigin, SizedBy, jvm_from_total_flink, jvm_from_total_process, left_over_in_range,
};
use super::size::{MAX_BYTES, size};

/// A TaskManager's memory, in bytes, as Flink would start it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskManagerMemory {
    pub sized_by: SizedBy,
    pub framework_heap: u64,
    pub task_heap: u64,
    pub framework_off_heap: u64,
    pub task_off_heap: u64,
    pub network: u64,
    pub managed: u64,
    pub jvm_metaspace: u64,
    pub jvm_overhead: u64,
    /// Framework and task heap and off-heap, network and managed memory.
    pub total_flink: u64,
    /// Total Flink Memory plus JVM metaspace and overhead: the container size.
    pub total_process: u64,
    /// `taskmanager.cpu.cores`, else the number of slots.
    pub cpu_cores: f64,
    /// `taskmanager.numberOfTaskSlots`.
    pub task_slots: i32,
}

impl TaskManagerMemory {
    /// `-Xmx` / `-Xms`: framework heap plus task heap.
    pub fn jvm_heap(&self) -> u64 {
        self.framework_heap + self.task_heap
    }

    /// `-XX:MaxDirectMemorySize`: framework and task off-heap plus network.
    pub fn jvm_direct(&self) -> u64 {
        self.framework_off_heap + self.task_off_heap + self.network
    }
}

struct TmFlink {
    framework_heap: u64,
    task_heap: u64,
    framework_off_heap: u64,
    task_off_heap: u64,
    network: u64,
    managed: u64,
}

impl TmFlink {
    fn total(&self, c: &Conf) -> Result<u64> {
        c.add(
            &[
                self.framework_heap,
                self.framework_off_heap,
                self.task_heap,
                self.task_off_heap,
                self.network,
                self.managed,
            ],
            "the TaskManager's Flink memory components",
        )
    }
}

/// Derives the memory model of a TaskManager from a flat Flink configuration
/// (`TaskExecutorProcessUtils.processSpecFromConfig`).
pub(super) fn derive(
    conf: &BTreeMap<String, String>,
) -> std::result::Result<TaskManagerMemory, MemoryModelError> {
    let mut c = Conf::new(conf, Process::TaskManager);
    c.map_legacy_heap(&TM_FLINK, &TM_LEGACY_HEAP, &TM_LEGACY_HEAP_MB)?;
    let (sized_by, flink, jvm) = if c.contains(&TM_TASK_HEAP.opt) && c.contains(&TM_MANAGED.opt) {
        let flink = tm_flink_from_fine_grained(&c)?;
        let total = flink.total(&c)?;
        let origin = FlinkOrigin {
            keys: vec![TM_TASK_HEAP.opt.key, TM_MANAGED.opt.key],
            note: Some("from the explicitly set sizes".to_string()),
        };
        let jvm = jvm_from_total_flink(&c, &TM_JVM, total, origin)?;
        (SizedBy::FineGrained, flink, jvm)
    } else if c.contains(&TM_FLINK.opt) {
        let total = c.size(&TM_FLINK)?;
        let flink = tm_flink_from_total(&c, &configured_total("Total Flink Memory", total))?;
        let origin = FlinkOrigin {
            keys: vec![total.key],
            note: None,
        };
        let jvm = jvm_from_total_flink(&c, &TM_JVM, total.bytes, origin)?;
        (SizedBy::TotalFlink, flink, jvm)
    } else if c.contains(&TM_PROCESS.opt) {
        let (jvm, total) = jvm_from_total_process(&c, &TM_JVM)?;
        let flink = tm_flink_from_total(&c, &total)?;
        (SizedBy::TotalProcess, flink, jvm)
    } else {
        return Err(MemoryModelError::NotConfigured {
            process: Process::TaskManager,
        });
    };
    let (cpu_cores, task_slots) = tm_cpu_and_slots(&c)?;
    let total_flink = flink.total(&c)?;
    let total_process = c.add(
        &[total_flink, jvm.metaspace, jvm.overhead],
        "Total Flink Memory, JVM metaspace and overhead",
    )?;
    Ok(TaskManagerMemory {
        sized_by,
        framework_heap: flink.framework_heap,
        task_heap: flink.task_heap,
        framework_off_heap: flink.framework_off_heap,
        task_off_heap: flink.task_off_heap,
        network: flink.network,
        managed: flink.managed,
        jvm_metaspace: jvm.metaspace,
        jvm_overhead: jvm.overhead,
        total_flink,
        total_process,
        cpu_cores,
        task_slots,
    })
}

/// `deriveFromRequiredFineGrainedOptions`: task heap and managed memory set.
fn tm_flink_from_fine_grained(c: &Conf) -> Result<TmFlink> {
    let task_heap = c.size(&TM_TASK_HEAP)?;
    let managed = c.size(&TM_MANAGED)?;
    let framework_heap = c.size(&TM_FRAMEWORK_HEAP)?;
    let framework_off_heap = c.size(&TM_FRAMEWORK_OFF_HEAP)?;
    let task_off_heap = c.size(&TM_TASK_OFF_HEAP)?;
    let parts = vec![
        explicit_part("framework heap", framework_heap),
        explicit_part("framework off-heap", framework_off_heap),
        explicit_part("task heap", task_heap),
        explicit_part("task off-heap", task_off_heap),
        explicit_part("managed memory", managed),
    ];
    let without_network = c.add(
        &parts.iter().map(|p| p.bytes).collect::<Vec<_>>(),
        "the explicitly set TaskManager sizes",
    )?;
    let network = if c.contains(&TM_FLINK.opt) {
        let total = configured_total("Total Flink Memory", c.size(&TM_FLINK)?);
        if without_network > total.bytes {
            return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
                process: c.process,
                total,
                parts,
                rest: None,
            })));
        }
        let network = total.bytes - without_network;
        check_left_over_network(c, network, total, parts)?;
        network
    } else if uses_legacy_network(c) {
        legacy_network(c)?.bytes
    } else {
        let r = c.range(&TM_NETWORK)?;
        c.with_inverse_fraction(without_network, &r, "network memory")?
            .0
    };
    Ok(TmFlink {
        framework_heap: framework_heap.bytes,
        task_heap: task_heap.bytes,
        framework_off_heap: framework_off_heap.bytes,
        task_off_heap: task_off_heap.bytes,
        network,
        managed: managed.bytes,
    })
}

/// `deriveFromTotalFlinkMemory`: the Total Flink Memory is known (set, or
/// left by the Total Process Memory).
fn tm_flink_from_total(c: &Conf, total: &Total) -> Result<TmFlink> {
    let framework_heap = c.size(&TM_FRAMEWORK_HEAP)?;
    let framework_off_heap = c.size(&TM_FRAMEWORK_OFF_HEAP)?;
    let task_off_heap = c.size(&TM_TASK_OFF_HEAP)?;
    let managed_part = |c: &Conf| -> Result<Part> {
        if c.contains(&TM_MANAGED.opt) {
            Ok(explicit_part("managed memory", c.size(&TM_MANAGED)?))
        } else {
            let fraction = c.float(&TM_MANAGED_FRACTION)?;
            let r = Range {
                min: Setting {
                    key: fraction.key,
                    bytes: 0,
                    explicit: false,
                },
                max: Setting {
                    key: fraction.key,
                    bytes: MAX_BYTES,
                    explicit: false,
                },
                fraction,
            };
            c.check_range(r.min, r.max, fraction)?;
            let (bytes, clamp) = c.with_fraction(total.bytes, &r, "managed memory")?;
            Ok(ranged_part(
                "managed memory",
                bytes,
                clamp,
                &r,
                "Total Flink Memory",
            ))
        }
    };
    if c.contains(&TM_TASK_HEAP.opt) {
        // Task heap and managed memory known: network memory is the rest.
        let task_heap = c.size(&TM_TASK_HEAP)?;
        let managed = managed_part(c)?;
        let parts = vec![
            explicit_part("framework heap", framework_heap),
            explicit_part("framework off-heap", framework_off_heap),
            explicit_part("task heap", task_heap),
            explicit_part("task off-heap", task_off_heap),
            managed,
        ];
        let without_network = c.add(
            &parts.iter().map(|p| p.bytes).collect::<Vec<_>>(),
            "the TaskManager's Flink memory components",
        )?;
        if without_network > total.bytes {
            return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
                process: c.process,
                total: total.clone(),
                parts,
                rest: None,
            })));
        }
        let network = total.bytes - without_network;
        let managed = parts[4].bytes;
        check_left_over_network(c, network, total.clone(), parts)?;
        Ok(TmFlink {
            framework_heap: framework_heap.bytes,
            task_heap: task_heap.bytes,
            framework_off_heap: framework_off_heap.bytes,
            task_off_heap: task_off_heap.bytes,
            network,
            managed,
        })
    } else {
        // Managed and network memory from their sizes or fractions: task
        // heap is the rest.
        let managed = managed_part(c)?;
        let network = if uses_legacy_network(c) {
            let legacy = legacy_network(c)?;
            Part {
                name: "network memory",
                bytes: legacy.bytes,
                keys: vec![TM_NETWORK_BUFFERS.key],
                note: Some(format!(
                    "{} x {}",
                    TM_NETWORK_BUFFERS.key, TM_SEGMENT_SIZE.opt.key
                )),
            }
        } else {
            let r = c.range(&TM_NETWORK)?;
            let (bytes, clamp) = c.with_fraction(total.bytes, &r, "network memory")?;
            ranged_part("network memory", bytes, clamp, &r, "Total Flink Memory")
        };
        let parts = vec![
            explicit_part("framework heap", framework_heap),
            explicit_part("framework off-heap", framework_off_heap),
            explicit_part("task off-heap", task_off_heap),
            managed,
            network,
        ];
        let without_task_heap = c.add(
            &parts.iter().map(|p| p.bytes).collect::<Vec<_>>(),
            "the TaskManager's Flink memory components",
        )?;
        if without_task_heap > total.bytes {
            return Err(MemoryModelError::TooSmall(Box::new(Shortfall {
                process: c.process,
                total: total.clone(),
                parts,
                rest: None,
            })));
        }
        Ok(TmFlink {
            framework_heap: framework_heap.bytes,
            task_heap: total.bytes - without_task_heap,
            framework_off_heap: framework_off_heap.bytes,
            task_off_heap: task_off_heap.bytes,
            network: parts[4].bytes,
            managed: parts[3].bytes,
        })
    }
}

/// `sanityCheckNetworkMemoryWithExplicitlySetTotalFlinkAndHeapMemory`: the
/// network memory that is left must match the legacy buffers or lie in the
/// network range.
fn check_left_over_network(c: &Conf, network: u64, total: Total, parts: Vec<Part>) -> Result<()> {
    if uses_legacy_network(c) {
        let legacy = legacy_network(c)?;
        if legacy.bytes != network {
            return Err(MemoryModelError::LegacyNetworkMismatch(Box::new(
                LegacyNetworkMismatch {
                    total,
                    parts,
                    derived: network,
                    buffers: legacy.buffers,
                    segment_size: legacy.segment_size,
                    configured: legacy.bytes,
                },
            )));
        }
        return Ok(());
    }
    let r = c.range(&TM_NETWORK)?;
    left_over_in_range(c, "network memory", network, &r, total, parts)
}

/// `isUsingLegacyNetworkConfigs`: `taskmanager.network.numberOfBuffers` set
/// and none of the network min/max/fraction keys (old or new).
fn uses_legacy_network(c: &Conf) -> bool {
    !(c.contains(&TM_NETWORK.min.opt)
        || c.contains(&TM_NETWORK.max.opt)
        || c.contains(&TM_NETWORK.fraction.opt))
        && c.contains(&TM_NETWORK_BUFFERS)
}

struct LegacyNetwork {
    bytes: u64,
    buffers: i32,
    segment_size: u64,
}

/// `getNetworkMemorySizeWithLegacyConfig`: buffers times the page size
/// (`ConfigurationParserUtils.getPageSize`: an int, at least 4096, a power
/// of two).
fn legacy_network(c: &Conf) -> Result<LegacyNetwork> {
    let (buffers_key, buffers) = c.int(&TM_NETWORK_BUFFERS, TM_NETWORK_BUFFERS_DEFAULT)?;
    let page = c.size(&TM_SEGMENT_SIZE)?;
    let page_text = || {
        c.find(&TM_SEGMENT_SIZE.opt)
            .map_or_else(|| size(page.bytes), |(_, t)| t.to_string())
    };
    let problem = if page.bytes > i32::MAX as u64 {
        Some("must be below 2g")
    } else if page.bytes < 4096 {
        Some("must be at least 4096 bytes")
    } else if !page.bytes.is_power_of_two() {
        Some("must be a power of 2")
    } else {
        None
    };
    if let Some(p) = problem {
        return Err(c.rejected(
            page.key,
            &page_text(),
            Expected::MemorySize,
            Some(p.to_string()),
        ));
    }
    if buffers < 0 {
        return Err(c.rejected(
            buffers_key,
            &buffers.to_string(),
            Expected::Integer,
            Some("must not be negative".to_string()),
        ));
    }
    Ok(LegacyNetwork {
        // At most 2^31 * 2^30: no overflow.
        bytes: buffers as u64 * page.bytes,
        buffers,
        segment_size: page.bytes,
    })
}

/// `getCpuCoresWithFallback(config, -1)` and `getNumSlots`.
fn tm_cpu_and_slots(c: &Conf) -> Result<(f64, i32)> {
    let (key, text, cpu) = match c.find(&TM_CPU_CORES) {
        Some((key, text)) => {
            let cpu =
                parse_java_double(text).ok_or_else(|| c.invalid(key, text, Expected::Float))?;
            (key, text.to_string(), cpu)
        }
        None => {
            let (key, slots) = c.int(&TM_SLOTS, 1)?;
            (key, slots.to_string(), f64::from(slots))
        }
    };
    if cpu <= 0.0 {
        return Err(MemoryModelError::NoCpuCores { key, value: text });
    }
    if !cpu.is_finite() {
        // NaN and infinity pass Flink's `> 0` check but not `BigDecimal`.
        return Err(c.invalid(key, &text, Expected::Float));
    }
    let (_, slots) = c.int(&TM_SLOTS, 1)?;
    Ok((cpu, slots))
}

#[cfg(test)]
mod tests {
    use super::super::size::{GIB, MIB, multiply};
    use super::*;
    use crate::flink::memory::conf;

    fn tm(pairs: &[(&str, &str)]) -> std::result::Result<TaskManagerMemory, MemoryModelError> {
        derive(&conf(pairs))
    }

    fn tm_err(pairs: &[(&str, &str)]) -> MemoryModelError {
        match tm(pairs) {
            Ok(m) => panic!("expected an error for {pairs:?}, got {m:?}"),
            Err(e) => e,
        }
    }

    // Expected bytes below are what Flink 1.20.5's BashJavaUtils printed.

    #[test]
    fn total_process_memory_of_the_default_flink_conf() {
        let m = tm(&[("taskmanager.memory.process.size", "1728m")]).unwrap();
        assert_eq!(m.sized_by, SizedBy::TotalProcess);
        assert_eq!(m.framework_heap, 134217728);
        assert_eq!(m.task_heap, 402653174);
        assert_eq!(m.framework_off_heap, 134217728);
        assert_eq!(m.task_off_heap, 0);
        assert_eq!(m.network, 134217730);
        assert_eq!(m.managed, 536870920);
        assert_eq!(m.jvm_metaspace, 268435456);
        assert_eq!(m.jvm_overhead, 201326592);
        assert_eq!(m.total_process, 1728 * MIB);
        assert_eq!(m.total_flink, 1728 * MIB - 256 * MIB - 192 * MIB);
        assert_eq!(m.jvm_heap(), 536870902);
        assert_eq!(m.jvm_direct(), 268435458);
        assert_eq!((m.cpu_cores, m.task_slots), (1.0, 1));
    }

    #[test]
    fn legacy_heap_mb_is_total_flink_memory() {
        let m = tm(&[("taskmanager.heap.mb", "1024")]).unwrap();
        assert_eq!(m.sized_by, SizedBy::TotalFlink);
        assert_eq!(m.total_flink, GIB);
        assert_eq!(m.network, 107374184);
        assert_eq!(m.managed, 429496736);
        assert_eq!(m.task_heap, 268435448);
        assert!(tm(&[("taskmanager.heap.mb", "-1")]).is_err());
        // The new key wins over the legacy one.
        let m = tm(&[
            ("taskmanager.heap.size", "garbage"),
            ("taskmanager.memory.flink.size", "1g"),
        ])
        .unwrap();
        assert_eq!(m.total_flink, GIB);
    }

    #[test]
    fn total_flink_memory_adds_metaspace_and_overhead() {
        let m = tm(&[("taskmanager.memory.flink.size", "1280m")]).unwrap();
        assert_eq!(m.sized_by, SizedBy::TotalFlink);
        assert_eq!(m.total_flink, 1280 * MIB);
        // (1280m + 256m) * 0.1 / 0.9 is below the 192m minimum.
        assert_eq!(m.jvm_overhead, 192 * MIB);
        assert_eq!(m.total_process, 1728 * MIB);
        assert_eq!(
            m.framework_heap + m.task_heap + m.framework_off_heap + m.network + m.managed,
            1280 * MIB
        );
    }

    #[test]
    fn fine_grained_derives_network_by_inverse_fraction() {
        let m = tm(&[
            ("taskmanager.memory.task.heap.size", "512m"),
            ("taskmanager.memory.managed.size", "512m"),
        ])
        .unwrap();
        assert_eq!(m.sized_by, SizedBy::FineGrained);
        assert_eq!(m.task_heap, 512 * MIB);
        assert_eq!(m.managed, 512 * MIB);
        // 1280m * 0.1f / (1 - 0.1f), above the 64m minimum.
        let expected = multiply(1280 * MIB, 0.1f32 as f64 / (1.0 - 0.1f32 as f64)).unwrap();
        assert_eq!(m.network, expected);
        assert!(m.network > 142 * MIB && m.network < 143 * MIB);
    }

    #[test]
    fn only_task_heap_is_not_configured() {
        let e = tm_err(&[("taskmanager.memory.task.heap.size", "1g")]);
        assert!(e.is_not_configured());
        assert!(e.to_string().contains("taskmanager.memory.process.size"));
        assert!(tm_err(&[]).is_not_configured());
    }

    #[test]
    fn process_size_below_metaspace_and_overhead() {
        let e = tm_err(&[("taskmanager.memory.process.size", "64m")]);
        let MemoryModelError::TooSmall(s) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(s.needed(), 448 * MIB);
        let text = e.to_string();
        assert!(
            text.contains("taskmanager.memory.process.size 64m"),
            "{text}"
        );
        assert!(
            text.contains("taskmanager.memory.jvm-overhead.min"),
            "{text}"
        );
        assert!(!e.is_not_configured());
    }

    #[test]
    fn process_size_leaving_too_little_flink_memory() {
        let e = tm_err(&[("taskmanager.memory.process.size", "640m")]);
        let MemoryModelError::TooSmall(s) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(s.total.bytes, 192 * MIB);
        assert_eq!(s.total.key, "taskmanager.memory.process.size");
        let text = e.to_string();
        assert!(text.contains("minus JVM metaspace 256m"), "{text}");
        assert!(
            text.contains("taskmanager.memory.managed.fraction"),
            "{text}"
        );
    }

    #[test]
    fn left_over_network_outside_its_range() {
        // 1g - 128m - 128m - 512m - 250m = 6m of network: below 64m.
        let e = tm_err(&[
            ("taskmanager.memory.flink.size", "1g"),
            ("taskmanager.memory.task.heap.size", "512m"),
            ("taskmanager.memory.managed.size", "250m"),
        ]);
        let MemoryModelError::DerivedOutOfRange(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.derived, 6 * MIB);
        assert_eq!(r.min_key, "taskmanager.memory.network.min");
        // The same with a fitting range works.
        let m = tm(&[
            ("taskmanager.memory.flink.size", "1g"),
            ("taskmanager.memory.task.heap.size", "512m"),
            ("taskmanager.memory.managed.size", "250m"),
            ("taskmanager.memory.network.min", "6m"),
        ])
        .unwrap();
        assert_eq!(m.network, 6 * MIB);
        assert_eq!(m.sized_by, SizedBy::FineGrained);
    }

    #[test]
    fn left_over_overhead_outside_its_range() {
        let e = tm_err(&[
            ("taskmanager.memory.process.size", "2500m"),
            ("taskmanager.memory.flink.size", "1g"),
        ]);
        let MemoryModelError::DerivedOutOfRange(r) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.component, "JVM overhead");
        assert_eq!(r.derived, 1220 * MIB);
        assert_eq!(r.max_key, "taskmanager.memory.jvm-overhead.max");
        let m = tm(&[
            ("taskmanager.memory.process.size", "1600m"),
            ("taskmanager.memory.flink.size", "1g"),
        ])
        .unwrap();
        assert_eq!(m.jvm_overhead, 320 * MIB);
        let e = tm_err(&[
            ("taskmanager.memory.process.size", "1g"),
            ("taskmanager.memory.flink.size", "1g"),
        ]);
        assert!(matches!(e, MemoryModelError::TooSmall(_)), "{e:?}");
    }

    #[test]
    fn explicit_parts_above_total_flink_memory() {
        let e = tm_err(&[
            ("taskmanager.memory.flink.size", "1g"),
            ("taskmanager.memory.task.heap.size", "1g"),
        ]);
        assert!(matches!(e, MemoryModelError::TooSmall(_)), "{e:?}");
        assert!(e.to_string().contains("taskmanager.memory.task.heap.size"));
    }

    #[test]
    fn ranges_and_fractions_are_validated() {
        let base = ("taskmanager.memory.process.size", "2g");
        assert!(matches!(
            tm_err(&[
                base,
                ("taskmanager.memory.network.min", "2g"),
                ("taskmanager.memory.network.max", "1g")
            ]),
            MemoryModelError::MinAboveMax { .. }
        ));
        assert!(matches!(
            tm_err(&[base, ("taskmanager.memory.network.fraction", "1")]),
            MemoryModelError::FractionOutOfRange { .. }
        ));
        assert!(matches!(
            tm_err(&[base, ("taskmanager.memory.jvm-overhead.fraction", "-0.1")]),
            MemoryModelError::FractionOutOfRange { .. }
        ));
        assert!(matches!(
            tm_err(&[base, ("taskmanager.memory.managed.fraction", "NaN")]),
            MemoryModelError::FractionOutOfRange { .. }
        ));
        // A broken fraction is never read when the size is set.
        assert!(
            tm(&[
                base,
                ("taskmanager.memory.managed.fraction", "zzz"),
                ("taskmanager.memory.managed.size", "100m")
            ])
            .is_ok()
        );
        // Deprecated network keys are fallbacks.
        let m = tm(&[base, ("taskmanager.network.memory.min", "300m")]).unwrap();
        assert_eq!(m.network, 300 * MIB);
        let m = tm(&[base, ("taskmanager.memory.network.fraction", "0.15")]).unwrap();
        let fraction_only = tm(&[base]).unwrap();
        assert!(m.network > fraction_only.network);
        // A fraction Flink clamps to the max.
        let m = tm(&[base, ("taskmanager.memory.network.max", "100m")]).unwrap();
        assert_eq!(m.network, 100 * MIB);
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = tm_err(&[("taskmanager.memory.process.size", "2Gi")]);
        let MemoryModelError::InvalidValue(v) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(v.key, "taskmanager.memory.process.size");
        assert!(e.to_string().contains("'2Gi'"));
        assert!(matches!(
            tm_err(&[("taskmanager.memory.process.size", "99999999999t")]),
            MemoryModelError::InvalidValue(_)
        ));
        assert!(matches!(
            tm_err(&[
                ("taskmanager.memory.process.size", "1728m"),
                ("taskmanager.memory.network.fraction", "0.1x")
            ]),
            MemoryModelError::InvalidValue(_)
        ));
    }

    #[test]
    fn legacy_network_buffers() {
        // 4096 buffers of 32k = 128m, when no new network key is set.
        let m = tm(&[
            ("taskmanager.memory.process.size", "2g"),
            ("taskmanager.network.numberOfBuffers", "4096"),
        ])
        .unwrap();
        assert_eq!(m.network, 128 * MIB);
        let m = tm(&[
            ("taskmanager.memory.process.size", "2g"),
            ("taskmanager.network.numberOfBuffers", "4096"),
            ("taskmanager.memory.network.fraction", "0.1"),
        ])
        .unwrap();
        assert_ne!(m.network, 128 * MIB);
        let e = tm_err(&[
            ("taskmanager.memory.flink.size", "1g"),
            ("taskmanager.memory.task.heap.size", "512m"),
            ("taskmanager.memory.managed.size", "100m"),
            ("taskmanager.network.numberOfBuffers", "4096"),
        ]);
        assert!(
            matches!(e, MemoryModelError::LegacyNetworkMismatch(_)),
            "{e:?}"
        );
        assert!(matches!(
            tm_err(&[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.network.numberOfBuffers", "4096"),
                ("taskmanager.memory.segment-size", "3000"),
            ]),
            MemoryModelError::InvalidValue(_)
        ));
    }

    #[test]
    fn slots_and_cpu() {
        let base = ("taskmanager.memory.process.size", "2g");
        assert!(matches!(
            tm_err(&[base, ("taskmanager.numberOfTaskSlots", "0")]),
            MemoryModelError::NoCpuCores { .. }
        ));
        let m = tm(&[
            base,
            ("taskmanager.numberOfTaskSlots", "-1"),
            ("taskmanager.cpu.cores", "2"),
        ])
        .unwrap();
        assert_eq!((m.cpu_cores, m.task_slots), (2.0, -1));
        assert!(tm(&[base, ("taskmanager.cpu.cores", "NaN")]).is_err());
        assert!(tm(&[base, ("taskmanager.numberOfTaskSlots", " 2")]).is_err());
    }

    #[test]
    fn overflow_is_an_error() {
        let e = tm_err(&[("taskmanager.memory.flink.size", "9223372036854775807b")]);
        assert!(matches!(e, MemoryModelError::Overflow { .. }), "{e:?}");
    }

    #[test]
    fn fraction_on_a_decimal_tie_rounds_like_java() {
        // Flink 1.20.5 printed 3004596223: Double.toString ends the fraction
        // in the even digit 2, so the product falls one byte short of exact.
        let m = tm(&[
            ("taskmanager.memory.flink.size", "4g"),
            ("taskmanager.memory.managed.fraction", "0.69956207275390625"),
        ])
        .unwrap();
        assert_eq!(m.managed, 3004596223);
    }

    #[test]
    fn messages_name_keys() {
        let e = tm_err(&[("taskmanager.memory.process.size", "700m")]);
        let text = e.to_string();
        assert!(text.starts_with("TaskManager: "), "{text}");
        assert!(
            text.contains("raise taskmanager.memory.process.size"),
            "{text}"
        );
    }
}
