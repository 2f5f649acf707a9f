//! Every manifest under examples/ through `flinkgate check`, the binary a
//! user runs: under the built-in policy, and under a policy holding only the
//! operator's rules (what the operator's own webhook would say).

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `flinkgate check`'s exit code: 0 all allowed, 1 something denied.
fn check(file: &Path, policy: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flinkgate"));
    cmd.arg("check")
        .arg("-f")
        .arg(file)
        .env_remove("FLINKGATE_POLICY");
    if let Some(p) = policy {
        cmd.arg("--policy").arg(p);
    }
    let out = cmd.output().expect("flinkgate runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// (file, exit code under the built-in policy, under the operator's rules).
/// flinkdeployment.yaml and session-job.yaml leave memory to the policy's
/// defaults, which the operator alone does not fill in.
const EXPECTED: &[(&str, i32, i32)] = &[
    ("basic-application.yaml", 0, 0),
    ("canary.yaml", 0, 0),
    ("custom-logging.yaml", 0, 0),
    ("flinkdeployment.yaml", 0, 1),
    ("ha-last-state.yaml", 0, 0),
    ("ingress.yaml", 0, 0),
    ("invalid.yaml", 1, 1),
    ("pod-template.yaml", 0, 0),
    ("session-cluster.yaml", 0, 0),
    ("session-job.yaml", 0, 1),
];

#[test]
fn every_example_gets_its_expected_verdict() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let operator_rules = dir.path().join("operator-rules.yaml");
    std::fs::write(&operator_rules, "{}\n").expect("write policy");
    let mut listed: Vec<String> = std::fs::read_dir(examples())
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") && n != "policy.yaml")
        .collect();
    listed.sort();
    let expected: Vec<String> = EXPECTED.iter().map(|(f, _, _)| f.to_string()).collect();
    assert_eq!(
        listed, expected,
        "every example needs an expected verdict here"
    );
    for (file, builtin, operator) in EXPECTED {
        let path = examples().join(file);
        let (code, out) = check(&path, None);
        assert_eq!(code, *builtin, "{file} under the built-in policy:\n{out}");
        let (code, out) = check(&path, Some(&operator_rules));
        assert_eq!(code, *operator, "{file} under the operator's rules:\n{out}");
    }
}

#[test]
fn the_example_policy_is_valid() {
    let policy = examples().join("policy.yaml");
    let (code, out) = check(&examples().join("basic-application.yaml"), Some(&policy));
    // The example policy requires checkpointing, which that manifest lacks.
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint"), "{out}");
}
