//! The binary flinkgate ships is a profile-guided build: `hack/images
//! release-binary` makes it as the image holds it (static, trained by
//! `hack/pgo-build` over TLS on every review fixture, then optimised). This
//! runs that recipe end to end and holds the optimised binary to the test
//! build's answers on every fixture and endpoint: PGO changes code layout
//! and inlining, never an answer.

mod common;

use common::{Server, post_json};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_profile_guided_build_answers_every_fixture_as_the_test_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = common::release_binary();
    let bytes = std::fs::read(&shipped).expect("read the shipped binary");
    // The instrumented build of the recipe would write profiles in
    // production: the one that ships must be the optimised one.
    assert!(
        !bytes.windows(14).any(|w| w == b"__llvm_profile"),
        "{shipped} is the instrumented build"
    );
    let profile = common::cache_root().join("pgo/flinkgate-x86_64-unknown-linux-gnu.profdata");
    let profile_len = std::fs::metadata(&profile).map(|m| m.len()).unwrap_or(0);
    assert!(
        profile_len > 0,
        "no training profile at {}",
        profile.display()
    );

    let pgo = Server::start_binary(&shipped, &[]);
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
