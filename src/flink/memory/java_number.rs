//! The parts of Java's number grammar Flink's configuration goes through:
//! `String.trim`, `Float.parseFloat` / `Double.parseDouble` (decimal
//! literals only, no hexadecimal ones) and `Integer.parseInt`.

/// Java's `String.trim`: strips every char up to U+0020.
pub(super) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
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
pub(super) fn parse_java_float(text: &str) -> Option<f32> {
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
pub(super) fn parse_java_double(text: &str) -> Option<f64> {
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
pub(super) fn parse_java_int(text: &str) -> Option<i32> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
