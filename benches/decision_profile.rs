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
//! `validate` or `mutate`, then the number of rounds (default 2000), on the
//! 3 KB FlinkDeployment review of `benches/load.sh`.

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
        Some("mutate") => Endpoint::Mutate,
        Some("validate") | None => Endpoint::Validate,
        Some(other) => {
            eprintln!("usage: decision-profile [validate|mutate] [ROUNDS]; not {other:?}");
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
        let req = review::parse_typed(black_box(&body)).expect("a valid review");
        let answer = review::encode(decide(endpoint, &policy, &req, &sessions).response);
        bytes += black_box(answer).len();
    }
    println!("{rounds} rounds, {bytes} bytes answered");
}
