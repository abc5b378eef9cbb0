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

use std::num::NonZeroU64;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::{Pod, Zeroable};

use super::config::{center_stride, check_finite, check_len, CenterLossConfig, UpdateMode, MAX_CENTER_BINDINGS};
use crate::gpu::{self, shaders, GpuContext};
use crate::{Error, Result};

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

/// Bind groups and per-batch scratch for one set of caller buffers, made once by
/// [`GpuCenterLoss::bind`] and encoded any number of times.
pub struct CenterLossBinding {
    owner: u64,
    batch: u32,
    params: wgpu::Buffer,
    loss_scratch: wgpu::Buffer,
    batch_group: wgpu::BindGroup,
    scratch_group: wgpu::BindGroup,
    sort_stages: Option<SortStages>,
    loss_target: Option<(wgpu::Buffer, u64)>,
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

struct SortStages {
    stride: u32,
    count: u32,
    group: wgpu::BindGroup,
}

/// Mirrors `StepParams` in `shaders/lib/batch_bindings.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StepParams {
    batch: u32,
    dim: u32,
    num_classes: u32,
    padded_batch: u32,
    grad_scale: f32,
    alpha: f32,
    grad_accumulate: u32,
    partials_per_chunk: u32,
    num_chunks: u32,
    center_stride: u32,
    _pad: [u32; 2],
}

/// Mirrors `ChunkParams` in `shaders/lib/chunk_bindings.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ChunkParams {
    row_start: u32,
    row_end: u32,
    index: u32,
    rows_per_buffer: u32,
}

/// One buffer of the center table.
struct Chunk {
    rows: Range<usize>,
    centers: wgpu::Buffer,
}

struct Layouts {
    batch: wgpu::BindGroupLayout,
    chunk: wgpu::BindGroupLayout,
    scratch: wgpu::BindGroupLayout,
    stage: wgpu::BindGroupLayout,
    main: wgpu::PipelineLayout,
    sort: wgpu::PipelineLayout,
}

struct Pipelines {
    forward_grad: wgpu::ComputePipeline,
    forward_loss: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    finalize_step: wgpu::ComputePipeline,
    finalize_forward: wgpu::ComputePipeline,
    mode: ModePipelines,
}

enum ModePipelines {
    Atomic {
        claim: wgpu::ComputePipeline,
        forward_accumulate: wgpu::ComputePipeline,
        apply: wgpu::ComputePipeline,
        release: wgpu::ComputePipeline,
    },
    Sorted {
        init: wgpu::ComputePipeline,
        bitonic: wgpu::ComputePipeline,
        local_sort: wgpu::ComputePipeline,
        update: wgpu::ComputePipeline,
    },
}

/// Host-path buffers, grown to the largest batch seen.
struct HostBatch {
    capacity: usize,
    features: wgpu::Buffer,
    labels: wgpu::Buffer,
    grad: wgpu::Buffer,
    staging: wgpu::Buffer,
    binding: CenterLossBinding,
}

/// Center loss on the GPU. Owns the centers (split over several buffers when the table
/// exceeds one storage binding), the pipelines and the scratch; all are created in
/// [`GpuCenterLoss::new`], none per step.
pub struct GpuCenterLoss {
    ctx: GpuContext,
    cfg: CenterLossConfig,
    id: u64,
    native_atomics: bool,
    chunks: Vec<Chunk>,
    /// Bind groups of up to `center_bindings` consecutive chunks: each step dispatches every
    /// center kernel once per group.
    chunk_groups: Vec<wgpu::BindGroup>,
    status: wgpu::Buffer,
    status_staging: wgpu::Buffer,
    slots: Option<wgpu::Buffer>,
    layouts: Layouts,
    pipelines: Pipelines,
    host: Option<HostBatch>,
}

impl std::fmt::Debug for GpuCenterLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCenterLoss")
            .field("cfg", &self.cfg)
            .field("chunks", &self.chunks.len())
            .field("native_atomics", &self.native_atomics)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const SORT_STAGE_BYTES: u64 = 8;
/// Keys one workgroup of `bitonic_local` sorts in workgroup memory (`LOCAL_KEYS`).
const LOCAL_SORT_KEYS: u32 = 512;

/// Elements per invocation of `center_forward` (its `PER_INVOCATION`); `center_forward_vec4`
/// handles as many vec4 words, four times the elements.
const FORWARD_PER_INVOCATION: u64 = 8;
/// `WORKGROUP_SIZE` of the center kernels: the forward kernel writes one loss partial per
/// invocation.
const FORWARD_WORKGROUP_SIZE: u32 = 256;

/// The position of bitonic stage (k, j) (powers of two, j < k) in stage order: k = 2, 4, ...
/// and for each k, j = k/2 down to 1.
fn stage_index(k: u32, j: u32) -> u32 {
    let m = k.trailing_zeros();
    m * (m - 1) / 2 + (m - 1 - j.trailing_zeros())
}

/// Whether the forward pass reads features, centers and gradient as vec4 words.
fn vec4_forward(dim: usize) -> bool {
    dim.is_multiple_of(4)
}

/// One shader module to build: (label, kernel file, import aliases).
pub(crate) type ShaderSpec = (&'static str, &'static str, Vec<(&'static str, &'static str)>);

/// Storage buffers per shader stage that the center kernels bind besides the centers:
/// features, labels, grad, loss scratch, health; then slots and accumulators (atomic mode)
/// or sort keys (deterministic).
fn storage_bindings_besides_centers(update: UpdateMode) -> u32 {
    5 + if update == UpdateMode::Atomic { 2 } else { 1 }
}

/// Every shader module a mode needs; `center_bindings` > 1 selects the kernels that bind
/// several center buffers at once, `vec4` the forward kernel for D divisible by 4.
pub(crate) fn shader_plan(
    update: UpdateMode,
    native_atomics: bool,
    center_bindings: usize,
    vec4: bool,
) -> Vec<ShaderSpec> {
    let accum = ("accum", if native_atomics { "accum_native" } else { "accum_cas" });
    let chunk = (
        "chunk_bindings",
        match center_bindings {
            1 => "chunk_bindings",
            2 => "chunk_bindings_2",
            _ => "chunk_bindings_4",
        },
    );
    let (forward, data) = if vec4 {
        ("center_forward_vec4", ("batch_data", "batch_data_vec4"))
    } else {
        ("center_forward", ("batch_data", "batch_data"))
    };
    let mut plan = vec![
        ("forward", forward, vec![("accumulate", "accumulate_none"), data]),
        ("reduce", "loss_reduce", vec![]),
        ("finalize", "status_finalize", vec![]),
    ];
    match update {
        UpdateMode::Atomic => plan.extend([
            ("claim", "center_claim", vec![accum]),
            ("forward_accumulate", forward, vec![("accumulate", "accumulate_atomic"), accum, data]),
            ("apply", "center_apply", vec![accum]),
            ("release", "center_release", vec![accum]),
        ]),
        UpdateMode::Deterministic => plan.extend([
            ("sort_init", "sort_keys_init", vec![]),
            ("bitonic", "bitonic_step", vec![]),
            ("bitonic_local", "bitonic_local", vec![]),
            ("update_sorted", "center_update_sorted", vec![]),
        ]),
    }
    for (_, _, aliases) in &mut plan {
        aliases.push(chunk);
    }
    plan
}

impl GpuCenterLoss {
    /// Builds the module on `ctx` with all centers at zero. Fails with [`Error::Config`]
    /// for a bad configuration and [`Error::TooLarge`] when the table cannot be held.
    pub fn new(ctx: &GpuContext, cfg: CenterLossConfig) -> Result<Self> {
        cfg.validate()?;
        let limits = ctx.limits();
        let dim = cfg.feat_dim;
        let k = cfg.num_classes;
        let binding_limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(u32::MAX as u64);
        let chunk_bytes = binding_limit.min(cfg.max_chunk_bytes.unwrap_or(u64::MAX));
        let row_bytes = 4 * center_stride(dim) as u64;
        if row_bytes > chunk_bytes {
            return Err(Error::TooLarge {
                what: "one center row",
                bytes: row_bytes,
                limit: chunk_bytes,
                hint: "reduce feat_dim",
            });
        }
        if 4 * k as u64 > binding_limit {
            return Err(Error::TooLarge {
                what: "the class slot table (4 bytes per class)",
                bytes: 4 * k as u64,
                limit: binding_limit,
                hint: "reduce num_classes",
            });
        }
        let rows_per_chunk = ((chunk_bytes / row_bytes) as usize).min(k);
        let native_atomics = ctx.has_float_atomics() && !cfg.force_cas_atomics;
        let device = ctx.device();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let table_bytes = row_bytes * k as u64;
        let num_buffers = k.div_ceil(rows_per_chunk);
        let bindings_allowed =
            limits.max_storage_buffers_per_shader_stage.saturating_sub(storage_bindings_besides_centers(cfg.update));
        // Buffers per group; more than one needs `chunk_bindings_2` or every binding of
        // `chunk_bindings_4` (the storage-buffer limit is checked for four).
        let center_bindings = match cfg.center_bindings.unwrap_or(MAX_CENTER_BINDINGS).min(num_buffers) {
            n if n > 1 && bindings_allowed as usize >= MAX_CENTER_BINDINGS => n,
            _ => 1,
        };
        let layout_bindings = if center_bindings > 2 { MAX_CENTER_BINDINGS } else { center_bindings };

        ctx.capture(|| {
            let vec4 = vec4_forward(dim);
            let layouts = create_layouts(device, cfg.update, layout_bindings, vec4);
            let pipelines = create_pipelines(device, &layouts, cfg.update, native_atomics, layout_bindings, vec4)?;
            let chunks: Vec<Chunk> = (0..k)
                .step_by(rows_per_chunk)
                .map(|start| {
                    let rows = start..(start + rows_per_chunk).min(k);
                    let centers = gpu::buffer(device, "centers", rows.len() as u64 * row_bytes, gpu::STORAGE_RW);
                    Chunk { rows, centers }
                })
                .collect();
            // Bindings a group leaves unused hold distinct placeholders (never indexed).
            let placeholders: Vec<wgpu::Buffer> = (1..layout_bindings)
                .map(|_| gpu::buffer(device, "unused center binding", 16, gpu::STORAGE_RW))
                .collect();
            let chunk_groups = chunks
                .chunks(center_bindings)
                .enumerate()
                .map(|(index, group)| {
                    let params = ChunkParams {
                        row_start: group[0].rows.start as u32,
                        row_end: group[group.len() - 1].rows.end as u32,
                        index: index as u32,
                        rows_per_buffer: rows_per_chunk as u32,
                    };
                    let params = uniform(device, "chunk params", bytemuck::bytes_of(&params));
                    let mut entries = vec![gpu::bind(0, &params)];
                    let buffers = group.iter().map(|c| &c.centers).chain(&placeholders);
                    entries.extend(buffers.take(layout_bindings).enumerate().map(|(i, b)| gpu::bind(1 + i as u32, b)));
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("center chunk"),
                        layout: &layouts.chunk,
                        entries: &entries,
                    })
                })
                .collect();
            let status = gpu::buffer(device, "health", 16, gpu::STORAGE_RW);
            let status_staging =
                gpu::buffer(device, "health staging", 16, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
            let slots = (cfg.update == UpdateMode::Atomic).then(|| {
                let slots = gpu::buffer(device, "class slots", 4 * k as u64, gpu::STORAGE_RW);
                ctx.queue().write_buffer(&slots, 0, &vec![0xff; 4 * k]);
                slots
            });
            Ok(Self {
                ctx: ctx.clone(),
                cfg: cfg.clone(),
                id,
                native_atomics,
                chunks,
                chunk_groups,
                status,
                status_staging,
                slots,
                layouts,
                pipelines,
                host: None,
            })
        })
        .map_err(|e| match e {
            Error::Gpu(why) => Error::Gpu(format!(
                "creating the {k} x {dim} center table ({table_bytes} bytes in {num_buffers} buffers of at most \
                 {chunk_bytes} bytes) failed: {why}"
            )),
            other => other,
        })?
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
        self.chunks.len()
    }

    /// How many times each center kernel walks the batch per step: once per group of
    /// center buffers bound together (1 unless the table spans more buffers than one
    /// dispatch binds, see [`CenterLossConfig::center_bindings`]).
    pub fn center_passes(&self) -> usize {
        self.chunk_groups.len()
    }

    /// Replaces the centers with `centers` (K*D finite values, row-major).
    pub fn set_centers(&mut self, centers: &[f32]) -> Result<()> {
        let dim = self.cfg.feat_dim;
        check_len("centers", self.cfg.num_classes * dim, centers.len())?;
        check_finite("centers", centers)?;
        self.ctx.capture(|| {
            let stride = center_stride(dim);
            for chunk in &self.chunks {
                let values = &centers[chunk.rows.start * dim..chunk.rows.end * dim];
                if stride == dim {
                    self.ctx.queue().write_buffer(&chunk.centers, 0, bytemuck::cast_slice(values));
                } else {
                    let mut padded = vec![0.0f32; chunk.rows.len() * stride];
                    for (row, out) in values.chunks(dim).zip(padded.chunks_mut(stride)) {
                        out[..dim].copy_from_slice(row);
                    }
                    self.ctx.queue().write_buffer(&chunk.centers, 0, bytemuck::cast_slice(&padded));
                }
            }
            self.ctx.queue().submit(None);
        })
    }

    /// Reads the centers back: K*D values, row-major.
    pub fn centers(&self) -> Result<Vec<f32>> {
        let dim = self.cfg.feat_dim;
        let stride = center_stride(dim);
        let largest = self.chunks.iter().map(|c| c.rows.len()).max().unwrap_or(0);
        let staging = gpu::buffer(
            self.ctx.device(),
            "centers staging",
            (largest * stride * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut out = Vec::with_capacity(self.cfg.num_classes * dim);
        for chunk in &self.chunks {
            let bytes = (chunk.rows.len() * stride * 4) as u64;
            self.ctx.capture(|| {
                let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
                encoder.copy_buffer_to_buffer(&chunk.centers, 0, &staging, 0, bytes);
                self.ctx.queue().submit([encoder.finish()]);
            })?;
            let data = self.ctx.read_mapped(&staging, bytes)?;
            for row in bytemuck::cast_slice::<u8, f32>(&data).chunks(stride) {
                out.extend_from_slice(&row[..dim]);
            }
        }
        Ok(out)
    }

    /// One training step: loss and gradient for the batch, then the center update.
    ///
    /// `features` holds B*D values, `labels` B values below K. On any bad input the
    /// error comes back before the GPU is touched and the centers stay as they were.
    pub fn step(&mut self, features: &[f32], labels: &[u32]) -> Result<StepOutput> {
        self.run_host(features, labels, Pass::Step)
    }

    /// The loss for a batch against the current centers; nothing is updated.
    pub fn loss(&mut self, features: &[f32], labels: &[u32]) -> Result<f32> {
        self.run_host(features, labels, Pass::LossOnly).map(|o| o.loss)
    }

    /// Loss and gradient against the current centers; nothing is updated.
    pub fn forward(&mut self, features: &[f32], labels: &[u32]) -> Result<StepOutput> {
        self.run_host(features, labels, Pass::Forward)
    }

    /// Reads the cumulative health counters of the GPU-resident path.
    pub fn health(&self) -> Result<GpuHealth> {
        self.ctx.capture(|| {
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&self.status, 0, &self.status_staging, 0, 16);
            self.ctx.queue().submit([encoder.finish()]);
        })?;
        let raw = self.ctx.read_mapped(&self.status_staging, 16)?;
        let words: &[u32] = bytemuck::cast_slice(&raw);
        Ok(GpuHealth { skipped_updates: words[1], invalid_labels: words[2], non_finite_values: words[3] })
    }

    /// Zeroes the health counters.
    pub fn reset_health(&self) -> Result<()> {
        self.ctx.capture(|| {
            self.ctx.queue().write_buffer(&self.status, 0, &[0u8; 16]);
            self.ctx.queue().submit(None);
        })
    }

    /// Prepares the GPU-resident path for caller-owned buffers: bind groups and the
    /// per-batch scratch, created once. Checks sizes and usages.
    pub fn bind(&self, buffers: BatchBuffers<'_>) -> Result<CenterLossBinding> {
        let batch = buffers.batch;
        if batch == 0 {
            return Err(Error::Config("a binding needs a batch of at least 1".into()));
        }
        let values = (batch * self.cfg.feat_dim) as u64 * 4;
        let storage = wgpu::BufferUsages::STORAGE;
        check_buffer("features", buffers.features, values, storage)?;
        check_buffer("labels", buffers.labels, batch as u64 * 4, storage)?;
        check_buffer("grad", buffers.grad, values, storage)?;
        if !buffers.loss_offset.is_multiple_of(4) {
            return Err(Error::Buffer {
                what: "loss",
                reason: format!("loss_offset {} is not a multiple of 4", buffers.loss_offset),
            });
        }
        check_buffer("loss", buffers.loss, buffers.loss_offset + 4, wgpu::BufferUsages::COPY_DST)?;
        self.ctx.capture(|| {
            self.make_binding(
                buffers.features,
                buffers.labels,
                buffers.grad,
                batch,
                buffers.accumulate_grad,
                Some((buffers.loss.clone(), buffers.loss_offset)),
            )
        })?
    }

    /// Records a full step (loss, gradient, center update) for `binding` into `encoder`.
    /// Nothing is read back; labels >= K and non-finite features are counted in
    /// [`GpuCenterLoss::health`] and their step's center update is skipped.
    pub fn encode_step(&self, encoder: &mut wgpu::CommandEncoder, binding: &CenterLossBinding) -> Result<()> {
        self.check_owner(binding)?;
        self.record(encoder, binding, binding.batch, Pass::Step);
        Ok(())
    }

    /// Records loss and gradient only (no center update) for `binding` into `encoder`.
    pub fn encode_forward(&self, encoder: &mut wgpu::CommandEncoder, binding: &CenterLossBinding) -> Result<()> {
        self.check_owner(binding)?;
        self.record(encoder, binding, binding.batch, Pass::Forward);
        Ok(())
    }

    fn check_owner(&self, binding: &CenterLossBinding) -> Result<()> {
        if binding.owner == self.id {
            Ok(())
        } else {
            Err(Error::Config("this binding was made by another GpuCenterLoss".into()))
        }
    }

    fn max_grid(&self) -> u32 {
        self.ctx.limits().max_compute_workgroups_per_dimension
    }

    /// The grid of the forward kernel (`FORWARD_PER_INVOCATION` elements or vec4 words per
    /// invocation).
    fn forward_grid(&self, batch: usize) -> (u32, u32) {
        let per_invocation = FORWARD_PER_INVOCATION * if vec4_forward(self.cfg.feat_dim) { 4 } else { 1 };
        gpu::grid(((batch * self.cfg.feat_dim) as u64).div_ceil(per_invocation), self.max_grid())
    }

    fn step_params(&self, batch: usize, grad_accumulate: bool) -> StepParams {
        let (x, y) = self.forward_grid(batch);
        StepParams {
            batch: batch as u32,
            dim: self.cfg.feat_dim as u32,
            num_classes: self.cfg.num_classes as u32,
            padded_batch: batch.next_power_of_two() as u32,
            grad_scale: self.cfg.grad_scale(batch) as f32,
            alpha: self.cfg.alpha,
            grad_accumulate: grad_accumulate as u32,
            partials_per_chunk: x * y * FORWARD_WORKGROUP_SIZE,
            num_chunks: self.chunk_groups.len() as u32,
            center_stride: center_stride(self.cfg.feat_dim) as u32,
            _pad: [0; 2],
        }
    }

    /// Checks that a batch of `batch` rows fits in storage bindings.
    fn check_batch_fits(&self, batch: usize) -> Result<()> {
        let limit = self.ctx.limits().max_storage_buffer_binding_size.min(u32::MAX as u64);
        // The atomic accumulators hold B*D sums and B counts; sort keys hold 2 words per padded
        // row; the loss scratch one partial per forward invocation and center pass.
        let params = self.step_params(batch, false);
        let partials = 1 + params.partials_per_chunk as usize * params.num_chunks as usize;
        let largest = 4 * (batch * (self.cfg.feat_dim + 1)).max(2 * batch.next_power_of_two()).max(partials) as u64;
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

    fn make_binding(
        &self,
        features: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        grad: &wgpu::Buffer,
        batch: usize,
        grad_accumulate: bool,
        loss_target: Option<(wgpu::Buffer, u64)>,
    ) -> Result<CenterLossBinding> {
        self.check_batch_fits(batch)?;
        let device = self.ctx.device();
        let params = self.step_params(batch, grad_accumulate);
        let params_buffer = uniform(device, "step params", bytemuck::bytes_of(&params));
        let partials = params.partials_per_chunk as u64 * params.num_chunks as u64;
        let loss_scratch = gpu::buffer(device, "loss scratch", 4 * (1 + partials), gpu::STORAGE_RW);
        let values = (batch * self.cfg.feat_dim) as u64 * 4;
        fn sized(binding: u32, buffer: &wgpu::Buffer, size: u64) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: 0,
                    size: NonZeroU64::new(size),
                }),
            }
        }
        let batch_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("center loss batch"),
            layout: &self.layouts.batch,
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
                let acc = gpu::buffer(
                    device,
                    "slot accumulators",
                    4 * (batch * (self.cfg.feat_dim + 1)) as u64,
                    gpu::STORAGE_RW,
                );
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("center loss atomic scratch"),
                    layout: &self.layouts.scratch,
                    entries: &[gpu::bind(0, slots), gpu::bind(1, &acc)],
                });
                (group, None)
            }
            None => {
                let keys = gpu::buffer(device, "sort keys", 8 * params.padded_batch as u64, gpu::STORAGE_RW);
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("center loss sort scratch"),
                    layout: &self.layouts.scratch,
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
        })
    }

    /// Uniforms (k, j) for every stage of a bitonic sort of `padded` keys, in stage order
    /// ([`stage_index`]), at a stride that meets the dynamic-offset alignment. A smaller
    /// power of two uses a prefix of them.
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
                entry[..8].copy_from_slice(bytemuck::cast_slice(&[k, j]));
                bytes.extend(entry);
                count += 1;
                j /= 2;
            }
            k *= 2;
        }
        if bytes.is_empty() {
            bytes.resize(stride as usize, 0);
        }
        let buffer = uniform(device, "sort stages", &bytes);
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sort stage"),
            layout: &self.layouts.stage,
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

    /// The dispatches of `pass` over the first `batch` rows of `binding`, in order.
    fn plan<'a>(&'a self, binding: &'a CenterLossBinding, batch: u32, pass: Pass) -> Vec<Dispatch<'a>> {
        let batch = batch as u64;
        let dim = self.cfg.feat_dim as u64;
        let max = self.max_grid();
        let rows = gpu::grid(batch, max);
        let elements = gpu::grid(batch * dim, max);
        let forward = self.forward_grid(batch as usize);
        let padded = gpu::grid(batch.next_power_of_two(), max);
        let p = &self.pipelines;
        let mut plan = Vec::new();
        let once = |plan: &mut Vec<Dispatch<'a>>, kernel, pipeline, grid| {
            plan.push(Dispatch { kernel, pipeline, chunk_group: None, stage: None, grid })
        };
        let per_group = |plan: &mut Vec<Dispatch<'a>>, kernel, pipeline, grid| {
            plan.extend(self.chunk_groups.iter().map(|g| Dispatch {
                kernel,
                pipeline,
                chunk_group: Some(g),
                stage: None,
                grid,
            }))
        };
        match (pass, &p.mode) {
            (Pass::LossOnly, _) => per_group(&mut plan, "center_forward", &p.forward_loss, forward),
            (Pass::Forward, _) => per_group(&mut plan, "center_forward", &p.forward_grad, forward),
            (Pass::Step, ModePipelines::Atomic { claim, forward_accumulate, .. }) => {
                once(&mut plan, "center_claim", claim, rows);
                per_group(&mut plan, "center_forward", forward_accumulate, forward);
            }
            (Pass::Step, ModePipelines::Sorted { init, bitonic, local_sort, .. }) => {
                once(&mut plan, "sort_keys_init", init, padded);
                if let Some(stages) = &binding.sort_stages {
                    let padded_keys = batch.next_power_of_two() as u32;
                    // One workgroup per block of LOCAL_SORT_KEYS keys, one invocation per pair.
                    let blocks = gpu::grid(padded_keys.div_ceil(2) as u64, max);
                    let stage = |kernel, pipeline, k: u32, j: u32, grid| {
                        let index = stage_index(k, j).min(stages.count.saturating_sub(1));
                        Dispatch {
                            kernel,
                            pipeline,
                            chunk_group: None,
                            stage: Some((&stages.group, index * stages.stride)),
                            grid,
                        }
                    };
                    if padded_keys >= 2 {
                        // Sort each block locally, then per merge: the stages whose partners
                        // are a block or more apart globally, the rest locally.
                        plan.push(stage("bitonic_local", local_sort, 2, 1, blocks));
                        let mut k = 2 * LOCAL_SORT_KEYS;
                        while k <= padded_keys {
                            let mut j = k / 2;
                            while j >= LOCAL_SORT_KEYS {
                                plan.push(stage("bitonic_step", bitonic, k, j, padded));
                                j /= 2;
                            }
                            plan.push(stage("bitonic_local", local_sort, k, j, blocks));
                            k *= 2;
                        }
                    }
                }
                per_group(&mut plan, "center_forward", &p.forward_grad, forward);
            }
        }
        once(&mut plan, "loss_reduce", &p.reduce, (1, 1));
        match (pass, &p.mode) {
            (Pass::Step, ModePipelines::Atomic { apply, release, .. }) => {
                per_group(&mut plan, "center_apply", apply, elements);
                once(&mut plan, "center_release", release, rows);
            }
            (Pass::Step, ModePipelines::Sorted { update, .. }) => {
                per_group(&mut plan, "center_update_sorted", update, elements)
            }
            _ => {}
        }
        let finalize = if pass == Pass::Step { &p.finalize_step } else { &p.finalize_forward };
        once(&mut plan, "status_finalize", finalize, (1, 1));
        plan
    }

    /// A compute pass with `binding`'s groups and the first center group bound.
    fn begin_pass<'e>(
        &self,
        encoder: &'e mut wgpu::CommandEncoder,
        binding: &CenterLossBinding,
    ) -> wgpu::ComputePass<'e> {
        let mut cpass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("center loss"), timestamp_writes: None });
        cpass.set_bind_group(0, &binding.batch_group, &[]);
        cpass.set_bind_group(1, &self.chunk_groups[0], &[]);
        cpass.set_bind_group(2, &binding.scratch_group, &[]);
        cpass
    }

    /// Records `pass` over the first `batch` rows of `binding` (its own batch, or fewer on
    /// the host buffers): the whole step in one compute pass, then the loss copy.
    fn record(&self, encoder: &mut wgpu::CommandEncoder, binding: &CenterLossBinding, batch: u32, pass: Pass) {
        {
            let mut cpass = self.begin_pass(encoder, binding);
            for dispatch in self.plan(binding, batch, pass) {
                dispatch.record(&mut cpass);
            }
        }
        if let Some((target, offset)) = &binding.loss_target {
            encoder.copy_buffer_to_buffer(&binding.loss_scratch, 0, target, *offset, 4);
        }
    }

    /// Times each kernel of a full step on `binding` with GPU timestamps, every dispatch in
    /// a compute pass of its own: (kernel, dispatches per step, median seconds per step
    /// summed over its dispatches), in step order. The step runs `samples` times (it does
    /// update the centers). `None` when the device cannot write timestamps in encoders.
    pub fn profile_step(&self, binding: &CenterLossBinding, samples: usize) -> Result<Option<Vec<KernelTime>>> {
        self.check_owner(binding)?;
        let plan = self.plan(binding, binding.batch, Pass::Step);
        let Some(timer) = gpu::GpuTimer::new(&self.ctx, plan.len() as u32) else {
            return Ok(None);
        };
        let mut per_dispatch: Vec<Vec<f64>> = vec![Vec::new(); plan.len()];
        for _ in 0..samples.max(1) {
            self.ctx.capture(|| {
                let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
                for (i, dispatch) in plan.iter().enumerate() {
                    timer.begin(&mut encoder, i as u32);
                    // Each dispatch in a pass of its own, ended before the timestamp.
                    dispatch.record(&mut self.begin_pass(&mut encoder, binding));
                    timer.end(&mut encoder, i as u32);
                }
                timer.resolve(&mut encoder);
                self.ctx.queue().submit([encoder.finish()]);
            })?;
            for (times, t) in per_dispatch.iter_mut().zip(timer.read_seconds()?) {
                times.push(t);
            }
        }
        let mut kernels: Vec<KernelTime> = Vec::new();
        for (dispatch, times) in plan.iter().zip(per_dispatch) {
            let median = gpu::median(times);
            match kernels.iter_mut().find(|k| k.kernel == dispatch.kernel) {
                Some(k) => {
                    k.dispatches += 1;
                    k.seconds += median;
                }
                None => kernels.push(KernelTime { kernel: dispatch.kernel, dispatches: 1, seconds: median }),
            }
        }
        Ok(Some(kernels))
    }

    /// Grows the host-path buffers to hold `batch` rows.
    fn ensure_host_capacity(&mut self, batch: usize) -> Result<()> {
        if self.host.as_ref().is_some_and(|h| h.capacity >= batch) {
            return Ok(());
        }
        let capacity = batch.max(self.host.as_ref().map_or(0, |h| h.capacity * 2));
        self.check_batch_fits(capacity)?;
        let device = self.ctx.device();
        let values = (capacity * self.cfg.feat_dim) as u64 * 4;
        let host = self.ctx.capture(|| {
            let features = gpu::buffer(device, "host features", values, gpu::STORAGE_RW);
            let labels = gpu::buffer(device, "host labels", 4 * capacity as u64, gpu::STORAGE_RW);
            let grad = gpu::buffer(device, "host grad", values, gpu::STORAGE_RW);
            let staging = gpu::buffer(
                device,
                "host staging",
                values + 8,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let binding = self.make_binding(&features, &labels, &grad, capacity, false, None)?;
            Ok::<_, Error>(HostBatch { capacity, features, labels, grad, staging, binding })
        })??;
        self.host = Some(host);
        Ok(())
    }

    fn run_host(&mut self, features: &[f32], labels: &[u32], pass: Pass) -> Result<StepOutput> {
        let batch = self.cfg.validate_batch(features, labels)?;
        if batch == 0 {
            return Ok(StepOutput { loss: 0.0, grad: Vec::new() });
        }
        self.ensure_host_capacity(batch)?;
        let Some(host) = &self.host else {
            return Err(Error::Config("host buffers missing".into()));
        };
        let params = self.step_params(batch, false);
        let grad_bytes = if pass == Pass::LossOnly { 0 } else { (batch * self.cfg.feat_dim) as u64 * 4 };
        let queue = self.ctx.queue();
        self.ctx.capture(|| {
            queue.write_buffer(&host.binding.params, 0, bytemuck::bytes_of(&params));
            queue.write_buffer(&host.features, 0, bytemuck::cast_slice(features));
            queue.write_buffer(&host.labels, 0, bytemuck::cast_slice(labels));
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            self.record(&mut encoder, &host.binding, batch as u32, pass);
            encoder.copy_buffer_to_buffer(&host.binding.loss_scratch, 0, &host.staging, 0, 4);
            if grad_bytes > 0 {
                encoder.copy_buffer_to_buffer(&host.grad, 0, &host.staging, 8, grad_bytes);
            }
            queue.submit([encoder.finish()]);
        })?;
        let raw = self.ctx.read_mapped(&host.staging, 8 + grad_bytes)?;
        let words: &[f32] = bytemuck::cast_slice(&raw);
        Ok(StepOutput { loss: words[0], grad: words[2..].to_vec() })
    }
}

/// The GPU time of one kernel in a step ([`GpuCenterLoss::profile_step`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's WGSL file name.
    pub kernel: &'static str,
    /// How many times a step dispatches it.
    pub dispatches: usize,
    /// Median seconds per step, all its dispatches together.
    pub seconds: f64,
}

/// One dispatch of a step: its pipeline, the bind groups it changes, its grid.
struct Dispatch<'a> {
    kernel: &'static str,
    pipeline: &'a wgpu::ComputePipeline,
    chunk_group: Option<&'a wgpu::BindGroup>,
    stage: Option<(&'a wgpu::BindGroup, u32)>,
    grid: (u32, u32),
}

impl Dispatch<'_> {
    fn record(&self, cpass: &mut wgpu::ComputePass<'_>) {
        cpass.set_pipeline(self.pipeline);
        if let Some(group) = self.chunk_group {
            cpass.set_bind_group(1, group, &[]);
        }
        if let Some((group, offset)) = self.stage {
            cpass.set_bind_group(3, group, &[offset]);
        }
        cpass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Step,
    Forward,
    LossOnly,
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

fn uniform(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

fn create_layouts(device: &wgpu::Device, update: UpdateMode, center_bindings: usize, vec4: bool) -> Layouts {
    let layout = |label, entries: &[wgpu::BindGroupLayoutEntry]| {
        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
    };
    let batch = layout(
        "center loss batch",
        &[
            gpu::uniform_entry(0, std::mem::size_of::<StepParams>() as u64, false),
            gpu::storage_entry(1, true, if vec4 { 16 } else { 4 }),
            gpu::storage_entry(2, true, 4),
            gpu::storage_entry(3, false, if vec4 { 16 } else { 4 }),
            gpu::storage_entry(4, false, 8),
            gpu::storage_entry(5, false, 16),
        ],
    );
    let mut chunk_entries = vec![gpu::uniform_entry(0, std::mem::size_of::<ChunkParams>() as u64, false)];
    chunk_entries.extend((1..=center_bindings as u32).map(|b| gpu::storage_entry(b, false, 16)));
    let chunk = layout("center chunk", &chunk_entries);
    let scratch = match update {
        UpdateMode::Atomic => {
            layout("atomic scratch", &[gpu::storage_entry(0, false, 4), gpu::storage_entry(1, false, 4)])
        }
        UpdateMode::Deterministic => layout("sort scratch", &[gpu::storage_entry(0, false, 8)]),
    };
    let stage = layout("sort stage", &[gpu::uniform_entry(0, SORT_STAGE_BYTES, true)]);
    let main = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("center loss"),
        bind_group_layouts: &[Some(&batch), Some(&chunk), Some(&scratch)],
        immediate_size: 0,
    });
    let sort = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("center loss sort"),
        bind_group_layouts: &[Some(&batch), Some(&chunk), Some(&scratch), Some(&stage)],
        immediate_size: 0,
    });
    Layouts { batch, chunk, scratch, stage, main, sort }
}

fn create_pipelines(
    device: &wgpu::Device,
    layouts: &Layouts,
    update: UpdateMode,
    native_atomics: bool,
    center_bindings: usize,
    vec4: bool,
) -> Result<Pipelines> {
    let mut modules = std::collections::HashMap::new();
    for (label, kernel, aliases) in shader_plan(update, native_atomics, center_bindings, vec4) {
        let source = shaders::compose(kernel, &aliases)?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        modules.insert(label, module);
    }
    let make = |label: &str, module: &str, layout: &wgpu::PipelineLayout, constants: &[(&str, f64)]| {
        gpu::compute_pipeline(device, label, layout, &modules[module], constants)
    };
    let main = &layouts.main;
    let mode = match update {
        UpdateMode::Atomic => ModePipelines::Atomic {
            claim: make("center_claim", "claim", main, &[]),
            forward_accumulate: make("center_forward (accumulate)", "forward_accumulate", main, &[]),
            apply: make("center_apply", "apply", main, &[]),
            release: make("center_release", "release", main, &[]),
        },
        UpdateMode::Deterministic => ModePipelines::Sorted {
            init: make("sort_keys_init", "sort_init", main, &[]),
            bitonic: make("bitonic_step", "bitonic", &layouts.sort, &[]),
            local_sort: make("bitonic_local", "bitonic_local", &layouts.sort, &[]),
            update: make("center_update_sorted", "update_sorted", main, &[]),
        },
    };
    Ok(Pipelines {
        forward_grad: make("center_forward", "forward", main, &[]),
        forward_loss: make("center_forward (loss only)", "forward", main, &[("WRITE_GRAD", 0.0)]),
        reduce: make("loss_reduce", "reduce", main, &[]),
        finalize_step: make("status_finalize", "finalize", main, &[]),
        finalize_forward: make("status_finalize (forward)", "finalize", main, &[("COUNT_SKIPPED", 0.0)]),
        mode,
    })
}
