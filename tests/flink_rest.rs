//! The Flink REST client against the fake JobManager: address forms, metric
//! parsing, jobs vanishing mid-walk, unreachable JobManagers, snapshot shape,
//! request counts and the concurrency bound.

use std::time::{Duration, Instant};

use flinkgate::collector::fake_jobmanager::{
    AddressForm, FakeJobManager, FakeJobManagerHandle, PlanForm, Stage,
};
use flinkgate::flink::rest::{FlinkRestClient, FlinkRestError, FlinkRestOptions, SubtaskMetrics};

async fn serve(fake: FakeJobManager) -> (FlinkRestClient, FakeJobManagerHandle) {
    let (_, handle) = fake.start().await.expect("fake JobManager starts");
    let client = FlinkRestClient::new(&handle.url(), &FlinkRestOptions::default()).expect("client");
    (client, handle)
}

fn jid(j: usize) -> String {
    FakeJobManager::job_id(j)
}

fn vid(j: usize, v: usize) -> String {
    FakeJobManager::vertex_id(j, v)
}

#[tokio::test]
async fn every_address_form_yields_a_host() {
    let cases = [
        (AddressForm::Host, Some("10.0.0.2"), None),
        (
            AddressForm::Endpoint,
            Some("10.0.0.2"),
            Some("10.0.0.2:35001"),
        ),
        (AddressForm::Both, Some("10.0.0.2"), Some("10.0.0.2:35001")),
        (AddressForm::Neither, None, None),
    ];
    for (form, host, endpoint) in cases {
        let (client, _fake) = serve(FakeJobManager::new(1, 1, 2).address_form(form)).await;
        let vertex = client.vertex(&jid(0), &vid(0, 0)).await.expect("vertex");
        assert_eq!(vertex.subtasks.len(), 2, "{form:?}");
        let s = &vertex.subtasks[1];
        assert_eq!(s.index, 1);
        assert_eq!(s.status, "RUNNING");
        assert_eq!(s.host.as_deref(), host, "{form:?}");
        assert_eq!(s.endpoint.as_deref(), endpoint, "{form:?}");
        assert_eq!(
            s.taskmanager_id.as_deref(),
            Some("fake-taskmanager-1-2"),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn host_field_wins_over_endpoint_when_they_differ() {
    // Older versions report the TaskManager's hostname in `host` and may use
    // an address in `endpoint`; `host` is what we were told to prefer.
    let (client, _fake) = serve(
        FakeJobManager::new(1, 1, 1)
            .address_form(AddressForm::Both)
            .host(|_| "tm-a.example".to_owned()),
    )
    .await;
    let vertex = client.vertex(&jid(0), &vid(0, 0)).await.expect("vertex");
    assert_eq!(vertex.subtasks[0].host.as_deref(), Some("tm-a.example"));
    assert_eq!(
        vertex.subtasks[0].endpoint.as_deref(),
        Some("tm-a.example:35000")
    );
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn nan_absent_and_garbage_metrics_are_none() {
    let fake = FakeJobManager::new(1, 1, 5).metrics(|s| match s.subtask {
        0 => pairs(&[
            ("numRecordsInPerSecond", "12.3"),
            ("numRecordsOutPerSecond", "0.0"),
            ("busyTimeMsPerSecond", "250"),
        ]),
        1 => pairs(&[
            ("numRecordsInPerSecond", "NaN"),
            ("numRecordsOutPerSecond", "NaN"),
            ("busyTimeMsPerSecond", "NaN"),
        ]),
        2 => Vec::new(),
        3 => pairs(&[
            ("numRecordsInPerSecond", "abc"),
            ("numRecordsOutPerSecond", "-5"),
            ("busyTimeMsPerSecond", ""),
        ]),
        // Only one of the three, plus one we did not ask for.
        _ => pairs(&[("busyTimeMsPerSecond", "1000.0"), ("numBytesIn", "7")]),
    });
    let (client, _fake) = serve(fake).await;
    let m = |i| {
        let client = client.clone();
        async move {
            client
                .subtask_metrics(&jid(0), &vid(0, 0), i)
                .await
                .expect("metrics")
        }
    };
    assert_eq!(
        m(0).await,
        SubtaskMetrics {
            records_in_per_second: Some(12.3),
            records_out_per_second: Some(0.0),
            busy_time_ms_per_second: Some(250.0),
        }
    );
    assert_eq!(m(1).await, SubtaskMetrics::default());
    assert_eq!(m(2).await, SubtaskMetrics::default());
    assert_eq!(m(3).await, SubtaskMetrics::default());
    assert_eq!(
        m(4).await,
        SubtaskMetrics {
            busy_time_ms_per_second: Some(1000.0),
            ..SubtaskMetrics::default()
        }
    );
}

#[tokio::test]
async fn a_job_vanishing_at_any_stage_is_skipped() {
    for stage in [Stage::Job, Stage::Plan, Stage::Vertex, Stage::Metrics] {
        // Plan only at /plan, so the Plan stage is actually reached.
        let (client, fake) = serve(
            FakeJobManager::new(3, 2, 2)
                .plan_form(PlanForm::EndpointOnly)
                .vanish(1, stage),
        )
        .await;
        let snap = client.snapshot(4).await.expect("snapshot");
        let jids: Vec<&str> = snap.jobs.iter().map(|j| j.jid.as_str()).collect();
        assert_eq!(jids, [jid(0), jid(2)], "{stage:?}");
        assert_eq!(snap.requests, fake.requests(), "{stage:?}");
    }
}

#[tokio::test]
async fn a_vanished_plan_falls_back_to_names_when_the_job_is_still_there() {
    let (client, _fake) = serve(FakeJobManager::new(1, 3, 1).plan_form(PlanForm::Missing)).await;
    let snap = client.snapshot(4).await.expect("snapshot");
    let sources: Vec<(&str, bool)> = snap.jobs[0]
        .vertices
        .iter()
        .map(|v| (v.name.as_str(), v.is_source))
        .collect();
    assert_eq!(
        sources,
        [
            ("Source: events", true),
            ("Map 1", false),
            ("Sink: out", false)
        ]
    );
}

#[tokio::test]
async fn the_plan_decides_sources_over_names() {
    let names = |_: usize, v: usize| ["KafkaReader", "Source: misnamed map"][v].to_owned();
    for form in [PlanForm::Embedded, PlanForm::EndpointOnly] {
        let (client, _fake) = serve(
            FakeJobManager::new(1, 2, 1)
                .plan_form(form)
                .vertex_name(names),
        )
        .await;
        let snap = client.snapshot(4).await.expect("snapshot");
        let flags: Vec<bool> = snap.jobs[0].vertices.iter().map(|v| v.is_source).collect();
        assert_eq!(flags, [true, false], "{form:?}");
    }
}

#[tokio::test]
async fn snapshot_of_3_jobs_2_vertices_4_subtasks() {
    let fake = FakeJobManager::new(3, 2, 4)
        .taskmanager(|s| Some(format!("tm-{}-{}", s.job, s.subtask % 2)));
    let (client, fake) = serve(fake).await;
    let snap = client.snapshot(8).await.expect("snapshot");

    assert_eq!(snap.jobs.len(), 3);
    for (j, job) in snap.jobs.iter().enumerate() {
        assert_eq!(job.jid, jid(j));
        assert_eq!(job.name, format!("fake-job-{j}"));
        assert_eq!(job.vertices.len(), 2);
        for (v, vertex) in job.vertices.iter().enumerate() {
            assert_eq!(vertex.id, vid(j, v));
            assert_eq!(vertex.parallelism, 4);
            assert_eq!(vertex.is_source, v == 0);
            let indices: Vec<u32> = vertex.subtasks.iter().map(|s| s.index).collect();
            assert_eq!(indices, [0, 1, 2, 3]);
            for s in &vertex.subtasks {
                let i = s.index as usize;
                assert_eq!(
                    s.taskmanager_id.as_deref(),
                    Some(format!("tm-{j}-{}", i % 2).as_str())
                );
                assert_eq!(
                    s.host.as_deref(),
                    Some(format!("10.0.0.{}", i + 1).as_str())
                );
                let rate = 100.0 * (i + 1) as f64;
                assert_eq!(s.metrics.records_in_per_second, Some(rate));
                assert_eq!(s.metrics.records_out_per_second, Some(rate));
                assert_eq!(s.metrics.busy_time_ms_per_second, Some(500.0));
            }
        }
    }
    // overview + 3 job details (plan embedded) + 6 vertices + 24 metrics.
    assert_eq!(snap.requests, 1 + 3 + 6 + 24);
    let counts = fake.counts();
    assert_eq!(counts.total, snap.requests);
    assert_eq!(
        (
            counts.overview,
            counts.job,
            counts.plan,
            counts.vertex,
            counts.metrics
        ),
        (1, 3, 0, 6, 24)
    );
}

#[tokio::test]
async fn without_an_embedded_plan_one_plan_request_per_job() {
    let (client, fake) =
        serve(FakeJobManager::new(3, 2, 4).plan_form(PlanForm::EndpointOnly)).await;
    let snap = client.snapshot(8).await.expect("snapshot");
    assert_eq!(snap.requests, 1 + 3 + 3 + 6 + 24);
    assert_eq!(fake.counts().plan, 3);
    assert_eq!(fake.requests(), snap.requests);
}

#[tokio::test]
async fn finished_jobs_and_idle_subtasks_are_not_sampled() {
    let fake = FakeJobManager::new(3, 2, 4)
        .job_state(1, "FINISHED")
        .subtask_status(|s| {
            if s.subtask == 3 {
                "SCHEDULED"
            } else {
                "RUNNING"
            }
            .to_owned()
        });
    let (client, fake) = serve(fake).await;

    let running = client.running_jobs().await.expect("overview");
    assert_eq!(
        running.iter().map(|j| j.jid.clone()).collect::<Vec<_>>(),
        [jid(0), jid(2)]
    );
    let details = client.vertex(&jid(0), &vid(0, 0)).await.expect("vertex");
    let idle = &details.subtasks[3];
    assert_eq!(idle.status, "SCHEDULED");
    assert_eq!((&idle.host, &idle.taskmanager_id), (&None, &None));

    fake.reset_counters();
    let snap = client.snapshot(4).await.expect("snapshot");
    assert_eq!(snap.jobs.len(), 2);
    for job in &snap.jobs {
        for vertex in &job.vertices {
            assert_eq!(vertex.subtasks.len(), 3);
        }
    }
    assert_eq!(snap.requests, 1 + 2 + 4 + 2 * 2 * 3);
    assert_eq!(fake.counts().metrics, 12);
}

#[tokio::test]
async fn job_details_list_vertices() {
    let (client, _fake) = serve(FakeJobManager::new(1, 3, 2)).await;
    let job = client.job(&jid(0)).await.expect("job");
    assert_eq!(job.state, "RUNNING");
    let v: Vec<(&str, u32)> = job
        .vertices
        .iter()
        .map(|v| (v.name.as_str(), v.parallelism))
        .collect();
    assert_eq!(v, [("Source: events", 2), ("Map 1", 2), ("Sink: out", 2)]);
    assert!(job.plan.is_some());

    let missing = client.job(&"0".repeat(32)).await.expect_err("unknown job");
    assert!(missing.is_not_found(), "{missing}");
    assert!(missing.to_string().contains("not found"), "{missing}");
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = FlinkRestClient::new(&base, &FlinkRestOptions::default()).expect("client");
    let started = Instant::now();
    let err = client.snapshot(4).await.expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, FlinkRestError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{base}/jobs/overview")), "{msg}");
}

#[tokio::test]
async fn a_silent_jobmanager_times_out_naming_the_url() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let options = FlinkRestOptions {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
    };
    let client = FlinkRestClient::new(&format!("http://{addr}"), &options).expect("client");
    let started = Instant::now();
    let err = client.running_jobs().await.expect_err("no answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(matches!(err, FlinkRestError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("http://{addr}/jobs/overview")),
        "{err}"
    );
    hold.abort();
}

#[tokio::test]
async fn an_unroutable_jobmanager_fails_within_the_connect_timeout() {
    // TEST-NET-1: either no route (immediate) or a connect timeout.
    let options = FlinkRestOptions {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
    };
    let client = FlinkRestClient::new("http://192.0.2.1:8081", &options).expect("client");
    let started = Instant::now();
    let err = client.running_jobs().await.expect_err("unroutable");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    assert!(
        matches!(
            err,
            FlinkRestError::Connect { .. } | FlinkRestError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("http://192.0.2.1:8081/jobs/overview"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_json_names_the_url_and_the_field() {
    let (client, _fake) = serve(FakeJobManager::new(1, 1, 1)).await;
    // Wrong base path: the fake's 404 fallback is valid JSON but no overview.
    let err = client
        .vertex(&jid(0), &"f".repeat(32))
        .await
        .expect_err("unknown vertex");
    assert!(err.is_not_found(), "{err}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/jobs/overview",
        axum::routing::get(|| async { r#"{"jobs":[{"jid":"a","state":7}]}"# }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = FlinkRestClient::new(&format!("http://{addr}"), &FlinkRestOptions::default())
        .expect("client");
    let err = client.running_jobs().await.expect_err("bad JSON");
    let msg = err.to_string();
    assert!(matches!(err, FlinkRestError::Json { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("http://{addr}/jobs/overview")),
        "{msg}"
    );
    assert!(msg.contains("jobs[0].state"), "{msg}");
    server.abort();
}

#[tokio::test]
async fn concurrency_bound_is_respected() {
    for limit in [1, 3, 8] {
        let (client, fake) =
            serve(FakeJobManager::new(3, 2, 4).delay(Duration::from_millis(15))).await;
        let snap = client.snapshot(limit).await.expect("snapshot");
        assert_eq!(snap.requests, 34);
        let peak = fake.max_in_flight();
        assert!(peak <= limit, "limit {limit}, peak {peak}");
        // The bound is reached, so the test would notice it being ignored.
        assert!(peak >= limit.min(2), "limit {limit}, peak {peak}");
    }
}

#[tokio::test]
async fn zero_concurrency_means_one() {
    let (client, fake) = serve(FakeJobManager::new(2, 1, 2).delay(Duration::from_millis(5))).await;
    let snap = client.snapshot(0).await.expect("snapshot");
    assert_eq!(snap.jobs.len(), 2);
    assert_eq!(fake.max_in_flight(), 1);
}

/// Timing, not a pass/fail check:
/// `cargo test --release --test flink_rest -- --ignored --nocapture`.
/// Without delay it measures the client's own cost; with 5 ms per answer it
/// shows what the concurrency bound buys against a JobManager's latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn timing_snapshot_100_jobs_5000_subtasks() {
    for delay_ms in [0, 5] {
        let fake = FakeJobManager::new(100, 2, 25).delay(Duration::from_millis(delay_ms));
        let (client, fake) = serve(fake).await;
        // One warm-up walk so connection set-up is not in the figure.
        client.snapshot(32).await.expect("warm-up");
        fake.reset_counters();
        let runs = 5;
        let mut times = Vec::new();
        let mut requests = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let snap = client.snapshot(32).await.expect("snapshot");
            times.push(started.elapsed());
            requests = snap.requests;
        }
        times.sort();
        println!(
            "snapshot 100 jobs x 2 vertices x 25 subtasks, concurrency 32, \
             {delay_ms} ms per answer: {requests} requests, median {:?}, \
             min {:?}, max {:?} over {runs} runs; peak in flight {}",
            times[runs / 2],
            times[0],
            times[runs - 1],
            fake.max_in_flight()
        );
    }
}
