//! `hack/pgo-build`, the profile-guided release build the README's
//! benchmarks measure, runs end to end (instrumented build, training over
//! TLS, optimised build), and the binary it gives answers every review
//! fixture exactly as the test build of the same source does.

mod common;

use common::{Server, post_json};
use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_guided_build_answers_every_fixture_as_the_plain_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(root.join("hack/pgo-build"))
        // A short training run: this checks the recipe, not the speed.
        .env("TRAIN_SECONDS", "1")
        .status()
        .expect("run hack/pgo-build");
    assert!(status.success(), "hack/pgo-build failed ({status})");
    let optimised = root.join("target/pgo/flinkgate");

    let pgo = Server::start_binary(&optimised.display().to_string(), &[]);
    let plain = Server::start(&[]);
    let (pgo_client, plain_client) = (pgo.client(), plain.client());
    let mut compared = 0;
    for entry in std::fs::read_dir(root.join("tests/fixtures")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let body = common::fixture(&name);
        for endpoint in ["/validate", "/mutate"] {
            let got = post_json(&pgo_client, &pgo.url(endpoint), body.clone()).await;
            let want = post_json(&plain_client, &plain.url(endpoint), body.clone()).await;
            assert_eq!(got, want, "{name} on {endpoint}");
            compared += 1;
        }
    }
    assert!(compared >= 16, "only {compared} answers compared");
}
