//! The parameter arena: every parameter's values, gradient and momentum live in three large
//! buffers (a page), each parameter at a 256-byte-aligned offset, so that the optimizer
//! updates all of them in one dispatch per page and a checkpoint, a warm-up snapshot or a
//! data-parallel all-reduce moves whole pages. An inference graph's arena holds the values
//! alone. A network reserves its exact size before its first layer
//! ([`super::NetworkSpec::arena_values`]), so it has one page; a graph built layer by layer
//! without a reservation opens pages as it grows.

use super::graph::ParamKind;
use crate::gpu::{self, BufferRange, GpuContext, RANGE_ALIGNMENT};
use crate::{Error, Result};

/// Values per alignment step (256 bytes): parameters start at multiples of it, and the
/// optimizer reads a parameter's kind per chunk of this many values.
pub(crate) const CHUNK_VALUES: usize = RANGE_ALIGNMENT as usize / 4;

/// Values of the first page when nothing was reserved (1 MiB per buffer); each further
/// page doubles.
const DEFAULT_PAGE_VALUES: usize = 1 << 18;

/// Values, gradients and momenta of the parameters in one page.
pub struct ParamPage {
    /// Parameter values.
    pub value: wgpu::Buffer,
    /// Their gradients (none in an inference graph).
    pub grad: Option<wgpu::Buffer>,
    /// Their SGD momenta (none in an inference graph).
    pub velocity: Option<wgpu::Buffer>,
    /// Values in use: the parameters and the padding after each (a multiple of 64).
    pub used: usize,
    capacity: usize,
    /// The kind of the parameter each chunk of 64 values in use belongs to.
    pub chunk_kinds: Vec<ParamKind>,
}

impl ParamPage {
    /// A range of `len` values at `offset` (in values) of `buffer`.
    fn range(buffer: &wgpu::Buffer, offset: usize, len: usize) -> BufferRange {
        BufferRange { buffer: buffer.clone(), offset: 4 * offset as u64, bytes: 4 * len as u64 }
    }

    /// The page's values, gradients and momenta in use: (value, grad, velocity); an error
    /// for an inference graph's page, which has no gradients.
    pub fn in_use(&self) -> Result<[BufferRange; 3]> {
        let (Some(grad), Some(velocity)) = (&self.grad, &self.velocity) else {
            return Err(Error::Internal("an inference graph's parameters have no gradients".into()));
        };
        Ok([&self.value, grad, velocity].map(|b| Self::range(b, 0, self.used)))
    }

    /// Bytes of the page's buffers (values, and gradients and momenta when it has them).
    pub fn bytes(&self) -> u64 {
        let parts = [Some(&self.value), self.grad.as_ref(), self.velocity.as_ref()];
        parts.into_iter().flatten().map(|b| b.size()).sum()
    }
}

/// Where the parameters of a graph live ([`ParamPage`]s).
pub(super) struct ParamArena {
    pages: Vec<ParamPage>,
    /// Capacity of the next page to open, in values.
    next_page: usize,
    /// The adapter's largest storage binding, in values (a multiple of 64).
    max_page: usize,
    /// Whether pages hold gradients and momenta besides the values.
    trains: bool,
}

impl ParamArena {
    /// An empty arena for `ctx`'s adapter; with `trains`, pages hold gradients and momenta.
    pub(super) fn new(ctx: &GpuContext, trains: bool) -> Self {
        let max_bytes = ctx.limits().max_storage_buffer_binding_size;
        let max_page = (max_bytes / 4) as usize / CHUNK_VALUES * CHUNK_VALUES;
        Self { pages: Vec::new(), next_page: DEFAULT_PAGE_VALUES.min(max_page), max_page, trains }
    }

    /// Makes the next page hold `values` values (parameters padded to 64 each), so that
    /// parameters that add up to it share one page.
    pub(super) fn reserve(&mut self, values: usize) {
        self.next_page = values.next_multiple_of(CHUNK_VALUES).clamp(CHUNK_VALUES, self.max_page);
    }

    /// The pages, in order of opening.
    pub(super) fn pages(&self) -> &[ParamPage] {
        &self.pages
    }

    /// Places a parameter of `kind` with values `init`: returns its page and its value,
    /// gradient and momentum ranges (the last two when the arena trains); the values are
    /// written, the gradient and momentum are zero.
    pub(super) fn place(
        &mut self,
        ctx: &GpuContext,
        name: &str,
        kind: ParamKind,
        init: &[f32],
    ) -> Result<(usize, BufferRange, Option<[BufferRange; 2]>)> {
        let len = init.len();
        let padded = len.next_multiple_of(CHUNK_VALUES);
        if len == 0 {
            return Err(Error::Config(format!("parameter {name} has no values")));
        }
        if padded > self.max_page {
            return Err(Error::Config(format!(
                "parameter {name} has {len} values, more than this adapter binds at once ({}): make the layer smaller",
                self.max_page
            )));
        }
        if self.pages.last().is_none_or(|p| p.used + padded > p.capacity) {
            let capacity = padded.max(self.next_page);
            self.next_page = capacity.saturating_mul(2).min(self.max_page);
            let bytes = 4 * capacity as u64;
            let device = ctx.device();
            let trains = self.trains;
            self.pages.push(ParamPage {
                value: gpu::buffer(device, "parameters", bytes, gpu::STORAGE_RW),
                grad: trains.then(|| gpu::buffer(device, "parameter gradients", bytes, gpu::STORAGE_RW)),
                velocity: trains.then(|| gpu::buffer(device, "parameter momenta", bytes, gpu::STORAGE_RW)),
                used: 0,
                capacity,
                chunk_kinds: Vec::new(),
            });
        }
        let index = self.pages.len() - 1;
        let page = self.pages.last_mut().expect("a page is open");
        let offset = page.used;
        page.used += padded;
        page.chunk_kinds.extend(std::iter::repeat_n(kind, padded / CHUNK_VALUES));
        ctx.queue().write_buffer(&page.value, 4 * offset as u64, bytemuck::cast_slice(init));
        let range = |b: &wgpu::Buffer| ParamPage::range(b, offset, len);
        let training = page.grad.as_ref().zip(page.velocity.as_ref()).map(|(g, v)| [range(g), range(v)]);
        Ok((index, range(&page.value), training))
    }
}
