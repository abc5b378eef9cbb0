//! Where the time of one training step goes: every dispatch of a step timed with GPU
//! timestamps, summed per kernel.

use super::network::Network;
use crate::gpu::{self, KernelTime, Op};
use crate::Result;

impl Network {
    /// Times each kernel of a training step on `images` and `labels` (a full batch) with GPU
    /// timestamps, each dispatch in a compute pass of its own, `samples` times: (kernel,
    /// dispatches per step, median seconds per step), in step order; the center-loss kernels
    /// come from [`crate::GpuCenterLoss::profile_step`]. The profiled steps do update the
    /// weights and centers. `None` when the device cannot time encoders.
    pub fn profile_step(&mut self, images: &[f32], labels: &[u32], samples: usize) -> Result<Option<Vec<KernelTime>>> {
        self.check_batch(images, labels)?;
        let ctx = self.graph.context().clone();
        ctx.capture(|| {
            ctx.queue().write_buffer(&self.input.buffer, 0, bytemuck::cast_slice(images));
            ctx.queue().write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
        })?;
        let groups = self.graph.backward_groups();
        let before: Vec<&Op> = self
            .graph
            .forward_ops()
            .iter()
            .chain(&self.head)
            .chain(self.graph.backward_ops(self.trunk_groups..groups))
            .collect();
        let after: Vec<&Op> = self.graph.backward_ops(0..self.trunk_groups).chain(&self.sgd.ops).collect();
        let Some(mut kernels) = gpu::profile_ops(&ctx, &before, samples)? else {
            return Ok(None);
        };
        if let Some((cl, binding)) = &self.center {
            KernelTime::merge(&mut kernels, cl.profile_step(binding, samples)?.unwrap_or_default());
        }
        KernelTime::merge(&mut kernels, gpu::profile_ops(&ctx, &after, samples)?.unwrap_or_default());
        Ok(Some(kernels))
    }
}
