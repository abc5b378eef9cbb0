//! Batches bound to the module: the caller's buffers on the GPU-resident path
//! ([`GpuCenterLoss::bind`]) or the module's own on the host path, with the per-batch
//! uniform, loss scratch and the mode's scratch, made once and encoded any number of times.

use std::num::NonZeroU64;

use super::interface::{SortStage, StepParams, FORWARD_PER_INVOCATION, SORT_STAGE_BYTES, WORKGROUP_SIZE};
use super::kernels::{run_lanes, vec4_forward};
use super::GpuCenterLoss;
use crate::center_loss::config::center_stride;
use crate::gpu;
use crate::{Error, Result};

/// Caller-owned buffers for the GPU-resident path ([`GpuCenterLoss::bind`]).
///
/// `features` (B*D f32) and `labels` (B u32) need `STORAGE` usage; `grad` (B*D f32)
/// needs `STORAGE`; `loss` receives one f32 at `loss_offset` and needs `COPY_DST`.
#[derive(Clone, Copy, Debug)]
pub struct BatchBuffers<'a> {
    /// B*D features, row-major.
    pub features: &'a wgpu::Buffer,
    /// B labels.
    pub labels: &'a wgpu::Buffer,
    /// Receives the B*D gradient.
    pub grad: &'a wgpu::Buffer,
    /// Receives the loss (one f32).
    pub loss: &'a wgpu::Buffer,
    /// Byte offset of the loss in `loss` (a multiple of 4).
    pub loss_offset: u64,
    /// The batch size B.
    pub batch: usize,
    /// Add the gradient into `grad` instead of overwriting it (to sum it with another
    /// loss's gradient on the same features).
    pub accumulate_grad: bool,
}

/// Byte offsets of the batch inside the caller's buffers ([`GpuCenterLoss::bind_at`]), for
/// buffers that are slices of larger allocations (a framework's memory pool, say). Each
/// must be a multiple of the device's `min_storage_buffer_offset_alignment` (256 on most
/// devices); the default is all zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOffsets {
    /// Where the B*D features start in `features`.
    pub features: u64,
    /// Where the B labels start in `labels`.
    pub labels: u64,
    /// Where the B*D gradient starts in `grad`.
    pub grad: u64,
}

/// Bind groups and per-batch scratch for one set of caller buffers, made once by
/// [`GpuCenterLoss::bind`] and encoded any number of times.
pub struct CenterLossBinding {
    pub(super) owner: u64,
    pub(super) batch: u32,
    pub(super) params: wgpu::Buffer,
    pub(super) loss_scratch: wgpu::Buffer,
    pub(super) batch_group: wgpu::BindGroup,
    pub(super) scratch_group: wgpu::BindGroup,
    pub(super) sort_stages: Option<SortStages>,
    pub(super) loss_target: Option<(wgpu::Buffer, u64)>,
    pub(super) grad_accumulate: bool,
    /// The features and labels the binding reads, at their byte offsets (the collective
    /// step reads them back to exchange them).
    pub(super) inputs: [(wgpu::Buffer, u64); 2],
}

impl std::fmt::Debug for CenterLossBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CenterLossBinding").field("batch", &self.batch).finish_non_exhaustive()
    }
}

impl CenterLossBinding {
    /// The batch size B this binding was made for.
    pub fn batch(&self) -> usize {
        self.batch as usize
    }
}

/// The uniforms of every bitonic stage, read through a dynamic offset (group 3).
pub(super) struct SortStages {
    pub stride: u32,
    pub count: u32,
    pub group: wgpu::BindGroup,
}

fn check_buffer(what: &'static str, buffer: &wgpu::Buffer, needed: u64, usage: wgpu::BufferUsages) -> Result<()> {
    if buffer.size() < needed {
        return Err(Error::Buffer { what, reason: format!("holds {} bytes, needs {needed}", buffer.size()) });
    }
    if !buffer.usage().contains(usage) {
        return Err(Error::Buffer { what, reason: format!("needs usage {usage:?}, has {:?}", buffer.usage()) });
    }
    Ok(())
}

impl GpuCenterLoss {
    /// Prepares the GPU-resident path for caller-owned buffers: bind groups and the
    /// per-batch scratch, created once. Checks sizes and usages.
    pub fn bind(&self, buffers: BatchBuffers<'_>) -> Result<CenterLossBinding> {
        self.bind_at(buffers, BatchOffsets::default())
    }

    /// [`GpuCenterLoss::bind`] for a batch that starts at byte offsets inside the caller's
    /// buffers; checks the offsets' alignment and that each buffer holds offset + batch.
    pub fn bind_at(&self, buffers: BatchBuffers<'_>, offsets: BatchOffsets) -> Result<CenterLossBinding> {
        let batch = buffers.batch;
        if batch == 0 {
            return Err(Error::Config("a binding needs a batch of at least 1".into()));
        }
        let align = self.ctx.limits().min_storage_buffer_offset_alignment as u64;
        for (what, offset) in [("features", offsets.features), ("labels", offsets.labels), ("grad", offsets.grad)] {
            if !offset.is_multiple_of(align) {
                return Err(Error::Buffer {
                    what,
                    reason: format!(
                        "offset {offset} is not a multiple of the device's min_storage_buffer_offset_alignment ({align})"
                    ),
                });
            }
        }
        let values = (batch * self.cfg.feat_dim) as u64 * 4;
        let storage = wgpu::BufferUsages::STORAGE;
        check_buffer("features", buffers.features, offsets.features + values, storage)?;
        check_buffer("labels", buffers.labels, offsets.labels + batch as u64 * 4, storage)?;
        check_buffer("grad", buffers.grad, offsets.grad + values, storage)?;
        if !buffers.loss_offset.is_multiple_of(4) {
            return Err(Error::Buffer {
                what: "loss",
                reason: format!("loss_offset {} is not a multiple of 4", buffers.loss_offset),
            });
        }
        check_buffer("loss", buffers.loss, buffers.loss_offset + 4, wgpu::BufferUsages::COPY_DST)?;
        self.ctx.capture(|| {
            self.make_binding(
                (buffers.features, offsets.features),
                (buffers.labels, offsets.labels),
                (buffers.grad, offsets.grad),
                batch,
                buffers.accumulate_grad,
                Some((buffers.loss.clone(), buffers.loss_offset)),
            )
        })?
    }

    /// Scales the gradient `binding` writes as if its batch were part of one of
    /// `total_batch` rows (lambda / total_batch with the mean): the shard of a
    /// data-parallel step, whose gradients are summed over the members.
    pub(crate) fn scale_binding_for(&self, binding: &CenterLossBinding, total_batch: usize) -> Result<()> {
        self.check_owner(binding)?;
        let params = StepParams {
            grad_scale: self.cfg.grad_scale(total_batch) as f32,
            ..self.step_params(binding.batch as usize, binding.grad_accumulate)
        };
        self.ctx.capture(|| self.ctx.queue().write_buffer(&binding.params, 0, bytemuck::bytes_of(&params)))
    }

    pub(super) fn check_owner(&self, binding: &CenterLossBinding) -> Result<()> {
        if binding.owner == self.id {
            Ok(())
        } else {
            Err(Error::Config("this binding was made by another GpuCenterLoss".into()))
        }
    }

    pub(super) fn max_grid(&self) -> u32 {
        self.ctx.limits().max_compute_workgroups_per_dimension
    }

    /// The grid of the forward kernel (`FORWARD_PER_INVOCATION` elements or vec4 words per
    /// invocation).
    pub(super) fn forward_grid(&self, batch: usize) -> (u32, u32) {
        let per_invocation = FORWARD_PER_INVOCATION * if vec4_forward(self.cfg.feat_dim) { 4 } else { 1 };
        gpu::grid(((batch * self.cfg.feat_dim) as u64).div_ceil(per_invocation), self.max_grid())
    }

    pub(super) fn step_params(&self, batch: usize, grad_accumulate: bool) -> StepParams {
        let (x, y) = self.forward_grid(batch);
        StepParams {
            batch: batch as u32,
            dim: self.cfg.feat_dim as u32,
            num_classes: self.cfg.num_classes as u32,
            padded_batch: batch.next_power_of_two() as u32,
            grad_scale: self.cfg.grad_scale(batch) as f32,
            alpha: self.cfg.alpha,
            grad_accumulate: grad_accumulate as u32,
            partials_per_window: x * y * WORKGROUP_SIZE,
            num_windows: self.table.windows.len() as u32,
            center_stride: center_stride(self.cfg.feat_dim) as u32,
            _pad1: 0,
            _pad2: 0,
        }
    }

    /// Loss partials a step over `batch` rows writes: one per forward invocation and window,
    /// or (the fused step) one per row and run lane.
    fn loss_partials(&self, batch: usize) -> usize {
        let params = self.step_params(batch, false);
        let forward = params.partials_per_window as usize * params.num_windows as usize;
        if self.fused_step {
            forward.max(batch * run_lanes(self.cfg.feat_dim))
        } else {
            forward
        }
    }

    /// Words of the atomic mode's per-batch scratch: B*D sums and B counts, or (the fused
    /// walk) the B links of the class lists.
    fn accumulator_words(&self, batch: usize) -> usize {
        if self.fused_step {
            batch
        } else {
            batch * (self.cfg.feat_dim + 1)
        }
    }

    /// Checks that a batch of `batch` rows fits in storage bindings.
    pub(super) fn check_batch_fits(&self, batch: usize) -> Result<()> {
        let limit = self.ctx.limits().max_storage_buffer_binding_size.min(u32::MAX as u64);
        // The atomic scratch, the sort keys (2 words per padded row), the loss scratch.
        let partials = 1 + self.loss_partials(batch);
        let largest = 4 * self.accumulator_words(batch).max(2 * batch.next_power_of_two()).max(partials) as u64;
        if largest > limit {
            return Err(Error::TooLarge {
                what: "one batch",
                bytes: largest,
                limit,
                hint: "split the batch into smaller ones",
            });
        }
        Ok(())
    }

    /// Bind groups and scratch for a batch at (buffer, byte offset) in each caller buffer.
    pub(super) fn make_binding(
        &self,
        features: (&wgpu::Buffer, u64),
        labels: (&wgpu::Buffer, u64),
        grad: (&wgpu::Buffer, u64),
        batch: usize,
        grad_accumulate: bool,
        loss_target: Option<(wgpu::Buffer, u64)>,
    ) -> Result<CenterLossBinding> {
        self.check_batch_fits(batch)?;
        let device = self.ctx.device();
        let params = self.step_params(batch, grad_accumulate);
        let params_buffer = gpu::uniform(device, "step params", &params);
        let partials = self.loss_partials(batch) as u64;
        let loss_scratch = gpu::buffer(device, "loss scratch", 4 * (1 + partials), gpu::STORAGE_RW);
        let values = (batch * self.cfg.feat_dim) as u64 * 4;
        fn sized(binding: u32, (buffer, offset): (&wgpu::Buffer, u64), size: u64) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    size: NonZeroU64::new(size),
                }),
            }
        }
        let batch_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("center loss batch"),
            layout: &self.kernels.layouts.batch,
            entries: &[
                gpu::bind(0, &params_buffer),
                sized(1, features, values),
                sized(2, labels, 4 * batch as u64),
                sized(3, grad, values),
                gpu::bind(4, &loss_scratch),
                gpu::bind(5, &self.status),
            ],
        });
        let (scratch_group, sort_stages) = match &self.slots {
            Some(slots) => {
                let acc =
                    gpu::buffer(device, "slot accumulators", 4 * self.accumulator_words(batch) as u64, gpu::STORAGE_RW);
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("center loss atomic scratch"),
                    layout: &self.kernels.layouts.scratch,
                    entries: &[gpu::bind(0, slots), gpu::bind(1, &acc)],
                });
                (group, None)
            }
            None => {
                let keys = gpu::buffer(device, "sort keys", 8 * params.padded_batch as u64, gpu::STORAGE_RW);
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("center loss sort scratch"),
                    layout: &self.kernels.layouts.scratch,
                    entries: &[gpu::bind(0, &keys)],
                });
                (group, Some(self.sort_stages(params.padded_batch)))
            }
        };
        Ok(CenterLossBinding {
            owner: self.id,
            batch: batch as u32,
            params: params_buffer,
            loss_scratch,
            batch_group,
            scratch_group,
            sort_stages,
            loss_target,
            grad_accumulate,
            inputs: [(features.0.clone(), features.1), (labels.0.clone(), labels.1)],
        })
    }

    /// Uniforms (k, j) for every stage of a bitonic sort of `padded` keys, in stage order
    /// ([`super::plan::stage_index`]), at a stride that meets the dynamic-offset alignment.
    /// A smaller power of two uses a prefix of them.
    fn sort_stages(&self, padded: u32) -> SortStages {
        let device = self.ctx.device();
        let stride = (self.ctx.limits().min_uniform_buffer_offset_alignment as u64).max(SORT_STAGE_BYTES) as u32;
        let mut bytes = Vec::new();
        let mut count = 0;
        let mut k = 2;
        while k <= padded {
            let mut j = k / 2;
            while j > 0 {
                let mut entry = vec![0u8; stride as usize];
                entry[..SORT_STAGE_BYTES as usize].copy_from_slice(bytemuck::bytes_of(&SortStage { k, j }));
                bytes.extend(entry);
                count += 1;
                j /= 2;
            }
            k *= 2;
        }
        if bytes.is_empty() {
            bytes.resize(stride as usize, 0);
        }
        let buffer = gpu::uniform_bytes(device, "sort stages", &bytes);
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sort stage"),
            layout: &self.kernels.layouts.stage,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buffer,
                    offset: 0,
                    size: NonZeroU64::new(SORT_STAGE_BYTES),
                }),
            }],
        });
        SortStages { stride, count, group }
    }
}
