//! Flink's options and how they are read: the keys of flink-core's
//! `TaskManagerOptions`, `JobManagerOptions` and
//! `NettyShuffleEnvironmentOptions` (1.20) with their fallback keys and
//! defaults, and [`Conf`], which reads sizes, fractions, ranges and counts
//! from a flat configuration the way Flink does (lazily, fallbacks after the
//! current key, legacy heap keys mapped first).

use std::collections::BTreeMap;

use super::error::{Expected, InvalidValue, MemoryModelError, Part, Process, Result, Total};
use super::java_number::{parse_java_float, parse_java_int};
use super::size::{GIB, KIB, MAX_BYTES, MIB, multiply, parse_memory_size};

/// Whether the derivations may read `key`: every option they read is a
/// JobManager's or a TaskManager's (checked on every read in debug builds).
/// Keys outside cannot change a model.
pub fn reads_key(key: &str) -> bool {
    key.starts_with("taskmanager.") || key.starts_with("jobmanager.")
}

// ---------------------------------------------------------------------------
// Keys (flink-core TaskManagerOptions, JobManagerOptions,
// NettyShuffleEnvironmentOptions of 1.20), with fallback keys and defaults.

/// A config option: its key and the older keys Flink still reads after it.
pub(super) struct Opt {
    pub(super) key: &'static str,
    fallback: &'static [&'static str],
}

const fn opt(key: &'static str) -> Opt {
    Opt { key, fallback: &[] }
}

pub(super) struct SizeOpt {
    pub(super) opt: Opt,
    default: Option<u64>,
}

const fn size_opt(key: &'static str, default: Option<u64>) -> SizeOpt {
    SizeOpt {
        opt: opt(key),
        default,
    }
}

pub(super) struct FloatOpt {
    pub(super) opt: Opt,
    default: f32,
}

pub(super) const TM_PROCESS: SizeOpt = size_opt("taskmanager.memory.process.size", None);
pub(super) const TM_FLINK: SizeOpt = size_opt("taskmanager.memory.flink.size", None);
pub(super) const TM_FRAMEWORK_HEAP: SizeOpt =
    size_opt("taskmanager.memory.framework.heap.size", Some(128 * MIB));
pub(super) const TM_FRAMEWORK_OFF_HEAP: SizeOpt = size_opt(
    "taskmanager.memory.framework.off-heap.size",
    Some(128 * MIB),
);
pub(super) const TM_TASK_HEAP: SizeOpt = size_opt("taskmanager.memory.task.heap.size", None);
pub(super) const TM_TASK_OFF_HEAP: SizeOpt =
    size_opt("taskmanager.memory.task.off-heap.size", Some(0));
pub(super) const TM_MANAGED: SizeOpt = SizeOpt {
    opt: Opt {
        key: "taskmanager.memory.managed.size",
        fallback: &["taskmanager.memory.size"],
    },
    default: None,
};
pub(super) const TM_MANAGED_FRACTION: FloatOpt = FloatOpt {
    opt: opt("taskmanager.memory.managed.fraction"),
    default: 0.4,
};
pub(super) const TM_NETWORK: RangeOpts = RangeOpts {
    min: SizeOpt {
        opt: Opt {
            key: "taskmanager.memory.network.min",
            fallback: &["taskmanager.network.memory.min"],
        },
        default: Some(64 * MIB),
    },
    max: SizeOpt {
        opt: Opt {
            key: "taskmanager.memory.network.max",
            fallback: &["taskmanager.network.memory.max"],
        },
        default: Some(MAX_BYTES),
    },
    fraction: FloatOpt {
        opt: Opt {
            key: "taskmanager.memory.network.fraction",
            fallback: &["taskmanager.network.memory.fraction"],
        },
        default: 0.1,
    },
};
pub(super) const TM_NETWORK_BUFFERS: Opt = opt("taskmanager.network.numberOfBuffers");
pub(super) const TM_NETWORK_BUFFERS_DEFAULT: i32 = 2048;
pub(super) const TM_SEGMENT_SIZE: SizeOpt =
    size_opt("taskmanager.memory.segment-size", Some(32 * KIB));
pub(super) const TM_LEGACY_HEAP: SizeOpt = size_opt("taskmanager.heap.size", None);
pub(super) const TM_LEGACY_HEAP_MB: Opt = opt("taskmanager.heap.mb");
pub(super) const TM_CPU_CORES: Opt = opt("taskmanager.cpu.cores");
pub(super) const TM_SLOTS: Opt = opt("taskmanager.numberOfTaskSlots");
pub(super) const TM_JVM: JvmOpts = JvmOpts {
    process: TM_PROCESS,
    metaspace: size_opt("taskmanager.memory.jvm-metaspace.size", Some(256 * MIB)),
    overhead: RangeOpts {
        min: size_opt("taskmanager.memory.jvm-overhead.min", Some(192 * MIB)),
        max: size_opt("taskmanager.memory.jvm-overhead.max", Some(GIB)),
        fraction: FloatOpt {
            opt: opt("taskmanager.memory.jvm-overhead.fraction"),
            default: 0.1,
        },
    },
};

pub(super) const JM_PROCESS: SizeOpt = size_opt("jobmanager.memory.process.size", None);
pub(super) const JM_FLINK: SizeOpt = size_opt("jobmanager.memory.flink.size", None);
pub(super) const JM_HEAP: SizeOpt = size_opt("jobmanager.memory.heap.size", None);
pub(super) const JM_OFF_HEAP: SizeOpt =
    size_opt("jobmanager.memory.off-heap.size", Some(128 * MIB));
pub(super) const JM_DIRECT_LIMIT: Opt = opt("jobmanager.memory.enable-jvm-direct-memory-limit");
pub(super) const JM_LEGACY_HEAP: SizeOpt = size_opt("jobmanager.heap.size", None);
pub(super) const JM_LEGACY_HEAP_MB: Opt = opt("jobmanager.heap.mb");
pub(super) const JM_JVM: JvmOpts = JvmOpts {
    process: JM_PROCESS,
    metaspace: size_opt("jobmanager.memory.jvm-metaspace.size", Some(256 * MIB)),
    overhead: RangeOpts {
        min: size_opt("jobmanager.memory.jvm-overhead.min", Some(192 * MIB)),
        max: size_opt("jobmanager.memory.jvm-overhead.max", Some(GIB)),
        fraction: FloatOpt {
            opt: opt("jobmanager.memory.jvm-overhead.fraction"),
            default: 0.1,
        },
    },
};

pub(super) struct RangeOpts {
    pub(super) min: SizeOpt,
    pub(super) max: SizeOpt,
    pub(super) fraction: FloatOpt,
}

pub(super) struct JvmOpts {
    pub(super) process: SizeOpt,
    pub(super) metaspace: SizeOpt,
    pub(super) overhead: RangeOpts,
}

// ---------------------------------------------------------------------------
// Reading the configuration.

/// A size as read: the key it came from (the option's own, a fallback key or
/// a legacy key mapped onto it) and whether the user set it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Setting {
    pub(super) key: &'static str,
    pub(super) bytes: u64,
    pub(super) explicit: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Fraction {
    pub(super) key: &'static str,
    value: f32,
}

impl Fraction {
    fn as_f64(self) -> f64 {
        f64::from(self.value)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    pub(super) min: Setting,
    pub(super) max: Setting,
    pub(super) fraction: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Clamp {
    None,
    Min,
    Max,
}

/// A legacy heap key mapped onto a new option, as
/// `MemoryBackwardsCompatibilityUtils` does before any derivation.
#[derive(Debug, Clone, Copy)]
struct Mapped {
    target: &'static str,
    from: &'static str,
    bytes: u64,
}

pub(super) struct Conf<'a> {
    map: &'a BTreeMap<String, String>,
    pub(super) process: Process,
    mapped: Option<Mapped>,
}

impl<'a> Conf<'a> {
    pub(super) fn new(map: &'a BTreeMap<String, String>, process: Process) -> Self {
        Conf {
            map,
            process,
            mapped: None,
        }
    }

    /// The key Flink finds the option under (its own first, then fallbacks).
    pub(super) fn find(&self, o: &Opt) -> Option<(&'static str, &'a str)> {
        debug_assert!(
            std::iter::once(o.key)
                .chain(o.fallback.iter().copied())
                .all(reads_key),
            "{} is outside memory::reads_key",
            o.key
        );
        std::iter::once(o.key)
            .chain(o.fallback.iter().copied())
            .find_map(|k| self.map.get(k).map(|v| (k, v.as_str())))
    }

    pub(super) fn contains(&self, o: &Opt) -> bool {
        self.mapped.is_some_and(|m| m.target == o.key) || self.find(o).is_some()
    }

    pub(super) fn invalid(
        &self,
        key: &'static str,
        value: &str,
        expected: Expected,
    ) -> MemoryModelError {
        self.rejected(key, value, expected, None)
    }

    pub(super) fn rejected(
        &self,
        key: &'static str,
        value: &str,
        expected: Expected,
        problem: Option<String>,
    ) -> MemoryModelError {
        MemoryModelError::InvalidValue(Box::new(InvalidValue {
            process: self.process,
            key,
            value: value.to_string(),
            expected,
            problem,
        }))
    }

    /// The size, its default when unset, or `None` when unset without default.
    fn size_opt(&self, o: &SizeOpt) -> Result<Option<Setting>> {
        if let Some(m) = self.mapped.filter(|m| m.target == o.opt.key) {
            return Ok(Some(Setting {
                key: m.from,
                bytes: m.bytes,
                explicit: true,
            }));
        }
        match self.find(&o.opt) {
            Some((key, text)) => match parse_memory_size(text) {
                Ok(bytes) => Ok(Some(Setting {
                    key,
                    bytes,
                    explicit: true,
                })),
                Err(problem) => Err(self.rejected(
                    key,
                    text,
                    Expected::MemorySize,
                    problem.map(|p| format!("is not a memory size Flink can read: {p}")),
                )),
            },
            None => Ok(o.default.map(|bytes| Setting {
                key: o.opt.key,
                bytes,
                explicit: false,
            })),
        }
    }

    /// A size Flink reads with `getMemorySizeFromConfig`, which fails when
    /// the option is unset and has no default. Every caller checks
    /// `contains` first, so that failure is not reachable from the outside.
    pub(super) fn size(&self, o: &SizeOpt) -> Result<Setting> {
        self.size_opt(o)?.ok_or(MemoryModelError::NotConfigured {
            process: self.process,
        })
    }

    pub(super) fn float(&self, o: &FloatOpt) -> Result<Fraction> {
        match self.find(&o.opt) {
            Some((key, text)) => parse_java_float(text)
                .map(|value| Fraction { key, value })
                .ok_or_else(|| self.invalid(key, text, Expected::Float)),
            None => Ok(Fraction {
                key: o.opt.key,
                value: o.default,
            }),
        }
    }

    pub(super) fn int(&self, o: &Opt, default: i32) -> Result<(&'static str, i32)> {
        match self.find(o) {
            Some((key, text)) => parse_java_int(text)
                .map(|v| (key, v))
                .ok_or_else(|| self.invalid(key, text, Expected::Integer)),
            None => Ok((o.key, default)),
        }
    }

    pub(super) fn boolean(&self, o: &Opt, default: bool) -> Result<bool> {
        match self.find(o) {
            Some((key, text)) => {
                if text.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if text.eq_ignore_ascii_case("false") {
                    Ok(false)
                } else {
                    Err(self.invalid(key, text, Expected::Boolean))
                }
            }
            None => Ok(default),
        }
    }

    /// A min/max/fraction triple, validated as `RangeFraction` does.
    pub(super) fn range(&self, o: &RangeOpts) -> Result<Range> {
        let min = self.size(&o.min)?;
        let max = self.size(&o.max)?;
        let fraction = self.float(&o.fraction)?;
        self.check_range(min, max, fraction)?;
        Ok(Range { min, max, fraction })
    }

    pub(super) fn check_range(&self, min: Setting, max: Setting, fraction: Fraction) -> Result<()> {
        if min.bytes > max.bytes {
            return Err(MemoryModelError::MinAboveMax {
                process: self.process,
                min_key: min.key,
                min: min.bytes,
                max_key: max.key,
                max: max.bytes,
            });
        }
        let f = fraction.as_f64();
        if !(0.0..1.0).contains(&f) {
            return Err(MemoryModelError::FractionOutOfRange {
                process: self.process,
                key: fraction.key,
                value: fraction.value,
            });
        }
        Ok(())
    }

    /// Maps `taskmanager.heap.size` / `.mb` (or the JobManager's) onto
    /// `target` when `target` is not set.
    pub(super) fn map_legacy_heap(
        &mut self,
        target: &SizeOpt,
        heap: &SizeOpt,
        heap_mb: &Opt,
    ) -> Result<()> {
        if self.contains(&target.opt) {
            return Ok(());
        }
        let bytes = if self.contains(&heap.opt) {
            self.size(heap)?
        } else if let Some((key, text)) = self.find(heap_mb) {
            let mb =
                parse_java_int(text).ok_or_else(|| self.invalid(key, text, Expected::Integer))?;
            if mb < 0 {
                return Err(self.rejected(
                    key,
                    text,
                    Expected::Integer,
                    Some("must not be negative".to_string()),
                ));
            }
            Setting {
                key,
                bytes: (mb as u64) << 20,
                explicit: true,
            }
        } else {
            return Ok(());
        };
        self.mapped = Some(Mapped {
            target: target.opt.key,
            from: bytes.key,
            bytes: bytes.bytes,
        });
        Ok(())
    }

    pub(super) fn add(&self, parts: &[u64], what: &'static str) -> Result<u64> {
        parts
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b).filter(|s| *s <= MAX_BYTES))
            .ok_or(MemoryModelError::Overflow {
                process: self.process,
                what,
            })
    }

    fn multiply(&self, bytes: u64, factor: f64, what: &'static str) -> Result<u64> {
        multiply(bytes, factor).ok_or(MemoryModelError::Overflow {
            process: self.process,
            what,
        })
    }

    /// `ProcessMemoryUtils.deriveWithFraction`: `base * fraction`, clamped.
    pub(super) fn with_fraction(
        &self,
        base: u64,
        r: &Range,
        what: &'static str,
    ) -> Result<(u64, Clamp)> {
        let relative = self.multiply(base, r.fraction.as_f64(), what)?;
        Ok(clamp(relative, r))
    }

    /// `ProcessMemoryUtils.deriveWithInverseFraction`: the part that is
    /// `fraction` of `base` plus itself, clamped.
    pub(super) fn with_inverse_fraction(
        &self,
        base: u64,
        r: &Range,
        what: &'static str,
    ) -> Result<(u64, Clamp)> {
        let f = r.fraction.as_f64();
        let relative = self.multiply(base, f / (1.0 - f), what)?;
        Ok(clamp(relative, r))
    }
}

fn clamp(relative: u64, r: &Range) -> (u64, Clamp) {
    if relative > r.max.bytes {
        (r.max.bytes, Clamp::Max)
    } else if relative < r.min.bytes {
        (r.min.bytes, Clamp::Min)
    } else {
        (relative, Clamp::None)
    }
}

pub(super) fn explicit_part(name: &'static str, s: Setting) -> Part {
    Part {
        name,
        bytes: s.bytes,
        keys: vec![s.key],
        note: None,
    }
}

/// A part derived from a range: which key bounds it.
pub(super) fn ranged_part(
    name: &'static str,
    bytes: u64,
    clamp: Clamp,
    r: &Range,
    of: &str,
) -> Part {
    let (key, note) = match clamp {
        Clamp::Min => (r.min.key, format!("its minimum {}", r.min.key)),
        Clamp::Max => (r.max.key, format!("its maximum {}", r.max.key)),
        Clamp::None => (
            r.fraction.key,
            format!("{} {} of {of}", r.fraction.key, r.fraction.value),
        ),
    };
    Part {
        name,
        bytes,
        keys: vec![key],
        note: Some(note),
    }
}

pub(super) fn configured_total(name: &'static str, s: Setting) -> Total {
    Total {
        name,
        bytes: s.bytes,
        key: s.key,
        derivation: None,
    }
}
