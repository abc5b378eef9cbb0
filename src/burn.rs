//! Center loss on burn 0.22 tensors (feature `burn`), on the device this crate shares with
//! burn's wgpu backend: no copy through the host.
//!
//! ```ignore
//! let ctx = centerloss::GpuContext::new()?;
//! let device = centerloss::burn::device(&ctx)?;                  // burn's wgpu device on ours
//! let mut center = centerloss::burn::CenterLoss::new(&ctx, cfg)?;
//! let features = model.forward(images);                          // Tensor<2> [B, D], autodiff
//! let loss = softmax_loss + center.step(features, labels)?;      // labels: Tensor<1, Int>
//! let grads = loss.backward();                                    // lambda (x - c_y) / B reaches x
//! ```
//!
//! How: the batch's buffers are read where cubecl keeps them (`get_resource`), copied on the
//! device into the module's buffers (burn packs tensors into shared pages, so inputs and
//! outputs cannot be bound to one dispatch in place), the step runs, and the loss and the
//! gradient land in two burn tensors L and G. The loss returned is L as a node of burn's
//! autodiff graph with a custom backward (burn-autodiff's `Backward`, the way burn's own
//! operations are written): its gradient with respect to the features is G times the
//! incoming gradient, one elementwise kernel in the backward pass, nothing extra in the
//! forward. The centers stay in the module ([`CenterLoss::save`] / [`CenterLoss::load`]
//! beside burn's records).

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;

use ::burn::backend::autodiff::checkpoint::base::Checkpointer;
use ::burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use ::burn::backend::autodiff::grads::Gradients;
use ::burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use ::burn::backend::autodiff::Autodiff;
use ::burn::backend::ops::FloatTensorOps;
use ::burn::backend::wgpu::CubeTensor;
use ::burn::backend::BackendTypes;
use ::burn::backend::Wgpu;
use ::burn::cubecl::wgpu::{AutoCompiler, WgpuServer};
use ::burn::tensor::kind::Basic;
use ::burn::tensor::wgpu::WgpuSetup;
use ::burn::tensor::Shape;
use ::burn::tensor::{BackendPrimitive, DType, Device, Int, Tensor};

use crate::center_loss::GRAD_SCALE_KERNELS;
use crate::gpu::{self, record_ops, KernelSet};
use crate::{CenterLossConfig, Error, GpuCenterLoss, GpuContext, Result};

/// A burn device on `ctx`'s wgpu device and queue (burn's wgpu runtime registered with
/// the same handles), so burn tensors and this crate's buffers live on one device. Call it
/// once per context and clone the device it returns.
pub fn device(ctx: &GpuContext) -> Result<Device> {
    let handles = ctx.wgpu_handles();
    let backend = handles.adapter.get_info().backend;
    let setup = WgpuSetup {
        instance: handles.instance,
        adapter: handles.adapter,
        device: handles.device,
        queue: handles.queue,
        backend,
    };
    Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| Error::Device { adapter: ctx.adapter_info().name.clone(), reason: e.to_string() })
}

/// Center loss as a citizen of burn: [`GpuCenterLoss`] fed with burn tensors.
#[derive(Debug)]
pub struct CenterLoss {
    inner: GpuCenterLoss,
    scale: Arc<GradScale>,
}

/// The cubecl tensor behind a burn tensor (no autodiff), contiguous, on the wgpu runtime.
fn cube(tensor: CubeTensor, what: &'static str) -> Result<CubeTensor> {
    if !tensor.is_contiguous() {
        return Err(Error::Buffer {
            what,
            reason: "the tensor is not contiguous; call .contiguous() or copy it".into(),
        });
    }
    Ok(tensor)
}

/// The wgpu buffer and byte offset of a cubecl tensor.
fn resource(tensor: &CubeTensor, what: &'static str) -> Result<(wgpu::Buffer, u64)> {
    let managed = tensor
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(tensor.handle.clone())
        .map_err(|e| Error::Buffer { what, reason: format!("not a wgpu buffer of this device: {e:?}") })?;
    let r = managed.resource();
    Ok((r.buffer.clone(), r.offset))
}

impl CenterLoss {
    /// The module on `ctx` (the context [`device`] shares with burn), centers at zero.
    pub fn new(ctx: &GpuContext, cfg: CenterLossConfig) -> Result<Self> {
        Ok(Self { inner: GpuCenterLoss::new(ctx, cfg)?, scale: Arc::new(GradScale::new(ctx)?) })
    }

    /// The module underneath (centers, health, configuration).
    pub fn inner(&self) -> &GpuCenterLoss {
        &self.inner
    }

    /// Mutable access to the module underneath (`set_centers`).
    pub fn inner_mut(&mut self) -> &mut GpuCenterLoss {
        &mut self.inner
    }

    /// One training step: the center loss of `features` ([B, D], f32) with `labels` ([B],
    /// int) as a burn tensor [1] whose backward puts lambda (x_i - c_{y_i}) / B on
    /// `features`, and the center update (with the pre-step centers), on the device.
    pub fn step(&mut self, features: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
        self.run(features, labels, true)
    }

    /// The loss and its gradient against the current centers, without updating them.
    pub fn forward(&mut self, features: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
        self.run(features, labels, false)
    }

    fn run(&mut self, features: Tensor<2>, labels: Tensor<1, Int>, update: bool) -> Result<Tensor<1>> {
        let [batch, dim] = features.dims();
        let cfg = self.inner.config();
        if dim != cfg.feat_dim {
            return Err(Error::Shape { what: "features", expected: batch * cfg.feat_dim, actual: batch * dim });
        }
        if labels.dims()[0] != batch {
            return Err(Error::Shape { what: "labels", expected: batch, actual: labels.dims()[0] });
        }
        if features.dtype() != DType::F32 {
            return Err(Error::Config(format!("features must be f32, got {:?}", features.dtype())));
        }
        let device = features.device().inner();
        // Labels may come on the autodiff device (as the softmax loss takes them).
        let labels = labels.inner();
        let labels = match labels.dtype() {
            DType::I32 | DType::U32 => labels,
            _ => labels.cast(DType::I32),
        };
        // Both are written whole by the step (zeros for an empty batch).
        let (grad, loss) = if batch > 0 {
            (Tensor::<2>::empty([batch, dim], &device), Tensor::<1>::empty([1], &device))
        } else {
            (Tensor::<2>::zeros([batch, dim], &device), Tensor::<1>::zeros([1], &device))
        };
        let (g, l) = (wgpu_primitive(grad, "gradient")?, wgpu_primitive(loss, "loss")?);
        if batch > 0 {
            let x = cube(wgpu_primitive(features.clone().inner(), "features")?, "features")?;
            let y = cube(wgpu_primitive(labels, "labels")?, "labels")?;
            let (xb, yb, gb, lb) =
                (resource(&x, "features")?, resource(&y, "labels")?, resource(&g, "gradient")?, resource(&l, "loss")?);
            // Burn's pending work goes to the queue before ours (the docs of WgpuSetup).
            device.flush().map_err(|e| Error::Gpu(format!("burn could not flush its work: {e:?}")))?;
            self.inner.run_on_device(batch, (&xb.0, xb.1), (&yb.0, yb.1), (&gb.0, gb.1), (&lb.0, lb.1), update)?;
        }
        if !features.is_autodiff() {
            return Ok(Tensor::from_primitive::<Wgpu>(l));
        }
        attach(features, l, (g, self.scale.clone()))
    }

    /// Writes the centers to `path` (safetensors: `centers` [K, D] f32), e.g. beside burn's
    /// record of the model.
    pub fn save(&self, path: &Path) -> Result<()> {
        let centers = self.inner.centers()?;
        let cfg = self.inner.config();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![cfg.num_classes, cfg.feat_dim],
            bytemuck::cast_slice(&centers),
        )
        .map_err(|e| Error::Checkpoint { path: path.display().to_string(), reason: e.to_string() })?;
        let bytes = safetensors::serialize([("centers", view)], None)
            .map_err(|e| Error::Checkpoint { path: path.display().to_string(), reason: e.to_string() })?;
        crate::files::write_atomic(path, &bytes)
    }

    /// Reads centers written by [`CenterLoss::save`]; the shape must match K x D.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bytes = crate::files::read(path, crate::checkpoint::MAX_CHECKPOINT_BYTES, "centers file")?;
        let bad = |reason: String| Error::Checkpoint { path: path.display().to_string(), reason };
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let view = file.tensor("centers").map_err(|e| bad(e.to_string()))?;
        let cfg = self.inner.config();
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != [cfg.num_classes, cfg.feat_dim] {
            return Err(bad(format!(
                "centers are {:?} {:?}, this module needs F32 [{}, {}]",
                view.dtype(),
                view.shape(),
                cfg.num_classes,
                cfg.feat_dim
            )));
        }
        let centers: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
        self.inner.set_centers(&centers)
    }
}

/// The kernel of the backward pass: G times the incoming gradient, in place in G's burn
/// buffer (`center_grad_scale.wgsl`), on the device this crate shares with burn. burn's
/// own broadcast multiply of [B, D] by [1] measured ~3x its same-shape multiply on
/// lavapipe; this is one pass over G.
struct GradScale {
    ctx: GpuContext,
    kernels: Arc<KernelSet>,
    params: wgpu::Buffer,
    incoming: wgpu::Buffer,
}

impl std::fmt::Debug for GradScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GradScale")
    }
}

impl GradScale {
    fn new(ctx: &GpuContext) -> Result<Self> {
        let device = ctx.device();
        Ok(Self {
            ctx: ctx.clone(),
            kernels: KernelSet::for_context(ctx, GRAD_SCALE_KERNELS, &[])?,
            params: gpu::buffer(
                device,
                "burn gradient scale params",
                16,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            ),
            incoming: gpu::buffer(device, "burn incoming gradient", 16, gpu::STORAGE_RW),
        })
    }

    /// `grad` *= `incoming` (one value), on the device, after burn's queued work.
    fn apply(&self, grad: &CubeTensor, incoming: &CubeTensor) -> Result<()> {
        let len = grad.meta.shape().num_elements();
        let (g, g_offset) = resource(grad, "gradient")?;
        let (i, i_offset) = resource(incoming, "incoming gradient")?;
        // burn computes `incoming` in work it may not have submitted yet.
        incoming.client.flush().map_err(|e| Error::Gpu(format!("burn could not flush its work: {e:?}")))?;
        let grid = gpu::grid(len as u64, self.ctx.limits().max_compute_workgroups_per_dimension);
        let op = self.kernels.op_ranges(
            &crate::gpu::shaders::kernel::CENTER_GRAD_SCALE,
            &[],
            Some(&self.params),
            &[
                self.incoming.as_entire_buffer_binding(),
                wgpu::BufferBinding { buffer: &g, offset: g_offset, size: NonZeroU64::new(4 * len as u64) },
            ],
            (grid.0, grid.1, 1),
        )?;
        let queue = self.ctx.queue();
        self.ctx.capture(|| {
            queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&[len as u32, 0, 0, 0]));
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&i, i_offset, &self.incoming, 0, 4);
            record_ops(&mut encoder.begin_compute_pass(&Default::default()), &[op]);
            queue.submit([encoder.finish()]);
        })
    }
}

/// The backward of the center loss: the features' gradient is G (written by the step) times
/// the loss's incoming gradient.
#[derive(Debug)]
struct CenterLossBackward;

impl Backward<Wgpu, 1> for CenterLossBackward {
    type State = (CubeTensor, Arc<GradScale>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (g, scale) = ops.state;
        unary::<Wgpu, _>(ops.parents, ops.node, grads, |incoming| match scale.apply(&g, &incoming) {
            Ok(()) => g,
            Err(e) => {
                // The backward cannot return an error: burn's own multiply gives the same.
                log::warn!("center loss: scaling the gradient on the device failed ({e}); using burn's multiply");
                Wgpu::float_mul(g, Wgpu::float_reshape(incoming, Shape::new([1, 1])))
            }
        });
    }
}

/// The loss `l` (value L) as a node of the features' autodiff graph whose backward gives
/// them the state's G times the incoming gradient.
fn attach(features: Tensor<2>, l: CubeTensor, state: (CubeTensor, Arc<GradScale>)) -> Result<Tensor<1>> {
    // The autodiff context says which checkpointing strategy the graph runs.
    if let Ok(x) = features.clone().try_into_primitive::<Autodiff<Wgpu, NoCheckpointing>>() {
        return Ok(Tensor::from_primitive::<Autodiff<Wgpu, NoCheckpointing>>(record::<NoCheckpointing>(x, l, state)));
    }
    let x = features
        .try_into_primitive::<Autodiff<Wgpu, BalancedCheckpointing>>()
        .map_err(|e| Error::Config(format!("features: not a wgpu autodiff tensor: {e:?}")))?;
    Ok(Tensor::from_primitive::<Autodiff<Wgpu, BalancedCheckpointing>>(record::<BalancedCheckpointing>(x, l, state)))
}

/// The wgpu primitive of a tensor without autodiff, or an error naming `what`.
fn wgpu_primitive<const D: usize, K: Basic + BackendPrimitive<Wgpu>>(
    tensor: Tensor<D, K>,
    what: &str,
) -> Result<K::Primitive> {
    tensor.try_into_primitive::<Wgpu>().map_err(|e| Error::Config(format!("{what}: not a wgpu tensor: {e:?}")))
}

fn record<C: CheckpointStrategy>(
    x: <Autodiff<Wgpu, C> as BackendTypes>::FloatTensorPrimitive,
    loss: CubeTensor,
    state: (CubeTensor, Arc<GradScale>),
) -> <Autodiff<Wgpu, C> as BackendTypes>::FloatTensorPrimitive {
    match CenterLossBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, loss),
        OpsKind::UnTracked(prep) => prep.finish(loss),
    }
}
