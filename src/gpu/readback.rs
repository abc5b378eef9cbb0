//! Reading GPU buffers back to the host: the only place that makes `MAP_READ` buffers.
//!
//! [`Staging`] is a persistent staging buffer for what a subsystem reads every step (loss
//! and gradient, metrics, health counters, timestamps); [`read_buffer`] is a one-shot read
//! for what is read rarely (checkpoints, inference). Each read is a future (the browser
//! maps buffers asynchronously); the blocking forms run it to completion natively.

use bytemuck::Pod;

use super::{self as gpu, GpuContext, Storage};
use crate::{Error, Result};

/// A host-readable staging buffer: copies are recorded into it, then it is mapped and read.
#[derive(Debug)]
pub struct Staging {
    buffer: wgpu::Buffer,
}

impl Staging {
    /// A staging buffer of `bytes` bytes (rounded up to 4, at least 4).
    pub fn new(device: &wgpu::Device, label: &str, bytes: u64) -> Self {
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        Self { buffer: super::buffer(device, label, bytes, usage) }
    }

    /// Records the copy of `bytes` bytes of `source` (from `source_offset`) to `offset`.
    pub fn copy_from(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        source_offset: u64,
        offset: u64,
        bytes: u64,
    ) {
        encoder.copy_buffer_to_buffer(source, source_offset, &self.buffer, offset, bytes);
    }

    /// Waits for the submitted work, maps the buffer and returns its first `len` values of
    /// type `T`, copied once out of the mapped range.
    pub fn read_values<T: Pod>(&self, ctx: &GpuContext, len: usize) -> Result<Vec<T>> {
        self.read_after(ctx, None, len)
    }

    /// [`Staging::read_values`], waiting for `submission` only (with `None`, for all work
    /// submitted so far): on a device another program shares, its later work is not
    /// waited for.
    pub fn read_after<T: Pod>(
        &self,
        ctx: &GpuContext,
        submission: Option<wgpu::SubmissionIndex>,
        len: usize,
    ) -> Result<Vec<T>> {
        gpu::block_on("Staging::read_after", self.read_after_async(ctx, submission, len))
    }

    /// The asynchronous form of [`Staging::read_values`] (the browser's).
    pub async fn read_values_async<T: Pod>(&self, ctx: &GpuContext, len: usize) -> Result<Vec<T>> {
        self.read_after_async(ctx, None, len).await
    }

    /// The asynchronous form of [`Staging::read_after`]: every read-back of the crate is
    /// this one. The first wgpu error of the work recorded before it is returned instead
    /// of the values ([`GpuContext::check_errors_async`]).
    pub async fn read_after_async<T: Pod>(
        &self,
        ctx: &GpuContext,
        submission: Option<wgpu::SubmissionIndex>,
        len: usize,
    ) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); len];
        if len == 0 {
            return Ok(out);
        }
        let slice = self.buffer.slice(..(len * std::mem::size_of::<T>()) as u64);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            sender.send(r).ok();
        });
        ctx.wait_for(submission)?;
        let mapped = match receiver.receive().await {
            Some(result) => result.map_err(|e| Error::Readback(e.to_string())),
            None => Err(Error::Readback("map callback was dropped".into())),
        };
        // A mapped buffer is unmapped whatever follows, so the next read can map it again.
        let copied = mapped.as_ref().map_or(Ok(()), |()| {
            let view = slice.get_mapped_range().map(|view| {
                bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&view);
            });
            self.buffer.unmap();
            view.map_err(|e| Error::Readback(e.to_string()))
        });
        ctx.check_errors_async().await?;
        mapped?;
        copied?;
        Ok(out)
    }
}

/// Copies the first `len` values of a `COPY_SRC` buffer (or range) back to the host (one
/// submission and a wait; for what is read rarely).
pub fn read_buffer<T: Pod>(ctx: &GpuContext, source: &dyn Storage, len: usize) -> Result<Vec<T>> {
    gpu::block_on("read_buffer", read_buffer_async(ctx, source, len))
}

/// The asynchronous form of [`read_buffer`].
pub async fn read_buffer_async<T: Pod>(ctx: &GpuContext, source: &dyn Storage, len: usize) -> Result<Vec<T>> {
    let bytes = (len * std::mem::size_of::<T>()) as u64;
    let staging = Staging::new(ctx.device(), "readback", bytes);
    ctx.capture(|| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let from = source.binding();
        staging.copy_from(&mut encoder, from.buffer, from.offset, 0, bytes);
        ctx.queue().submit([encoder.finish()]);
    })?;
    staging.read_values_async(ctx, len).await
}

/// Reads the first `len` f32 values of each `(buffer or range, len)` back in one submission
/// and one mapping (a checkpoint's parameters and momenta: one wait instead of one per
/// buffer).
pub fn read_buffers(ctx: &GpuContext, sources: &[(&dyn Storage, usize)]) -> Result<Vec<Vec<f32>>> {
    gpu::block_on("read_buffers", read_buffers_async(ctx, sources))
}

/// The asynchronous form of [`read_buffers`].
pub async fn read_buffers_async(ctx: &GpuContext, sources: &[(&dyn Storage, usize)]) -> Result<Vec<Vec<f32>>> {
    let total: usize = sources.iter().map(|(_, len)| len).sum();
    let staging = Staging::new(ctx.device(), "readback", (4 * total) as u64);
    ctx.capture(|| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let mut offset = 0u64;
        for (source, len) in sources {
            if *len > 0 {
                let from = source.binding();
                staging.copy_from(&mut encoder, from.buffer, from.offset, offset, 4 * *len as u64);
            }
            offset += 4 * *len as u64;
        }
        ctx.queue().submit([encoder.finish()]);
    })?;
    let all: Vec<f32> = staging.read_values_async(ctx, total).await?;
    let mut start = 0;
    Ok(sources
        .iter()
        .map(|(_, len)| {
            start += len;
            all[start - len..start].to_vec()
        })
        .collect())
}
