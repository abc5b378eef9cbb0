//! Per-kernel GPU time of a step, with timestamps around each dispatch.

use super::binding::CenterLossBinding;
use super::plan::Pass;
use super::GpuCenterLoss;
use crate::gpu::{self, KernelTime};
use crate::Result;

impl GpuCenterLoss {
    /// Times each kernel of a full step on `binding` with GPU timestamps, every dispatch in
    /// a compute pass of its own: (kernel, dispatches per step, median seconds per step
    /// summed over its dispatches), in step order. The step runs `samples` times (it does
    /// update the centers). `None` when the device cannot write timestamps in encoders.
    pub fn profile_step(&self, binding: &CenterLossBinding, samples: usize) -> Result<Option<Vec<KernelTime>>> {
        self.check_owner(binding)?;
        let plan = self.plan(binding, binding.batch, Pass::Step);
        let Some(timer) = gpu::GpuTimer::new(&self.ctx, plan.len() as u32) else {
            return Ok(None);
        };
        let mut per_dispatch: Vec<Vec<f64>> = vec![Vec::new(); plan.len()];
        for _ in 0..samples.max(1) {
            self.ctx.capture(|| {
                let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
                for (i, dispatch) in plan.iter().enumerate() {
                    timer.begin(&mut encoder, i as u32);
                    // Each dispatch in a pass of its own, ended before the timestamp.
                    dispatch.record(&mut self.begin_pass(&mut encoder, binding));
                    timer.end(&mut encoder, i as u32);
                }
                timer.resolve(&mut encoder);
                self.ctx.queue().submit([encoder.finish()]);
            })?;
            for (times, t) in per_dispatch.iter_mut().zip(timer.read_seconds()?) {
                times.push(t);
            }
        }
        let mut kernels: Vec<KernelTime> = Vec::new();
        for (dispatch, times) in plan.iter().zip(per_dispatch) {
            KernelTime::add(&mut kernels, dispatch.kernel, gpu::median(times));
        }
        Ok(Some(kernels))
    }
}
