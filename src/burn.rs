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
//! gradient land in two burn tensors L and G. The returned loss is L + sum((x - x̄) * G),
//! where x̄ is x detached: its value is L exactly (x - x̄ is zero) and its gradient with
//! respect to x is G exactly, so burn's autodiff carries the center-loss gradient without
//! a custom backward. The centers stay in the module ([`CenterLoss::save`] /
//! [`CenterLoss::load`] beside burn's records).

use std::path::Path;

use ::burn::backend::wgpu::CubeTensor;
use ::burn::backend::Wgpu;
use ::burn::cubecl::wgpu::{AutoCompiler, WgpuServer};
use ::burn::tensor::wgpu::WgpuSetup;
use ::burn::tensor::{DType, Device, Int, Tensor};

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
        Ok(Self { inner: GpuCenterLoss::new(ctx, cfg)? })
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
        let labels = match labels.dtype() {
            DType::I32 | DType::U32 => labels,
            _ => labels.cast(DType::I32),
        };
        let grad = Tensor::<2>::zeros([batch, dim], &device);
        let loss = Tensor::<1>::zeros([1], &device);
        if batch > 0 {
            let primitive = |t: Tensor<2>, what| {
                t.try_into_primitive::<Wgpu>().map_err(|e| Error::Config(format!("{what}: not a wgpu tensor: {e:?}")))
            };
            let x = cube(primitive(features.clone().inner(), "features")?, "features")?;
            let y = labels
                .clone()
                .try_into_primitive::<Wgpu>()
                .map_err(|e| Error::Config(format!("labels: not a wgpu tensor: {e:?}")))?;
            let y = cube(y, "labels")?;
            let g = primitive(grad.clone(), "gradient")?;
            let l = loss
                .clone()
                .try_into_primitive::<Wgpu>()
                .map_err(|e| Error::Config(format!("loss: not a wgpu tensor: {e:?}")))?;
            let (xb, yb, gb, lb) =
                (resource(&x, "features")?, resource(&y, "labels")?, resource(&g, "gradient")?, resource(&l, "loss")?);
            // Burn's pending work goes to the queue before ours (the docs of WgpuSetup).
            device.flush().map_err(|e| Error::Gpu(format!("burn could not flush its work: {e:?}")))?;
            self.inner.run_on_device(batch, (&xb.0, xb.1), (&yb.0, yb.1), (&gb.0, gb.1), (&lb.0, lb.1), update)?;
        }
        // Value L, gradient G with respect to x: (x - x̄) is zero, its derivative one.
        let moved = features.clone() - features.detach();
        Ok(loss + (moved * grad).sum())
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
        std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.display().to_string(), source })
    }

    /// Reads centers written by [`CenterLoss::save`]; the shape must match K x D.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
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
