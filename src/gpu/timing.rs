//! GPU timestamps around recorded work: the time the GPU spent, not the host's wall clock.

use super::{buffer, GpuContext, Staging};
use crate::{Error, Result};

/// The median of timing samples (the upper one of an even count).
pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The GPU time of one kernel in a profiled step.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's WGSL file name.
    pub kernel: &'static str,
    /// How many times a step dispatches it.
    pub dispatches: usize,
    /// Median seconds per step, all its dispatches together.
    pub seconds: f64,
}

impl KernelTime {
    /// Adds one dispatch of `kernel` taking `seconds` to `list` (a new entry at the end for
    /// a kernel not yet in it).
    pub fn add(list: &mut Vec<KernelTime>, kernel: &'static str, seconds: f64) {
        Self::merge(list, [KernelTime { kernel, dispatches: 1, seconds }]);
    }

    /// Adds every entry of `more` to `list`, summing entries of the same kernel.
    pub fn merge(list: &mut Vec<KernelTime>, more: impl IntoIterator<Item = KernelTime>) {
        for entry in more {
            match list.iter_mut().find(|k| k.kernel == entry.kernel) {
                Some(k) => {
                    k.dispatches += entry.dispatches;
                    k.seconds += entry.seconds;
                }
                None => list.push(entry),
            }
        }
    }
}

/// Timestamp queries written into command encoders in begin/end pairs.
pub struct GpuTimer {
    ctx: GpuContext,
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: Staging,
    pairs: u32,
}

impl GpuTimer {
    /// A timer for up to `pairs` intervals, or `None` when the device cannot time encoders
    /// (no `TIMESTAMP_QUERY` and `TIMESTAMP_QUERY_INSIDE_ENCODERS`).
    pub fn new(ctx: &GpuContext, pairs: u32) -> Option<Self> {
        if !ctx.has_timestamps() || pairs == 0 {
            return None;
        }
        let device = ctx.device();
        let count = 2 * pairs;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = 8 * count as u64;
        let resolve =
            buffer(device, "timestamps", bytes, wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let staging = Staging::new(device, "timestamps staging", bytes);
        Some(Self { ctx: ctx.clone(), queries, resolve, staging, pairs })
    }

    /// Marks the start of interval `i`.
    pub fn begin(&self, encoder: &mut wgpu::CommandEncoder, i: u32) {
        encoder.write_timestamp(&self.queries, 2 * i);
    }

    /// Marks the end of interval `i`.
    pub fn end(&self, encoder: &mut wgpu::CommandEncoder, i: u32) {
        encoder.write_timestamp(&self.queries, 2 * i + 1);
    }

    /// Records the copy of every interval's timestamps for [`GpuTimer::read_seconds`].
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.queries, 0..2 * self.pairs, &self.resolve, 0);
        self.staging.copy_from(encoder, &self.resolve, 0, 0, 8 * 2 * self.pairs as u64);
    }

    /// The length of each interval in seconds (after the resolving submission).
    pub fn read_seconds(&self) -> Result<Vec<f64>> {
        let ticks: Vec<u64> = self.staging.read_values(&self.ctx, 2 * self.pairs as usize)?;
        let period = self.ctx.queue().get_timestamp_period() as f64;
        if period <= 0.0 {
            return Err(Error::Gpu("the queue reports no timestamp period".into()));
        }
        Ok(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period * 1e-9).collect())
    }
}

/// GPU time of each of the dispatches that `record(encoder, i)` records for `i` in
/// `0..kernels.len()` (each in a compute pass of its own, ended before its timestamp), the
/// whole list run `samples` times: median seconds per run, summed per kernel name
/// (`kernels[i]`), in first-dispatch order. `None` when the device cannot time encoders.
pub fn profile_dispatches(
    ctx: &GpuContext,
    kernels: &[&'static str],
    samples: usize,
    record: impl Fn(&mut wgpu::CommandEncoder, usize),
) -> Result<Option<Vec<KernelTime>>> {
    let Some(timer) = GpuTimer::new(ctx, kernels.len() as u32) else {
        return Ok(None);
    };
    let mut per_dispatch: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
    for _ in 0..samples.max(1) {
        ctx.capture(|| {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            for i in 0..kernels.len() {
                timer.begin(&mut encoder, i as u32);
                record(&mut encoder, i);
                timer.end(&mut encoder, i as u32);
            }
            timer.resolve(&mut encoder);
            ctx.queue().submit([encoder.finish()]);
        })?;
        for (times, t) in per_dispatch.iter_mut().zip(timer.read_seconds()?) {
            times.push(t);
        }
    }
    let mut totals = Vec::new();
    for (&kernel, times) in kernels.iter().zip(per_dispatch) {
        KernelTime::add(&mut totals, kernel, median(times));
    }
    Ok(Some(totals))
}
