//! The tile configurations of the GEMM cores (`gemm`, and the three implicit-GEMM
//! convolutions built on the same cores), and how one is chosen per dispatch: the fixed
//! rule, a forced candidate, or the fastest measured on the adapter ([`crate::gpu::Tuner`]).
//! Every candidate sums each output's k in order with one fma after another, so all give
//! the same bits; they differ in how work is spread over workgroups.

use super::graph::{Graph, GEMM_CPU_BLOCK_M, GEMM_CPU_TILE_OUTPUTS, GEMM_TILE_OUTPUTS};
use crate::gpu::{self, Constants, KernelFamily, Op, Tiling};
use crate::{Error, Result};

/// Runs of each candidate the tuner times (the median counts).
const TUNING_RUNS: usize = 3;

/// One tile configuration of a GEMM core: rows of C per workgroup and, for the tiled core,
/// the k-step through workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTiles {
    /// `TILE_M`: rows of C one workgroup computes.
    pub tile_m: usize,
    /// `TILE_K` of the tiled core (the CPU-driver core has none).
    pub tile_k: Option<usize>,
}

/// The tiled core's candidates: 64 x 64 or 32 x 128 tiles, k-steps of 16 or 8.
const GPU_CANDIDATES: [GemmTiles; 4] = [
    GemmTiles { tile_m: 64, tile_k: Some(16) },
    GemmTiles { tile_m: 32, tile_k: Some(16) },
    GemmTiles { tile_m: 64, tile_k: Some(8) },
    GemmTiles { tile_m: 32, tile_k: Some(8) },
];

/// The CPU-driver core's candidates: 1 024 outputs per workgroup as 16 x 64 ... 128 x 8.
const CPU_CANDIDATES: [GemmTiles; 4] = [
    GemmTiles { tile_m: GEMM_CPU_BLOCK_M, tile_k: None },
    GemmTiles { tile_m: 2 * GEMM_CPU_BLOCK_M, tile_k: None },
    GemmTiles { tile_m: 4 * GEMM_CPU_BLOCK_M, tile_k: None },
    GemmTiles { tile_m: 8 * GEMM_CPU_BLOCK_M, tile_k: None },
];

impl GemmTiles {
    /// The candidates of `family`'s core, in the order [`GemmTiles::fixed`] and
    /// [`Tiling::Candidate`] index them.
    pub fn candidates(family: KernelFamily) -> &'static [GemmTiles] {
        match family {
            KernelFamily::Gpu => &GPU_CANDIDATES,
            KernelFamily::Cpu => &CPU_CANDIDATES,
        }
    }

    /// The fixed rule: the tiled core takes 32 x 128 tiles when M is at most 32 (so few
    /// output channels do not waste half a tile), 64 x 64 otherwise; the CPU-driver core
    /// one block of 16 rows per workgroup, its invocations side by side along N (the loads
    /// of A are then the same for every lane; docs/cpu-experiments.md).
    pub fn fixed(family: KernelFamily, m: usize) -> usize {
        match family {
            KernelFamily::Gpu if m <= 32 => 1,
            _ => 0,
        }
    }

    /// Columns of C one workgroup computes.
    pub fn tile_n(&self) -> usize {
        let outputs = if self.tile_k.is_some() { GEMM_TILE_OUTPUTS } else { GEMM_CPU_TILE_OUTPUTS };
        outputs / self.tile_m
    }

    /// The pipeline constants that select it.
    pub fn constants(&self) -> Constants {
        let mut constants = vec![("TILE_M", self.tile_m as f64)];
        constants.extend(self.tile_k.map(|k| ("TILE_K", k as f64)));
        constants
    }

    /// It in words, as the tuner files it: "TILE_M 64, TILE_K 16".
    pub fn label(&self) -> String {
        match self.tile_k {
            Some(k) => format!("TILE_M {}, TILE_K {k}", self.tile_m),
            None => format!("TILE_M {}", self.tile_m),
        }
    }
}

/// A GEMM dispatch's kernel and operands, before a tile configuration is chosen.
pub(super) struct GemmDispatch<'a> {
    /// The kernel (`gemm`, `conv2d_forward`, ...).
    pub kernel: &'static str,
    /// Its pipeline constants other than the tiles' (a convolution's shapes).
    pub constants: &'a [(&'static str, f64)],
    /// Its uniform, if any.
    pub uniform: Option<&'a wgpu::Buffer>,
    /// Its storage buffers.
    pub storage: &'a [&'a wgpu::Buffer],
    /// Rows and columns of C, and K-slices.
    pub m: usize,
    pub n: usize,
    pub slices: usize,
    /// What else makes the shape (a dense GEMM's K and strides; empty for a convolution,
    /// whose constants say it all).
    pub detail: &'a str,
}

impl Graph {
    /// The dispatch of `d` with the tile configuration the context's [`Tiling`] picks.
    pub(super) fn gemm_op(&self, d: &GemmDispatch<'_>) -> Result<Op> {
        let family = self.ctx.kernels();
        let candidates = GemmTiles::candidates(family);
        let index = match self.ctx.tiling() {
            Tiling::Candidate(i) => i % candidates.len(),
            Tiling::Tune => self.tune_gemm(d, candidates)?,
            _ => GemmTiles::fixed(family, d.m),
        };
        let tiles = candidates[index];
        let chosen = format!("{} {}x{}x{}: {}", d.kernel, d.m, d.n, d.slices, tiles.label());
        self.gemm_tiles.lock().map_err(|_| Error::Internal("the GEMM tile record is poisoned".into()))?.push(chosen);
        self.gemm_op_with(d, tiles, d.storage)
    }

    /// The tile configuration of every GEMM and convolution dispatch, in the order built:
    /// `kernel MxNxslices: TILE_M 64, TILE_K 16`. All configurations give the same bits;
    /// this says which ran (a checkpoint records it, `gemm_tiles`).
    pub fn gemm_tiles(&self) -> Vec<String> {
        self.gemm_tiles.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// [`Graph::gemm_tiles`] in a line: how they were chosen and how many dispatches took
    /// each configuration (`fixed rule: TILE_M 16 x 9, TILE_M 32 x 1`).
    pub fn gemm_tiles_summary(&self) -> String {
        let mut counts = std::collections::BTreeMap::new();
        for t in self.gemm_tiles() {
            let label = t.split_once(": ").map_or(t.clone(), |(_, l)| l.to_string());
            *counts.entry(label).or_insert(0usize) += 1;
        }
        let how = match self.ctx.tiling() {
            Tiling::Tune => "tuned".to_string(),
            Tiling::Candidate(i) => format!("candidate {i}"),
            _ => "fixed rule".to_string(),
        };
        let each: Vec<String> = counts.iter().map(|(label, n)| format!("{label} x {n}")).collect();
        format!("{how}: {}", each.join(", "))
    }

    fn gemm_op_with(&self, d: &GemmDispatch<'_>, tiles: GemmTiles, storage: &[&wgpu::Buffer]) -> Result<Op> {
        let mut constants = d.constants.to_vec();
        constants.extend(tiles.constants());
        let grid = (d.n.div_ceil(tiles.tile_n()) as u32, d.m.div_ceil(tiles.tile_m) as u32, d.slices as u32);
        self.kernels.op(d.kernel, &constants, d.uniform, storage, grid)
    }

    /// The tuner's candidate for `d`: recorded, or measured now on scratch buffers of the
    /// sizes of `d`'s (so the graph's own buffers are not touched), each candidate's median
    /// of 3 runs (its first run, which compiles it, is the slowest and never the median).
    fn tune_gemm(&self, d: &GemmDispatch<'_>, candidates: &[GemmTiles]) -> Result<usize> {
        let key = format!(
            "{:?} {} {:?} m {} n {} slices {} {}",
            self.ctx.kernels(),
            d.kernel,
            d.constants,
            d.m,
            d.n,
            d.slices,
            d.detail
        );
        let labels: Vec<String> = candidates.iter().map(GemmTiles::label).collect();
        let tuner = self.ctx.tuner()?;
        let mut scratch: Option<Vec<wgpu::Buffer>> = None;
        let mut measure = |i: usize| -> Result<f64> {
            let buffers = scratch.get_or_insert_with(|| {
                let device = self.ctx.device();
                d.storage.iter().map(|b| gpu::buffer(device, "tuning scratch", b.size(), gpu::STORAGE_RW)).collect()
            });
            let storage: Vec<&wgpu::Buffer> = buffers.iter().collect();
            let op = self.gemm_op_with(d, candidates[i], &storage)?;
            let times = gpu::profile_ops(&self.ctx, &[&op], TUNING_RUNS)?;
            Ok(times.and_then(|t| t.first().map(|k| k.seconds)).unwrap_or(f64::INFINITY))
        };
        tuner.choose(&key, &labels, &mut measure)
    }
}
