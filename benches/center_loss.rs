//! The center-loss step (loss + gradient + center update) on the GPU-resident path for
//! B in {128, 512, 2048}, D in {2, 128, 512}, K in {10, 10 575, 100 000}, both update
//! modes, timed with GPU timestamps where the adapter has them (wall clock otherwise);
//! the f64 CPU reference on the same shapes; and the copy-kernel bandwidth ceiling.
//! Throughput is the least bytes a step must move, so criterion's GB/s is comparable
//! with the ceiling. `cargo bench --bench center_loss`; the full report with PyTorch
//! peers is `cargo run --release --example bench_report`.

use centerloss::bench::{
    context_or_skip, copy_bandwidth, cpu_center_loss_seconds, duration, CenterLossBench, CenterLossCase,
};
use centerloss::UpdateMode;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn center_loss(c: &mut Criterion) {
    let Some(ctx) = context_or_skip() else { return };
    eprintln!("GPU step times: {}", if ctx.has_timestamps() { "GPU timestamp queries" } else { "wall clock" });
    let mut group = c.benchmark_group("center_loss_step");
    group.sample_size(10);
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for classes in [10, 10_575, 100_000] {
            for dim in [2, 128, 512] {
                for batch in [128, 512, 2048] {
                    let case = CenterLossCase { batch, dim, classes, update };
                    let bench = CenterLossBench::new(&ctx, case, 1).expect("benchmark setup");
                    group.throughput(Throughput::Bytes(bench.min_bytes()));
                    let id = BenchmarkId::new(format!("{update:?}"), format!("B{batch}_D{dim}_K{classes}"));
                    group.bench_function(id, |b| {
                        b.iter_custom(|iters| {
                            duration(bench.time(iters as u32, 1).expect("timing").seconds * iters as f64)
                        })
                    });
                }
            }
        }
    }
    group.finish();

    let mut cpu = c.benchmark_group("center_loss_step_cpu_reference");
    cpu.sample_size(10);
    for (batch, dim, classes) in [(128, 2, 10), (512, 512, 10_575), (2048, 512, 100_000)] {
        let case = CenterLossCase { batch, dim, classes, update: UpdateMode::Atomic };
        cpu.bench_function(format!("B{batch}_D{dim}_K{classes}"), |b| {
            b.iter_custom(|iters| {
                duration(cpu_center_loss_seconds(case, 1, iters as usize).expect("cpu step") * iters as f64)
            })
        });
    }
    cpu.finish();

    let mut bw = c.benchmark_group("copy_bandwidth");
    bw.sample_size(10);
    let bytes = 256 << 20;
    bw.throughput(Throughput::Bytes(2 * bytes));
    bw.bench_function("copy_256MiB", |b| {
        b.iter_custom(|iters| {
            let (_, t) = copy_bandwidth(&ctx, bytes, iters as usize).expect("copy");
            duration(t.seconds * iters as f64)
        })
    });
    bw.finish();
}

criterion_group!(benches, center_loss);
criterion_main!(benches);
