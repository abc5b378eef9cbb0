//! The trainer's heavy kernels: a GEMM sweep (GFLOP/s, counted as elements = FLOPs) and
//! training steps of LeNet++ at batch 128 and the face network at batch 64.
//! `cargo bench --bench trainer`.

use centerloss::bench::{context_or_skip, duration, gemm_gflops, trainer_images_per_second};
use centerloss::nn::NetworkSpec;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn trainer(c: &mut Criterion) {
    let Some(ctx) = context_or_skip() else { return };
    let mut gemm = c.benchmark_group("gemm");
    gemm.sample_size(10);
    for n in [128usize, 256, 512, 1024] {
        gemm.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        gemm.bench_function(format!("{n}x{n}x{n}"), |b| {
            b.iter_custom(|iters| {
                let (_, t) = gemm_gflops(&ctx, n, n, n, iters as usize).expect("gemm");
                duration(t.seconds * iters as f64)
            })
        });
    }
    gemm.finish();

    let mut steps = c.benchmark_group("train_step");
    steps.sample_size(10);
    for (name, spec, batch) in [
        ("lenet_plus_plus_b128", NetworkSpec::lenet_plus_plus(), 128),
        ("face_resnet_b64", NetworkSpec::face_resnet(1, 64, 128, 150), 64),
    ] {
        steps.throughput(Throughput::Elements(batch as u64));
        steps.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let ips = trainer_images_per_second(&ctx, spec.clone(), batch, iters as usize).expect("train");
                duration(iters as f64 * batch as f64 / ips)
            })
        });
    }
    steps.finish();
}

criterion_group!(benches, trainer);
criterion_main!(benches);
