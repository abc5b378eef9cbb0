//! The shared ops: the dispatches that layers, the loss heads and search build from, on any
//! graph (a training or an inference one). GEMM (split-K over long reductions, with its
//! fixed-order slice sum), row-wise L2 normalisation and its gradient, and column sums of a
//! row-major matrix.

use super::graph::{Graph, MAX_K_PER_SLICE};
use super::kernels::{ElementParams, GemmParams, ReduceParams, RowParams};
use super::tiles::GemmDispatch;
use crate::gpu::shaders::kernel;
use crate::gpu::{self, Op, Storage};
use crate::Result;

impl Graph {
    /// The dispatches of C[M, N] = A B^T for row-major A [M, K] and B [N, K] into `out`
    /// (cosine scores of unit rows against unit rows, say).
    pub(crate) fn gemm_abt(
        &mut self,
        (m, n, k): (usize, usize, usize),
        a: &dyn Storage,
        b: &dyn Storage,
        out: &dyn Storage,
    ) -> Result<Vec<Op>> {
        let dummy = self.dummy.clone();
        self.dense_gemm((m, n, k), [k, 1, 1, k], 0, [a, b, &dummy], out)
    }

    /// The dispatches of C[M, N] = A B (+ bias) with `strides` (a_m, a_k, b_k, b_n) into
    /// `out`: one GEMM, or for K over [`MAX_K_PER_SLICE`] a split-K GEMM into a partial
    /// buffer and the fixed-order `sum_slices`.
    pub(super) fn dense_gemm(
        &mut self,
        (m, n, k): (usize, usize, usize),
        strides: [usize; 4],
        flags: u32,
        [a, b, bias]: [&dyn Storage; 3],
        out: &dyn Storage,
    ) -> Result<Vec<Op>> {
        let slices = k.div_ceil(MAX_K_PER_SLICE).max(1);
        let params = GemmParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_stride_m: strides[0] as u32,
            a_stride_k: strides[1] as u32,
            b_stride_k: strides[2] as u32,
            b_stride_n: strides[3] as u32,
            flags,
            k_per_slice: k.div_ceil(slices) as u32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        };
        let u = self.uniform(&params);
        let detail = format!("k {k} strides {strides:?} flags {flags}");
        let gemm = |storage: &[&dyn Storage]| {
            let uniform = Some(&u);
            self.gemm_op(&GemmDispatch {
                kernel: &kernel::GEMM,
                constants: &[],
                uniform,
                storage,
                m,
                n,
                slices,
                detail: &detail,
            })
        };
        if slices == 1 {
            return Ok(vec![gemm(&[a, b, bias, out])?]);
        }
        let partial = gpu::buffer(self.ctx.device(), "split-k partials", 4 * (slices * m * n) as u64, gpu::STORAGE_RW);
        let slices_uniform =
            self.uniform(&ElementParams { len: (m * n) as u32, channels: slices as u32, pixels: 1, _pad: 0 });
        Ok(vec![
            gemm(&[a, b, bias, &partial])?,
            self.op(&kernel::SUM_SLICES, &slices_uniform, &[&partial, out], self.grid1(m * n))?,
        ])
    }

    /// The dispatches of y = x / ‖x‖ over `rows` rows of `dim` (the norms kept), and with
    /// `grads` = (dx, dy) of dx = (dy − y (y · dy)) / ‖x‖.
    pub(super) fn l2norm_ops(
        &self,
        rows: usize,
        dim: usize,
        [x, y]: [&dyn Storage; 2],
        grads: Option<(&dyn Storage, &dyn Storage)>,
    ) -> Result<(Op, Option<Op>)> {
        let u = self.uniform(&RowParams { rows: rows as u32, dim: dim as u32, eps: 1e-10, _pad: 0 });
        let norms = gpu::buffer(self.ctx.device(), "l2 norms", 4 * rows as u64, gpu::STORAGE_RW);
        let fwd = self.op(&kernel::L2NORM_FORWARD, &u, &[x, y, &norms], self.grid1(rows))?;
        let back = grads
            .map(|(dx, dy)| self.op(&kernel::L2NORM_BACKWARD, &u, &[y, &norms, dy, dx], self.grid1(rows)))
            .transpose()?;
        Ok((fwd, back))
    }

    /// The dispatch that writes `scale` times the sum over the `rows` rows of the row-major
    /// [rows, cols] `input` into `out` at value `out_offset`, column by column (a batch's
    /// mean loss and accuracy from per-row statistics).
    pub(super) fn column_sums(
        &self,
        (rows, cols): (usize, usize),
        input: &dyn Storage,
        out: &dyn Storage,
        out_offset: usize,
        scale: f32,
    ) -> Result<Op> {
        let params = ReduceParams { rows: rows as u32, cols: cols as u32, out_offset: out_offset as u32, scale };
        self.op(&kernel::REDUCE_ROWS, &self.uniform(&params), &[input, out], (cols as u32, 1, 1))
    }
}
