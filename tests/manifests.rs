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
    let built = Command::new(repo("deploy/local/build"))
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

#[test]
fn kustomize_renders_cleanly() {
    let Some(kubectl) = kubectl() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no kubectl under CI=true: run deploy/local/build"
        );
        eprintln!("SKIP: no kubectl on this machine (run deploy/local/build)");
        return;
    };
    for dir in ["deploy", "deploy/cert-manager"] {
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
        for kind in [
            "kind: CustomResourceDefinition",
            "kind: Deployment",
            "kind: ValidatingWebhookConfiguration",
            "kind: MutatingWebhookConfiguration",
            "kind: ConfigMap",
        ] {
            assert!(text.contains(kind), "{dir} renders no {kind}");
        }
    }
}
