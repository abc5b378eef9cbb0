//! Helpers shared by the GPU test files.
#![allow(dead_code)]

use std::sync::OnceLock;

use centerloss::gpu::KernelChoice;
use centerloss::{Error, GpuContext};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The test binary's GPU context, or `None` (after printing `SKIP: no GPU adapter`) when
/// there is none. With `CENTERLOSS_REQUIRE_GPU=1` a missing adapter fails the test.
pub fn gpu() -> Option<GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("GPU tests on {}", ctx.adapter_summary());
            Some(ctx)
        }
        Err(Error::NoAdapter(reason)) => {
            if std::env::var("CENTERLOSS_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("CENTERLOSS_REQUIRE_GPU=1 but no GPU adapter: {reason}");
            }
            None
        }
        Err(e) => panic!("GPU context failed: {e}"),
    });
    if ctx.is_none() {
        println!("SKIP: no GPU adapter");
    }
    ctx.clone()
}

/// The context with each kernel family: the GPU-shaped kernels and the CPU-driver ones,
/// on the same device (both run on any adapter).
pub fn kernel_variants(ctx: &GpuContext) -> [GpuContext; 2] {
    [ctx.with_kernels(KernelChoice::Gpu), ctx.with_kernels(KernelChoice::Cpu)]
}

/// The values as f64, for the f64 references.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// ||a - b|| / ||b|| (or ||a - b|| when b is zero).
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// A seeded generator; each test draws fresh inputs from its own seed mixed with the run's
/// `CENTERLOSS_TEST_SEED` (default: a new seed every run, printed on failure).
pub fn rng(salt: u64) -> StdRng {
    static BASE: OnceLock<u64> = OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let seed = std::env::var("CENTERLOSS_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| rand::rng().random());
        eprintln!("CENTERLOSS_TEST_SEED={seed}");
        seed
    });
    StdRng::seed_from_u64(base ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `n` values uniform in [-scale, scale].
pub fn uniform(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..=scale)).collect()
}

/// `n` labels below `k`.
pub fn labels(rng: &mut StdRng, n: usize, k: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..k as u32)).collect()
}

/// Runs `body(rank, member)` for every member of an n-member in-process group, each on its
/// own thread, and returns the results in rank order.
pub fn run_group<T: Send>(n: usize, body: impl Fn(usize, centerloss::collective::ThreadGroup) -> T + Sync) -> Vec<T> {
    let members = centerloss::collective::ThreadGroup::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(r, m)| {
                let body = &body;
                s.spawn(move || body(r, m))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("member thread")).collect()
    })
}
