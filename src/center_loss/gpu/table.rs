//! The center table on the GPU: K rows of D floats (each padded to a multiple of 4) split
//! over as many storage buffers as the adapter's binding limit requires, and the windows:
//! runs of up to [`MAX_CENTER_BINDINGS`] consecutive buffers that one dispatch binds
//! together, so that every center kernel walks the batch once per window.

use std::ops::Range;

use super::interface::WindowParams;
use super::kernels::storage_bindings_besides_centers;
use crate::center_loss::config::{center_stride, CenterLossConfig, MAX_CENTER_BINDINGS};
use crate::gpu::{self, GpuContext, Staging};
use crate::{Error, Result};

/// One storage buffer of the center table.
pub(super) struct CenterBuffer {
    pub rows: Range<usize>,
    pub buffer: wgpu::Buffer,
}

/// How the table is laid out over buffers, decided from the configuration and the limits.
pub(super) struct TableShape {
    pub rows_per_buffer: usize,
    pub num_buffers: usize,
    /// Buffers one window binds.
    pub window_buffers: usize,
    /// Center bindings in the layout (1, 2 or [`MAX_CENTER_BINDINGS`]).
    pub layout_bindings: usize,
    /// The largest buffer allowed.
    pub buffer_limit: u64,
}

impl TableShape {
    /// The layout for `cfg` on an adapter with `limits`, or [`Error::TooLarge`].
    pub fn new(cfg: &CenterLossConfig, limits: &wgpu::Limits) -> Result<Self> {
        let binding_limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(u32::MAX as u64);
        let buffer_limit = binding_limit.min(cfg.max_buffer_bytes.unwrap_or(u64::MAX));
        let row_bytes = 4 * center_stride(cfg.feat_dim) as u64;
        if row_bytes > buffer_limit {
            return Err(Error::TooLarge {
                what: "one center row",
                bytes: row_bytes,
                limit: buffer_limit,
                hint: "reduce feat_dim",
            });
        }
        let k = cfg.num_classes;
        if 4 * k as u64 > binding_limit {
            return Err(Error::TooLarge {
                what: "the class slot table (4 bytes per class)",
                bytes: 4 * k as u64,
                limit: binding_limit,
                hint: "reduce num_classes",
            });
        }
        let rows_per_buffer = ((buffer_limit / row_bytes) as usize).min(k);
        let num_buffers = k.div_ceil(rows_per_buffer);
        let bindings_allowed =
            limits.max_storage_buffers_per_shader_stage.saturating_sub(storage_bindings_besides_centers(cfg.update)?);
        // More than one buffer per window needs `window_2` or every binding of `window_4`
        // (the storage-buffer limit is checked for four).
        let window_buffers = match cfg.center_bindings.unwrap_or(MAX_CENTER_BINDINGS).min(num_buffers) {
            n if n > 1 && bindings_allowed as usize >= MAX_CENTER_BINDINGS => n,
            _ => 1,
        };
        let layout_bindings = if window_buffers > 2 { MAX_CENTER_BINDINGS } else { window_buffers };
        Ok(Self { rows_per_buffer, num_buffers, window_buffers, layout_bindings, buffer_limit })
    }
}

/// The center buffers and their windows' bind groups.
pub(super) struct CenterTable {
    pub buffers: Vec<CenterBuffer>,
    pub windows: Vec<wgpu::BindGroup>,
    dim: usize,
}

impl CenterTable {
    /// Allocates the table (zeros) and binds its windows with `layout` (group 1).
    pub fn new(
        device: &wgpu::Device,
        shape: &TableShape,
        cfg: &CenterLossConfig,
        layout: &wgpu::BindGroupLayout,
    ) -> Self {
        let (k, dim) = (cfg.num_classes, cfg.feat_dim);
        let row_bytes = 4 * center_stride(dim) as u64;
        let buffers: Vec<CenterBuffer> = (0..k)
            .step_by(shape.rows_per_buffer)
            .map(|start| {
                let rows = start..(start + shape.rows_per_buffer).min(k);
                let buffer = gpu::buffer(device, "centers", rows.len() as u64 * row_bytes, gpu::STORAGE_RW);
                CenterBuffer { rows, buffer }
            })
            .collect();
        // Bindings a window leaves unused hold distinct placeholders (never indexed).
        let placeholders: Vec<wgpu::Buffer> = (1..shape.layout_bindings)
            .map(|_| gpu::buffer(device, "unused center binding", 16, gpu::STORAGE_RW))
            .collect();
        let windows = buffers
            .chunks(shape.window_buffers)
            .enumerate()
            .map(|(index, window)| {
                let params = WindowParams {
                    row_start: window[0].rows.start as u32,
                    row_end: window[window.len() - 1].rows.end as u32,
                    index: index as u32,
                    rows_per_buffer: shape.rows_per_buffer as u32,
                };
                let params = gpu::uniform(device, "window params", &params);
                let mut entries = vec![gpu::bind(0, &params)];
                let bound = window.iter().map(|c| &c.buffer).chain(&placeholders);
                entries.extend(bound.take(shape.layout_bindings).enumerate().map(|(i, b)| gpu::bind(1 + i as u32, b)));
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("center window"),
                    layout,
                    entries: &entries,
                })
            })
            .collect();
        Self { buffers, windows, dim }
    }

    /// Writes `centers` (K*D values, checked by the caller) into the buffers, padding rows.
    pub fn write(&self, queue: &wgpu::Queue, centers: &[f32]) {
        let (dim, stride) = (self.dim, center_stride(self.dim));
        for part in &self.buffers {
            let values = &centers[part.rows.start * dim..part.rows.end * dim];
            if stride == dim {
                queue.write_buffer(&part.buffer, 0, bytemuck::cast_slice(values));
            } else {
                let mut padded = vec![0.0f32; part.rows.len() * stride];
                for (row, out) in values.chunks(dim).zip(padded.chunks_mut(stride)) {
                    out[..dim].copy_from_slice(row);
                }
                queue.write_buffer(&part.buffer, 0, bytemuck::cast_slice(&padded));
            }
        }
    }

    /// Reads the table back: K*D values, row-major, without the padding.
    pub fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        crate::gpu::block_on("GpuCenterLoss::centers", self.read_async(ctx))
    }

    /// The asynchronous form of [`CenterTable::read`].
    pub async fn read_async(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let (dim, stride) = (self.dim, center_stride(self.dim));
        let largest = self.buffers.iter().map(|c| c.rows.len()).max().unwrap_or(0);
        let staging = Staging::new(ctx.device(), "centers staging", (largest * stride * 4) as u64);
        let mut out = Vec::with_capacity(self.buffers.last().map_or(0, |c| c.rows.end) * dim);
        for part in &self.buffers {
            let bytes = (part.rows.len() * stride * 4) as u64;
            ctx.capture(|| {
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                staging.copy_from(&mut encoder, &part.buffer, 0, 0, bytes);
                ctx.queue().submit([encoder.finish()]);
            })?;
            let values: Vec<f32> = staging.read_values_async(ctx, part.rows.len() * stride).await?;
            for row in values.chunks(stride) {
                out.extend_from_slice(&row[..dim]);
            }
        }
        Ok(out)
    }

    /// The buffer and byte offset of row `row`.
    fn locate(&self, row: usize) -> (&wgpu::Buffer, u64) {
        let part = self.buffers.iter().find(|c| c.rows.contains(&row)).unwrap_or(&self.buffers[0]);
        (&part.buffer, ((row - part.rows.start) * center_stride(self.dim) * 4) as u64)
    }

    /// Reads the rows `rows` (each below K, checked by the caller) in one submission:
    /// rows.len() * D values, in the order given.
    pub fn read_rows(&self, ctx: &GpuContext, rows: &[u32]) -> Result<Vec<f32>> {
        let (dim, stride) = (self.dim, center_stride(self.dim));
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let staging = Staging::new(ctx.device(), "center rows staging", (rows.len() * stride * 4) as u64);
        ctx.capture(|| {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            for (i, &row) in rows.iter().enumerate() {
                let (buffer, offset) = self.locate(row as usize);
                staging.copy_from(&mut encoder, buffer, offset, (i * stride * 4) as u64, (stride * 4) as u64);
            }
            ctx.queue().submit([encoder.finish()]);
        })?;
        let values: Vec<f32> = staging.read_values(ctx, rows.len() * stride)?;
        Ok(values.chunks(stride).flat_map(|r| r[..dim].iter().copied()).collect())
    }

    /// Writes `values` (rows.len() * D, checked by the caller) into the rows `rows`.
    pub fn write_rows(&self, queue: &wgpu::Queue, rows: &[u32], values: &[f32]) {
        for (&row, v) in rows.iter().zip(values.chunks(self.dim)) {
            let (buffer, offset) = self.locate(row as usize);
            queue.write_buffer(buffer, offset, bytemuck::cast_slice(v));
        }
    }
}
