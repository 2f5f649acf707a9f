//! Why Flink would refuse a configuration: [`MemoryModelError`], the
//! details it carries (the offending value, the total and the parts it has
//! to hold, the range a derived part misses) and the messages built from
//! them, which name the keys to change.

use std::fmt;

use thiserror::Error;

use super::size::size;

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

pub(super) type Result<T> = std::result::Result<T, MemoryModelError>;
