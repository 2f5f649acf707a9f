//! The scheduler extender, in process through the router: both argument
//! forms, only input nodes back, bounded scores, neutral answers for other
//! pods, and 400s for bad input. One test runs the real binary over TLS
//! with `--scores-file`.

mod common;

use std::time::Duration;

use common::{App, Server, post_json};
use serde_json::{Value, json};

fn scores() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let table = json!({
        "generated": now,
        "nodes": {
            "slow": {"mean": 0.3, "weight": 40.0, "updated": now},
            "fast": {"mean": 1.6, "weight": 40.0, "updated": now},
            "young": {"mean": 0.2, "weight": 2.0, "updated": now}
        }
    });
    table
}

fn pod(labels: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "default", "labels": labels}, "spec": {"containers": []}})
}

fn tm_pod() -> Value {
    pod(json!({"type": "flink-native-kubernetes", "component": "taskmanager", "app": "job"}))
}

fn node(name: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "status": {"allocatable": {"cpu": "8"}}})
}

const NAMES: [&str; 4] = ["slow", "fast", "young", "unknown"];

#[tokio::test]
async fn filter_with_node_names_drops_only_slow_nodes_and_says_why() {
    let s = App::with_scores(Some(scores()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let args = json!({"Pod": tm_pod(), "Nodes": null, "NodeNames": NAMES});
    let (status, r) = s.post("/scheduler/filter", args.to_string()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["NodeNames"], json!(["fast", "young", "unknown"]));
    assert!(r["Nodes"].is_null());
    assert_eq!(r["Error"], "");
    let why = r["FailedNodes"]["slow"].as_str().unwrap();
    assert!(
        why.starts_with("node slow: mean task performance 0.")
            && why.contains("over 40 tasks is below the floor 0.60"),
        "{why}"
    );
}

#[tokio::test]
async fn filter_with_a_full_node_list_returns_the_same_node_objects() {
    let s = App::with_scores(Some(scores()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let items: Vec<Value> = NAMES.iter().map(|n| node(n)).collect();
    let args = json!({"Pod": tm_pod(), "Nodes": {"apiVersion": "v1", "kind": "NodeList", "items": items}, "NodeNames": null});
    let (status, r) = s.post("/scheduler/filter", args.to_string()).await;
    assert_eq!(status, 200);
    assert!(r["NodeNames"].is_null());
    let kept = r["Nodes"]["items"].as_array().unwrap();
    assert_eq!(kept.len(), 3);
    assert_eq!(kept[0], node("fast"), "node objects come back unchanged");
    assert!(r["FailedNodes"]["slow"].is_string());
}

#[tokio::test]
async fn prioritize_scores_within_bounds_best_first() {
    let s = App::with_scores(Some(scores()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let args = json!({"Pod": tm_pod(), "Nodes": null, "NodeNames": NAMES});
    let (status, r) = s.post("/scheduler/prioritize", args.to_string()).await;
    assert_eq!(status, 200);
    // The full NodeList form scores alike.
    let items: Vec<Value> = NAMES.iter().map(|n| node(n)).collect();
    let full = json!({"Pod": tm_pod(), "Nodes": {"apiVersion": "v1", "kind": "NodeList", "items": items}, "NodeNames": null});
    let (status, from_nodes) = s.post("/scheduler/prioritize", full.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(from_nodes, r);
    let list = r.as_array().unwrap();
    assert_eq!(list.len(), 4, "one entry per input node, no other");
    let score = |h: &str| {
        list.iter().find(|e| e["Host"] == h).unwrap()["Score"]
            .as_i64()
            .unwrap()
    };
    for e in list {
        assert!((0..=10).contains(&e["Score"].as_i64().unwrap()), "{e}");
    }
    assert!(score("fast") > score("unknown") && score("unknown") > score("slow"));
    assert_eq!(score("unknown"), 5);
}

#[tokio::test]
async fn other_pods_get_every_node_with_a_neutral_score() {
    let s = App::with_scores(Some(scores()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in [
        pod(json!({"app": "web"})),
        pod(json!({"type": "flink-native-kubernetes", "component": "jobmanager"})),
    ] {
        let args = json!({"Pod": p, "Nodes": null, "NodeNames": NAMES});
        let (_, f) = s.post("/scheduler/filter", args.to_string()).await;
        assert_eq!(f["NodeNames"], json!(NAMES));
        assert!(f["FailedNodes"].as_object().unwrap().is_empty());
        let (_, p) = s.post("/scheduler/prioritize", args.to_string()).await;
        assert!(p.as_array().unwrap().iter().all(|e| e["Score"] == 5), "{p}");
    }
}

#[tokio::test]
async fn without_scores_every_node_is_neutral() {
    let s = App::new();
    let args = json!({"Pod": tm_pod(), "Nodes": null, "NodeNames": NAMES});
    let (_, f) = s.post("/scheduler/filter", args.to_string()).await;
    assert_eq!(f["NodeNames"], json!(NAMES));
    let (_, p) = s.post("/scheduler/prioritize", args.to_string()).await;
    assert!(p.as_array().unwrap().iter().all(|e| e["Score"] == 5), "{p}");
}

#[tokio::test]
async fn bad_input_is_a_400_with_a_json_error() {
    let s = App::with_scores(Some(scores()));
    for body in [
        "not json".to_string(),
        "{\"Pod\":".to_string(),
        json!({"Pod": tm_pod(), "Nodes": null, "NodeNames": null}).to_string(),
        json!({"Pod": tm_pod(), "Nodes": {"items": [{"metadata": {}}]}, "NodeNames": null})
            .to_string(),
        json!({"Pod": tm_pod(), "NodeNames": "not-a-list"}).to_string(),
    ] {
        for verb in ["filter", "prioritize"] {
            let (status, err) = s.post(&format!("/scheduler/{verb}"), body.clone()).await;
            assert_eq!(status, 400, "{verb} {body}: {err}");
            assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    let text = s.get("/metrics").await.1;
    assert!(
        text.contains(
            r#"flinkgate_scheduler_extender_requests_total{verb="filter",result="bad_request"} 5"#
        ),
        "{text}"
    );
    // Both phases of every call that got its body, however it ended.
    for phase in ["read_body", "handle"] {
        assert!(
            text.contains(&format!(
                r#"flinkgate_scheduler_extender_seconds_count{{verb="prioritize",phase="{phase}"}} 5"#
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_binary_reads_a_scores_file_and_answers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.json");
    std::fs::write(&path, scores().to_string()).unwrap();
    let s = Server::start(&["--scores-file", path.to_str().unwrap()]);
    let args = json!({"Pod": tm_pod(), "Nodes": null, "NodeNames": NAMES});
    let (status, f) = post_json(&s.client(), &s.url("/scheduler/filter"), args.to_string()).await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["NodeNames"], json!(["fast", "young", "unknown"]), "{f}");
}

/// With `--extender-client-ca`, `/scheduler/*` answers only a client whose
/// certificate that CA signed; the webhook endpoints stay open to callers
/// without one (kube-apiserver), and a certificate from another CA fails
/// the handshake.
#[tokio::test]
async fn the_extender_can_require_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = common::write_certs(dir.path());
    flinkgate::certs::write_client(&bundle, "kube-scheduler", 1, dir.path()).unwrap();
    let other = flinkgate::certs::generate(&["localhost".into()], &[], 1).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    flinkgate::certs::write_client(&other, "intruder", 1, other_dir.path()).unwrap();
    let path = |d: &tempfile::TempDir, f: &str| d.path().join(f).display().to_string();
    let args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &path(&dir, "tls.crt"),
        "--tls-key",
        &path(&dir, "tls.key"),
        "--extender-client-ca",
        &path(&dir, "ca.crt"),
    ]
    .map(String::from)
    .to_vec();
    let ca = bundle.ca_cert.clone();
    let server = Server::spawn(&args, dir, ca.clone());
    let identity = |d: &std::path::Path, name: &str| {
        let mut pem = std::fs::read(d.join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(d.join(format!("{name}.key"))).unwrap());
        reqwest::Identity::from_pem(&pem).unwrap()
    };
    let client_with = |id: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
        if let Some(id) = id {
            b = b.identity(id);
        }
        b.build().unwrap()
    };
    let args_body = json!({"Pod": tm_pod(), "NodeNames": ["a", "b"]}).to_string();
    let url = server.url("/scheduler/prioritize");

    let (status, answer) = post_json(&client_with(None), &url, args_body.clone()).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("--extender-client-ca"),
        "{answer}"
    );

    let scheduler = client_with(Some(identity(server.dir.path(), "kube-scheduler")));
    let (status, answer) = post_json(&scheduler, &url, args_body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer.as_array().map(Vec::len), Some(2), "{answer}");

    let intruder = client_with(Some(identity(other_dir.path(), "intruder")));
    let refused = intruder
        .post(&url)
        .body(args_body)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a certificate from another CA: {refused:?}"
    );

    let review = common::fixture("flinkdeployment-create.json");
    let (status, answer) = post_json(&client_with(None), &server.url("/validate"), review).await;
    assert_eq!(
        status, 200,
        "the webhook needs no client certificate: {answer}"
    );
}
