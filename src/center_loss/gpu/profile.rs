//! Per-kernel GPU time of a step, with timestamps around each dispatch.

use super::binding::CenterLossBinding;
use super::plan::CenterPass;
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
        let plan = self.plan(binding, binding.batch, CenterPass::Step)?;
        let kernels: Vec<&'static str> = plan.iter().map(|d| d.kernel).collect();
        gpu::profile_dispatches(&self.ctx, &kernels, samples, |encoder, i| {
            plan[i].record(&mut self.begin_pass(encoder, binding));
        })
    }
}
