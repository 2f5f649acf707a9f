//! Flink version names of the form `v1_20` / `v2_0`, ordered.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlinkVersion {
    pub major: u16,
    pub minor: u16,
}

impl FlinkVersion {
    /// The oldest version the operator still deploys.
    pub const MIN_SUPPORTED: FlinkVersion = FlinkVersion {
        major: 1,
        minor: 15,
    };

    /// Parses `v<major>_<minor>`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.strip_prefix('v')?.split_once('_')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}_{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v115 = FlinkVersion::parse("v1_15").unwrap();
        let v120 = FlinkVersion::parse("v1_20").unwrap();
        let v20 = FlinkVersion::parse("v2_0").unwrap();
        assert!(v115 < v120 && v120 < v20);
        assert_eq!(v120.to_string(), "v1_20");
        assert_eq!(FlinkVersion::parse("1.20"), None);
        assert_eq!(FlinkVersion::parse("v1_x"), None);
    }
}
