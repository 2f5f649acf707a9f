//! The webhook: fixtures shaped as kube-apiserver sends them, bad input,
//! readiness and metrics, in process through the router; and the real
//! binary over TLS for what needs it: protocol versions, policy reload,
//! graceful shutdown.

mod common;

use std::time::Duration;

use common::{App, Server, fixture, patch_of, post_json};
use serde_json::json;

#[tokio::test]
async fn a_valid_flinkdeployment_is_mutated_then_allowed() {
    let s = App::new();
    let (status, review) = s
        .post("/mutate", fixture("flinkdeployment-create.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(
        review["response"]["uid"],
        "0f4d3c2a-1111-4a8e-9a52-000000000001"
    );
    assert_eq!(review["response"]["allowed"], true);
    assert_eq!(review["response"]["patchType"], "JSONPatch");
    let patch = patch_of(&review).expect("a patch");
    let ops = patch.as_array().unwrap();
    assert!(
        ops.iter()
            .any(|op| op["path"] == "/spec/flinkConfiguration/restart-strategy.type"),
        "{patch}"
    );
    assert!(
        ops.iter()
            .any(|op| op["path"] == "/spec/job/parallelism" && op["value"] == 2),
        "{patch}"
    );

    // The patched object passes validation.
    let mut req: serde_json::Value =
        serde_json::from_str(&fixture("flinkdeployment-create.json")).unwrap();
    let p: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut req["request"]["object"], &p).unwrap();
    let (status, review) = s.post("/validate", req.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(review["response"]["allowed"], true, "{review}");

    // And mutating it again changes nothing: no patch at all.
    let (_, again) = s.post("/mutate", req.to_string()).await;
    assert!(again["response"].get("patch").is_none(), "{again}");
    assert!(again["response"].get("patchType").is_none(), "{again}");
}

#[tokio::test]
async fn an_invalid_flinkdeployment_is_denied_with_every_violation() {
    let s = App::new();
    let (status, review) = s
        .post("/validate", fixture("flinkdeployment-create-invalid.json"))
        .await;
    assert_eq!(status, 200);
    let r = &review["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    for needle in [
        "metadata.name: 'Top_Speed'",
        "spec.flinkVersion: is missing",
        "spec.job.parallelism: 0 is below the minimum 1; set spec.job.parallelism to at least 1",
        "spec.flinkConfiguration[kubernetes.cluster-id]",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
}

#[tokio::test]
async fn session_job_fixtures() {
    let s = App::new();
    let (_, moved) = s
        .post("/validate", fixture("flinksessionjob-update-moved.json"))
        .await;
    assert_eq!(moved["response"]["allowed"], false);
    assert!(
        moved["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.deploymentName: cannot change")
    );
    let (_, created) = s
        .post("/mutate", fixture("flinksessionjob-create.json"))
        .await;
    let patch = patch_of(&created).unwrap();
    assert!(
        patch
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["path"] == "/metadata/labels/target.session"
                || op["value"]["target.session"] == "session-cluster"),
        "{patch}"
    );
}

#[tokio::test]
async fn flink_pods_are_mutated_and_other_pods_untouched() {
    let s = App::new();
    let (_, tm) = s
        .post("/mutate", fixture("pod-taskmanager-create.json"))
        .await;
    assert_eq!(tm["response"]["allowed"], true);
    let patch = patch_of(&tm).expect("TaskManager pods get resources and labels");
    assert!(
        patch.to_string().contains("flink-main-container")
            || patch.to_string().contains("/spec/containers/0/resources"),
        "{patch}"
    );
    for ep in ["/mutate", "/validate"] {
        let (status, other) = s.post(ep, fixture("pod-other-create.json")).await;
        assert_eq!(status, 200);
        assert_eq!(other["response"]["allowed"], true);
        assert!(other["response"].get("patch").is_none());
    }
}

#[tokio::test]
async fn deletes_are_allowed_and_malformed_objects_denied_with_reason() {
    let s = App::new();
    let (_, del) = s
        .post("/validate", fixture("flinkdeployment-delete.json"))
        .await;
    assert_eq!(del["response"]["allowed"], true);
    let (status, bad) = s
        .post(
            "/validate",
            fixture("flinkdeployment-create-malformed.json"),
        )
        .await;
    assert_eq!(status, 200, "a well-formed review gets a review back");
    assert_eq!(bad["response"]["allowed"], false);
    assert_eq!(bad["response"]["status"]["code"], 400);
    let msg = bad["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.contains("spec.") && msg.contains("malformed"), "{msg}");
}

#[tokio::test]
async fn bad_input_gets_400_with_a_json_error() {
    let s = App::new();
    let good = fixture("flinkdeployment-create.json");
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut x = v.clone();
        f(&mut x);
        x.to_string()
    };
    let cases: Vec<(&str, String)> = vec![
        ("not json", "hello".into()),
        ("truncated", good[..good.len() / 2].to_string()),
        ("empty", String::new()),
        (
            "wrong apiVersion",
            with(&|x| x["apiVersion"] = json!("admission.k8s.io/v1beta1")),
        ),
        ("wrong kind", with(&|x| x["kind"] = json!("Pod"))),
        (
            "missing request",
            with(&|x| {
                x.as_object_mut().unwrap().remove("request");
            }),
        ),
        (
            "missing uid",
            with(&|x| {
                x["request"].as_object_mut().unwrap().remove("uid");
            }),
        ),
        (
            "request not an object",
            with(&|x| x["request"] = json!([1, 2])),
        ),
        ("array body", "[]".into()),
    ];
    for (what, body) in cases {
        for ep in ["/validate", "/mutate"] {
            let (status, err) = s.post(ep, body.clone()).await;
            assert_eq!(status, 400, "{what} on {ep}: {err}");
            assert!(
                err["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: {err}"
            );
        }
    }
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 * 1024 * 1024 + 10));
    let (status, err) = s.post("/validate", huge).await;
    assert_eq!(status, 413, "{err}");
    assert!(err["error"].as_str().unwrap().contains("exceeds"));
    let resp = s.get("/nowhere").await;
    assert_eq!(resp.0, 404);
    let resp = s.get("/validate").await;
    assert_eq!(resp.0, 405);
    let json: serde_json::Value = serde_json::from_str(&resp.1).expect("a JSON 405");
    assert_eq!(json["code"], 405, "{json}");
    // Still healthy after all that.
    assert_eq!(s.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn tls_1_2_and_1_3_http1_and_http2() {
    let s = Server::start(&[]);
    let ca = reqwest::Certificate::from_pem(s.ca_pem.as_bytes()).unwrap();
    let build = |b: reqwest::ClientBuilder| {
        b.tls_built_in_root_certs(false)
            .use_rustls_tls()
            .add_root_certificate(ca.clone())
            .build()
            .unwrap()
    };
    let tls12 = build(reqwest::Client::builder().max_tls_version(reqwest::tls::Version::TLS_1_2));
    assert_eq!(
        tls12.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let tls13 = build(reqwest::Client::builder().min_tls_version(reqwest::tls::Version::TLS_1_3));
    assert_eq!(
        tls13.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let h2 = build(reqwest::Client::builder());
    let r = h2.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN negotiates h2");
    let h1 = build(reqwest::Client::builder().http1_only());
    let r = h1.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    // Plain HTTP is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", s.addr))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[tokio::test]
async fn readiness_and_metrics() {
    let s = App::new();
    assert_eq!(s.get("/readyz").await.0, 200);
    let _ = s
        .post("/validate", fixture("flinkdeployment-create-invalid.json"))
        .await;
    let _ = s.post("/validate", "garbage").await;
    let text = s.get("/metrics").await.1;
    assert!(
        text.contains(r#"flinkgate_admission_requests_total{endpoint="validate",kind="FlinkDeployment",operation="CREATE",allowed="false",mode="enforce"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("flinkgate_admission_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("flinkgate_policy_generation 1"), "{text}");
    assert!(
        text.contains(r#"flinkgate_admission_bad_requests_total{endpoint="validate"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn policy_file_reload_and_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "limits: {maxParallelism: 100}\n").unwrap();
    let s = Server::start(&["--policy", policy.to_str().unwrap()]);
    let c = s.client();
    let mut req: serde_json::Value =
        serde_json::from_str(&fixture("flinkdeployment-create.json")).unwrap();
    req["request"]["object"]["spec"]["job"]["parallelism"] = json!(50);
    let verdict = |c: reqwest::Client, body: String, url: String| async move {
        post_json(&c, &url, body).await.1["response"]["allowed"]
            .as_bool()
            .unwrap()
    };
    assert!(verdict(c.clone(), req.to_string(), s.url("/validate")).await);

    std::fs::write(&policy, "limits: {maxParallelism: 10}\n").unwrap();
    s.wait_for_log("policy in force", Duration::from_secs(10));
    assert!(
        !verdict(c.clone(), req.to_string(), s.url("/validate")).await,
        "the new policy applies without a restart"
    );

    std::fs::write(&policy, "limits: {maxParalelism: 1000}\n").unwrap();
    let line = s.wait_for_log("policy rejected", Duration::from_secs(10));
    assert!(
        line.contains("maxParalelism"),
        "the error names the field: {line}"
    );
    assert!(
        !verdict(c.clone(), req.to_string(), s.url("/validate")).await,
        "the last good policy stays"
    );
    let text = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("flinkgate_policy_reload_errors_total 1"),
        "{text}"
    );
    assert!(text.contains("flinkgate_policy_generation 2"), "{text}");
}

#[tokio::test]
async fn an_invalid_policy_file_at_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "mode: sometimes\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flinkgate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            policy.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode"), "{err}");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let mut s = Server::start(&[]);
    let c = s.client();
    // A request whose body is still arriving when SIGTERM lands.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let url = s.url("/validate");
    let inflight = tokio::spawn(async move { c.post(url).body(body).send().await });
    let full = fixture("flinkdeployment-create.json").into_bytes();
    let (a, b) = full.split_at(100);
    tx.send(Ok(a.to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = s.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    s.wait_for_log("draining", Duration::from_secs(5));
    tx.send(Ok(b.to_vec())).await.unwrap();
    drop(tx);
    let resp = inflight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    let review: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(review["response"]["allowed"], true);
    let status = common::wait_timeout(&mut s.child, Duration::from_secs(30)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_background_task_that_dies_stops_the_server_with_an_error() {
    let mut s = Server::start(&["--fault", "panic-task"]);
    let line = s.wait_for_log("shutting down", Duration::from_secs(10));
    assert!(
        line.contains("fault injection") && line.contains("panicked"),
        "the dead task is named: {line}"
    );
    s.wait_for_log("stopped", Duration::from_secs(10));
    let status = common::wait_timeout(&mut s.child, Duration::from_secs(30)).expect("exits");
    assert_eq!(
        status.code(),
        Some(2),
        "an error exit, so Kubernetes restarts it"
    );
}

#[tokio::test]
async fn objects_without_metadata_or_not_objects_get_a_400_naming_the_problem() {
    let s = App::new();
    let review: serde_json::Value =
        serde_json::from_str(&fixture("flinkdeployment-create.json")).unwrap();
    let mut no_metadata = review.clone();
    no_metadata["request"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let mut cases = vec![(no_metadata, "request.object has no metadata")];
    for not_an_object in [json!("text"), json!([1, 2]), json!(5)] {
        let mut r = review.clone();
        r["request"]["object"] = not_an_object;
        cases.push((r, "request.object is not a JSON object"));
    }
    for (body, message) in cases {
        for endpoint in ["/mutate", "/validate"] {
            let (status, answer) = s.post(endpoint, body.to_string()).await;
            assert_eq!(status, 400, "{endpoint}: {answer}");
            assert_eq!(answer["error"], message, "{endpoint}: {answer}");
            assert!(
                answer["response"].is_null(),
                "no verdict, so no patch: {answer}"
            );
        }
    }
}
