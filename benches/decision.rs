//! The decision code alone (no network): a ~3 KB FlinkDeployment review as
//! kube-apiserver sends it, parsed, decided and encoded, for each endpoint.
//! `cargo bench --bench decision`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flinkgate::admission::cluster_view::NoClusterView;
use flinkgate::admission::decide::{Endpoint, decide};
use flinkgate::admission::review;
use flinkgate::policy::Policy;

// mimalloc: admission decisions allocate many small JSON nodes; it cuts
// their cost by about a third against glibc malloc (see README benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn admit(endpoint: Endpoint, policy: &Policy, body: &[u8]) -> Vec<u8> {
    let req = review::parse_typed(body).expect("valid review");
    let sessions = NoClusterView("benchmark");
    review::encode(decide(endpoint, policy, &req, &sessions).response)
}

fn bench(c: &mut Criterion) {
    let policy = Policy::builtin();
    let deployment = fixture("flinkdeployment-create.json");
    let other_pod = fixture("pod-other-create.json");
    let tm_pod = fixture("pod-taskmanager-create.json");
    let mut g = c.benchmark_group("admission");
    g.bench_function("flinkdeployment_validate_and_mutate_3kb", |b| {
        b.iter(|| {
            let m = admit(Endpoint::Mutate, &policy, black_box(&deployment));
            let v = admit(Endpoint::Validate, &policy, black_box(&deployment));
            (m, v)
        })
    });
    g.bench_function("flinkdeployment_validate", |b| {
        b.iter(|| admit(Endpoint::Validate, &policy, black_box(&deployment)))
    });
    g.bench_function("flinkdeployment_mutate", |b| {
        b.iter(|| admit(Endpoint::Mutate, &policy, black_box(&deployment)))
    });
    g.bench_function("taskmanager_pod_mutate", |b| {
        b.iter(|| admit(Endpoint::Mutate, &policy, black_box(&tm_pod)))
    });
    g.bench_function("other_pod_passthrough", |b| {
        b.iter(|| admit(Endpoint::Mutate, &policy, black_box(&other_pod)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
