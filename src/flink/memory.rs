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

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// The largest memory size Flink can hold (`Long.MAX_VALUE` bytes).
pub const MAX_BYTES: u64 = i64::MAX as u64;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Which Flink process a configuration is sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    TaskManager,
    JobManager,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Process::TaskManager => "TaskManager",
            Process::JobManager => "JobManager",
        })
    }
}

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

/// Why Flink would refuse a configuration.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MemoryModelError {
    /// None of Flink's three ways to size the process is configured.
    #[error("{}", not_configured(*.process))]
    NotConfigured { process: Process },
    /// A value Flink cannot parse, or one it parses but rejects outright.
    #[error("{0}")]
    InvalidValue(Box<InvalidValue>),
    /// A fraction outside `[0, 1)`.
    #[error("{process}: {key} is {value}, but a fraction must be at least 0 and less than 1")]
    FractionOutOfRange {
        process: Process,
        key: &'static str,
        value: f32,
    },
    /// A range whose minimum is above its maximum.
    #[error(
        "{process}: {min_key} ({}) is larger than {max_key} ({}); lower the first or raise the second",
        size(*.min),
        size(*.max)
    )]
    MinAboveMax {
        process: Process,
        min_key: &'static str,
        min: u64,
        max_key: &'static str,
        max: u64,
    },
    /// A total smaller than the parts it has to hold.
    #[error("{0}")]
    TooSmall(Box<Shortfall>),
    /// A part that is what a total leaves after explicitly set sizes, and
    /// that falls outside its configured range.
    #[error("{0}")]
    DerivedOutOfRange(Box<OutOfRange>),
    /// Legacy `taskmanager.network.numberOfBuffers` does not match the network
    /// memory the explicit sizes leave.
    #[error("{0}")]
    LegacyNetworkMismatch(Box<LegacyNetworkMismatch>),
    /// JobManager heap, off-heap and Total Flink Memory all set and not
    /// adding up.
    #[error("{0}")]
    SumMismatch(Box<SumMismatch>),
    /// A TaskManager without CPU cores.
    #[error(
        "TaskManager: {key} {value} leaves it no CPU cores; set taskmanager.numberOfTaskSlots to at least 1 or taskmanager.cpu.cores to a positive number"
    )]
    NoCpuCores { key: &'static str, value: String },
    /// Sizes adding up beyond 2^63 - 1 bytes.
    #[error("{process}: {what} add up to more than the largest memory size Flink can hold (8 EiB)")]
    Overflow {
        process: Process,
        what: &'static str,
    },
}

impl MemoryModelError {
    /// Whether the configuration sizes the process at all (else it is
    /// configured, but in a way Flink refuses).
    pub fn is_not_configured(&self) -> bool {
        matches!(self, MemoryModelError::NotConfigured { .. })
    }
}

fn not_configured(process: Process) -> String {
    match process {
        Process::TaskManager => "no TaskManager memory size is configured: Flink needs \
             taskmanager.memory.process.size (usual for containers), taskmanager.memory.flink.size, \
             or both taskmanager.memory.task.heap.size and taskmanager.memory.managed.size"
            .to_string(),
        Process::JobManager => "no JobManager memory size is configured: Flink needs \
             jobmanager.memory.process.size (usual for containers), jobmanager.memory.flink.size, \
             or jobmanager.memory.heap.size"
            .to_string(),
    }
}

/// What a value should have looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    MemorySize,
    Float,
    Integer,
    Boolean,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expected::MemorySize => {
                "a memory size (a whole number with an optional unit b, k, m, g or t, \
                 e.g. 1728m; Kubernetes units such as 2Gi are not Flink sizes)"
            }
            Expected::Float => "a number (e.g. 0.1)",
            Expected::Integer => "a whole number",
            Expected::Boolean => "true or false",
        })
    }
}

/// A value Flink cannot use.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidValue {
    pub process: Process,
    pub key: &'static str,
    pub value: String,
    pub expected: Expected,
    /// Set when the value parses but Flink rejects it (e.g. a negative count).
    pub problem: Option<String>,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Some(p) => write!(f, "{}: {} '{}' {p}", self.process, self.key, self.value),
            None => write!(
                f,
                "{}: {} '{}' is not {}",
                self.process, self.key, self.value, self.expected
            ),
        }
    }
}

/// A total, as set or as derived from another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Total {
    /// "Total Flink Memory" or "Total Process Memory".
    pub name: &'static str,
    pub bytes: u64,
    /// The key to raise: the one that set the total or the one it derives from.
    pub key: &'static str,
    /// How the total follows from `key` when `key` does not set it directly.
    pub derivation: Option<String>,
}

impl fmt::Display for Total {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.derivation {
            None => write!(f, "{} {}", self.key, size(self.bytes)),
            Some(d) => write!(f, "{} {} ({d})", self.name, size(self.bytes)),
        }
    }
}

/// One component of a sum in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: &'static str,
    pub bytes: u64,
    /// Keys that would shrink this part.
    pub keys: Vec<&'static str>,
    /// How the size came about when not set directly.
    pub note: Option<String>,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, size(self.bytes))?;
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// A total smaller than its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub process: Process,
    pub total: Total,
    pub parts: Vec<Part>,
    /// The component that gets what the parts leave, when Flink wants it
    /// non-empty (the JobManager heap): the total must then exceed the parts.
    pub rest: Option<&'static str>,
}

impl Shortfall {
    pub fn needed(&self) -> u64 {
        sum_saturating(&self.parts)
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rest {
            Some(rest) if self.total.bytes >= self.needed() => write!(
                f,
                "{}: {} leaves no {rest} after {} = {}",
                self.process,
                self.total,
                join_parts(&self.parts),
                size(self.needed()),
            )?,
            _ => write!(
                f,
                "{}: {} is smaller than {} = {}",
                self.process,
                self.total,
                join_parts(&self.parts),
                size(self.needed()),
            )?,
        }
        write!(
            f,
            "; raise {} or lower {}",
            self.total.key,
            lower_keys(&self.parts)
        )
    }
}

/// A left-over part outside its configured range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    pub process: Process,
    /// "network memory" or "JVM overhead".
    pub component: &'static str,
    pub derived: u64,
    pub total: Total,
    /// What the total holds besides the derived part.
    pub parts: Vec<Part>,
    pub min_key: &'static str,
    pub min: u64,
    pub max_key: &'static str,
    pub max: u64,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: with these sizes set explicitly, {} is what {} leaves after {} = {}, i.e. {}, \
             outside its range [{} ({}), {} ({})]; set fewer of the sizes explicitly, change them \
             so {} fits, or widen the range",
            self.process,
            self.component,
            self.total,
            join_parts(&self.parts),
            size(sum_saturating(&self.parts)),
            size(self.derived),
            size(self.min),
            self.min_key,
            size(self.max),
            self.max_key,
            self.component
        )
    }
}

/// Network memory from legacy buffers not matching what the sizes leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyNetworkMismatch {
    pub total: Total,
    pub parts: Vec<Part>,
    pub derived: u64,
    pub buffers: i32,
    pub segment_size: u64,
    pub configured: u64,
}

impl fmt::Display for LegacyNetworkMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TaskManager: taskmanager.network.numberOfBuffers {} x taskmanager.memory.segment-size {} \
             = {} of network memory, but {} leaves {} after {}; drop the legacy \
             taskmanager.network.numberOfBuffers (size network memory with \
             taskmanager.memory.network.min/max/fraction) or set fewer sizes explicitly",
            self.buffers,
            size(self.segment_size),
            size(self.configured),
            self.total,
            size(self.derived),
            join_parts(&self.parts)
        )
    }
}

/// JobManager heap plus off-heap not equal to the Total Flink Memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumMismatch {
    pub process: Process,
    pub total: Total,
    pub parts: Vec<Part>,
}

impl fmt::Display for SumMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} = {} does not match {}; set only two of {}, {}",
            self.process,
            join_parts(&self.parts),
            size(sum_saturating(&self.parts)),
            self.total,
            lower_keys(&self.parts),
            self.total.key
        )
    }
}

fn sum_saturating(parts: &[Part]) -> u64 {
    parts.iter().fold(0u64, |a, p| a.saturating_add(p.bytes))
}

/// The parts as a sum, leaving out empty ones (unless all are).
fn join_parts(parts: &[Part]) -> String {
    let shown: Vec<String> = parts
        .iter()
        .filter(|p| p.bytes > 0)
        .map(|p| p.to_string())
        .collect();
    if shown.is_empty() {
        parts
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    } else {
        shown.join(" + ")
    }
}

fn lower_keys(parts: &[Part]) -> String {
    let mut keys: Vec<&str> = Vec::new();
    for p in parts.iter().filter(|p| p.bytes > 0) {
        for k in &p.keys {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    keys.join(", ")
}

/// Renders a size the way Flink keys are written (`1728m`, `1g`), or with
/// two decimals in MiB when it is not a whole number of KiB.
pub fn size(bytes: u64) -> String {
    if bytes == 0 {
        "0".to_string()
    } else if bytes == MAX_BYTES {
        "no limit".to_string()
    } else if bytes.is_multiple_of(GIB) {
        format!("{}g", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{}m", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.2}m", bytes as f64 / MIB as f64)
    } else if bytes.is_multiple_of(KIB) {
        format!("{}k", bytes / KIB)
    } else {
        format!("{bytes}b")
    }
}

// ---------------------------------------------------------------------------
// Keys (flink-core TaskManagerOptions, JobManagerOptions,
// NettyShuffleEnvironmentOptions of 1.20), with fallback keys and defaults.

/// A config option: its key and the older keys Flink still reads after it.
struct Opt {
    key: &'static str,
    fallback: &'static [&'static str],
}

const fn opt(key: &'static str) -> Opt {
    Opt { key, fallback: &[] }
}

struct SizeOpt {
    opt: Opt,
    default: Option<u64>,
}

const fn size_opt(key: &'static str, default: Option<u64>) -> SizeOpt {
    SizeOpt {
        opt: opt(key),
        default,
    }
}

struct FloatOpt {
    opt: Opt,
    default: f32,
}

const TM_PROCESS: SizeOpt = size_opt("taskmanager.memory.process.size", None);
const TM_FLINK: SizeOpt = size_opt("taskmanager.memory.flink.size", None);
const TM_FRAMEWORK_HEAP: SizeOpt =
    size_opt("taskmanager.memory.framework.heap.size", Some(128 * MIB));
const TM_FRAMEWORK_OFF_HEAP: SizeOpt = size_opt(
    "taskmanager.memory.framework.off-heap.size",
    Some(128 * MIB),
);
const TM_TASK_HEAP: SizeOpt = size_opt("taskmanager.memory.task.heap.size", None);
const TM_TASK_OFF_HEAP: SizeOpt = size_opt("taskmanager.memory.task.off-heap.size", Some(0));
const TM_MANAGED: SizeOpt = SizeOpt {
    opt: Opt {
        key: "taskmanager.memory.managed.size",
        fallback: &["taskmanager.memory.size"],
    },
    default: None,
};
const TM_MANAGED_FRACTION: FloatOpt = FloatOpt {
    opt: opt("taskmanager.memory.managed.fraction"),
    default: 0.4,
};
const TM_NETWORK: RangeOpts = RangeOpts {
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
const TM_NETWORK_BUFFERS: Opt = opt("taskmanager.network.numberOfBuffers");
const TM_NETWORK_BUFFERS_DEFAULT: i32 = 2048;
const TM_SEGMENT_SIZE: SizeOpt = size_opt("taskmanager.memory.segment-size", Some(32 * KIB));
const TM_LEGACY_HEAP: SizeOpt = size_opt("taskmanager.heap.size", None);
const TM_LEGACY_HEAP_MB: Opt = opt("taskmanager.heap.mb");
const TM_CPU_CORES: Opt = opt("taskmanager.cpu.cores");
const TM_SLOTS: Opt = opt("taskmanager.numberOfTaskSlots");
const TM_JVM: JvmOpts = JvmOpts {
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

const JM_PROCESS: SizeOpt = size_opt("jobmanager.memory.process.size", None);
const JM_FLINK: SizeOpt = size_opt("jobmanager.memory.flink.size", None);
const JM_HEAP: SizeOpt = size_opt("jobmanager.memory.heap.size", None);
const JM_OFF_HEAP: SizeOpt = size_opt("jobmanager.memory.off-heap.size", Some(128 * MIB));
const JM_DIRECT_LIMIT: Opt = opt("jobmanager.memory.enable-jvm-direct-memory-limit");
const JM_LEGACY_HEAP: SizeOpt = size_opt("jobmanager.heap.size", None);
const JM_LEGACY_HEAP_MB: Opt = opt("jobmanager.heap.mb");
const JM_JVM: JvmOpts = JvmOpts {
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

struct RangeOpts {
    min: SizeOpt,
    max: SizeOpt,
    fraction: FloatOpt,
}

struct JvmOpts {
    process: SizeOpt,
    metaspace: SizeOpt,
    overhead: RangeOpts,
}

// ---------------------------------------------------------------------------
// Reading the configuration.

/// A size as read: the key it came from (the option's own, a fallback key or
/// a legacy key mapped onto it) and whether the user set it.
#[derive(Debug, Clone, Copy)]
struct Setting {
    key: &'static str,
    bytes: u64,
    explicit: bool,
}

#[derive(Debug, Clone, Copy)]
struct Fraction {
    key: &'static str,
    value: f32,
}

impl Fraction {
    fn as_f64(self) -> f64 {
        f64::from(self.value)
    }
}

#[derive(Debug, Clone, Copy)]
struct Range {
    min: Setting,
    max: Setting,
    fraction: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clamp {
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

struct Conf<'a> {
    map: &'a BTreeMap<String, String>,
    process: Process,
    mapped: Option<Mapped>,
}

type Result<T> = std::result::Result<T, MemoryModelError>;

impl<'a> Conf<'a> {
    fn new(map: &'a BTreeMap<String, String>, process: Process) -> Self {
        Conf {
            map,
            process,
            mapped: None,
        }
    }

    /// The key Flink finds the option under (its own first, then fallbacks).
    fn find(&self, o: &Opt) -> Option<(&'static str, &'a str)> {
        std::iter::once(o.key)
            .chain(o.fallback.iter().copied())
            .find_map(|k| self.map.get(k).map(|v| (k, v.as_str())))
    }

    fn contains(&self, o: &Opt) -> bool {
        self.mapped.is_some_and(|m| m.target == o.key) || self.find(o).is_some()
    }

    fn invalid(&self, key: &'static str, value: &str, expected: Expected) -> MemoryModelError {
        self.rejected(key, value, expected, None)
    }

    fn rejected(
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
    fn size(&self, o: &SizeOpt) -> Result<Setting> {
        self.size_opt(o)?.ok_or(MemoryModelError::NotConfigured {
            process: self.process,
        })
    }

    fn float(&self, o: &FloatOpt) -> Result<Fraction> {
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

    fn int(&self, o: &Opt, default: i32) -> Result<(&'static str, i32)> {
        match self.find(o) {
            Some((key, text)) => parse_java_int(text)
                .map(|v| (key, v))
                .ok_or_else(|| self.invalid(key, text, Expected::Integer)),
            None => Ok((o.key, default)),
        }
    }

    fn boolean(&self, o: &Opt, default: bool) -> Result<bool> {
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
    fn range(&self, o: &RangeOpts) -> Result<Range> {
        let min = self.size(&o.min)?;
        let max = self.size(&o.max)?;
        let fraction = self.float(&o.fraction)?;
        self.check_range(min, max, fraction)?;
        Ok(Range { min, max, fraction })
    }

    fn check_range(&self, min: Setting, max: Setting, fraction: Fraction) -> Result<()> {
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
    fn map_legacy_heap(&mut self, target: &SizeOpt, heap: &SizeOpt, heap_mb: &Opt) -> Result<()> {
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

    fn add(&self, parts: &[u64], what: &'static str) -> Result<u64> {
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
    fn with_fraction(&self, base: u64, r: &Range, what: &'static str) -> Result<(u64, Clamp)> {
        let relative = self.multiply(base, r.fraction.as_f64(), what)?;
        Ok(clamp(relative, r))
    }

    /// `ProcessMemoryUtils.deriveWithInverseFraction`: the part that is
    /// `fraction` of `base` plus itself, clamped.
    fn with_inverse_fraction(
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

fn explicit_part(name: &'static str, s: Setting) -> Part {
    Part {
        name,
        bytes: s.bytes,
        keys: vec![s.key],
        note: None,
    }
}

/// A part derived from a range: which key bounds it.
fn ranged_part(name: &'static str, bytes: u64, clamp: Clamp, r: &Range, of: &str) -> Part {
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

// ---------------------------------------------------------------------------
// JVM metaspace and overhead (ProcessMemoryUtils).

struct Jvm {
    metaspace: u64,
    overhead: u64,
}

/// What Total Flink Memory came from, for messages.
struct FlinkOrigin {
    keys: Vec<&'static str>,
    note: Option<String>,
}

/// `deriveJvmMetaspaceAndOverheadFromTotalFlinkMemory`.
fn jvm_from_total_flink(
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
        if overhead > r.max.bytes || overhead < r.min.bytes {
            return Err(MemoryModelError::DerivedOutOfRange(Box::new(OutOfRange {
                process: c.process,
                component: "JVM overhead",
                derived: overhead,
                total,
                parts,
                min_key: r.min.key,
                min: r.min.bytes,
                max_key: r.max.key,
                max: r.max.bytes,
            })));
        }
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

/// `deriveJvmMetaspaceAndOverheadWithTotalProcessMemory`, returning also the
/// Total Flink Memory that is left.
fn jvm_from_total_process(c: &Conf, o: &JvmOpts) -> Result<(Jvm, Total)> {
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

fn configured_total(name: &'static str, s: Setting) -> Total {
    Total {
        name,
        bytes: s.bytes,
        key: s.key,
        derivation: None,
    }
}

// ---------------------------------------------------------------------------
// TaskManager (TaskExecutorProcessUtils, TaskExecutorFlinkMemoryUtils).

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

/// Derives the memory model of a TaskManager from a flat Flink configuration.
pub fn task_manager(
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
    if network > r.max.bytes || network < r.min.bytes {
        return Err(MemoryModelError::DerivedOutOfRange(Box::new(OutOfRange {
            process: c.process,
            component: "network memory",
            derived: network,
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

// ---------------------------------------------------------------------------
// JobManager (JobManagerProcessUtils, JobManagerFlinkMemoryUtils).

/// Derives the memory model of a JobManager from a flat Flink configuration.
pub fn job_manager(
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

// ---------------------------------------------------------------------------
// Java number grammar and arithmetic.

/// Java's `String.trim`: strips every char up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// A size as Flink's `MemorySize.parse` reads it: blanks around, a whole
/// number of ASCII digits, then an optional unit (`b`/`bytes`, `k`/`kb`/
/// `kibibytes`, `m`/`mb`/`mebibytes`, `g`/`gb`/`gibibytes`, `t`/`tb`/
/// `tebibytes`, any case, blanks allowed before it). Units are binary.
/// `Err(None)` for a malformed value, `Err(Some(reason))` for one that is
/// well-formed but too large.
///
/// Stricter than [`crate::quantity::parse_flink_memory`], which also takes
/// Kubernetes quantities (`2Gi`, `1e3`) that Flink's configuration refuses.
pub fn parse_memory_size(text: &str) -> std::result::Result<u64, Option<String>> {
    let t = java_trim(text);
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(None);
    }
    let unit = java_trim(unit).to_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => KIB,
        "m" | "mb" | "mebibytes" => MIB,
        "g" | "gb" | "gibibytes" => GIB,
        "t" | "tb" | "tebibytes" => 1 << 40,
        _ => return Err(None),
    };
    let too_large = || Some("it is larger than 8 EiB".to_string());
    let n: u64 = number.parse().map_err(|_| too_large())?;
    n.checked_mul(multiplier)
        .filter(|b| *b <= MAX_BYTES)
        .ok_or_else(too_large)
}

/// The decimal literal grammar of Java's `Float.parseFloat` /
/// `Double.parseDouble`, without hexadecimal literals.
enum JavaNumber {
    NaN,
    Infinity {
        negative: bool,
    },
    /// Sign, digits, point and exponent, ready for Rust's parser.
    Decimal(String),
}

fn java_number(text: &str) -> Option<JavaNumber> {
    let t = java_trim(text);
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    match body {
        "NaN" => return Some(JavaNumber::NaN),
        "Infinity" => return Some(JavaNumber::Infinity { negative }),
        _ => {}
    }
    let body = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    Some(JavaNumber::Decimal(format!(
        "{}{body}",
        if negative { "-" } else { "" }
    )))
}

/// `Float.parseFloat`, as Flink reads fractions.
fn parse_java_float(text: &str) -> Option<f32> {
    match java_number(text)? {
        JavaNumber::NaN => Some(f32::NAN),
        JavaNumber::Infinity { negative } => Some(if negative {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }),
        JavaNumber::Decimal(s) => s.parse().ok(),
    }
}

/// `Double.parseDouble`.
fn parse_java_double(text: &str) -> Option<f64> {
    match java_number(text)? {
        JavaNumber::NaN => Some(f64::NAN),
        JavaNumber::Infinity { negative } => Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        JavaNumber::Decimal(s) => s.parse().ok(),
    }
}

/// `Integer.parseInt`: an optional sign and ASCII digits, no blanks.
fn parse_java_int(text: &str) -> Option<i32> {
    text.parse().ok()
}

/// The decimal `Double.toString(x)` prints, as `digits * 10^exp`: the
/// shortest that reads back as `x`, and of two equally short and equally
/// close ones, the one ending in an even digit.
fn java_decimal(x: f64) -> (u64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (0, 0);
    }
    // Rust's `{:e}` is the shortest round-trip form too.
    let shortest = format!("{:e}", x.abs());
    let Some((mantissa, exp)) = shortest.split_once('e') else {
        return (0, 0);
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (Ok(mut d), Ok(e)) = (digits.parse::<u64>(), exp.parse::<i32>()) else {
        return (0, 0);
    };
    let n = digits.len();
    // A tie: x is exactly halfway between two n-digit decimals, i.e. its
    // exact expansion is those n digits followed by a single 5. Rust may
    // round such a tie up where Java picks the even digit. A double's exact
    // expansion has at most 767 significant digits.
    let exact = format!("{:.*e}", n + 800, x.abs());
    if let Some((m, _)) = exact.split_once('e') {
        let all: String = m.chars().filter(char::is_ascii_digit).collect();
        if all.len() > n {
            let (head, rest) = all.split_at(n);
            if rest.starts_with('5')
                && rest[1..].bytes().all(|b| b == b'0')
                && let Ok(low) = head.parse::<u64>()
            {
                let even = if low % 2 == 0 { low } else { low + 1 };
                // Only swap between the two neighbours of the tie.
                if d == low || d == low + 1 {
                    d = even;
                }
            }
        }
    }
    (d, e - (n as i32 - 1))
}

/// `MemorySize.multiply`: `bytes * BigDecimal.valueOf(factor)`, truncated;
/// `None` when the product exceeds `Long.MAX_VALUE` or `factor` is negative
/// or not finite.
fn multiply(bytes: u64, factor: f64) -> Option<u64> {
    if factor.is_nan() || factor < 0.0 || factor.is_infinite() {
        return None;
    }
    let (digits, exp) = java_decimal(factor);
    let product = u128::from(bytes) * u128::from(digits); // < 2^63 * 10^17 < 2^120
    let (whole, exact) = if exp >= 0 {
        let scaled = 10u128
            .checked_pow(exp.unsigned_abs())
            .and_then(|p| product.checked_mul(p))?;
        (scaled, true)
    } else if exp < -38 {
        (0, product == 0)
    } else {
        let divisor = 10u128.pow(exp.unsigned_abs());
        (product / divisor, product % divisor == 0)
    };
    let max = u128::from(MAX_BYTES);
    if whole > max || (whole == max && !exact) {
        return None;
    }
    u64::try_from(whole).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tm(pairs: &[(&str, &str)]) -> std::result::Result<TaskManagerMemory, MemoryModelError> {
        task_manager(&conf(pairs))
    }

    fn jm(pairs: &[(&str, &str)]) -> std::result::Result<JobManagerMemory, MemoryModelError> {
        job_manager(&conf(pairs))
    }

    fn tm_err(pairs: &[(&str, &str)]) -> MemoryModelError {
        match tm(pairs) {
            Ok(m) => panic!("expected an error for {pairs:?}, got {m:?}"),
            Err(e) => e,
        }
    }

    fn jm_err(pairs: &[(&str, &str)]) -> MemoryModelError {
        match jm(pairs) {
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
        assert!(jm_err(&[("jobmanager.memory.off-heap.size", "1g")]).is_not_configured());
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
        assert!(matches!(
            jm_err(&[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.enable-jvm-direct-memory-limit", "yes")
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
    fn overflow_is_an_error() {
        let e = tm_err(&[("taskmanager.memory.flink.size", "9223372036854775807b")]);
        assert!(matches!(e, MemoryModelError::Overflow { .. }), "{e:?}");
        let e = jm_err(&[("jobmanager.memory.heap.size", "9223372036854775807")]);
        assert!(matches!(e, MemoryModelError::Overflow { .. }), "{e:?}");
    }

    #[test]
    fn memory_size_grammar() {
        assert_eq!(parse_memory_size("1728m"), Ok(1728 * MIB));
        assert_eq!(parse_memory_size(" 2 GB "), Ok(2 * GIB));
        assert_eq!(parse_memory_size("10 kibibytes"), Ok(10 * KIB));
        assert_eq!(parse_memory_size("123"), Ok(123));
        assert_eq!(parse_memory_size("9223372036854775807b"), Ok(MAX_BYTES));
        assert!(parse_memory_size("9223372036854775808").is_err());
        assert!(parse_memory_size("8388608t").is_err());
        for bad in ["", "m", "2Gi", "1.5g", "-1m", "1e3", "1 2m"] {
            assert_eq!(parse_memory_size(bad), Err(None), "{bad}");
        }
    }

    #[test]
    fn java_number_grammar() {
        assert_eq!(parse_java_float("0.1"), Some(0.1));
        assert_eq!(parse_java_float(" .5f "), Some(0.5));
        assert_eq!(parse_java_float("1e-1"), Some(0.1));
        assert_eq!(parse_java_float("1.D"), Some(1.0));
        assert!(parse_java_float("NaN").is_some_and(f32::is_nan));
        assert_eq!(parse_java_float("-Infinity"), Some(f32::NEG_INFINITY));
        for bad in [
            "", ".", "inf", "nan", "1e", "0.1.2", "NaNf", "1,5", "0x1p-3",
        ] {
            assert_eq!(parse_java_float(bad), None, "{bad}");
        }
        assert_eq!(parse_java_int("+2"), Some(2));
        assert_eq!(parse_java_int(" 2"), None);
    }

    #[test]
    fn multiply_matches_big_decimal() {
        // Double.toString(0.1f) = 0.10000000149011612.
        assert_eq!(java_decimal(0.1f32 as f64), (10000000149011612, -17));
        assert_eq!(multiply(1280 * MIB, 0.1f32 as f64), Some(134217730));
        // A tie: the float 0.69956207275390625 is exactly halfway between two
        // 16-digit decimals; Java prints 0.6995620727539062, Rust's shortest
        // form ends in 3.
        let tie = f64::from(f32::from_bits(0x3f33_1680));
        assert_eq!(format!("{tie:.17}"), "0.69956207275390625");
        assert_eq!(format!("{tie:e}"), "6.995620727539063e-1");
        assert_eq!(java_decimal(tie), (6995620727539062, -16));
        assert_eq!(multiply(0, 0.5), Some(0));
        assert_eq!(multiply(MAX_BYTES, 0.5), Some(MAX_BYTES / 2));
        assert_eq!(multiply(MAX_BYTES, 2.0), None);
        assert_eq!(multiply(10, f64::NAN), None);
        assert_eq!(multiply(10, -0.0), Some(0));
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
        assert_eq!(size(MIB * 3 / 2), "1.50m");
        assert_eq!(size(MAX_BYTES), "no limit");
        assert_eq!(size(32 * KIB), "32k");
        assert_eq!(size(7), "7b");
    }

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

            #[test]
            fn multiply_never_panics(bytes in 0..=MAX_BYTES, factor in any::<f64>()) {
                let _ = multiply(bytes, factor);
            }
        }
    }
}
