//! PReLU's dispatches: the forward pass (on GPUs fused into the store of the convolution
//! before it) and the backward pass (on CPU drivers one pass with the slope gradient and
//! the convolution's bias gradient).

use super::graph::{Graph, ParamKind, Tensor};
use super::kernels::{ChannelParams, ElementParams};
use super::tiles::GemmDispatch;
use crate::gpu::shaders::kernel;
use crate::gpu::{BufferRange, KernelFamily, Storage};
use crate::Result;

impl Graph {
    /// y = PReLU(x) with one slope per channel, or one `shared` slope (initialised to 0.25,
    /// as in He et al.), and its backward group.
    pub(super) fn prelu(&mut self, x: &Tensor, y: &Tensor, shared: bool, name: &str) -> Result<()> {
        let [c, h, w] = x.shape;
        let (channels, pixels) = if shared { (1, c * h * w) } else { (c, h * w) };
        let slope_index = self.param(format!("{name}.slope"), ParamKind::Slope, vec![0.25; channels])?;
        let len = self.batch * c * h * w;
        let element_uniform =
            self.uniform(&ElementParams { len: len as u32, channels: channels as u32, pixels: pixels as u32, _pad: 0 });
        let slopes = self.params[slope_index].value.clone();
        self.prelu_forward(x, y, &slopes, channels, &element_uniform)?;
        let Some(dy) = y.grad.clone() else {
            return Ok(());
        };
        let slope_grad = self.params[slope_index].grad()?.clone();
        let channel_uniform = self.uniform(&ChannelParams {
            batch: self.batch as u32,
            channels: channels as u32,
            pixels: pixels as u32,
            _pad: 0,
        });
        // On CPU drivers, per-channel slopes take the fused pass below; GPUs keep the
        // element-parallel dx pass (the fused one is untimed on a GPU).
        if shared || self.ctx.kernels() == KernelFamily::Gpu {
            let mut group = vec![self.op(
                &kernel::PRELU_SLOPE_GRAD,
                &channel_uniform,
                &[&x.buffer, &dy, &slope_grad],
                (channels as u32, 1, 1),
            )?];
            if let Some(dx) = &x.grad {
                group.push(self.op(
                    &kernel::PRELU_BACKWARD,
                    &element_uniform,
                    &[&x.buffer, &slopes, &dy, dx],
                    self.grid_walk(len),
                )?);
            }
            self.backward.push(group);
            return Ok(());
        }
        // Per-channel slopes: one pass for dx, the slope gradient and, when x is a
        // convolution's output, that convolution's bias gradient (its channel_sum goes).
        let bias = self
            .pending_bias
            .take()
            .filter(|p| x.grad.as_ref() == Some(&p.output_grad) && p.channels == channels && p.pixels == pixels);
        if let Some(p) = &bias {
            self.backward[p.group].remove(p.op);
        }
        let constants = [("WRITE_DX", x.grad.is_some() as u8 as f64), ("BIAS", bias.is_some() as u8 as f64)];
        let dx = x.grad.as_ref().unwrap_or(&self.dummy);
        let bias_grad: &dyn Storage = bias.as_ref().map_or(&self.dummy, |p| &p.grad);
        let fused = self.kernels.op(
            &kernel::PRELU_BACKWARD_CHANNEL,
            &constants,
            Some(&channel_uniform),
            &[&x.buffer, &slopes, &dy, dx, &slope_grad, bias_grad],
            (channels as u32, 1, 1),
        )?;
        self.backward.push(vec![fused]);
        Ok(())
    }

    /// The PReLU's forward pass: on GPUs fused into the store of the convolution that
    /// computes x, when that is the last forward dispatch (x is still written: the backward
    /// pass reads it), else a `prelu_forward` pass. CPU drivers keep the pass: on lavapipe
    /// the fused store's second write cost about what the pass did (docs/performance.md).
    fn prelu_forward(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        slopes: &BufferRange,
        channels: usize,
        element_uniform: &wgpu::Buffer,
    ) -> Result<()> {
        let fuse = self.ctx.kernels() == KernelFamily::Gpu;
        let conv = self.pending_conv.take().filter(|p| {
            fuse && p.storage[3].buffer == x.buffer
                && p.index + 1 == self.forward.len()
                && (channels == 1 || channels == p.out_channels)
        });
        let Some(p) = conv else {
            let len = self.batch * x.per_sample();
            let fwd =
                self.op(&kernel::PRELU_FORWARD, element_uniform, &[&x.buffer, slopes, &y.buffer], self.grid_walk(len))?;
            self.forward.push(fwd);
            return Ok(());
        };
        let mut constants = p.constants.clone();
        constants.push(("PRELU", if channels == 1 { 2.0 } else { 1.0 }));
        let [weights, input, bias, output] = &p.storage;
        let storage: [&dyn Storage; 6] = [weights, input, bias, output, slopes, &y.buffer];
        let d = GemmDispatch {
            kernel: &kernel::CONV2D_FORWARD,
            constants: &constants,
            uniform: None,
            storage: &storage,
            m: p.out_channels,
            n: p.n,
            slices: 1,
            detail: "",
        };
        self.forward[p.index] = self.gemm_op_with(&d, p.tiles, &storage)?;
        Ok(())
    }
}
