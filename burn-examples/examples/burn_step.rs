//! The burn path's cost next to the plain step, same run: B = D = 512, K = 10 575
//! (atomic), median of alternating rounds:
//! - `GpuCenterLoss` on the GPU-resident path (`encode_step` on device buffers, one
//!   submission, waited for): GPU time (timestamps) and wall clock — the baseline;
//! - `GpuCenterLoss::step` on host slices (upload, step, loss + gradient read back);
//! - `centerloss::burn::CenterLoss::step` on burn tensors, synchronised (no backward);
//! - the same with `backward` and the features' gradient, synchronised (no read back);
//! - the burn path's GPU work beyond the step, GPU timestamps: the copies of features and
//!   labels in and of gradient and loss out, and the backward's `center_grad_scale` pass.
//!
//! cargo run --release -p centerloss-burn-examples --example burn_step

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use centerloss::bench::{time_recorded, CenterLossBench, CenterLossCase};
use centerloss::center_loss::GRAD_SCALE_KERNELS;
use centerloss::gpu::{self, median, record_ops, KernelSet};
use centerloss::{CenterLossConfig, GpuCenterLoss, GpuContext, UpdateMode};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// What the burn path adds on the GPU, on buffers of a step's sizes: the copies in and out
/// and the backward's scale pass, recorded by the returned closure.
fn burn_extra_work(ctx: &GpuContext, b: usize, d: usize) -> BenchResult<impl Fn(&mut wgpu::CommandEncoder)> {
    let dev = ctx.device();
    let bytes = (b * d * 4) as u64;
    let [burn_x, own_x, own_g, burn_g] =
        ["burn x", "own x", "own g", "burn g"].map(|l| gpu::buffer(dev, l, bytes, gpu::STORAGE_RW));
    let small = ["burn y", "own y", "own loss", "burn loss", "params"]
        .map(|l| gpu::buffer(dev, l, 4 * b as u64, gpu::STORAGE_RW | wgpu::BufferUsages::UNIFORM));
    let kernels = KernelSet::for_context(ctx, GRAD_SCALE_KERNELS, &[])?;
    ctx.queue().write_buffer(&small[4], 0, bytemuck::cast_slice(&[(b * d) as u32, 0, 0, 0]));
    let grid = gpu::grid((b * d) as u64, ctx.limits().max_compute_workgroups_per_dimension);
    let scale = kernels.op(
        &centerloss::gpu::shaders::kernel::CENTER_GRAD_SCALE,
        &[],
        Some(&small[4]),
        &[&small[2], &burn_g],
        (grid.0, grid.1, 1),
    )?;
    Ok(move |enc: &mut wgpu::CommandEncoder| {
        enc.copy_buffer_to_buffer(&burn_x, 0, &own_x, 0, bytes);
        enc.copy_buffer_to_buffer(&small[0], 0, &small[1], 0, 4 * b as u64);
        enc.copy_buffer_to_buffer(&own_g, 0, &burn_g, 0, bytes);
        enc.copy_buffer_to_buffer(&small[2], 0, &small[3], 0, 4);
        record_ops(&mut enc.begin_compute_pass(&Default::default()), std::slice::from_ref(&scale));
    })
}

/// The table: medians of (resident GPU, resident wall, host step, burn step, burn step +
/// backward, burn's extra GPU work).
fn print_table(ctx: &GpuContext, case: CenterLossCase, rounds: usize, medians: [f64; 6]) {
    let [gpu, wall, plain, forward, burn, extra] = medians;
    println!("{}", ctx.adapter_summary());
    println!("B {} D {} K {}, atomic, median of {rounds} alternating rounds:", case.batch, case.dim, case.classes);
    println!("| path | ms | vs resident wall |\n|---|---|---|");
    println!("| GpuCenterLoss resident step, GPU time (timestamps) | {:.3} | |", 1e3 * gpu);
    println!("| GpuCenterLoss resident step, submit + wait (wall) | {:.3} | 1.00x |", 1e3 * wall);
    println!(
        "| GpuCenterLoss::step (host slices in, loss + gradient out) | {:.3} | {:.2}x |",
        1e3 * plain,
        plain / wall
    );
    println!("| burn: CenterLoss::step + sync | {:.3} | {:.2}x |", 1e3 * forward, forward / wall);
    println!("| burn: CenterLoss::step + backward + sync | {:.3} | {:.2}x |", 1e3 * burn, burn / wall);
    println!(
        "\nThe burn path's GPU work beyond the step (copies in and out, the backward's scale pass), GPU timestamps: {:.3} ms = {:.0}% of the step's {:.3} ms.",
        1e3 * extra,
        100.0 * extra / gpu,
        1e3 * gpu
    );
}

fn main() -> BenchResult<()> {
    let case = CenterLossCase { batch: 512, dim: 512, classes: 10_575, update: UpdateMode::Atomic };
    let rounds = 21;
    let ctx = GpuContext::new()?;
    let device = centerloss::burn::device(&ctx)?;
    let (b, d) = (case.batch, case.dim);
    let cfg = CenterLossConfig { num_classes: case.classes, feat_dim: d, update: case.update, ..Default::default() };
    let (x, y) = case.inputs(1);
    let resident = CenterLossBench::new(&ctx, case, 1)?;
    let mut plain = GpuCenterLoss::new(&ctx, cfg.clone())?;
    let mut ours = centerloss::burn::CenterLoss::new(&ctx, cfg)?;
    let auto = device.clone().autodiff();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(y.iter().map(|&v| v as i32).collect(), [b]), &device);
    let features = || Tensor::<2>::from_data(TensorData::new(x.clone(), [b, d]), &auto).require_grad();
    let extra = burn_extra_work(&ctx, b, d)?;
    let mut t: [Vec<f64>; 6] = Default::default();
    for round in 0..rounds + 2 {
        let gpu = resident.time(1, 1)?.seconds;
        let extra_gpu = time_recorded(&ctx, 1, 1, &extra)?.seconds;
        let wall = Instant::now();
        resident.time(1, 1)?;
        let resident_wall = wall.elapsed().as_secs_f64();

        let start = Instant::now();
        plain.step(&x, &y)?;
        let plain_s = start.elapsed().as_secs_f64();

        let f = features();
        device.sync()?;
        let start = Instant::now();
        let _loss = ours.step(f, labels.clone())?;
        device.sync()?;
        let forward_s = start.elapsed().as_secs_f64();

        let f = features();
        device.sync()?;
        let start = Instant::now();
        let loss = ours.step(f.clone(), labels.clone())?;
        let grads = loss.backward();
        let _ = f.grad(&grads);
        device.sync()?;
        let burn_s = start.elapsed().as_secs_f64();
        if round >= 2 {
            for (v, s) in t.iter_mut().zip([gpu, resident_wall, plain_s, forward_s, burn_s, extra_gpu]) {
                v.push(s);
            }
        }
    }
    print_table(&ctx, case, rounds, t.map(median));
    Ok(())
}
