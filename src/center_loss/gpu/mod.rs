//! `GpuCenterLoss`: centers, buffers and pipelines on the GPU, built once and reused.
//!
//! A step is a handful of dispatches recorded into one compute pass, every one of them
//! O(B*D) or O(B), never O(K):
//! - atomic mode: claim a slot per class (atomicMin) -> fused gather/loss/grad with a
//!   scatter-add of (c - x) into the slots -> loss reduction -> apply -> release slots;
//! - deterministic mode: bitonic sort of (label, row) -> fused gather/loss/grad -> loss
//!   reduction -> per-class ordered sums that write the centers.
//!
//! Both end with a health pass that counts steps whose inputs were poisoned (a label >= K
//! or a non-finite feature reached the GPU without host checks) and skips their update.
//!
//! The CPU kernel family (D divisible by 4) fuses a step: inspect labels and features
//! (health, and each row linked into its class's list or given its sort key) -> the sort
//! (deterministic mode) -> each class's first row runs over the class's rows (gather,
//! loss, gradient, center update) -> close (loss, slots, health).
//!
//! Rooms: `interface` (the Rust mirrors of the WGSL uniforms and constants), `table` (the
//! centers over buffers and windows), `kernels` (one table of kernels per pass and mode,
//! layouts), `binding` (batches bound to the module), `plan` (the dispatches of a pass),
//! `host` (the host-slice API), `profile` (per-kernel timestamps).

mod binding;
mod collective;
mod interface;
mod kernels;
mod own_batch;
mod plan;
mod profile;
mod table;

use std::sync::atomic::{AtomicU64, Ordering};

pub use binding::{BatchBuffers, BatchOffsets, CenterLossBinding};
pub use interface::GRAD_SCALE_KERNELS;
pub use kernels::{shader_plan, ShaderSpec};
pub use own_batch::PendingStep;

use super::config::{CenterLossConfig, UpdateMode};
use crate::error::{check_finite, check_len};
use crate::gpu::{self, GpuContext, Staging};
use crate::{Error, Result};
use interface::EMPTY_SLOT;
use kernels::{fused_step, vec4_forward, CenterKernels};
use table::{CenterTable, TableShape};

/// Result of one GPU step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// lambda/2 * sum_i ||x_i - c_{y_i}||^2 (/ B for the mean).
    pub loss: f32,
    /// d loss / d x: B*D values, row-major.
    pub grad: Vec<f32>,
}

/// Cumulative counts of what the GPU-resident path found wrong and skipped. The host
/// path checks its inputs first and never lets such data reach the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuHealth {
    /// Steps whose center update was skipped because their inputs were poisoned.
    pub skipped_updates: u32,
    /// Rows seen with a label >= K (their gradient is 0; no center is touched).
    pub invalid_labels: u32,
    /// Non-finite feature values seen.
    pub non_finite_values: u32,
}

impl GpuHealth {
    /// True when nothing has been skipped.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// Center loss on the GPU. Owns the centers (split over several buffers when the table
/// exceeds one storage binding), the pipelines and the scratch; all are created in
/// [`GpuCenterLoss::new`], none per step.
pub struct GpuCenterLoss {
    ctx: GpuContext,
    cfg: CenterLossConfig,
    id: u64,
    native_atomics: bool,
    /// Whether a step is the CPU family's fused step (D divisible by 4).
    fused_step: bool,
    table: CenterTable,
    status: wgpu::Buffer,
    status_staging: Staging,
    slots: Option<wgpu::Buffer>,
    /// Layouts and kernels, shared with every module of the same shader variant on the device.
    kernels: std::sync::Arc<CenterKernels>,
    host: Option<own_batch::OwnBatch>,
}

impl std::fmt::Debug for GpuCenterLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCenterLoss")
            .field("cfg", &self.cfg)
            .field("center_buffers", &self.table.buffers.len())
            .field("native_atomics", &self.native_atomics)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl GpuCenterLoss {
    /// Builds the module on `ctx` with all centers at zero. Fails with [`Error::Config`]
    /// for a bad configuration and [`Error::TooLarge`] when the table cannot be held.
    pub fn new(ctx: &GpuContext, cfg: CenterLossConfig) -> Result<Self> {
        cfg.validate()?;
        let shape = TableShape::new(&cfg, &ctx.limits())?;
        let (k, dim) = (cfg.num_classes, cfg.feat_dim);
        let native_atomics = ctx.has_float_atomics() && !cfg.force_cas_atomics;
        let device = ctx.device();
        let vec4 = vec4_forward(dim);
        let kernels = CenterKernels::for_context(ctx, cfg.update, native_atomics, shape.layout_bindings, vec4)?;
        ctx.capture(|| {
            let table = CenterTable::new(device, &shape, &cfg, &kernels.layouts.window);
            let status = gpu::buffer(device, "health", 16, gpu::STORAGE_RW);
            let slots = (cfg.update == UpdateMode::Atomic).then(|| {
                let slots = gpu::buffer(device, "class slots", 4 * k as u64, gpu::STORAGE_RW);
                ctx.queue().write_buffer(&slots, 0, bytemuck::cast_slice(&vec![EMPTY_SLOT; k]));
                slots
            });
            Self {
                ctx: ctx.clone(),
                cfg: cfg.clone(),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                native_atomics,
                fused_step: fused_step(vec4, ctx.kernels()),
                table,
                status,
                status_staging: Staging::new(device, "health staging", 16),
                slots,
                kernels,
                host: None,
            }
        })
        .map_err(|e| match e {
            Error::Gpu(why) => Error::Gpu(format!(
                "creating the {k} x {dim} center table ({} bytes in {} buffers of at most {} bytes) failed: {why}",
                4 * super::config::center_stride(dim) as u64 * k as u64,
                shape.num_buffers,
                shape.buffer_limit
            )),
            other => other,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CenterLossConfig {
        &self.cfg
    }

    /// The context this module runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Whether the atomic mode uses native `atomic<f32>` (false: compare-exchange loop).
    pub fn uses_native_float_atomics(&self) -> bool {
        self.native_atomics
    }

    /// How many buffers the center table is split over.
    pub fn num_center_buffers(&self) -> usize {
        self.table.buffers.len()
    }

    /// How many times each center kernel walks the batch per step: once per window of
    /// center buffers bound together (1 unless the table spans more buffers than one
    /// dispatch binds, see [`CenterLossConfig::center_bindings`]).
    pub fn center_passes(&self) -> usize {
        self.table.windows.len()
    }

    /// Replaces the centers with `centers` (K*D finite values, row-major).
    pub fn set_centers(&mut self, centers: &[f32]) -> Result<()> {
        check_len("centers", self.cfg.num_classes * self.cfg.feat_dim, centers.len())?;
        check_finite("centers", centers)?;
        self.ctx.capture(|| {
            self.table.write(self.ctx.queue(), centers);
            self.ctx.queue().submit(None);
        })
    }

    /// Reads the centers back: K*D values, row-major.
    pub fn centers(&self) -> Result<Vec<f32>> {
        self.table.read(&self.ctx)
    }

    /// The asynchronous form of [`GpuCenterLoss::centers`] (the browser's).
    pub async fn centers_async(&self) -> Result<Vec<f32>> {
        self.table.read_async(&self.ctx).await
    }

    /// Reads the centers of `classes` (each below K): classes.len() * D values, in the
    /// order given, in one submission (O(rows * D), whatever K is).
    pub fn center_rows(&self, classes: &[u32]) -> Result<Vec<f32>> {
        self.cfg.check_labels(classes)?;
        self.table.read_rows(&self.ctx, classes)
    }

    /// Replaces the centers of `classes` (each below K) with `values` (classes.len() * D
    /// finite values, row-major); the other rows stay as they are.
    pub fn set_center_rows(&mut self, classes: &[u32], values: &[f32]) -> Result<()> {
        self.cfg.validate_batch(values, classes)?;
        self.ctx.capture(|| {
            self.table.write_rows(self.ctx.queue(), classes, values);
            self.ctx.queue().submit(None);
        })
    }

    /// Reads the cumulative health counters of the GPU-resident path.
    pub fn health(&self) -> Result<GpuHealth> {
        self.ctx.capture(|| {
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            self.status_staging.copy_from(&mut encoder, &self.status, 0, 0, 16);
            self.ctx.queue().submit([encoder.finish()]);
        })?;
        let words: Vec<u32> = self.status_staging.read_values(&self.ctx, 4)?;
        Ok(GpuHealth { skipped_updates: words[1], invalid_labels: words[2], non_finite_values: words[3] })
    }

    /// Zeroes the health counters.
    pub fn reset_health(&self) -> Result<()> {
        self.ctx.capture(|| {
            self.ctx.queue().write_buffer(&self.status, 0, &[0u8; 16]);
            self.ctx.queue().submit(None);
        })
    }
}
