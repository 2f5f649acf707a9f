//! The admission decision in a loop, for instruction-count profiles, which
//! stay the same on this noisy machine where timings do not:
//!
//! ```text
//! cargo build --release --example decision-profile
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/decision-profile validate 2000
//! callgrind_annotate --inclusive=yes /tmp/cg.out | head -60
//! ```
//!
//! `validate`, `mutate` or `bare` (what `benches/bare_server.rs` does: the
//! envelope parsed with the objects left raw, `allowed: true` answered; the
//! baseline of the load test), then the number of rounds (default 2000), on
//! the 3 KB FlinkDeployment review of `benches/load.sh`.

use std::hint::black_box;

use flinkgate::admission::cluster_view::NoClusterView;
use flinkgate::admission::decide::{Endpoint, decide};
use flinkgate::admission::review;
use flinkgate::policy::Policy;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = match args.next().as_deref() {
        Some("mutate") => Some(Endpoint::Mutate),
        Some("validate") | None => Some(Endpoint::Validate),
        Some("bare") => None,
        Some(other) => {
            eprintln!("usage: decision-profile [validate|mutate|bare] [ROUNDS]; not {other:?}");
            std::process::exit(2);
        }
    };
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/flinkdeployment-create.json"
    ))
    .expect("the fixture is readable");
    let policy = Policy::builtin();
    let sessions = NoClusterView("profile");
    let mut bytes = 0;
    for _ in 0..rounds {
        let answer = match endpoint {
            Some(endpoint) => {
                let req = review::parse_typed(black_box(&body)).expect("a valid review");
                review::encode(decide(endpoint, &policy, &req, &sessions).response)
            }
            None => {
                let req = review::parse(black_box(&body)).expect("a valid review");
                review::encode(review::allow(&req.uid))
            }
        };
        bytes += black_box(answer).len();
    }
    println!("{rounds} rounds, {bytes} bytes answered");
}
