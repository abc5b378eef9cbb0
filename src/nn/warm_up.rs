//! The first run of a network's kernels, apart from training: drivers compile a pipeline
//! when it is created or when it first runs (lavapipe: at its first dispatch), so the first
//! training step would otherwise carry every kernel's compile in its time.

use std::time::Instant;

use super::network::{Network, Pass};
use crate::gpu;
use crate::Result;

impl Network {
    /// Runs every kernel of a training step once, on a batch of zeros with every label 0,
    /// and then puts back what that step changed (weights, momenta, center 0), so that the
    /// network is bit for bit as it was. Returns the seconds it took (the kernels' compile,
    /// mostly), or 0 when the network has run a step already. [`crate::nn::fit`] calls it
    /// before it starts its clock and logs `compiling kernels for <adapter>: s`.
    pub fn warm_up(&mut self) -> Result<f64> {
        if self.warm {
            return Ok(0.0);
        }
        let start = Instant::now();
        let b = self.train_config().batch;
        let (images, labels) = (vec![0.0f32; b * self.input_len()], vec![0u32; b]);
        let bytes: u64 = self.graph.param_pages().iter().map(|page| 8 * page.used as u64).sum();
        let snapshot = gpu::buffer(self.graph.context().device(), "parameter snapshot", bytes, gpu::STORAGE_RW);
        self.copy_params(&snapshot, false)?;
        let center_zero = match &self.center {
            Some((cl, _)) => Some(cl.center_rows(&[0])?),
            None => None,
        };
        self.run_batch(&images, &labels, Pass::Train, false)?;
        self.copy_params(&snapshot, true)?;
        if let (Some((cl, _)), Some(row)) = (&mut self.center, center_zero) {
            cl.set_center_rows(&[0], &row)?;
        }
        let ctx = self.graph.context();
        ctx.wait_idle()?;
        self.warm = true;
        let seconds = start.elapsed().as_secs_f64();
        log::info!("compiling kernels for {}: {seconds:.1} s", ctx.adapter_info().name);
        Ok(seconds)
    }

    /// Copies the parameter arena's values and momenta into `snapshot`, page after page,
    /// or with `restore` back from it, on the GPU.
    fn copy_params(&self, snapshot: &wgpu::Buffer, restore: bool) -> Result<()> {
        let ctx = self.graph.context();
        ctx.capture(|| {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            let mut offset = 0;
            for page in self.graph.param_pages() {
                let size = 4 * page.used as u64;
                for part in [Some(&page.value), page.velocity.as_ref()].into_iter().flatten() {
                    if restore {
                        encoder.copy_buffer_to_buffer(snapshot, offset, part, 0, size);
                    } else {
                        encoder.copy_buffer_to_buffer(part, 0, snapshot, offset, size);
                    }
                    offset += size;
                }
            }
            ctx.queue().submit([encoder.finish()]);
        })
    }
}
