//! The GPU toolkit every subsystem uses: the context, the WGSL sources, the kernel registry
//! and pipeline cache, bind-group layout entries, uniform and storage buffers, read-back,
//! dispatch grids and GPU timestamps. It knows nothing of center loss or the trainer.

mod compose;
mod context;
mod kernels;
mod readback;
pub mod shaders;
mod timing;
mod tune;
mod wait;

pub use context::{required_limits, GpuContext, KernelChoice, KernelFamily, WgpuHandles};
pub use kernels::{
    layout_entries, profile_ops, record_ops, BoundGroup, Constants, GroupedKernel, KernelSet, Op, PipelineFactory,
};
pub use readback::{read_buffer, read_buffer_async, read_buffers, read_buffers_async, Staging};
pub use shaders::{kernel, Access, Alias, Kernel};
pub use timing::{median, profile_dispatches, GpuTimer, KernelTime};
pub use tune::{Tiling, TunedChoice, Tuner, FAILED_MICROS};
pub(crate) use wait::block_on;

use std::num::NonZeroU64;

/// Invocations per workgroup of every 1-D kernel in `shaders/`.
pub const WORKGROUP_SIZE: u32 = 256;

/// A dispatch for `invocations` threads of [`WORKGROUP_SIZE`], spilling into y when the
/// workgroup count exceeds the per-dimension limit. Returns `(x, y)`; the kernels fold it
/// back with `linear_workgroup`.
pub fn grid(invocations: u64, max_per_dim: u32) -> (u32, u32) {
    let groups = invocations.div_ceil(WORKGROUP_SIZE as u64).max(1);
    let max = max_per_dim.max(1) as u64;
    if groups <= max {
        (groups as u32, 1)
    } else {
        let y = groups.div_ceil(max);
        (groups.div_ceil(y) as u32, y as u32)
    }
}

/// A storage-buffer layout entry visible to compute shaders.
pub fn storage_entry(binding: u32, read_only: bool, min_size: u64) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(min_size),
        },
        count: None,
    }
}

/// A uniform-buffer layout entry visible to compute shaders.
pub fn uniform_entry(binding: u32, size: u64, dynamic: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: dynamic,
            min_binding_size: NonZeroU64::new(size),
        },
        count: None,
    }
}

/// Creates a buffer of `size` bytes (rounded up to 4, at least 4).
pub fn buffer(device: &wgpu::Device, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(4).next_multiple_of(4),
        usage,
        mapped_at_creation: false,
    })
}

/// Storage usage for a buffer the host writes and reads back.
pub const STORAGE_RW: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

/// A uniform buffer holding `value` (a `#[repr(C)]` mirror of a WGSL struct).
pub fn uniform<T: bytemuck::Pod>(device: &wgpu::Device, label: &str, value: &T) -> wgpu::Buffer {
    uniform_bytes(device, label, bytemuck::bytes_of(value))
}

/// A uniform buffer holding `bytes` (e.g. a table read through dynamic offsets).
pub fn uniform_bytes(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

/// A storage buffer initialised with `values` ([`STORAGE_RW`] usage).
pub fn storage_init<T: bytemuck::Pod>(device: &wgpu::Device, label: &str, values: &[T]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(values),
        usage: STORAGE_RW,
    })
}

/// What a dispatch binds as a storage buffer: a whole buffer, or a [`BufferRange`] (a
/// tensor inside an arena).
pub trait Storage {
    /// The buffer, offset and size bound.
    fn binding(&self) -> wgpu::BufferBinding<'_>;
    /// Bytes bound.
    fn bytes(&self) -> u64;
}

impl Storage for wgpu::Buffer {
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        self.as_entire_buffer_binding()
    }

    fn bytes(&self) -> u64 {
        self.size()
    }
}

/// `bytes` bytes of `buffer` from `offset` (a multiple of [`RANGE_ALIGNMENT`]). Cheap to
/// clone (a shared handle).
#[derive(Clone, Debug, PartialEq)]
pub struct BufferRange {
    /// The buffer.
    pub buffer: wgpu::Buffer,
    /// Where the range starts, in bytes.
    pub offset: u64,
    /// Its length in bytes (at least 4).
    pub bytes: u64,
}

impl From<&wgpu::Buffer> for BufferRange {
    /// The whole buffer.
    fn from(buffer: &wgpu::Buffer) -> Self {
        Self { buffer: buffer.clone(), offset: 0, bytes: buffer.size() }
    }
}

impl Storage for BufferRange {
    fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding { buffer: &self.buffer, offset: self.offset, size: NonZeroU64::new(self.bytes) }
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Alignment of a [`BufferRange`]'s offset: the largest `min_storage_buffer_offset_alignment`
/// an adapter may ask for, so a range binds on every adapter.
pub const RANGE_ALIGNMENT: u64 = 256;

/// Whole-buffer binding entry.
pub fn bind(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource: buffer.as_entire_binding() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_spills_into_y_and_covers_everything() {
        assert_eq!(grid(0, 65535), (1, 1));
        assert_eq!(grid(256, 65535), (1, 1));
        assert_eq!(grid(257, 65535), (2, 1));
        let (x, y) = grid(65536 * 256 + 1, 65535);
        assert!(x <= 65535 && (x as u64) * (y as u64) * 256 > 65536 * 256);
        assert_eq!(y, 2);
    }
}
