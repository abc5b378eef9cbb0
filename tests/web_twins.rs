//! The LeNet++ steps the browser tests hold their run against (`web/tests/lenet_steps.json`)
//! are this machine's native run: the file must match it. `CENTERLOSS_BLESS=1` rewrites it.

mod common;

#[path = "../web/src/twins.rs"]
mod twins;

const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/tests/lenet_steps.json");

#[test]
fn the_browser_tests_expect_the_native_lenet_steps() {
    let Some(ctx) = common::gpu() else { return };
    let run = pollster::block_on(twins::lenet_runs(&ctx)).unwrap();
    let values = [&run.softmax, &run.arcface].into_iter().flat_map(|t| t.metrics.iter().flatten().chain(&t.embeddings));
    assert!(values.into_iter().all(|v| v.is_finite()), "{run:?}");
    if std::env::var("CENTERLOSS_BLESS").as_deref() == Ok("1") {
        std::fs::write(EXPECTED, serde_json::to_string_pretty(&run).unwrap() + "\n").unwrap();
    }
    let expected: twins::Twins = serde_json::from_str(&std::fs::read_to_string(EXPECTED).unwrap()).unwrap();
    // Both kernel families (their sums run in different orders), any driver.
    for ctx in common::kernel_variants(&ctx) {
        let run = pollster::block_on(twins::lenet_runs(&ctx)).unwrap();
        let differences = twins::differences(&run, &expected, twins::TOLERANCE);
        assert!(differences.is_empty(), "{:?} kernels: {differences:#?}", ctx.kernels());
    }
}
