//! Which addresses lie inside the cluster or on the node itself, for the
//! jarURI rules: the webhook refuses such IP literals, and the controller's
//! jar downloader refuses names that resolve to them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An RFC 1123 host name: dot-separated labels of letters, digits and
/// inner `-`, each at most 63 characters, at most 253 in all.
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Kubernetes' DNS-1123 subdomain (`IsDNS1123Subdomain`): lowercase
/// labels of letters, digits and inner `-`, joined by dots, at most 253
/// characters. Unlike [`is_host_name`], no per-label limit and no capitals.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    // One pass: a label starts and ends with a letter or digit, so '-'
    // never follows a '.' (or the start), and '.' only follows one.
    let mut previous = b'.';
    for &b in name.as_bytes() {
        let fits = match b {
            b'.' => alphanumeric(previous),
            b'-' => previous != b'.',
            _ => alphanumeric(b),
        };
        if !fits {
            return false;
        }
        previous = b;
    }
    name.len() <= 253 && alphanumeric(previous)
}

/// An IPv4 address as Kubernetes' `ParseIPSloppy` reads one: four
/// decimal parts up to 255, leading zeros allowed (`010.0.0.1`).
pub fn is_sloppy_ipv4(text: &str) -> bool {
    let mut parts = 0;
    text.split('.').all(|part| {
        parts += 1;
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && part.trim_start_matches('0').len() <= 3
            && part.parse::<u32>().is_ok_and(|v| v <= 255)
    }) && parts == 4
}

/// Why `ip` must not be fetched from, or `None` for a public address.
/// IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::/96`) addresses are
/// judged by the IPv4 address they reach.
pub fn internal_address_reason(ip: &IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64_embedded(v6)) {
            Some(v4) => v4_reason(&v4),
            None => v6_reason(v6),
        },
        IpAddr::V4(v4) => v4_reason(v4),
    }
}

/// The IPv4 address a NAT64 address (64:ff9b::/96, RFC 6052) reaches.
fn nat64_embedded(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    })
}

fn v4_reason(v4: &Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some("is a loopback address")
    } else if v4.is_link_local() {
        Some("is a link-local address")
    } else if v4.is_private() {
        Some("is a private address")
    } else if a == 0 {
        // "This network"; Linux connects 0.0.0.0 to the host itself.
        Some("is in 0.0.0.0/8 (this host)")
    } else if a == 100 && (b & 0xc0) == 64 {
        // 100.64.0.0/10: pod and Service ranges on several managed clusters.
        Some("is a shared (carrier-grade NAT) address")
    } else if a == 198 && (b & 0xfe) == 18 {
        // 198.18.0.0/15, for benchmarking; some networks use it internally.
        Some("is a benchmarking address (198.18.0.0/15)")
    } else if v4.is_multicast() || v4.is_broadcast() {
        Some("is a multicast or broadcast address")
    } else {
        None
    }
}

fn v6_reason(v6: &Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    if v6.is_loopback() {
        Some("is a loopback address")
    } else if v6.is_unspecified() {
        Some("is the unspecified address")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("is a link-local address")
    } else if (first & 0xfe00) == 0xfc00 {
        // fc00::/7, unique-local: IPv6's private range.
        Some("is a private address")
    } else if (first & 0xffc0) == 0xfec0 {
        // The deprecated site-local range Java still restricts.
        Some("is a site-local address")
    } else if v6.is_multicast() {
        Some("is a multicast or broadcast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(ip: &str) -> Option<&'static str> {
        internal_address_reason(&ip.parse().unwrap())
    }

    #[test]
    fn sloppy_ipv4_as_kubernetes_reads_it() {
        for ip in ["1.2.3.4", "010.0.0.001", "0000001.2.3.255", "0.0.0.0"] {
            assert!(is_sloppy_ipv4(ip), "{ip}");
        }
        for not in [
            "1.2.3",
            "1.2.3.4.5",
            "256.0.0.1",
            "1..2.3",
            "1.2.3.x",
            "",
            "+1.2.3.4",
        ] {
            assert!(!is_sloppy_ipv4(not), "{not}");
        }
    }

    #[test]
    fn dns1123_subdomains() {
        for name in ["a", "a.b", "0-9.example.com", &"a".repeat(100)] {
            assert!(is_dns1123_subdomain(name), "{name}");
        }
        for not in [
            "",
            "A.com",
            "a_b",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            &"a".repeat(254),
        ] {
            assert!(!is_dns1123_subdomain(not), "{not}");
        }
    }

    #[test]
    fn internal_ranges() {
        for (ip, why) in [
            ("127.0.0.1", "is a loopback address"),
            ("10.1.2.3", "is a private address"),
            ("172.16.0.1", "is a private address"),
            ("192.168.1.1", "is a private address"),
            ("169.254.169.254", "is a link-local address"),
            ("0.0.0.0", "is in 0.0.0.0/8 (this host)"),
            ("100.64.0.1", "is a shared (carrier-grade NAT) address"),
            ("100.127.255.255", "is a shared (carrier-grade NAT) address"),
            ("198.18.0.1", "is a benchmarking address (198.18.0.0/15)"),
            (
                "198.19.255.255",
                "is a benchmarking address (198.18.0.0/15)",
            ),
            ("::1", "is a loopback address"),
            ("::ffff:10.0.0.1", "is a private address"),
            ("::ffff:127.0.0.1", "is a loopback address"),
            ("64:ff9b::a00:1", "is a private address"),
            ("fd00::1", "is a private address"),
            ("fe80::1", "is a link-local address"),
        ] {
            assert_eq!(reason(ip), Some(why), "{ip}");
        }
        for public in [
            "8.8.8.8",
            "100.128.0.1",
            "198.20.0.1",
            "2001:db8::1",
            "64:ff9b::808:808",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(reason(public), None, "{public}");
        }
    }
}
