//! The `spec.ingress.template` rule. The operator turns the template into a
//! URL (`IngressUtils.getIngressUrl`): `http://` is added unless the template
//! starts with `http://` or `https://` in any case, `{{name}}` and
//! `{{namespace}}` (any case) are replaced, and the result must be a URL
//! Java's `new URL(...)` accepts. The URL's host then becomes the Ingress
//! rule's host, which Kubernetes checks in turn.
//!
//! Java's URL parser checks little: for http(s) it refuses only a bad port
//! and a bad bracketed IPv6 host. [`java_url_host`] reads the URL the same
//! way (checked against Java itself in `tests/ingress_url.rs`), without the
//! WHATWG parser's cost or its extra refusals.

use memchr::{memchr, memchr2};

use crate::address::{is_dns1123_subdomain, is_sloppy_ipv4};

/// The operator's ingress URL, substituted in one buffer. (Names are DNS
/// labels, so a substituted name never forms a placeholder; a unit test
/// holds this to the operator's replace-twice.)
pub fn url(template: &str, name: &str, namespace: &str) -> String {
    let mut url = String::with_capacity(template.len() + 7 + name.len() + namespace.len());
    if !(starts_with_ignore_case(template, "http://")
        || starts_with_ignore_case(template, "https://"))
    {
        url.push_str("http://");
    }
    let mut rest = template;
    while let Some(at) = memchr(b'{', rest.as_bytes()) {
        url.push_str(&rest[..at]);
        let tail = &rest[at..];
        // Placeholders are ASCII, so the index after one is a char boundary.
        if starts_with_ignore_case(tail, "{{name}}") {
            url.push_str(name);
            rest = &tail["{{name}}".len()..];
        } else if starts_with_ignore_case(tail, "{{namespace}}") {
            url.push_str(namespace);
            rest = &tail["{{namespace}}".len()..];
        } else {
            url.push('{');
            rest = &tail[1..];
        }
    }
    url.push_str(rest);
    url
}

/// Java's `Pattern.CASE_INSENSITIVE`, which folds ASCII only.
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The host of `url`, a URL [`url`] made (so its scheme is http or https),
/// as Java 17's `new URL(url).getHost()` gives it; `Err` with the reason
/// where Java throws `MalformedURLException`.
pub fn java_url_host(url: &str) -> Result<&str, String> {
    let bytes = url.as_bytes();
    // Java trims characters up to ' ' at both ends. They are ASCII, and no
    // byte of a multi-byte UTF-8 character is that small.
    let end = url.trim_end_matches(|c: char| c <= ' ').len();
    let Some(colon) = memchr(b':', bytes) else {
        return Err("no protocol".into());
    };
    let start = colon + 1;
    // The fragment ends the part parsed, and a query before it ends it
    // earlier (a '?' after the fragment is the fragment's).
    let limit = memchr2(b'#', b'?', &bytes[start..end]).map_or(end, |i| start + i);
    let spec = &url[..limit];
    let rest = &spec[start..];
    // "////x" is a UNC-style path, not an authority.
    if rest.starts_with("////") || !rest.starts_with("//") {
        return Ok("");
    }
    let authority_start = start + 2;
    let authority_end =
        memchr(b'/', &bytes[authority_start..limit]).map_or(limit, |i| authority_start + i);
    let authority = &spec[authority_start..authority_end];
    let host = match memchr(b'@', authority.as_bytes()) {
        // More than one '@': not a server-based authority; no host, and
        // nothing more is checked.
        Some(at) if memchr(b'@', &authority.as_bytes()[at + 1..]).is_some() => return Ok(""),
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if host.starts_with('[') {
        bracketed_host(host, authority)?
    } else {
        match memchr(b':', host.as_bytes()) {
            Some(at) => {
                let port = &host[at + 1..];
                if !port.is_empty() {
                    check_port(port)?;
                }
                &host[..at]
            }
            None => host,
        }
    };
    check_host_string(host)?;
    Ok(host)
}

/// `[v6]` or `[v6]:port`, as Java reads it.
fn bracketed_host<'a>(host: &'a str, authority: &str) -> Result<&'a str, String> {
    let invalid_authority = || format!("Invalid authority field: {authority}");
    // Java wants the ']' after at least two characters of address.
    let close = host
        .find(']')
        .filter(|&i| i > 2)
        .ok_or_else(invalid_authority)?;
    if !is_java_ipv6_literal(&host[1..close]) {
        return Err(format!("Invalid host: {}", &host[..=close]));
    }
    match &host[close + 1..] {
        "" | ":" => {}
        after => match after.strip_prefix(':') {
            Some(port) => check_port(port)?,
            None => return Err(invalid_authority()),
        },
    }
    Ok(&host[..=close])
}

/// Java's `IPAddressUtil.isIPv6LiteralAddress` (its `textToNumericFormatV6`,
/// with ASCII digits as Java reads them by default): hex groups of any
/// length up to 0xffff, one `::`, an optional dotted IPv4 tail, and an
/// optional non-empty `%scope`.
fn is_java_ipv6_literal(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 2 {
        return false;
    }
    let end = match b.iter().position(|&c| c == b'%') {
        Some(p) if p == b.len() - 1 => return false,
        Some(p) => p,
        None => b.len(),
    };
    let mut i = 0;
    if b[0] == b':' {
        if b[1] != b':' {
            return false;
        }
        i = 1;
    }
    // `bytes` counts the address bytes written so far (of 16).
    let (mut gap, mut bytes, mut token, mut in_group, mut group) = (false, 0, i, false, 0u32);
    while i < end {
        let c = b[i];
        i += 1;
        if let Some(digit) = char::from(c).to_digit(16) {
            group = (group << 4) | digit;
            if group > 0xffff {
                return false;
            }
            in_group = true;
        } else if c == b':' {
            token = i;
            if !in_group {
                if gap {
                    return false;
                }
                gap = true;
            } else if i == end || bytes + 2 > 16 {
                return false;
            } else {
                bytes += 2;
                (in_group, group) = (false, 0);
            }
        } else if c == b'.' && bytes + 4 <= 16 {
            let tail = &text[token..end];
            if tail.matches('.').count() != 3 || !is_java_ipv4(tail) {
                return false;
            }
            bytes += 4;
            in_group = false;
            break;
        } else {
            return false;
        }
    }
    if in_group {
        bytes += 2;
    }
    if gap { bytes < 16 } else { bytes == 16 }
}

/// Java's `textToNumericFormatV4` for four dotted parts: decimal, leading
/// zeros allowed, each up to 255, at most 15 characters in all.
fn is_java_ipv4(text: &str) -> bool {
    text.len() <= 15
        && text.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && part.parse::<u32>().is_ok_and(|v| v <= 255)
        })
}

/// Java's `IPAddressUtil.checkHostString`, which `new URL(...)` applies to
/// the host (not the user info): no control character, and none of the
/// characters that normalise to a URL delimiter.
fn check_host_string(host: &str) -> Result<(), String> {
    // U+2047 .. U+FF20: '⁇', '℀', '﹕', '＃', '／', '：', '？', '＠' and the like.
    const LOOKALIKES: [char; 17] = [
        '\u{2047}', '\u{2048}', '\u{2049}', '\u{2100}', '\u{2101}', '\u{2105}', '\u{2106}',
        '\u{2a74}', '\u{fe55}', '\u{fe56}', '\u{fe5f}', '\u{fe6b}', '\u{ff03}', '\u{ff0f}',
        '\u{ff1a}', '\u{ff1f}', '\u{ff20}',
    ];
    let control = |c: char| c < ' ' || c == '\u{7f}';
    // Most hosts are printable ASCII without '/': one scan of the bytes.
    if host.bytes().all(|b| (b' '..0x7f).contains(&b) && b != b'/') {
        return Ok(());
    }
    if let Some(c) = host
        .chars()
        .find(|&c| control(c) || c == '/' || LOOKALIKES.contains(&c))
    {
        return Err(format!("Illegal character found in host: {}", describe(c)));
    }
    Ok(())
}

fn describe(c: char) -> String {
    match c {
        '\n' => "LF".into(),
        '\r' => "CR".into(),
        c if c < ' ' || c == '\u{7f}' => format!("control char (code={})", c as u32),
        c => format!("'{c}'"),
    }
}

/// Java's `Integer.parseInt` of the port, then its `port < -1` check.
/// (Java also reads non-ASCII decimal digits; those are refused here.)
fn check_port(port: &str) -> Result<(), String> {
    let (negative, digits) = match port.as_bytes().first() {
        Some(b'-') => (true, &port[1..]),
        Some(b'+') => (false, &port[1..]),
        _ => (false, port),
    };
    let value = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<i64>().ok())
        .flatten()
        .map(|v| if negative { -v } else { v })
        .filter(|v| i32::try_from(*v).is_ok());
    match value {
        None => Err(format!("the port '{port}' is not a number")),
        Some(v) if v < -1 => Err(format!("Invalid port number :{v}")),
        Some(_) => Ok(()),
    }
}

/// Why Kubernetes would refuse `host` as an Ingress rule's host (its
/// `validateIngressRules`), or `None`. An empty host is no host.
pub fn ingress_host_problem(host: &str) -> Option<&'static str> {
    if host.is_empty() {
        return None;
    }
    if is_sloppy_ipv4(host) {
        return Some("must be a DNS name, not an IP address");
    }
    let name = match host.strip_prefix("*.") {
        Some(name) if !name.contains('*') => name,
        _ if host.contains('*') => {
            return Some("a wildcard host must be '*.' followed by a lowercase DNS name");
        }
        _ => host,
    };
    if host.len() > 253 || !is_dns1123_subdomain(name) {
        return Some(
            "must be a lowercase DNS name (letters, digits, '-' and '.', at most 253 characters)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_as_the_operator_does() {
        // The operator: add the scheme, then replace {{name}}, then
        // {{namespace}}, each as a case-insensitive pattern over the whole
        // text.
        fn replace_all(s: &str, placeholder: &str, with: &str) -> String {
            let (lower, mut out, mut i) = (s.to_ascii_lowercase(), String::new(), 0);
            while let Some(at) = lower[i..].find(placeholder) {
                out.push_str(&s[i..i + at]);
                out.push_str(with);
                i += at + placeholder.len();
            }
            out + &s[i..]
        }
        fn twice(t: &str) -> String {
            let lower = t.to_ascii_lowercase();
            let t = if lower.starts_with("http://") || lower.starts_with("https://") {
                t.to_string()
            } else {
                format!("http://{t}")
            };
            replace_all(
                &replace_all(&t, "{{name}}", "app"),
                "{{namespace}}",
                "team-a",
            )
        }
        for t in [
            "{{name}}.{{namespace}}.flink.example.com",
            "https://{{namespace}}.example.com/{{name}}",
            "HTTPS://{{NAME}}.example.com/{{NameSpace}}",
            "Http://x/{{name}}",
            "httpx://{{name}}",
            "/{{namespace}}/{{name}}(/|$)(.*)",
            "{{{name}}}.{{namespace}}}.x",
            "{{name",
            "{{name}",
            "{",
            "{{",
            "}}{{",
            "é{{name}}ü.{{namespace}}ß",
            "{{nameX}}{{namespacE}}",
            "",
        ] {
            assert_eq!(url(t, "app", "team-a"), twice(t), "{t}");
        }
    }

    #[test]
    fn reads_the_host_and_port_as_java_does() {
        let ok = |u: &str, host: &str| assert_eq!(java_url_host(u), Ok(host), "{u}");
        ok("http://app.team-a.example.com", "app.team-a.example.com");
        ok("http://Example.COM:8080/x?y#z", "Example.COM");
        ok("http://exa mple.com/app", "exa mple.com");
        ok("http:///team-a/app(/|$)(.*)", "");
        ok("http://host:", "host");
        ok("http://host:+80", "host");
        ok("http://host:-1", "host");
        ok("http://host:99999", "host");
        ok("http://user@host:1", "host");
        ok("http://a@b@c:notaport", "");
        ok("http://host#frag:x", "host");
        ok("http://host?q=:x", "host");
        ok("http:////unc/path:x", "");
        ok("http://[::1]:8080/x", "[::1]");
        ok("http://[fe80::1%eth0]", "[fe80::1%eth0]");
        ok("http://[::1]:", "[::1]");
        ok("http://host  \t", "host");
        let bad = |u: &str, why: &str| {
            let e = java_url_host(u).expect_err(u);
            assert!(e.contains(why), "{u}: {e}");
        };
        bad("http://host:80:90", "not a number");
        bad("http://host:http", "not a number");
        bad("http://host:-2", "Invalid port number");
        bad("http://host:2147483648", "not a number");
        bad("http://host:-", "not a number");
        bad("http://[::1]x", "Invalid authority field");
        bad("http://[]", "Invalid authority field");
        bad("http://[::g]", "Invalid host");
        bad("http://[::1%]", "Invalid host");
        bad("http://[::1]:x", "not a number");
    }

    #[test]
    fn ingress_hosts_as_kubernetes_checks_them() {
        for good in ["", "app.team-a.example.com", "*.example.com", "a", "1-2.x"] {
            assert_eq!(ingress_host_problem(good), None, "{good}");
        }
        for bad in [
            "Example.com",
            "exa mple.com",
            "-a.com",
            "a-.com",
            "a..b",
            "a.com.",
            "10.0.0.1",
            "010.0.0.001",
            "[::1]",
            "*",
            "*.",
            "a.*.com",
            "*.*.com",
            "é.com",
            "under_score.com",
        ] {
            assert!(ingress_host_problem(bad).is_some(), "{bad}");
        }
        assert!(ingress_host_problem(&"a".repeat(254)).is_some());
        assert_eq!(ingress_host_problem(&"a".repeat(253)), None);
    }
}
