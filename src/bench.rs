//! Measurements shared by the criterion benchmarks and the `bench_report` example: the
//! center-loss step against the bytes it must move, the CPU reference, a copy-kernel
//! bandwidth ceiling, GEMM throughput and trainer images per second.

use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::cpu::CenterLossCpu;
use crate::gpu::shaders::{kernel, Kernel};
use crate::gpu::{self, median, GpuContext, GpuTimer, KernelSet, KernelTime};
use crate::nn::{Graph, LayerSpec, Network, NetworkSpec, TrainConfig};
use crate::{BatchBuffers, CenterLossBinding, CenterLossConfig, GpuCenterLoss, Result, UpdateMode};

/// Mirrors `CopyParams` in `shaders/bench/bandwidth_copy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct CopyParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The benchmarks' own kernel (`shaders/bench/`): a copy that moves 16 bytes per invocation.
pub const KERNELS: &[&Kernel] = &[&kernel::BANDWIDTH_COPY];

/// How a time was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamp queries around the recorded work.
    GpuTimestamps,
    /// Host wall clock from submission to completion.
    WallClock,
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::GpuTimestamps => "GPU timestamps",
            Clock::WallClock => "wall clock",
        })
    }
}

/// The median time of one iteration and how it was measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Seconds per iteration (median over samples).
    pub seconds: f64,
    /// The clock.
    pub clock: Clock,
}

/// Times `record` (which records `iters` iterations into the encoder) `samples` times, with
/// GPU timestamps when the device has them, else the wall clock around submit-and-wait.
pub fn time_recorded(
    ctx: &GpuContext,
    iters: u32,
    samples: usize,
    record: &dyn Fn(&mut wgpu::CommandEncoder),
) -> Result<Timing> {
    let timer = GpuTimer::new(ctx, 1);
    let mut times = Vec::new();
    for _ in 0..samples.max(1) {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        if let Some(t) = &timer {
            t.begin(&mut encoder, 0);
        }
        record(&mut encoder);
        if let Some(t) = &timer {
            t.end(&mut encoder, 0);
            t.resolve(&mut encoder);
        }
        let start = Instant::now();
        ctx.capture(|| ctx.queue().submit([encoder.finish()]))?;
        ctx.wait_idle()?;
        let wall = start.elapsed().as_secs_f64();
        times.push(
            match &timer {
                Some(t) => t.read_seconds()?[0],
                None => wall,
            } / iters.max(1) as f64,
        );
    }
    Ok(Timing { seconds: median(times), clock: if timer.is_some() { Clock::GpuTimestamps } else { Clock::WallClock } })
}

/// One center-loss benchmark shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CenterLossCase {
    /// Batch size B.
    pub batch: usize,
    /// Feature dimension D.
    pub dim: usize,
    /// Number of classes K.
    pub classes: usize,
    /// Update mode.
    pub update: UpdateMode,
}

impl CenterLossCase {
    /// The module's configuration for this case (the default α and λ).
    pub fn config(&self) -> CenterLossConfig {
        CenterLossConfig { num_classes: self.classes, feat_dim: self.dim, update: self.update, ..Default::default() }
    }

    /// Seeded features in [-1, 1) and uniformly random labels.
    pub fn inputs(&self, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = (0..self.batch * self.dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y = (0..self.batch).map(|_| rng.random_range(0..self.classes as u32)).collect();
        (x, y)
    }
}

/// A center-loss step on the GPU-resident path, ready to time.
pub struct CenterLossBench {
    ctx: GpuContext,
    cl: GpuCenterLoss,
    binding: CenterLossBinding,
    case: CenterLossCase,
    distinct_classes: usize,
    _buffers: [wgpu::Buffer; 4],
}

impl CenterLossBench {
    /// Sets up the case with random features and uniformly random labels.
    pub fn new(ctx: &GpuContext, case: CenterLossCase, seed: u64) -> Result<Self> {
        let cl = GpuCenterLoss::new(ctx, case.config())?;
        let (x, y) = case.inputs(seed);
        let mut distinct = y.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let buffers = [
            gpu::storage_init(ctx.device(), "bench features", &x),
            gpu::storage_init(ctx.device(), "bench labels", &y),
            gpu::buffer(ctx.device(), "bench grad", 4 * x.len() as u64, gpu::STORAGE_RW),
            gpu::buffer(ctx.device(), "bench loss", 16, gpu::STORAGE_RW),
        ];
        let binding = cl.bind(BatchBuffers {
            features: &buffers[0],
            labels: &buffers[1],
            grad: &buffers[2],
            loss: &buffers[3],
            loss_offset: 0,
            batch: case.batch,
            accumulate_grad: false,
        })?;
        Ok(Self { ctx: ctx.clone(), cl, binding, case, distinct_classes: distinct.len(), _buffers: buffers })
    }

    /// The least bytes a step must move: read x, read the gathered centers, write the
    /// gradient, read and write each touched center row, read the labels.
    pub fn min_bytes(&self) -> u64 {
        let (b, d) = (self.case.batch as u64, self.case.dim as u64);
        4 * (3 * b * d + 2 * self.distinct_classes as u64 * d + b)
    }

    /// GPU time of each kernel of the step ([`GpuCenterLoss::profile_step`]); `None`
    /// without timestamps.
    pub fn profile(&self, samples: usize) -> Result<Option<Vec<KernelTime>>> {
        self.cl.profile_step(&self.binding, samples)
    }

    /// How many buffers hold the center table.
    pub fn center_buffers(&self) -> usize {
        self.cl.num_center_buffers()
    }

    /// How many times each center kernel walks the batch per step.
    pub fn center_passes(&self) -> usize {
        self.cl.center_passes()
    }

    /// Median seconds per step, `iters` steps recorded per sample.
    pub fn time(&self, iters: u32, samples: usize) -> Result<Timing> {
        time_recorded(&self.ctx, iters, samples, &|enc| {
            for _ in 0..iters {
                self.cl.encode_step(enc, &self.binding).expect("binding belongs to this module");
            }
        })
    }
}

/// Median seconds of one step of the f64 CPU reference on the same kind of inputs.
pub fn cpu_center_loss_seconds(case: CenterLossCase, seed: u64, samples: usize) -> Result<f64> {
    let mut cl = CenterLossCpu::new(case.config())?;
    let (x, y) = case.inputs(seed);
    median_wall_seconds(samples, || cl.step(&x, &y).map(|_| ()))
}

/// The median wall-clock seconds of `samples` calls of `run`.
fn median_wall_seconds(samples: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..samples.max(1) {
        let start = Instant::now();
        std::hint::black_box(run()?);
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// Read + write bandwidth of a WGSL copy of `bytes` (GB/s, 1e9 bytes), capped by the
/// adapter's storage-binding limit: the ceiling of a memory-bound kernel.
pub fn copy_bandwidth(ctx: &GpuContext, bytes: u64, samples: usize) -> Result<(f64, Timing)> {
    let limit = ctx.limits().max_storage_buffer_binding_size.min(ctx.limits().max_buffer_size);
    let bytes = bytes.min(limit) / 16 * 16;
    let kernels = KernelSet::for_context(ctx, KERNELS, &[])?;
    let src = gpu::buffer(ctx.device(), "copy src", bytes, gpu::STORAGE_RW);
    let dst = gpu::buffer(ctx.device(), "copy dst", bytes, gpu::STORAGE_RW);
    let len = (bytes / 16) as u32;
    let u = gpu::uniform(ctx.device(), "copy params", &CopyParams { len, _pad0: 0, _pad1: 0, _pad2: 0 });
    let (x, y) = gpu::grid(len as u64, ctx.limits().max_compute_workgroups_per_dimension);
    let op = ctx.try_capture(|| kernels.op(&kernel::BANDWIDTH_COPY, &[], Some(&u), &[&src, &dst], (x, y, 1)))?;
    let iters = 4;
    let timing = time_recorded(ctx, iters, samples, &|enc| {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for _ in 0..iters {
            gpu::record_ops(&mut pass, std::slice::from_ref(&op));
        }
    })?;
    Ok((2.0 * bytes as f64 / timing.seconds / 1e9, timing))
}

/// GFLOP/s of the tiled GEMM at M x N x K (a bias-free linear layer's forward pass).
pub fn gemm_gflops(ctx: &GpuContext, m: usize, n: usize, k: usize, samples: usize) -> Result<(f64, Timing)> {
    let mut graph = Graph::new(ctx, m, 0)?;
    let x = graph.input([k, 1, 1], false);
    graph.layer(&x, &LayerSpec::Linear { out_features: n, bias: false }, "gemm")?;
    let iters = 2;
    let timing = time_recorded(ctx, iters, samples, &|enc| {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for _ in 0..iters {
            graph.record_forward(&mut pass);
        }
    })?;
    Ok((2.0 * (m * n * k) as f64 / timing.seconds / 1e9, timing))
}

/// Training images per second of `spec` at `batch` (softmax + center loss, SGD), wall
/// clock over `steps` steps after one warm-up step, uploads included.
pub fn trainer_images_per_second(ctx: &GpuContext, spec: NetworkSpec, batch: usize, steps: usize) -> Result<f64> {
    let (mut net, x, y) = warmed_up_network(ctx, spec, batch)?;
    let start = Instant::now();
    for _ in 0..steps {
        net.train_step(&x, &y, false)?;
    }
    ctx.wait_idle()?;
    Ok((steps * batch) as f64 / start.elapsed().as_secs_f64())
}

/// Per-kernel GPU time of one training step of `spec` at `batch` ([`Network::profile_step`]);
/// `None` without timestamps.
pub fn trainer_profile(
    ctx: &GpuContext,
    spec: NetworkSpec,
    batch: usize,
    samples: usize,
) -> Result<Option<Vec<KernelTime>>> {
    let (mut net, x, y) = warmed_up_network(ctx, spec, batch)?;
    net.profile_step(&x, &y, samples)
}

/// `spec` with softmax + center loss (lambda 0.01) at `batch`, a seeded random batch, and
/// one training step taken on it (pipelines compiled, buffers touched).
fn warmed_up_network(ctx: &GpuContext, spec: NetworkSpec, batch: usize) -> Result<(Network, Vec<f32>, Vec<u32>)> {
    let classes = spec.num_classes as u32;
    let mut net = Network::new(ctx, spec, TrainConfig { batch, ..Default::default() })?;
    let mut rng = StdRng::seed_from_u64(0);
    let x: Vec<f32> = (0..batch * net.input_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..classes)).collect();
    net.train_step(&x, &y, true)?;
    Ok((net, x, y))
}

/// Median wall-clock seconds of [`GpuCenterLoss::step`] on host slices (upload, the step,
/// the read-back of loss and gradient), after one warm-up step.
pub fn host_step_seconds(ctx: &GpuContext, case: CenterLossCase, seed: u64, samples: usize) -> Result<f64> {
    let mut cl = GpuCenterLoss::new(ctx, case.config())?;
    let (x, y) = case.inputs(seed);
    cl.step(&x, &y)?;
    median_wall_seconds(samples, || cl.step(&x, &y).map(|_| ()))
}

/// The GPU context for a benchmark, or `None` after printing why there is none.
pub fn context_or_skip() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("adapter: {}", ctx.adapter_summary());
            Some(ctx)
        }
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

/// A duration from seconds (criterion's `iter_custom`).
pub fn duration(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{kernel, layout, mirror};

    #[test]
    fn copy_params_mirror_the_wgsl() {
        let module = mirror::module(&kernel::BANDWIDTH_COPY, &[]);
        mirror::assert_struct(&module, "CopyParams", layout!(CopyParams { len, _pad0, _pad1, _pad2 }));
    }
}
