use std::time::Instant;
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use flinkgate::admission::decide::{Endpoint, decide};
use flinkgate::admission::review;
use flinkgate::flink::crd::FlinkDeploymentSpec;
use flinkgate::policy::Policy;
fn t(name: &str, n: u32, mut f: impl FnMut()) {
    let s = Instant::now();
    for _ in 0..n {
        f()
    }
    println!(
        "{name:30} {:8.2} µs",
        s.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
fn main() {
    let body = std::fs::read("tests/fixtures/flinkdeployment-create.json").unwrap();
    let policy = Policy::builtin();
    let n = 20000;
    t("envelope parse", n, || {
        std::hint::black_box(review::parse(&body).unwrap());
    });
    let req = review::parse(&body).unwrap();
    let raw = req.object.as_ref().unwrap().get().to_string();
    t("object -> Value", n, || {
        std::hint::black_box(serde_json::from_str::<serde_json::Value>(&raw).unwrap());
    });
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    t("Value -> typed spec", n, || {
        std::hint::black_box(
            serde_json::from_value::<FlinkDeploymentSpec>(v["spec"].clone()).unwrap(),
        );
    });
    t("&Value -> typed spec", n, || {
        std::hint::black_box(
            <FlinkDeploymentSpec as serde::Deserialize>::deserialize(&v["spec"]).unwrap(),
        );
    });
    let spec_raw = serde_json::to_string(&v["spec"]).unwrap();
    t("str -> typed spec", n, || {
        std::hint::black_box(serde_json::from_str::<FlinkDeploymentSpec>(&spec_raw).unwrap());
    });
    t("Value clone", n, || {
        std::hint::black_box(v.clone());
    });
    t("decide validate", n, || {
        std::hint::black_box(decide(Endpoint::Validate, &policy, &req));
    });
    t("decide mutate", n, || {
        std::hint::black_box(decide(Endpoint::Mutate, &policy, &req));
    });
    let d = decide(Endpoint::Mutate, &policy, &req);
    t("encode", n, || {
        std::hint::black_box(review::encode(d.response.clone()));
    });
}
