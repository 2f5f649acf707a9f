//! Flink's `MemorySize`: the grammar `MemorySize.parse` accepts, the
//! byte-exact `MemorySize.multiply` (a `BigDecimal.valueOf(double)`, i.e. the
//! decimal `Double.toString` prints), and sizes rendered for messages.

use super::java_number::java_trim;

/// The largest memory size Flink can hold (`Long.MAX_VALUE` bytes).
pub const MAX_BYTES: u64 = i64::MAX as u64;

pub(super) const KIB: u64 = 1 << 10;
pub(super) const MIB: u64 = 1 << 20;
pub(super) const GIB: u64 = 1 << 30;

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

/// The decimal `Double.toString(x)` prints, as `digits * 10^exp`: the
/// shortest that reads back as `x`, and of two equally short and equally
/// close ones, the one ending in an even digit.
fn java_decimal(x: f64) -> (u64, i32) {
    // The exact form below costs ~60k instructions (40 % of a validation,
    // by callgrind), and the factors are a handful of configured fractions:
    // remember them, per thread, without locking.
    const REMEMBERED: usize = 64;
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<u64, (u64, i32)>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    if let Some(known) = SEEN.with(|seen| seen.borrow().get(&x.to_bits()).copied()) {
        return known;
    }
    let decimal = java_decimal_uncached(x);
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(x.to_bits(), decimal);
    });
    decimal
}

fn java_decimal_uncached(x: f64) -> (u64, i32) {
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
pub(super) fn multiply(bytes: u64, factor: f64) -> Option<u64> {
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
    use proptest::prelude::*;

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
    fn size_formatting() {
        assert_eq!(size(MIB * 3 / 2), "1.50m");
        assert_eq!(size(MAX_BYTES), "no limit");
        assert_eq!(size(32 * KIB), "32k");
        assert_eq!(size(7), "7b");
    }

    proptest! {
        #[test]
        fn multiply_never_panics(bytes in 0..=MAX_BYTES, factor in any::<f64>()) {
            let _ = multiply(bytes, factor);
        }

        #[test]
        fn remembered_decimals_are_the_computed_ones(factor in any::<f64>()) {
            let first = java_decimal(factor);
            prop_assert_eq!(first, java_decimal_uncached(factor));
            prop_assert_eq!(java_decimal(factor), first, "from memory");
        }
    }
}
