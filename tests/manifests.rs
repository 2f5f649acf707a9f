//! The committed manifests stay true to the code: CRDs generated from the
//! Rust types, the ConfigMap's policy equal to the built-in one, and the
//! kustomize tree rendering cleanly.

use std::path::Path;
use std::process::Command;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn committed_crds_match_the_rust_types() {
    for (name, yaml) in flinkgate::flink::crd_gen::crd_files().unwrap() {
        let path = repo("deploy/crds").join(&name);
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == yaml,
            "{} is stale; regenerate with `cargo run -- crds --out-dir deploy/crds`",
            path.display()
        );
    }
}

#[test]
fn deploy_policy_is_the_builtin_policy() {
    let deployed = std::fs::read_to_string(repo("deploy/base/policy.yaml")).unwrap();
    assert_eq!(
        deployed,
        flinkgate::policy::BUILTIN_YAML,
        "deploy/base/policy.yaml must equal src/policy/builtin.yaml"
    );
    flinkgate::policy::Policy::parse(&deployed, "deploy").unwrap();
}

/// kubectl from the local control plane's build, else from PATH.
fn kubectl() -> Option<String> {
    let built = Command::new(repo("hack/build"))
        .arg("--paths")
        .output()
        .ok()?;
    let paths = String::from_utf8_lossy(&built.stdout).to_string();
    paths
        .lines()
        .find_map(|l| l.strip_prefix("kubectl=").map(str::to_string))
        .filter(|p| Path::new(p).exists())
        .or_else(|| {
            Command::new("kubectl")
                .arg("version")
                .arg("--client")
                .output()
                .ok()
                .map(|_| "kubectl".to_string())
        })
}

const FLINKGATE_KINDS: &[&str] = &[
    "kind: CustomResourceDefinition",
    "kind: Deployment",
    "kind: ValidatingWebhookConfiguration",
    "kind: MutatingWebhookConfiguration",
    "kind: ConfigMap",
];
const FLINK_RBAC_KINDS: &[&str] = &["kind: ServiceAccount", "kind: Role", "kind: RoleBinding"];

#[test]
fn kustomize_renders_cleanly() {
    let Some(kubectl) = kubectl() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no kubectl under CI=true: run hack/build"
        );
        eprintln!("SKIP: no kubectl on this machine (run hack/build)");
        return;
    };
    for (dir, kinds) in [
        ("deploy", FLINKGATE_KINDS),
        ("deploy/cert-manager", FLINKGATE_KINDS),
        ("deploy/flink-rbac", FLINK_RBAC_KINDS),
    ] {
        let out = Command::new(&kubectl)
            .args(["kustomize", repo(dir).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for kind in kinds {
            assert!(text.contains(kind), "{dir} renders no {kind}");
        }
    }
}

#[test]
fn the_documented_policy_example_is_valid() {
    let text = std::fs::read_to_string(repo("examples/policy.yaml")).unwrap();
    let p = flinkgate::policy::Policy::parse(&text, "examples/policy.yaml").unwrap();
    assert_eq!(
        p.rules_for(Some("sandbox")).mode,
        flinkgate::policy::Mode::Warn
    );
    assert_eq!(p.rules_for(Some("sandbox")).limits.max_parallelism, Some(8));
    assert_eq!(p.rules_for(Some("batch")).defaults.parallelism, Some(16));
    assert_eq!(p.rules_for(Some("batch")).limits.max_parallelism, Some(256));
}

#[test]
fn the_example_manifests_pass_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_flinkgate"))
        .args(["check", "-f"])
        .arg(repo("examples/flinkdeployment.yaml"))
        .arg(repo("examples/session-job.yaml"))
        .arg(repo("examples/basic-application.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flinkgate"))
        .args(["check", "-o", "json", "-f"])
        .arg(repo("examples/invalid.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a denial exits 1");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["verdict"], "denied");
    let bad = Command::new(env!("CARGO_BIN_EXE_flinkgate"))
        .args(["check", "-f", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "bad input exits 2");
}

#[test]
fn deployed_webhooks_match_what_register_applies() {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    };
    use serde::Deserialize;
    let text = std::fs::read_to_string(repo("deploy/base/webhooks.yaml")).unwrap();
    let target = flinkgate::register::Target::Service {
        namespace: "flinkgate-system".into(),
        name: "flinkgate".into(),
        port: 443,
    };
    let want_v = flinkgate::register::validating("flinkgate", &target, b"", "flinkgate-system", 5);
    let want_m = flinkgate::register::mutating(
        "flinkgate",
        &target,
        b"",
        "flinkgate-system",
        5,
        flinkgate::cli::FailurePolicy::Fail,
    );
    let strip = |mut v: serde_json::Value| {
        for hook in v["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"]
                .as_object_mut()
                .unwrap()
                .remove("caBundle");
        }
        v["webhooks"].take()
    };
    let mut seen = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        match v["kind"].as_str() {
            Some("ValidatingWebhookConfiguration") => {
                let got: ValidatingWebhookConfiguration = serde_json::from_value(v).unwrap();
                assert_eq!(
                    strip(serde_json::to_value(&got).unwrap()),
                    strip(serde_json::to_value(&want_v).unwrap())
                );
                seen += 1;
            }
            Some("MutatingWebhookConfiguration") => {
                let got: MutatingWebhookConfiguration = serde_json::from_value(v).unwrap();
                assert_eq!(
                    strip(serde_json::to_value(&got).unwrap()),
                    strip(serde_json::to_value(&want_m).unwrap())
                );
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        seen, 2,
        "both configurations are in deploy/base/webhooks.yaml"
    );
}
