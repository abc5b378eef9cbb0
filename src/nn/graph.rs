//! `Graph`: layers compiled, once, into flat lists of GPU dispatches for a fixed batch size.
//!
//! Every activation has a buffer and (when something upstream needs it) a gradient buffer;
//! a layer adds its forward dispatches and a group of backward dispatches that read its
//! output's gradient and write its input's gradient and its parameters' gradients. The
//! backward groups run in reverse order of construction. Weight-gradient reductions are
//! gathers in a fixed order, so a step is reproducible on the same adapter.

use std::sync::{Arc, Mutex};

use bytemuck::Pod;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::arena::{ParamArena, ParamPage};
use super::kernels::{values_per_invocation, CPU_KERNEL_ALIASES, KERNELS};
use super::spec::{LayerSpec, Shape, WeightInit};
use super::tiles::GemmTiles;
use crate::gpu::shaders::Kernel;
use crate::gpu::{self, BufferRange, Constants, GpuContext, KernelFamily, KernelSet, Op, Storage};
use crate::{Error, Result};

/// An activation of the graph: a buffer of `batch * C*H*W` values and, when a gradient
/// flows into it, a gradient buffer of the same size. Cheap to clone (shared handles).
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Per-sample shape.
    pub shape: Shape,
    /// The values, NCHW.
    pub buffer: wgpu::Buffer,
    /// d loss / d values, when a gradient is propagated into this tensor.
    pub grad: Option<wgpu::Buffer>,
}

impl Tensor {
    /// Values per sample.
    pub fn per_sample(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a parameter tensor is, for its optimizer multipliers and checkpoint name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Convolution or linear weights (weight decay applies).
    Weight,
    /// Biases (no weight decay by default).
    Bias,
    /// PReLU slopes (no weight decay by default, as in the paper).
    Slope,
}

/// One learnable tensor: its values, gradient and momentum are ranges of the graph's
/// parameter arena ([`Graph::param_pages`]); an inference graph's have values alone.
pub struct Param {
    /// Unique name, e.g. `trunk.3.conv.weight`.
    pub name: String,
    /// Its role.
    pub kind: ParamKind,
    /// Number of values.
    pub len: usize,
    /// The arena page that holds it.
    pub page: usize,
    /// The values.
    pub value: BufferRange,
    /// The gradient of the last backward pass (none in an inference graph).
    pub grad: Option<BufferRange>,
    /// SGD momentum (none in an inference graph).
    pub velocity: Option<BufferRange>,
}

impl Param {
    /// Its gradient; an error in an inference graph.
    pub fn grad(&self) -> Result<&BufferRange> {
        self.grad.as_ref().ok_or_else(|| Error::Internal(format!("{} has no gradient (an inference graph)", self.name)))
    }

    /// Its momentum; an error in an inference graph.
    pub fn velocity(&self) -> Result<&BufferRange> {
        self.velocity
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("{} has no momentum (an inference graph)", self.name)))
    }
}

/// A compiled network fragment for a fixed batch: forward dispatches, backward groups,
/// parameters. Build it with [`Graph::input`], [`Graph::layer`] and [`Graph::sequence`].
pub struct Graph {
    pub(super) ctx: GpuContext,
    pub(super) kernels: Arc<KernelSet>,
    pub(super) batch: usize,
    /// Whether the graph trains: activations and parameters get gradients and backward
    /// dispatches, parameters momenta. An inference graph has the forward pass alone.
    pub(super) trains: bool,
    rng: StdRng,
    /// How [`Graph::init_weights`] draws trunk weights.
    pub(super) init: WeightInit,
    pub(super) forward: Vec<Op>,
    pub(super) backward: Vec<Vec<Op>>,
    pub(super) params: Vec<Param>,
    arena: ParamArena,
    /// Fills storage bindings a dispatch does not use (no bias).
    pub(super) dummy: wgpu::Buffer,
    /// Fills a writable storage binding a dispatch does not use (a convolution's PReLU
    /// output when no PReLU is fused).
    pub(super) dummy_out: wgpu::Buffer,
    /// The forward dispatch of the last convolution, which a PReLU on its output fuses
    /// into (`conv2d_forward` with `PRELU`).
    pub(super) pending_conv: Option<PendingConv>,
    /// The bias-gradient sum of the last convolution, which a per-channel PReLU on its
    /// output takes over (`prelu_backward_channel`).
    pub(super) pending_bias: Option<PendingBias>,
    /// The tile configuration of every GEMM dispatch, in the order built
    /// ([`Graph::gemm_tiles`]).
    pub(super) gemm_tiles: Mutex<Vec<String>>,
}

/// A convolution's forward dispatch, forward op `index`: what it takes to build it again
/// with a PReLU fused into its store.
pub(super) struct PendingConv {
    pub index: usize,
    pub constants: Constants,
    /// Weights, input, bias (or the dummy) and output.
    pub storage: [BufferRange; 4],
    pub out_channels: usize,
    pub n: usize,
    pub tiles: GemmTiles,
}

/// A convolution's `channel_sum` of its output gradient into its bias gradient, recorded
/// as op `op` of backward group `group`.
pub(super) struct PendingBias {
    /// The convolution's output gradient: a PReLU whose input gradient is this very buffer
    /// writes all of it (a residual branch's input has a gradient buffer of its own).
    pub output_grad: wgpu::Buffer,
    pub channels: usize,
    pub pixels: usize,
    pub grad: BufferRange,
    pub group: usize,
    pub op: usize,
}

/// Outputs of one GEMM workgroup (64 x 64 or 32 x 128): `TILE_OUTPUTS` in gemm_core.wgsl.
pub(super) const GEMM_TILE_OUTPUTS: usize = 4096;
/// Outputs of one workgroup of the wide core (128 x 128 or 64 x 256): `TILE_OUTPUTS` in
/// gemm_core_wide.wgsl.
pub(super) const GEMM_WIDE_TILE_OUTPUTS: usize = 16384;
/// Rows of C one invocation of the register core holds: `BLOCK_M` in gemm_core_registers.wgsl.
pub(super) const GEMM_REGISTER_BLOCK_M: usize = 16;
/// Columns of C one invocation of the register core holds: `BLOCK_N`.
pub(super) const GEMM_REGISTER_BLOCK_N: usize = 8;
/// Invocations of a workgroup of the register core in the CPU-driver family: the default
/// of `INVOCATIONS`.
pub(super) const GEMM_REGISTER_INVOCATIONS: usize = 8;
/// The longest k-step of the GEMM core: `MAX_TILE_K` in gemm_core.wgsl (split-K slices
/// are multiples of it).
pub(super) const GEMM_TILE_K: usize = 16;
/// The longest K one GEMM dispatch sums: longer reductions are split over slices that
/// `sum_slices` adds. (On Mesa 22.3.6 the tiled core came out short at K = 70 001,
/// tests/layers.rs; Mesa before 25.0 ends long shader loops early.)
pub(super) const MAX_K_PER_SLICE: usize = 8192;
impl Graph {
    /// An empty graph for batches of `batch` samples; `seed` drives weight initialisation.
    pub fn new(ctx: &GpuContext, batch: usize, seed: u64) -> Result<Self> {
        Self::build(ctx, batch, seed, true)
    }

    /// An empty graph for the forward pass alone: no gradient, backward dispatch or
    /// momentum is made, and parameters hold values only (zero until written).
    pub fn for_inference(ctx: &GpuContext, batch: usize) -> Result<Self> {
        Self::build(ctx, batch, 0, false)
    }

    fn build(ctx: &GpuContext, batch: usize, seed: u64, trains: bool) -> Result<Self> {
        if batch == 0 || batch > 65_535 {
            return Err(Error::Config(format!("batch size must be in 1..=65535, got {batch}")));
        }
        let kernels = match ctx.kernels() {
            KernelFamily::Gpu => KernelSet::for_context(ctx, KERNELS, &[])?,
            KernelFamily::Cpu => KernelSet::for_context(ctx, KERNELS, CPU_KERNEL_ALIASES)?,
        };
        let dummy = gpu::buffer(ctx.device(), "unused binding", 16, wgpu::BufferUsages::STORAGE);
        let dummy_out = gpu::buffer(ctx.device(), "unused output binding", 16, wgpu::BufferUsages::STORAGE);
        Ok(Self {
            ctx: ctx.clone(),
            kernels,
            batch,
            trains,
            rng: StdRng::seed_from_u64(seed),
            init: WeightInit::default(),
            forward: Vec::new(),
            backward: Vec::new(),
            params: Vec::new(),
            arena: ParamArena::new(ctx, trains),
            dummy,
            dummy_out,
            pending_conv: None,
            pending_bias: None,
            gemm_tiles: Mutex::new(Vec::new()),
        })
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The learnable tensors, in construction order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Whether the graph trains ([`Graph::for_inference`] makes one that does not).
    pub fn trains(&self) -> bool {
        self.trains
    }

    /// A new input tensor (the host writes it); with `needs_grad` (in a graph that trains)
    /// its gradient is computed.
    pub fn input(&mut self, shape: Shape, needs_grad: bool) -> Tensor {
        self.tensor(shape, needs_grad)
    }

    pub(super) fn tensor(&self, shape: Shape, with_grad: bool) -> Tensor {
        let bytes = 4 * (self.batch * shape.iter().product::<usize>()) as u64;
        let device = self.ctx.device();
        Tensor {
            shape,
            buffer: gpu::buffer(device, "activation", bytes, gpu::STORAGE_RW),
            grad: (with_grad && self.trains).then(|| gpu::buffer(device, "activation grad", bytes, gpu::STORAGE_RW)),
        }
    }

    /// Applies `specs` in order to `x`.
    pub fn sequence(&mut self, x: &Tensor, specs: &[LayerSpec], name: &str) -> Result<Tensor> {
        let mut cur = x.clone();
        for (i, spec) in specs.iter().enumerate() {
            cur = self.layer(&cur, spec, &format!("{name}.{i}"))?;
        }
        Ok(cur)
    }

    /// A uniform buffer holding `value`.
    pub(crate) fn uniform<T: Pod>(&self, value: &T) -> wgpu::Buffer {
        gpu::uniform(self.ctx.device(), "layer params", value)
    }

    /// A dispatch of a trainer kernel on this graph's device.
    pub(crate) fn op(
        &self,
        kernel: &'static Kernel,
        uniform: &wgpu::Buffer,
        storage: &[&dyn Storage],
        grid: (u32, u32, u32),
    ) -> Result<Op> {
        self.kernels.op(kernel, &[], Some(uniform), storage, grid)
    }

    /// The grid of a walking kernel (element-wise or pooling) over `len` values
    /// ([`values_per_invocation`] each).
    pub(super) fn grid_walk(&self, len: usize) -> (u32, u32, u32) {
        self.grid1(len.div_ceil(values_per_invocation(self.ctx.kernels())))
    }

    pub(super) fn grid1(&self, invocations: usize) -> (u32, u32, u32) {
        let (x, y) = gpu::grid(invocations as u64, self.ctx.limits().max_compute_workgroups_per_dimension);
        (x, y, 1)
    }

    /// A parameter initialised with `init` values, placed in the arena.
    pub(super) fn param(&mut self, name: String, kind: ParamKind, init: Vec<f32>) -> Result<usize> {
        let (page, value, training) = self.arena.place(&self.ctx, &name, kind, &init)?;
        let [grad, velocity] = training.map_or([None, None], |[g, v]| [Some(g), Some(v)]);
        self.params.push(Param { name, kind, len: init.len(), page, value, grad, velocity });
        Ok(self.params.len() - 1)
    }

    /// Sizes the parameter arena's next page for `values` values (parameters rounded up to
    /// multiples of 64; [`super::NetworkSpec::arena_values`]), so that a graph's parameters
    /// share one page: one optimizer dispatch, one copy per snapshot. Call it before the
    /// first layer; without it, pages open as parameters arrive.
    pub fn reserve_params(&mut self, values: usize) {
        self.arena.reserve(values);
    }

    /// One part of every parameter (`|p| Ok(&p.value)`, `|p| p.grad()`), in [`Graph::params`]
    /// order, read back in one submission.
    pub(crate) fn read_params(&self, part: impl Fn(&Param) -> Result<&BufferRange>) -> Result<Vec<Vec<f32>>> {
        let sources = self.params.iter().map(|p| Ok((part(p)? as &dyn Storage, p.len))).collect::<Result<Vec<_>>>()?;
        gpu::read_buffers(&self.ctx, &sources)
    }

    /// The parameter arena's pages: every [`Param`]'s values, gradient and momentum are
    /// ranges of one of them.
    pub fn param_pages(&self) -> &[ParamPage] {
        self.arena.pages()
    }

    /// `len` trunk weights of a layer with `fan_in` inputs per output, drawn as
    /// [`Graph::init`] says.
    pub(super) fn init_weights(&mut self, len: usize, fan_in: usize) -> Vec<f32> {
        match self.init {
            WeightInit::HeNormal => {
                let normal = Normal::new(0.0, (2.0 / fan_in as f64).sqrt()).expect("finite std");
                (0..len).map(|_| normal.sample(&mut self.rng) as f32).collect()
            }
            WeightInit::FanInUniform => {
                let bound = (1.0 / fan_in as f64).sqrt() as f32;
                (0..len).map(|_| self.rng.random_range(-bound..=bound)).collect()
            }
        }
    }

    /// Xavier uniform initialisation (the classifier).
    pub(crate) fn xavier_uniform(&mut self, len: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let bound = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
        (0..len).map(|_| self.rng.random_range(-bound..=bound)).collect()
    }

    /// Records the forward dispatches.
    pub fn record_forward(&self, cpass: &mut wgpu::ComputePass<'_>) {
        gpu::record_ops(cpass, &self.forward);
    }

    /// Records the backward groups, last layer first.
    pub fn record_backward(&self, cpass: &mut wgpu::ComputePass<'_>) {
        self.record_backward_groups(cpass, 0..self.backward.len());
    }

    /// How many dispatches its backward groups hold (none in an inference graph).
    pub fn backward_dispatches(&self) -> usize {
        self.backward.iter().map(Vec::len).sum()
    }

    /// How many backward groups the graph has (layers and blocks built so far).
    pub fn backward_groups(&self) -> usize {
        self.backward.len()
    }

    /// Records the backward groups in `range`, last first.
    pub fn record_backward_groups(&self, cpass: &mut wgpu::ComputePass<'_>, range: std::ops::Range<usize>) {
        for group in self.backward[range].iter().rev() {
            gpu::record_ops(cpass, group);
        }
    }

    /// The dispatches of the forward pass, in order.
    pub(crate) fn forward_ops(&self) -> &[Op] {
        &self.forward
    }

    /// The kernel of each forward dispatch, in order (a PReLU fused into the convolution
    /// before it has none of its own).
    pub fn forward_kernels(&self) -> Vec<&'static str> {
        self.forward.iter().map(|op| op.kernel).collect()
    }

    /// The dispatches of the backward groups in `range`, last group first.
    pub(crate) fn backward_ops(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &Op> {
        self.backward[range].iter().rev().flatten()
    }

    /// Records extra dispatches (the loss head, the optimizer).
    pub(crate) fn record_ops(&self, cpass: &mut wgpu::ComputePass<'_>, ops: &[Op]) {
        gpu::record_ops(cpass, ops);
    }

    /// Runs forward (and, with `backward`, backward) once and waits.
    pub fn run(&self, backward: bool) -> Result<()> {
        self.ctx.capture(|| {
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            {
                let mut cpass = encoder.begin_compute_pass(&Default::default());
                self.record_forward(&mut cpass);
                if backward {
                    self.record_backward(&mut cpass);
                }
            }
            self.ctx.queue().submit([encoder.finish()]);
        })?;
        self.ctx.wait_idle()
    }

    /// Writes `values` (the whole batch) into `target` (a tensor's buffer or a parameter's
    /// range).
    pub fn write(&self, target: &dyn Storage, values: &[f32]) -> Result<()> {
        if values.len() as u64 * 4 > target.bytes() {
            return Err(Error::Shape { what: "tensor", expected: target.bytes() as usize / 4, actual: values.len() });
        }
        let to = target.binding();
        self.ctx.capture(|| self.ctx.queue().write_buffer(to.buffer, to.offset, bytemuck::cast_slice(values)))
    }

    /// Reads the first `len` values of `source` (a tensor's buffer or a parameter's range).
    pub fn read(&self, source: &dyn Storage, len: usize) -> Result<Vec<f32>> {
        gpu::read_buffer(&self.ctx, source, len)
    }
}
