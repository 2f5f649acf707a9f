//! The ingress template rule against Java itself. For every template here,
//! a driver does in a JVM what the operator's `IngressUtils.getIngressUrl`
//! does (add `http://` unless the template starts with `http(s)://` in any
//! case, replace `{{name}}` and `{{namespace}}` in any case, `new URL(...)`)
//! and prints the URL's host or the exception. flinkgate must build the same
//! URL, refuse exactly what Java refuses, and read the same host (the one
//! the operator puts on the Ingress, which flinkgate then checks as
//! Kubernetes would).
//!
//! Java comes from `$JAVA_HOME/bin/java` or `java` on PATH (a JDK: the driver
//! runs as a single-file source program). Without one the test only prints a
//! note, unless `CI=true`, where it fails.

mod common;

use std::process::Command;

use flinkgate::admission::ingress;

const NAME: &str = "top-speed";
const NAMESPACE: &str = "team-a";

const DRIVER: &str = r#"
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.HexFormat;
import java.util.regex.Pattern;

public class IngressUrlDriver {
    static final Pattern SCHEME = Pattern.compile("^https?://", Pattern.CASE_INSENSITIVE);
    static final Pattern NAME = Pattern.compile("\\{\\{name\\}\\}", Pattern.CASE_INSENSITIVE);
    static final Pattern NAMESPACE = Pattern.compile("\\{\\{namespace\\}\\}", Pattern.CASE_INSENSITIVE);

    public static void main(String[] a) throws Exception {
        HexFormat hex = HexFormat.of();
        StringBuilder out = new StringBuilder();
        for (String line : Files.readAllLines(Paths.get(a[0]), StandardCharsets.UTF_8)) {
            String t = new String(hex.parseHex(line), StandardCharsets.UTF_8);
            String u = SCHEME.matcher(t).find() ? t : "http://" + t;
            u = NAME.matcher(u).replaceAll(a[1]);
            u = NAMESPACE.matcher(u).replaceAll(a[2]);
            String result;
            try {
                result = "OK " + hex.formatHex(new URL(u).getHost().getBytes(StandardCharsets.UTF_8));
            } catch (java.net.MalformedURLException e) {
                result = "ERR " + String.valueOf(e.getMessage()).replace('\n', ' ');
            }
            out.append(hex.formatHex(u.getBytes(StandardCharsets.UTF_8))).append('\t').append(result).append('\n');
        }
        System.out.print(out);
    }
}
"#;

/// Hand-picked templates, then every combination of scheme, host, port and
/// the rest.
fn templates() -> Vec<String> {
    let mut all: Vec<String> = [
        "{{name}}.{{namespace}}.flink.example.com",
        "/{{namespace}}/{{name}}(/|$)(.*)",
        "flink.example.com/{{namespace}}/{{name}}(/|$)(.*)",
        "{{{name}}}.{{namespace}}}.x",
        "{{name",
        "",
        " ",
        "  {{name}}.x  ",
        "\t{{name}}.x\n",
        "http:",
        "http:/x",
        "http://",
        "https://x:443",
        "url:http://x",
        "HTTP://X",
        "x#frag/with:colon",
        "x?q=[::1]:y",
        "x:80?q#f",
        "x#f?q:z",
        "[::1]#:x",
        "[::ffff:1.2.3.4]",
        "[::ffff:1.02.3.4]",
        "[1:2:3:4:5:6:7:8]",
        "[1:2:3:4:5:6:7:8:9]",
        "[::1%]",
        "[::1%25eth0]",
        "[v1.x]",
        "[::1",
        "[ab]",
        "a@b@c:1/x",
        "@x:2",
        "x:0",
        "x:00080",
        "x:-0",
        "x:-2147483648",
        "x:2147483647",
        "x: 80",
        "é.example.com:80/ü",
        "{{NAME}}.{{NameSpace}}.example.com",
        "us\ter@h",
        "us/er@h",
        "a\u{7f}b",
        "a]b.com",
        "a[b",
        "a\\b.com",
        "a\u{ff03}b.com",
        "a\u{2047}b",
        "us\u{ff03}er@h",
        "[fe80::1%\t]",
        "[fe80::1%e\u{ff0f}]",
        "[0000000001::]",
        "[10000::]",
        "[1:2:3:4:5:6:1.2.3.4]",
        "[1:2:3:4:5:6:7:1.2.3.4]",
        "[::1.2.3.4]",
        "[::1.2.3]",
        "[::1.2.3.256]",
        "[::001.002.003.004]",
        "[::0001.2.3.4]",
        "[::1.2.3.4.5]",
        "[1::2::3]",
        "[1:]",
        "[::1:]",
        "[:1]",
        "[1:2:3:4:5:6:7::]",
        "[::1:2:3:4:5:6:7]",
        "[1:2:3:4:5:6:7:8::]",
        "[%x]",
        "[::%x]",
        "[::A:bC]",
        "[::\u{ff11}]",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let schemes = [
        "", "http://", "HTTP://", "https://", "hTTpS://", "ftp://", " http://", "http:/", "//",
    ];
    let hosts = [
        "{{name}}.{{namespace}}.example.com",
        "{{NAME}}.x",
        "Example.com",
        "exa mple.com",
        "",
        "[::1]",
        "[fe80::1%eth0]",
        "[::g]",
        "[]",
        "[:]",
        "[1::]",
        "user@h",
        "a@b@c",
        "10.0.0.1",
        "*.example.com",
        "é.com",
        "h_h",
    ];
    let ports = [
        "",
        ":",
        ":80",
        ":+80",
        ":-1",
        ":-2",
        ":99999",
        ":2147483648",
        ":x",
        ":80:90",
        ":-",
        ":+",
    ];
    let rests = [
        "",
        "/",
        "/{{namespace}}/{{name}}(/|$)(.*)",
        "?q=1:x",
        "#f:x",
        "//x",
        "/a b",
    ];
    for s in schemes {
        for h in hosts {
            for p in ports {
                for r in rests {
                    all.push(format!("{s}{h}{p}{r}"));
                }
            }
        }
    }
    all
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the driver"))
        .collect();
    String::from_utf8(bytes).expect("UTF-8 from the driver")
}

#[test]
fn ingress_urls_read_as_java_reads_them() {
    let java = match common::java() {
        Ok(java) => java,
        Err(why) => return common::skip_unless_ci("the comparison with Java's URL", &why),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = dir.path().join("IngressUrlDriver.java");
    std::fs::write(&driver, DRIVER).expect("driver");
    let cases = templates();
    let input: String = cases.iter().map(|t| hex(t) + "\n").collect();
    let input_file = dir.path().join("templates.hex");
    std::fs::write(&input_file, input).expect("input");
    let out = Command::new(&java)
        .arg(&driver)
        .arg(&input_file)
        .arg(NAME)
        .arg(NAMESPACE)
        .output()
        .expect("java runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        answers.len(),
        cases.len(),
        "the driver answered {} of {} templates (exit {:?}): {}",
        answers.len(),
        cases.len(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut refused, mut mismatches) = (0, Vec::new());
    for (template, answer) in cases.iter().zip(answers) {
        let (java_url, verdict) = answer.split_once('\t').expect("url<TAB>verdict");
        let java_url = unhex(java_url);
        let url = ingress::url(template, NAME, NAMESPACE);
        let ours = ingress::java_url_host(&url);
        let agrees = match (verdict.strip_prefix("OK "), &ours) {
            (Some(host), Ok(ours)) => unhex(host) == *ours,
            (None, Err(_)) => {
                refused += 1;
                true
            }
            _ => false,
        };
        if url != java_url || !agrees {
            mismatches.push(format!(
                "{template:?}: Java {java_url:?} -> {verdict}; flinkgate {url:?} -> {ours:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} templates read differently:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches[..mismatches.len().min(40)].join("\n")
    );
    // The corpus exercises both sides of the rule.
    assert!(
        refused > 100 && refused < cases.len() / 2,
        "{refused} refused"
    );
    eprintln!(
        "{} templates, {refused} refused by Java and flinkgate alike",
        cases.len()
    );
}
