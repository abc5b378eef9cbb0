//! The tile configurations of the GEMM cores (`gemm`, and the three implicit-GEMM
//! convolutions built on the same cores), and how one is chosen per dispatch: the fixed
//! rule, a forced candidate, or the fastest measured on the adapter ([`crate::gpu::Tuner`]).
//! Every candidate sums each output's k in order with one fma after another, so all give
//! the same bits; they differ in how work is spread over workgroups.

use super::graph::{
    Graph, GEMM_REGISTER_BLOCK_M, GEMM_REGISTER_BLOCK_N, GEMM_REGISTER_INVOCATIONS, GEMM_TILE_K, GEMM_TILE_OUTPUTS,
    GEMM_WIDE_TILE_OUTPUTS, MAX_K_PER_SLICE,
};
use super::kernels::{GEMM_KERNELS, REGISTER_GEMM_ALIASES, WIDE_GEMM_ALIASES};
use crate::gpu::shaders::Kernel;
use crate::gpu::{self, Constants, KernelFamily, KernelSet, Op, Storage, Tiling};
use crate::{Error, Result};

/// Runs of each candidate the tuner times (the median counts).
const TUNING_RUNS: usize = 3;

/// The GEMM cores (each a WGSL helper the GEMM and convolution kernels import).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmCore {
    /// `gemm_core.wgsl`: 64 invocations, 4 096 outputs per workgroup in workgroup memory.
    Tiled,
    /// `gemm_core_wide.wgsl`: 256 invocations, 16 384 outputs per workgroup, each
    /// operand loaded along the tile or along k.
    Wide,
    /// `gemm_core_registers.wgsl`: no workgroup memory, a 16 x 8 block of C per invocation in
    /// registers; the CPU-driver family's core (workgroups of 8), and a GPU candidate
    /// (32 to 128 invocations, columns interleaved).
    Registers,
}

/// One tile configuration of a GEMM core: rows of C per workgroup, the k-step through
/// workgroup memory, how the wide core loads its operands, and the register core's
/// workgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTiles {
    /// The core.
    pub core: GemmCore,
    /// `TILE_M`: rows of C one workgroup computes.
    pub tile_m: usize,
    /// `TILE_K` of the tiled cores (the register core has none).
    pub tile_k: Option<usize>,
    /// Wide core: load A along k (`A_ALONG_K`) rather than along its rows.
    pub a_along_k: bool,
    /// Wide core: load B along k (`B_ALONG_K`) rather than along its columns.
    pub b_along_k: bool,
    /// Invocations per workgroup: the register core's `INVOCATIONS`; the tiled cores' 64 and
    /// 256 are fixed.
    pub invocations: usize,
    /// Register core: each invocation's columns interleaved with its neighbours'
    /// (`INTERLEAVED`) rather than consecutive.
    pub interleaved: bool,
}

const fn tiled(tile_m: usize, tile_k: usize) -> GemmTiles {
    GemmTiles {
        core: GemmCore::Tiled,
        tile_m,
        tile_k: Some(tile_k),
        a_along_k: false,
        b_along_k: false,
        invocations: 64,
        interleaved: false,
    }
}

const fn wide(tile_m: usize, tile_k: usize, a_along_k: bool, b_along_k: bool) -> GemmTiles {
    GemmTiles {
        core: GemmCore::Wide,
        tile_m,
        tile_k: Some(tile_k),
        a_along_k,
        b_along_k,
        invocations: 256,
        interleaved: false,
    }
}

const fn registers(tile_m: usize, invocations: usize, interleaved: bool) -> GemmTiles {
    GemmTiles {
        core: GemmCore::Registers,
        tile_m,
        tile_k: None,
        a_along_k: false,
        b_along_k: false,
        invocations,
        interleaved,
    }
}

/// The CPU-driver family's configuration of the register core with `tile_m` rows.
const fn cpu(tile_m: usize) -> GemmTiles {
    registers(tile_m, GEMM_REGISTER_INVOCATIONS, false)
}

/// The GPU family's candidates: the tiled core's 64 x 64 or 32 x 128 tiles with k-steps of
/// 16 or 8; the wide core's 128 x 128 tiles (k-steps 16 or 8) and 64 x 256 (k-step 8),
/// each with A and B loaded along the tile or along k; the register core with 32 to 128
/// invocations, columns interleaved (16 x 256 ... 32 x 512 tiles).
const GPU_CANDIDATES: [GemmTiles; 20] = [
    tiled(64, 16),
    tiled(32, 16),
    tiled(64, 8),
    tiled(32, 8),
    wide(128, 16, false, false),
    wide(128, 16, true, false),
    wide(128, 16, false, true),
    wide(128, 16, true, true),
    wide(128, 8, false, false),
    wide(128, 8, true, false),
    wide(128, 8, false, true),
    wide(128, 8, true, true),
    wide(64, 8, false, false),
    wide(64, 8, true, false),
    wide(64, 8, false, true),
    wide(64, 8, true, true),
    registers(16, 32, true),
    registers(16, 64, true),
    registers(32, 64, true),
    registers(32, 128, true),
];

/// The register core's candidates in the CPU family: 1 024 outputs per workgroup as
/// 16 x 64 ... 128 x 8.
const CPU_CANDIDATES: [GemmTiles; 4] = [
    cpu(GEMM_REGISTER_BLOCK_M),
    cpu(2 * GEMM_REGISTER_BLOCK_M),
    cpu(4 * GEMM_REGISTER_BLOCK_M),
    cpu(8 * GEMM_REGISTER_BLOCK_M),
];

impl GemmTiles {
    /// The candidates of `family`'s cores, in the order [`GemmTiles::fixed`] and
    /// [`Tiling::Candidate`] index them.
    pub fn candidates(family: KernelFamily) -> &'static [GemmTiles] {
        match family {
            KernelFamily::Gpu => &GPU_CANDIDATES,
            KernelFamily::Cpu => &CPU_CANDIDATES,
        }
    }

    /// The fixed rule: the tiled core takes 32 x 128 tiles when M is at most 32 (so few
    /// output channels do not waste half a tile), 64 x 64 otherwise; the register core
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
        let outputs = match self.core {
            GemmCore::Tiled => GEMM_TILE_OUTPUTS,
            GemmCore::Wide => GEMM_WIDE_TILE_OUTPUTS,
            GemmCore::Registers => self.invocations * GEMM_REGISTER_BLOCK_M * GEMM_REGISTER_BLOCK_N,
        };
        outputs / self.tile_m
    }

    /// The pipeline constants that select it.
    pub fn constants(&self) -> Constants {
        let mut constants = vec![("TILE_M", self.tile_m as f64)];
        constants.extend(self.tile_k.map(|k| ("TILE_K", k as f64)));
        match self.core {
            GemmCore::Wide => {
                constants.push(("A_ALONG_K", f64::from(u8::from(self.a_along_k))));
                constants.push(("B_ALONG_K", f64::from(u8::from(self.b_along_k))));
            }
            GemmCore::Registers => {
                constants.push(("INVOCATIONS", self.invocations as f64));
                constants.push(("INTERLEAVED", f64::from(u8::from(self.interleaved))));
            }
            GemmCore::Tiled => {}
        }
        constants
    }

    /// It in words, as the tuner files it: "TILE_M 64, TILE_K 16"; for the wide core
    /// "wide TILE_M 128, TILE_K 16, A along k, B along n"; for the register core
    /// "TILE_M 16" (the CPU-driver family's 8 invocations) or "registers TILE_M 16, 64
    /// invocations, columns interleaved".
    pub fn label(&self) -> String {
        let along = |yes: bool, tile: &str| if yes { "k".to_string() } else { tile.to_string() };
        match (self.core, self.tile_k) {
            (GemmCore::Wide, Some(k)) => format!(
                "wide TILE_M {}, TILE_K {k}, A along {}, B along {}",
                self.tile_m,
                along(self.a_along_k, "m"),
                along(self.b_along_k, "n")
            ),
            (GemmCore::Registers, _) if self.invocations == GEMM_REGISTER_INVOCATIONS && !self.interleaved => {
                format!("TILE_M {}", self.tile_m)
            }
            (GemmCore::Registers, _) => format!(
                "registers TILE_M {}, {} invocations, columns {}",
                self.tile_m,
                self.invocations,
                if self.interleaved { "interleaved" } else { "consecutive" }
            ),
            (_, Some(k)) => format!("TILE_M {}, TILE_K {k}", self.tile_m),
            (_, None) => format!("TILE_M {}", self.tile_m),
        }
    }
}

/// A GEMM dispatch's kernel and operands, before a tile configuration is chosen.
pub(super) struct GemmDispatch<'a> {
    /// The kernel (`gemm`, `conv2d_forward`, ...).
    pub kernel: &'static Kernel,
    /// Its pipeline constants other than the tiles' (a convolution's shapes).
    pub constants: &'a [(&'static str, f64)],
    /// Its uniform, if any.
    pub uniform: Option<&'a wgpu::Buffer>,
    /// Its storage buffers.
    pub storage: &'a [&'a dyn Storage],
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
        self.gemm_op_tiles(d).map(|(op, _)| op)
    }

    /// [`Graph::gemm_op`], and the tile configuration it took.
    pub(super) fn gemm_op_tiles(&self, d: &GemmDispatch<'_>) -> Result<(Op, GemmTiles)> {
        let family = self.ctx.kernels();
        let candidates = GemmTiles::candidates(family);
        let index = match self.ctx.tiling() {
            Tiling::Candidate(i) => i % candidates.len(),
            Tiling::Tune => self.tune_gemm(d, candidates)?,
            _ => GemmTiles::fixed(family, d.m),
        };
        let tiles = candidates[index];
        let chosen = format!("{} {}x{}x{}: {}", d.kernel.name, d.m, d.n, d.slices, tiles.label());
        self.gemm_tiles.lock().map_err(|_| Error::Internal("the GEMM tile record is poisoned".into()))?.push(chosen);
        Ok((self.gemm_op_with(d, tiles, d.storage)?, tiles))
    }

    /// The tile configuration of every GEMM and convolution dispatch, in the order built:
    /// `kernel MxNxslices: TILE_M 64, TILE_K 16`. All configurations give the same bits;
    /// this says which ran (a checkpoint records it, `gemm_tiles`).
    pub fn gemm_tiles(&self) -> Vec<String> {
        self.gemm_tiles.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// [`Graph::gemm_tiles`] in a line: how they were chosen and how many dispatches took
    /// each configuration, `; ` between them (`fixed rule: TILE_M 64, TILE_K 16 x 9; TILE_M 32,
    /// TILE_K 16 x 1`).
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
        format!("{how}: {}", each.join("; "))
    }

    /// The dispatch of `d` with `tiles`, on `storage` (the dispatch's own, or scratch).
    pub(super) fn gemm_op_with(&self, d: &GemmDispatch<'_>, tiles: GemmTiles, storage: &[&dyn Storage]) -> Result<Op> {
        let mut constants = d.constants.to_vec();
        constants.extend(tiles.constants());
        let grid = (d.n.div_ceil(tiles.tile_n()) as u32, d.m.div_ceil(tiles.tile_m) as u32, d.slices as u32);
        self.gemm_kernels(tiles.core)?.op(d.kernel, &constants, d.uniform, storage, grid)
    }

    /// The kernel set whose GEMM kernels are built on `core`: the graph's own (the
    /// family's default core), or the GEMM kernels composed with the other core (built on
    /// first use, shared on the device).
    fn gemm_kernels(&self, core: GemmCore) -> Result<std::sync::Arc<KernelSet>> {
        match (core, self.ctx.kernels()) {
            (GemmCore::Wide, _) => KernelSet::for_context(&self.ctx, GEMM_KERNELS, WIDE_GEMM_ALIASES),
            (GemmCore::Registers, KernelFamily::Gpu) => {
                KernelSet::for_context(&self.ctx, GEMM_KERNELS, REGISTER_GEMM_ALIASES)
            }
            _ => Ok(self.kernels.clone()),
        }
    }

    /// The tuner's candidate for `d`: recorded, or measured now on scratch buffers of the
    /// sizes of `d`'s (so the graph's own buffers are not touched), each candidate's median
    /// of 3 runs (its first run, which compiles it, is the slowest and never the median).
    fn tune_gemm(&self, d: &GemmDispatch<'_>, candidates: &[GemmTiles]) -> Result<usize> {
        let key = format!(
            "{:?} {} {:?} m {} n {} slices {} {}",
            self.ctx.kernels(),
            d.kernel.name,
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
                d.storage.iter().map(|b| gpu::buffer(device, "tuning scratch", b.bytes(), gpu::STORAGE_RW)).collect()
            });
            let storage: Vec<&dyn Storage> = buffers.iter().map(|b| b as &dyn Storage).collect();
            // In a scope of its own: a candidate this driver cannot build fails its measuring only.
            let op = self.ctx.try_capture(|| self.gemm_op_with(d, candidates[i], &storage))?;
            let times = gpu::profile_ops(&self.ctx, &[&op], TUNING_RUNS)?;
            Ok(times.and_then(|t| t.first().map(|k| k.seconds)).unwrap_or(f64::INFINITY))
        };
        tuner.choose(&key, &labels, &mut measure)
    }
}

/// Workgroups a weight-gradient GEMM should have at least before K is split, per kernel
/// family: a CPU driver runs a few workgroups per core; a GPU needs thousands of
/// invocations per multiprocessor, and a convolution's weight gradient has few output
/// tiles (out_c x in_c·taps) over a long K (batch·pixels).
fn split_k_target(family: KernelFamily) -> usize {
    match family {
        KernelFamily::Cpu => 64,
        KernelFamily::Gpu => 1024,
    }
}
/// The shortest K a split-K slice sums.
const MIN_K_PER_SLICE: usize = 512;

/// K per slice and slices of a weight-gradient GEMM of `out_c` x `taps` outputs summed
/// over `reduce` (batch * pixels): split so that at least [`split_k_target`] workgroups
/// of 64 x 64 outputs run, no slice sums fewer than [`MIN_K_PER_SLICE`] (unless K is
/// shorter) nor more than [`MAX_K_PER_SLICE`].
pub(super) fn split_k(family: KernelFamily, out_c: usize, taps: usize, reduce: usize) -> (usize, usize) {
    let tiles = out_c.div_ceil(64) * taps.div_ceil(64);
    let wanted = split_k_target(family)
        .div_ceil(tiles)
        .clamp(1, (reduce / MIN_K_PER_SLICE).max(1))
        .max(reduce.div_ceil(MAX_K_PER_SLICE));
    let k_per_slice = reduce.div_ceil(wanted).next_multiple_of(GEMM_TILE_K);
    (k_per_slice, reduce.div_ceil(k_per_slice))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weight gradient is split so that every slice sums at most MAX_K_PER_SLICE of K and
    /// at least MIN_K_PER_SLICE (unless K is shorter), a multiple of the k-step, the slices
    /// covering K once; the GPU family into many more workgroups than the CPU family.
    #[test]
    fn weight_gradients_split_k_by_kernel_family() {
        // LeNet++'s second convolution at batch 128 (32 x 800 outputs over 128 x 28 x 28),
        // its last (128 x 3 200 over 128 x 7 x 7), and a short K.
        let shapes: [(usize, usize, usize); 3] = [(32, 800, 100_352), (128, 3200, 6272), (8, 9, 300)];
        for (out_c, taps, reduce) in shapes {
            let [cpu, gpu] = [KernelFamily::Cpu, KernelFamily::Gpu].map(|f| split_k(f, out_c, taps, reduce));
            for (k, slices) in [cpu, gpu] {
                assert_eq!(k % GEMM_TILE_K, 0);
                assert!(k <= MAX_K_PER_SLICE && (k >= MIN_K_PER_SLICE || slices == 1), "{k} x {slices}");
                assert!(k * slices >= reduce && k * (slices - 1) < reduce, "{k} x {slices} for {reduce}");
            }
            assert!(gpu.1 >= cpu.1);
        }
        // 13 tiles of 64 x 64: the CPU family splits only for MAX_K_PER_SLICE, the GPU
        // family into 79 slices (1 027 workgroups).
        assert_eq!(split_k(KernelFamily::Cpu, 32, 800, 100_352), (7728, 13));
        assert_eq!(split_k(KernelFamily::Gpu, 32, 800, 100_352), (1280, 79));
        assert_eq!(split_k(KernelFamily::Gpu, 8, 9, 300), (304, 1));
    }
}
