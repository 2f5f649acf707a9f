//! The committed manifests stay true to the code: CRDs generated from the
//! Rust types, the ConfigMap's policy equal to the built-in one, and the
//! kustomize tree rendering cleanly, and the Helm chart rendering the same
//! objects as the kustomize tree.

use std::path::Path;
use std::process::Command;

mod common;

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

/// A tool `hack/build` made (kubectl, helm, ...), if it is built.
fn built_tool(name: &str) -> Option<String> {
    let built = Command::new(repo("hack/build"))
        .arg("--paths")
        .output()
        .ok()?;
    let prefix = format!("{name}=");
    String::from_utf8_lossy(&built.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .filter(|p| Path::new(p).exists())
}

/// kubectl from the local control plane's build, else from PATH.
fn kubectl() -> Option<String> {
    built_tool("kubectl").or_else(|| {
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
        common::skip_unless_ci(
            "kustomize_renders_cleanly",
            "no kubectl on this machine (run hack/build)",
        );
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

// ---------------------------------------------------------------- Helm chart

const CHART: &str = "deploy/helm/flinkgate";

/// helm, built by `hack/build`; None (a loud skip) off CI only.
fn helm() -> Option<String> {
    let helm = built_tool("helm");
    if helm.is_none() {
        common::skip_unless_ci("the Helm chart tests", "helm is not built (run hack/build)");
    }
    helm
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template` of the chart into flinkgate-system, CRDs included.
fn helm_template(helm: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let text = run_ok(
        Command::new(helm)
            .args(["template", "flinkgate", repo(CHART).to_str().unwrap()])
            .args(["--namespace", "flinkgate-system", "--include-crds"])
            .args(extra),
    );
    documents(&text)
}

fn documents(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde_json::Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Helm's own labels come off, so an object compares with its kustomize twin.
fn without_release_labels(mut v: serde_json::Value) -> serde_json::Value {
    for labels in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(l) = v.pointer_mut(labels).and_then(|l| l.as_object_mut()) {
            for helm_label in [
                "helm.sh/chart",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/version",
            ] {
                l.remove(helm_label);
            }
        }
    }
    v
}

fn by_identity(
    objects: Vec<serde_json::Value>,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    objects
        .into_iter()
        .map(|o| {
            let key = format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, without_release_labels(o))
        })
        .collect()
}

#[test]
fn the_helm_chart_lints_cleanly() {
    let Some(helm) = helm() else { return };
    let out = run_ok(Command::new(&helm).args(["lint", "--strict", repo(CHART).to_str().unwrap()]));
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// With its defaults the chart renders exactly the objects of `kubectl
/// kustomize deploy`, less the Namespace (Helm installs into one).
#[test]
fn the_helm_chart_renders_the_kustomize_objects() {
    let Some(helm) = helm() else { return };
    let kubectl = kubectl().expect("kubectl: run hack/build");
    let kustomized = documents(&run_ok(
        Command::new(&kubectl).args(["kustomize", repo("deploy").to_str().unwrap()]),
    ))
    .into_iter()
    .filter(|o| o["kind"] != "Namespace")
    .collect();
    let kustomized = by_identity(kustomized);
    let charted = by_identity(helm_template(&helm, &[]));
    assert_eq!(
        charted.keys().collect::<Vec<_>>(),
        kustomized.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, want) in &kustomized {
        let got = &charted[key];
        assert!(
            got == want,
            "{key} differs\n--- chart:\n{}\n--- kustomize:\n{}",
            serde_json::to_string_pretty(got).unwrap(),
            serde_json::to_string_pretty(want).unwrap()
        );
    }
    // The chart's copies of generated files stay equal to their sources.
    for (copy, source) in [
        ("files/policy.yaml", "src/policy/builtin.yaml"),
        (
            "crds/flinkdeployments.yaml",
            "deploy/crds/flinkdeployments.yaml",
        ),
        (
            "crds/flinksessionjobs.yaml",
            "deploy/crds/flinksessionjobs.yaml",
        ),
        (
            "crds/flinkstatesnapshots.yaml",
            "deploy/crds/flinkstatesnapshots.yaml",
        ),
    ] {
        let copied = std::fs::read(repo(CHART).join(copy)).unwrap();
        assert!(
            copied == std::fs::read(repo(source)).unwrap(),
            "{CHART}/{copy} must equal {source}: cp {source} {CHART}/{copy}"
        );
    }
}

/// The values a platform team sets land where they should.
#[test]
fn the_helm_chart_values_apply() {
    let Some(helm) = helm() else { return };
    let objects = by_identity(helm_template(
        &helm,
        &[
            "--namespace",
            "flink-platform",
            "--set",
            "image.repository=registry.example/flinkgate,image.tag=0.1.0,replicaCount=3",
            "--set",
            "webhook.caBundle=Q0E=,logLevel=debug",
            "--set-file",
            &format!("policy={}", repo("examples/policy.yaml").display()),
            "--set",
            "extraArgs={--max-connections,2048}",
        ],
    ));
    let deployment = &objects["Deployment flink-platform/flinkgate"];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/flinkgate:0.1.0");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        container["args"],
        serde_json::json!(["serve", "--max-connections", "2048"])
    );
    let env = container["env"].as_array().unwrap();
    let var = |n: &str| env.iter().find(|e| e["name"] == n).unwrap()["value"].clone();
    assert_eq!(var("RUST_LOG"), "debug");
    assert_eq!(
        var("FLINKGATE_POLICY_CONFIGMAP"),
        "flink-platform/flinkgate-policy"
    );
    let policy = &objects["ConfigMap flink-platform/flinkgate-policy"];
    assert_eq!(
        policy["data"]["policy.yaml"].as_str().unwrap(),
        std::fs::read_to_string(repo("examples/policy.yaml")).unwrap()
    );
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let hooks = objects[&format!("{kind} /flinkgate")]["webhooks"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(hooks.len(), 3);
        for hook in hooks {
            assert_eq!(hook["clientConfig"]["caBundle"], "Q0E=");
            assert_eq!(
                hook["clientConfig"]["service"]["namespace"],
                "flink-platform"
            );
            assert_eq!(
                hook["namespaceSelector"]["matchExpressions"][0]["values"],
                serde_json::json!(["kube-system", "flink-platform"])
            );
        }
    }
    let binding = &objects["ClusterRoleBinding /flinkgate-controller"];
    assert_eq!(binding["subjects"][0]["namespace"], "flink-platform");
}
