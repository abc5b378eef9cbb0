//! The layers of a [`Graph`]: each adds its forward dispatches and one group of backward
//! dispatches (convolution, linear and classifier, max pool, PReLU, L2 normalisation,
//! residual blocks).

use super::graph::{Graph, ParamKind, PendingBias, PendingConv, Tensor};
use super::kernels::{ChannelParams, ElementParams};
use super::spec::LayerSpec;
use super::tiles::{split_k, GemmDispatch, GemmTiles};
use crate::gpu::shaders::{kernel, Kernel};
use crate::gpu::{self, BufferRange, Constants, Op, Storage};
use crate::{Error, Result};

impl Graph {
    /// Applies one layer (or residual block) to `x`, checking shapes; `name` prefixes its
    /// parameters' names and errors.
    pub fn layer(&mut self, x: &Tensor, spec: &LayerSpec, name: &str) -> Result<Tensor> {
        let out_grad = self.trains;
        let fail = |why: String| Error::Config(format!("layer {name} ({}): {why}", spec.describe()));
        let [c, h, w] = x.shape;
        let ctx = self.ctx.clone();
        ctx.try_capture(|| match spec {
            LayerSpec::Conv2d { out_channels, kernel, stride, pad, bias } => {
                if *out_channels == 0 || *kernel == 0 || *stride == 0 {
                    return Err(fail("channels, kernel and stride must be at least 1".into()));
                }
                if h + 2 * pad < *kernel || w + 2 * pad < *kernel {
                    return Err(fail(format!("input {c}x{h}x{w} is smaller than the kernel")));
                }
                let y = self.tensor(spec.output_shape(x.shape), out_grad);
                self.conv(x, &y, *kernel, *stride, *pad, *bias, name)?;
                Ok(y)
            }
            LayerSpec::MaxPool { kernel, stride } => {
                if *kernel == 0 || *stride == 0 {
                    return Err(fail("kernel and stride must be at least 1".into()));
                }
                if h < *kernel || w < *kernel {
                    return Err(fail(format!("input {c}x{h}x{w} is smaller than the window")));
                }
                let y = self.tensor(spec.output_shape(x.shape), out_grad);
                self.maxpool(x, &y, *kernel, *stride)?;
                Ok(y)
            }
            LayerSpec::PRelu { shared } => {
                let y = self.tensor(x.shape, out_grad);
                self.prelu(x, &y, *shared, name)?;
                Ok(y)
            }
            LayerSpec::Linear { out_features, bias } => {
                if *out_features == 0 {
                    return Err(fail("out_features must be at least 1".into()));
                }
                let y = self.tensor([*out_features, 1, 1], out_grad);
                self.linear(x, &y, *bias, name)?;
                Ok(y)
            }
            LayerSpec::Flatten => Ok(Tensor { shape: [c * h * w, 1, 1], ..x.clone() }),
            LayerSpec::L2Norm => {
                let y = self.tensor(x.shape, out_grad);
                self.l2norm(x, &y)?;
                Ok(y)
            }
            LayerSpec::Residual { body, shortcut } => self.residual(x, body, shortcut, name),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        kernel: usize,
        stride: usize,
        pad: usize,
        bias: bool,
        name: &str,
    ) -> Result<()> {
        let in_c = x.shape[0];
        let [out_c, out_h, out_w] = y.shape;
        let taps = in_c * kernel * kernel;
        let weight = self.init_weights(out_c * taps, taps);
        let weight_index = self.param(format!("{name}.weight"), ParamKind::Weight, weight)?;
        let bias_index =
            bias.then(|| self.param(format!("{name}.bias"), ParamKind::Bias, vec![0.0; out_c])).transpose()?;
        // Split-K for the weight gradient, whose reduction runs over batch * pixels.
        let (k_per_slice, slices) = split_k(self.ctx.kernels(), out_c, taps, self.batch * out_h * out_w);
        let mut constants: Constants = window_constants(x, y, kernel, stride).to_vec();
        constants.extend([
            ("BATCH", self.batch as f64),
            ("IN_C", in_c as f64),
            ("OUT_C", out_c as f64),
            ("PAD", pad as f64),
            ("HAS_BIAS", bias as u8 as f64),
            ("K_PER_SLICE", k_per_slice as f64),
        ]);
        let weights = self.params[weight_index].value.clone();
        let bias_value = bias_index.map_or(BufferRange::from(&self.dummy), |i| self.params[i].value.clone());
        let n = self.batch * out_h * out_w;
        let storage: [&dyn Storage; 6] = [&weights, &x.buffer, &bias_value, &y.buffer, &self.dummy, &self.dummy_out];
        let (fwd, tiles) = self.conv_gemm(&kernel::CONV2D_FORWARD, &constants, &storage, (out_c, n, 1))?;
        self.pending_conv = Some(PendingConv {
            index: self.forward.len(),
            constants: constants.clone(),
            storage: [weights.clone(), (&x.buffer).into(), bias_value.clone(), (&y.buffer).into()],
            out_channels: out_c,
            n,
            tiles,
        });
        self.forward.push(fwd);
        match y.grad.clone() {
            Some(dy) => {
                let sizes = [out_c, out_h * out_w, taps, slices];
                self.conv_backward(x, &dy, (&weights, weight_index), bias_index, &constants, sizes)
            }
            None => Ok(()),
        }
    }

    /// One GEMM dispatch of a convolution kernel (its `constants`) over an M x N output
    /// of `slices` split-K slices, and the tiles it runs with.
    fn conv_gemm(
        &self,
        kernel: &'static Kernel,
        constants: &Constants,
        storage: &[&dyn Storage],
        (m, n, slices): (usize, usize, usize),
    ) -> Result<(Op, GemmTiles)> {
        let d = GemmDispatch { kernel, constants, uniform: None, storage, m, n, slices, detail: "" };
        self.gemm_op_tiles(&d)
    }

    /// A convolution's backward group from its output gradient `dy` (`out_c` channels of
    /// `pixels`): the weight gradient (`out_c` x `taps`, split-K into `slices` partials and
    /// summed when `slices` > 1), the bias gradient, and x's gradient when it has one.
    fn conv_backward(
        &mut self,
        x: &Tensor,
        dy: &wgpu::Buffer,
        (weights, weight_index): (&BufferRange, usize),
        bias_index: Option<usize>,
        constants: &Constants,
        [out_c, pixels, taps, slices]: [usize; 4],
    ) -> Result<()> {
        let [in_c, in_h, in_w] = x.shape;
        let weight_grad = self.params[weight_index].grad()?.clone();
        let gemm = |g: &Self, kernel, storage: &[&dyn Storage], shape| {
            g.conv_gemm(kernel, constants, storage, shape).map(|(op, _)| op)
        };
        let mut group = Vec::new();
        if slices == 1 {
            let storage: [&dyn Storage; 3] = [dy, &x.buffer, &weight_grad];
            group.push(gemm(self, &kernel::CONV2D_BACKWARD_WEIGHT, &storage, (out_c, taps, 1))?);
        } else {
            let bytes = 4 * (slices * out_c * taps) as u64;
            let partial = gpu::buffer(self.ctx.device(), "split-k partials", bytes, gpu::STORAGE_RW);
            let shape = (out_c, taps, slices);
            group.push(gemm(self, &kernel::CONV2D_BACKWARD_WEIGHT, &[dy, &x.buffer, &partial], shape)?);
            let len = (out_c * taps) as u32;
            let slices_uniform = self.uniform(&ElementParams { len, channels: slices as u32, pixels: 1, _pad: 0 });
            let grid = self.grid1(out_c * taps);
            group.push(self.op(&kernel::SUM_SLICES, &slices_uniform, &[&partial, &weight_grad], grid)?);
        }
        if let Some(bias_index) = bias_index {
            let bias_grad = self.params[bias_index].grad()?.clone();
            group.push(self.bias_grad_op(dy, &bias_grad, out_c, pixels, group.len())?);
        }
        if let Some(dx) = &x.grad {
            let grid = (in_c, self.batch * in_h * in_w, 1);
            let storage: [&dyn Storage; 3] = [weights, dy, dx];
            group.push(gemm(self, &kernel::CONV2D_BACKWARD_INPUT, &storage, grid)?);
        }
        self.backward.push(group);
        Ok(())
    }

    /// The bias gradient of a convolution (`channel_sum` of its output gradient `dy` over
    /// batch and pixels into `bias_grad`), the `op`-th dispatch of the backward group being
    /// built; a PReLU that follows may take it over ([`PendingBias`]).
    fn bias_grad_op(
        &mut self,
        dy: &wgpu::Buffer,
        bias_grad: &BufferRange,
        channels: usize,
        pixels: usize,
        op: usize,
    ) -> Result<Op> {
        let channel_uniform = self.uniform(&ChannelParams {
            batch: self.batch as u32,
            channels: channels as u32,
            pixels: pixels as u32,
            _pad: 0,
        });
        self.pending_bias = Some(PendingBias {
            output_grad: dy.clone(),
            channels,
            pixels,
            grad: bias_grad.clone(),
            group: self.backward.len(),
            op,
        });
        self.op(&kernel::CHANNEL_SUM, &channel_uniform, &[dy, bias_grad], (channels as u32, 1, 1))
    }

    fn linear(&mut self, x: &Tensor, y: &Tensor, bias: bool, name: &str) -> Result<()> {
        let (b, i, o) = (self.batch, x.per_sample(), y.per_sample());
        let weight = self.init_weights(o * i, i);
        let weight_index = self.param(format!("{name}.weight"), ParamKind::Weight, weight)?;
        let bias_index = bias.then(|| self.param(format!("{name}.bias"), ParamKind::Bias, vec![0.0; o])).transpose()?;
        let p = &self.params[weight_index];
        let weights = (p.value.clone(), p.grad.clone());
        self.linear_ops(x, y, &weights, bias_index, b, i, o)
    }

    /// The classifier: a linear layer with Xavier initialisation.
    pub(crate) fn classifier(&mut self, x: &Tensor, classes: usize, bias: bool, name: &str) -> Result<Tensor> {
        let i = x.per_sample();
        let y = self.tensor([classes, 1, 1], true);
        let weight = self.xavier_uniform(classes * i, i, classes);
        let weight_index = self.param(format!("{name}.weight"), ParamKind::Weight, weight)?;
        let bias_index =
            bias.then(|| self.param(format!("{name}.bias"), ParamKind::Bias, vec![0.0; classes])).transpose()?;
        let p = &self.params[weight_index];
        let weights = (p.value.clone(), p.grad.clone());
        let ctx = self.ctx.clone();
        ctx.try_capture(|| self.linear_ops(x, &y, &weights, bias_index, self.batch, i, classes))?;
        Ok(y)
    }

    /// The normalised classifier of a margin head: cos θ[b, c] = x[b] · ŵ[c] for rows `x`
    /// the caller has L2-normalised and ŵ each class's weight row over its L2 norm
    /// (Xavier-initialised weights, no bias). The weights' normalisation runs in the
    /// forward pass and its gradient after the GEMM's in the backward group.
    pub(crate) fn normalized_classifier(&mut self, x: &Tensor, classes: usize, name: &str) -> Result<Tensor> {
        let i = x.per_sample();
        let y = self.tensor([classes, 1, 1], true);
        let weight = self.xavier_uniform(classes * i, i, classes);
        let weight_index = self.param(format!("{name}.weight"), ParamKind::Weight, weight)?;
        let (raw, raw_grad) = (self.params[weight_index].value.clone(), self.params[weight_index].grad.clone());
        let device = self.ctx.device().clone();
        let bytes = 4 * (classes * i) as u64;
        let unit = gpu::buffer(&device, "unit class weights", bytes, gpu::STORAGE_RW);
        let unit_grad =
            raw_grad.is_some().then(|| gpu::buffer(&device, "unit class weights' gradient", bytes, gpu::STORAGE_RW));
        let ctx = self.ctx.clone();
        ctx.try_capture(|| -> Result<()> {
            let grads = raw_grad.as_ref().zip(unit_grad.as_ref()).map(|(r, u)| (r as &dyn Storage, u as &dyn Storage));
            let (normalize, back) = self.l2norm_ops(classes, i, [&raw, &unit], grads)?;
            self.forward.push(normalize);
            let weights = ((&unit).into(), unit_grad.as_ref().map(BufferRange::from));
            self.linear_ops(x, &y, &weights, None, self.batch, i, classes)?;
            if let Some(back) = back {
                let group = self.backward.last_mut().ok_or_else(|| Error::Internal("no backward group".into()))?;
                group.push(back);
            }
            Ok(())
        })?;
        Ok(y)
    }

    #[allow(clippy::too_many_arguments)]
    fn linear_ops(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        (weights, weight_grad): &(BufferRange, Option<BufferRange>),
        bias_index: Option<usize>,
        b: usize,
        i: usize,
        o: usize,
    ) -> Result<()> {
        let bias_value = bias_index.map_or(BufferRange::from(&self.dummy), |k| self.params[k].value.clone());
        // Y[b, o] = X[b, i] W[o, i]^T + bias[o]
        let fwd = self.dense_gemm(
            (b, o, i),
            [i, 1, 1, i],
            bias_index.is_some() as u32,
            [&x.buffer, weights, &bias_value],
            &y.buffer,
        )?;
        self.forward.extend(fwd);
        let Some(dy) = y.grad.clone() else {
            return Ok(());
        };
        let weight_grad =
            weight_grad.as_ref().ok_or_else(|| Error::Internal("linear weights have no gradient".into()))?;
        let mut group = Vec::new();
        // dW[o, i] = dY[b, o]^T X[b, i]
        group.extend(self.dense_gemm(
            (o, i, b),
            [1, o, i, 1],
            0,
            [&dy, &x.buffer, &self.dummy.clone()],
            weight_grad,
        )?);
        if let Some(bias_index) = bias_index {
            let channel_uniform =
                self.uniform(&ChannelParams { batch: b as u32, channels: o as u32, pixels: 1, _pad: 0 });
            let bias_grad = self.params[bias_index].grad()?.clone();
            group.push(self.op(&kernel::CHANNEL_SUM, &channel_uniform, &[&dy, &bias_grad], (o as u32, 1, 1))?);
        }
        if let Some(dx) = &x.grad {
            // dX[b, i] = dY[b, o] W[o, i]
            group.extend(self.dense_gemm((b, i, o), [o, 1, i, 1], 0, [&dy, weights, &self.dummy.clone()], dx)?);
        }
        self.backward.push(group);
        Ok(())
    }

    fn maxpool(&mut self, x: &Tensor, y: &Tensor, kernel: usize, stride: usize) -> Result<()> {
        let mut constants: Constants = window_constants(x, y, kernel, stride).to_vec();
        constants.push(("PLANES", (self.batch * x.shape[0]) as f64));
        let argmax =
            gpu::buffer(self.ctx.device(), "argmax", 4 * (self.batch * y.per_sample()) as u64, gpu::STORAGE_RW);
        let grid = self.grid_walk(self.batch * y.per_sample());
        let fwd =
            self.kernels.op(&kernel::MAXPOOL_FORWARD, &constants, None, &[&x.buffer, &y.buffer, &argmax], grid)?;
        self.forward.push(fwd);
        let mut group = Vec::new();
        if let (Some(dx), Some(dy)) = (&x.grad, &y.grad) {
            let grid = self.grid_walk(self.batch * x.per_sample());
            group.push(self.kernels.op(&kernel::MAXPOOL_BACKWARD, &constants, None, &[dy, &argmax, dx], grid)?);
        }
        self.backward.push(group);
        Ok(())
    }

    fn l2norm(&mut self, x: &Tensor, y: &Tensor) -> Result<()> {
        let grads = x.grad.as_ref().zip(y.grad.as_ref()).map(|(dx, dy)| (dx as &dyn Storage, dy as &dyn Storage));
        let (fwd, back) = self.l2norm_ops(self.batch, x.per_sample(), [&x.buffer, &y.buffer], grads)?;
        self.forward.push(fwd);
        self.backward.push(back.into_iter().collect());
        Ok(())
    }

    fn residual(&mut self, x: &Tensor, body: &[LayerSpec], shortcut: &[LayerSpec], name: &str) -> Result<Tensor> {
        // Gradients from the two branches land in their own buffers and are summed into
        // x's gradient by a group that runs after both branches' backward groups.
        let sum_slot = self.backward.len();
        self.backward.push(Vec::new());
        let branch_input =
            |g: &Self| Tensor { grad: x.grad.as_ref().map(|_| g.tensor(x.shape, true).grad.unwrap()), ..x.clone() };
        let xb = branch_input(self);
        let first_body_param = self.params.len();
        let u = self.sequence(&xb, body, &format!("{name}.body"))?;
        // The body's last weights start at zero, so the block starts as the identity (as
        // in Fixup and zero-initialised residual branches): without normalisation layers,
        // stacked residual units otherwise grow the activations and training can diverge.
        if let Some(last) =
            (first_body_param..self.params.len()).rev().find(|&i| self.params[i].kind == ParamKind::Weight)
        {
            let p = &self.params[last];
            self.write(&p.value, &vec![0.0; p.len])?;
        }
        let (s, xs_grad) = if shortcut.is_empty() {
            (Tensor { grad: None, ..x.clone() }, None)
        } else {
            let xs = branch_input(self);
            let s = self.sequence(&xs, shortcut, &format!("{name}.shortcut"))?;
            (s, xs.grad)
        };
        if u.shape != s.shape {
            return Err(Error::Config(format!(
                "residual block {name}: body gives {:?} but shortcut gives {:?}",
                u.shape, s.shape
            )));
        }
        // y's gradient is the body output's gradient buffer itself (d(u + s)/du = 1); a
        // projection shortcut gets a copy of it.
        let dy = u.grad.clone();
        if self.trains && dy.is_none() {
            return Err(Error::Config(format!("residual block {name}: empty body")));
        }
        let y = Tensor { shape: u.shape, buffer: self.tensor(u.shape, false).buffer, grad: dy.clone() };
        let len = self.batch * y.per_sample();
        let element_uniform = self.uniform(&ElementParams { len: len as u32, channels: 1, pixels: 1, _pad: 0 });
        let fwd = self.op(&kernel::ADD, &element_uniform, &[&u.buffer, &s.buffer, &y.buffer], self.grid_walk(len))?;
        self.forward.push(fwd);
        let mut copy_in = Vec::new();
        if let (Some(shortcut_grad), Some(dy)) = (&s.grad, &dy) {
            let zero = gpu::buffer(self.ctx.device(), "zeros", 4 * len as u64, gpu::STORAGE_RW);
            copy_in.push(self.op(&kernel::ADD, &element_uniform, &[dy, &zero, shortcut_grad], self.grid_walk(len))?);
        }
        // Groups run in reverse: this copy runs before both branches' backward groups.
        self.backward.push(copy_in);
        if let (Some(dx), Some(db), Some(dy)) = (&x.grad, &xb.grad, &dy) {
            let xlen = self.batch * x.per_sample();
            let input_uniform = self.uniform(&ElementParams { len: xlen as u32, channels: 1, pixels: 1, _pad: 0 });
            let other = xs_grad.as_ref().unwrap_or(dy);
            let sum = self.op(&kernel::ADD, &input_uniform, &[db, other, dx], self.grid_walk(xlen))?;
            self.backward[sum_slot].push(sum);
        }
        Ok(y)
    }
}

/// The pipeline constants of spatial_window.wgsl for a window of `kernel` x `kernel` at
/// `stride` from `x` to `y` (a convolution or a pooling layer).
fn window_constants(x: &Tensor, y: &Tensor, kernel: usize, stride: usize) -> [(&'static str, f64); 6] {
    let [_, in_h, in_w] = x.shape;
    let [_, out_h, out_w] = y.shape;
    [
        ("IN_H", in_h as f64),
        ("IN_W", in_w as f64),
        ("OUT_H", out_h as f64),
        ("OUT_W", out_w as f64),
        ("KERNEL", kernel as f64),
        ("STRIDE", stride as f64),
    ]
}
