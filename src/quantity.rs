//! Parsing of the two size notations a Flink manifest mixes: Kubernetes
//! quantities (`500m`, `2Gi`, `1e3`) and Flink memory sizes (`2048m`, `2 gb`).
//! Hand-written because the crates for this parse one notation only and
//! the whole grammar is a suffix table.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("'{input}' is not a valid {notation}")]
pub struct ParseError {
    pub input: String,
    pub notation: &'static str,
}

/// A Kubernetes quantity as a plain number (cores for cpu, bytes for memory).
pub fn parse_quantity(input: &str) -> Result<f64, ParseError> {
    let err = || ParseError {
        input: input.to_string(),
        notation: "Kubernetes quantity",
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let base: f64 = number.parse().map_err(|_| err())?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| err())?;
            10f64.powi(e)
        }
        _ => return Err(err()),
    };
    let value = base * factor;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(err())
    }
}

/// A quantity given as JSON: Kubernetes accepts both strings and numbers.
pub fn parse_quantity_value(v: &serde_json::Value) -> Result<f64, ParseError> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| ParseError {
            input: n.to_string(),
            notation: "Kubernetes quantity",
        }),
        serde_json::Value::String(s) => parse_quantity(s),
        other => Err(ParseError {
            input: other.to_string(),
            notation: "Kubernetes quantity",
        }),
    }
}

/// A quantity given as a string or a number (Kubernetes takes both), as text.
pub fn quantity_text(q: &serde_json::Value) -> String {
    match q {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Flink memory size in bytes. Flink's units are binary (`1m` = 1 MiB); the
/// operator also accepts Kubernetes notation (`2Gi`), tried second.
pub fn parse_flink_memory(input: &str) -> Result<u64, ParseError> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit = unit.trim();
    // Flink's unit names, in any case (compared in place: this runs for
    // every memory of every review).
    let factor = [
        (["", "b", "bytes"], 1u64),
        (["k", "kb", "kibibytes"], 1 << 10),
        (["m", "mb", "mebibytes"], 1 << 20),
        (["g", "gb", "gibibytes"], 1 << 30),
        (["t", "tb", "tebibytes"], 1 << 40),
    ]
    .into_iter()
    .find(|(names, _)| names.iter().any(|n| unit.eq_ignore_ascii_case(n)))
    .map(|(_, factor)| factor);
    if let (Ok(n), Some(f)) = (number.parse::<u64>(), factor) {
        return n.checked_mul(f).ok_or_else(|| ParseError {
            input: input.to_string(),
            notation: "memory size",
        });
    }
    match parse_quantity(&kubernetes_notation(s)) {
        Ok(bytes) if bytes >= 0.0 && bytes < u64::MAX as f64 => Ok(bytes as u64),
        _ => Err(ParseError {
            input: input.to_string(),
            notation: "memory size (e.g. 2048m, 2g or 2Gi)",
        }),
    }
}

/// The operator's reading of a memory size Flink's grammar refused: spaces
/// dropped, upper-cased, a trailing `B` removed and `I` written `i`, so
/// `2gi` and `2 GiB` mean `2Gi`.
fn kubernetes_notation(s: &str) -> String {
    let mut q: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if q.ends_with('B') {
        q.pop();
    }
    if q.ends_with('I') {
        q.pop();
        q.push('i');
    }
    q
}

/// Renders bytes the way people write memory limits.
pub fn format_bytes(bytes: f64) -> String {
    const GI: f64 = 1024.0 * 1024.0 * 1024.0;
    const MI: f64 = 1024.0 * 1024.0;
    if bytes >= GI && (bytes / GI).fract() == 0.0 {
        format!("{}Gi", bytes / GI)
    } else if bytes >= MI {
        format!("{}Mi", (bytes / MI).round())
    } else {
        format!("{bytes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(parse_quantity("500m").unwrap(), 0.5);
        assert_eq!(parse_quantity("2").unwrap(), 2.0);
        assert_eq!(parse_quantity("2Gi").unwrap(), 2.0 * 1024f64.powi(3));
        assert_eq!(parse_quantity("1G").unwrap(), 1e9);
        assert_eq!(parse_quantity("1e3").unwrap(), 1000.0);
        assert!(parse_quantity("2 apples").is_err());
        assert!(parse_quantity("").is_err());
        assert!(parse_quantity("Gi").is_err());
    }

    #[test]
    fn flink_memory_sizes() {
        assert_eq!(parse_flink_memory("2048m").unwrap(), 2048 << 20);
        assert_eq!(parse_flink_memory("2 gb").unwrap(), 2 << 30);
        assert_eq!(parse_flink_memory("1024").unwrap(), 1024);
        assert_eq!(parse_flink_memory("2Gi").unwrap(), 2 << 30);
        // The operator's leniency: case and a trailing B do not matter.
        assert_eq!(parse_flink_memory("2gi").unwrap(), 2 << 30);
        assert_eq!(parse_flink_memory("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_flink_memory("1.5gi").unwrap(), 3 << 29);
        for (unit, factor) in [
            ("B", 1u64),
            ("Bytes", 1),
            ("K", 1 << 10),
            ("kB", 1 << 10),
            ("KibiBytes", 1 << 10),
            ("M", 1 << 20),
            ("MB", 1 << 20),
            ("MEBIBYTES", 1 << 20),
            ("G", 1 << 30),
            ("gB", 1 << 30),
            ("Gibibytes", 1 << 30),
            ("T", 1 << 40),
            ("Tb", 1 << 40),
            ("tebibytes", 1 << 40),
        ] {
            assert_eq!(
                parse_flink_memory(&format!("3 {unit} ")).unwrap(),
                3 * factor,
                "{unit}"
            );
        }
        assert!(parse_flink_memory("3 mebibyte").is_err());
        assert!(parse_flink_memory("lots").is_err());
        assert!(parse_flink_memory("99999999999999999999t").is_err());
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(format_bytes(8.0 * 1024f64.powi(3)), "8Gi");
        assert_eq!(format_bytes(1536.0 * 1024f64.powi(2)), "1536Mi");
    }
}
