//! Exhaustive 1:N search on the GPU: the cosine scores of a chunk of probes against the
//! whole gallery with the trainer's GEMM, then the best k of each probe selected on the
//! GPU (`shaders/search/top_k.wgsl`); only the k results per probe are read back.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::error::{check_finite, check_len};
use crate::gpu::shaders::{kernel, Kernel};
use crate::gpu::{self, GpuContext, KernelSet, Op, Staging, Storage};
use crate::nn::Graph;
use crate::{Error, Result};

/// Mirrors `TopKParams` in `shaders/search/top_k.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct TopKParams {
    rows: u32,
    cols: u32,
    k: u32,
    _pad: u32,
}

/// The kernel search adds to the trainer's GEMM (`shaders/search/`).
pub const KERNELS: &[&Kernel] = &[&kernel::TOP_K];

/// The largest k `top_k.wgsl` selects: `MAX_K`.
pub(crate) const TOP_K_MAX: usize = 64;

/// Bytes of probe scores one chunk may hold (the adapter's binding limit may cut it further).
const SCORE_BYTES_PER_CHUNK: u64 = 64 << 20;

/// One gallery row found for a probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Row of the gallery.
    pub index: usize,
    /// Cosine similarity (the dot product of the unit rows).
    pub score: f32,
}

/// A gallery of unit-length rows on the GPU, searched for the `k` best rows per probe.
pub struct GallerySearch {
    graph: Graph,
    kernels: Arc<KernelSet>,
    gallery: wgpu::Buffer,
    probes: wgpu::Buffer,
    scores: wgpu::Buffer,
    /// The dispatches of a pass over `chunk` probes, and of the last shorter pass.
    ops: Vec<Op>,
    tail: Option<(usize, Vec<Op>)>,
    top_values: wgpu::Buffer,
    top_columns: wgpu::Buffer,
    staging: Staging,
    rows: usize,
    dim: usize,
    k: usize,
    chunk: usize,
}

impl GallerySearch {
    /// Uploads `gallery` (`n * dim` values, rows L2-normalised for cosine scores) and builds
    /// the dispatches for the best `k` rows per probe (1 ≤ k ≤ min(n, 64)).
    pub fn new(ctx: &GpuContext, gallery: &[f32], dim: usize, k: usize) -> Result<Self> {
        if dim == 0 || gallery.is_empty() || !gallery.len().is_multiple_of(dim) {
            return Err(Error::Config(format!(
                "a gallery is rows of dim > 0 values; got {} values for dim {dim}",
                gallery.len()
            )));
        }
        check_finite("gallery", gallery)?;
        let rows = gallery.len() / dim;
        if k == 0 || k > rows.min(TOP_K_MAX) {
            return Err(Error::Config(format!(
                "top-k must be in 1..={} (the gallery holds {rows} rows; at most {TOP_K_MAX} per probe), got {k}",
                rows.min(TOP_K_MAX)
            )));
        }
        let limits = ctx.limits();
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let gallery_bytes = 4 * gallery.len() as u64;
        if gallery_bytes > binding {
            return Err(Error::TooLarge {
                what: "gallery",
                bytes: gallery_bytes,
                limit: binding,
                hint: "split the gallery and merge the hits of each part",
            });
        }
        let chunk = ((SCORE_BYTES_PER_CHUNK.min(binding) / (4 * rows as u64)) as usize).clamp(1, 65_535);
        let graph = Graph::for_inference(ctx, chunk)?;
        let device = ctx.device();
        let gallery_buffer = gpu::storage_init(device, "gallery", gallery);
        let probes = gpu::buffer(device, "probes", 4 * (chunk * dim) as u64, gpu::STORAGE_RW);
        let scores = gpu::buffer(device, "probe scores", 4 * (chunk * rows) as u64, gpu::STORAGE_RW);
        let top_bytes = 4 * (chunk * k) as u64;
        let top_values = gpu::buffer(device, "top-k scores", top_bytes, gpu::STORAGE_RW);
        let top_columns = gpu::buffer(device, "top-k rows", top_bytes, gpu::STORAGE_RW);
        let staging = Staging::new(device, "top-k read-back", 2 * top_bytes);
        let mut search = Self {
            graph,
            kernels: KernelSet::for_context(ctx, KERNELS, &[])?,
            gallery: gallery_buffer,
            probes,
            scores,
            ops: Vec::new(),
            tail: None,
            top_values,
            top_columns,
            staging,
            rows,
            dim,
            k,
            chunk,
        };
        search.ops = search.pass(chunk)?;
        Ok(search)
    }

    /// The dispatches of one pass over `probes` probes: their scores against every
    /// gallery row, then each probe's best k.
    fn pass(&mut self, probes: usize) -> Result<Vec<Op>> {
        let ctx = self.graph.context().clone();
        let (a, b, out) = (&self.probes, &self.gallery, &self.scores);
        let mut ops = ctx.try_capture(|| self.graph.gemm_abt((probes, self.rows, self.dim), a, b, out))?;
        let params = TopKParams { rows: probes as u32, cols: self.rows as u32, k: self.k as u32, _pad: 0 };
        let uniform = self.graph.uniform(&params);
        let storage: [&dyn Storage; 3] = [&self.scores, &self.top_values, &self.top_columns];
        ops.push(self.kernels.op(&kernel::TOP_K, &[], Some(&uniform), &storage, (probes as u32, 1, 1))?);
        Ok(ops)
    }

    /// Gallery rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the gallery is empty (never: [`GallerySearch::new`] refuses one).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The best `k` gallery rows of each probe (`m * dim` values, unit rows), by falling
    /// score, ties to the lower row.
    pub fn search(&mut self, probes: &[f32]) -> Result<Vec<Vec<Hit>>> {
        if !probes.len().is_multiple_of(self.dim) {
            check_len("probes", probes.len().div_ceil(self.dim) * self.dim, probes.len())?;
        }
        check_finite("probes", probes)?;
        let ctx = self.graph.context().clone();
        let mut hits = Vec::with_capacity(probes.len() / self.dim);
        for part in probes.chunks(self.chunk * self.dim) {
            let count = part.len() / self.dim;
            if count < self.chunk && self.tail.as_ref().is_none_or(|(n, _)| *n != count) {
                self.tail = Some((count, self.pass(count)?));
            }
            let ops = match &self.tail {
                Some((n, ops)) if *n == count => ops,
                _ => &self.ops,
            };
            let top_bytes = 4 * (count * self.k) as u64;
            ctx.capture(|| {
                ctx.queue().write_buffer(&self.probes, 0, bytemuck::cast_slice(part));
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    gpu::record_ops(&mut pass, ops);
                }
                self.staging.copy_from(&mut encoder, &self.top_values, 0, 0, top_bytes);
                self.staging.copy_from(&mut encoder, &self.top_columns, 0, top_bytes, top_bytes);
                ctx.queue().submit([encoder.finish()]);
            })?;
            let words: Vec<u32> = self.staging.read_values(&ctx, 2 * count * self.k)?;
            let (values, columns) = words.split_at(count * self.k);
            for probe in 0..count {
                let at = probe * self.k..(probe + 1) * self.k;
                let row = values[at.clone()].iter().zip(&columns[at]);
                hits.push(row.map(|(&v, &c)| Hit { index: c as usize, score: f32::from_bits(v) }).collect());
            }
        }
        Ok(hits)
    }
}

/// The f64 twin of [`GallerySearch::search`]: the best `k` rows of `gallery` for each probe
/// by falling dot product, ties to the lower row.
pub fn search_reference(gallery: &[f32], probes: &[f32], dim: usize, k: usize) -> Vec<Vec<Hit>> {
    probes
        .chunks(dim)
        .map(|probe| {
            let mut scored: Vec<(f64, usize)> = gallery
                .chunks(dim)
                .enumerate()
                .map(|(i, row)| (row.iter().zip(probe).map(|(&a, &b)| a as f64 * b as f64).sum(), i))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored.into_iter().take(k).map(|(s, index)| Hit { index, score: s as f32 }).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{layout, mirror};

    #[test]
    fn the_top_k_mirror_matches_the_wgsl() {
        let top_k = mirror::module(&kernel::TOP_K, &[]);
        mirror::assert_struct(&top_k, "TopKParams", layout!(TopKParams { rows, cols, k, _pad }));
        assert_eq!(mirror::constant(&top_k, "MAX_K"), TOP_K_MAX as u64);
    }
}
