#serves gemm_core
// Written by scripts/gemm_core_registers.py (16 x 8 block); edit the script, not this file.
//
// Register GEMM core: C[M, N] = sum_k A(m, k) * B(k, n), the same interface as gemm_core
// (gemm_dims, a_row, b_col, a_step, b_step, load_a, load_b, store_c), but no workgroup
// memory and no barriers: each invocation keeps a 16 x 8 block of C in
// registers and, per k, loads 16 values of A and 8 of B straight from storage
// (24 loads for 128 multiply-adds). The per-k index work
// (a_step, b_step) is done once per k, not once per load.
//
// Written for CPU drivers (lavapipe, SwiftShader), which run each invocation as one lane of
// a SIMD loop and pay per lane for every storage or workgroup access, so what counts is the
// number of loads per multiply-add (the tiled core pays about 44 per 128, half of them
// through workgroup memory, and two barriers per 16 k). There a workgroup is 8
// invocations (one SIMD vector of lavapipe on AVX2, so a small C wastes little), each
// taking 8 consecutive columns. On a GPU a workgroup of 32 to 128 invocations takes
// its columns interleaved (INTERLEAVED: invocation t of a row of invocations takes columns
// t, t + across, ...), so that each load of B is one contiguous run across the invocations
// where B is contiguous along n, and the loads of A are the same address for every
// invocation of a row.
//
// A workgroup covers TILE_M rows (16 per row of invocations) by TILE_N columns
// (INVOCATIONS x 128 outputs). Rows and columns past the edge are clamped to
// the last valid one and never stored, so the inner loop has no branch. wid.z selects a
// slice of K (split-K) as in gemm_core.

// 16 times a power of two, at most 16 x INVOCATIONS.
override TILE_M: u32 = 64u;
// Invocations of a workgroup: a power of two.
override INVOCATIONS: u32 = 8u;
// Each invocation's columns interleaved with its row's other invocations, or consecutive.
override INTERLEAVED: bool = false;
const BLOCK_M: u32 = 16u;
const BLOCK_N: u32 = 8u;
// The longest run of k one loop walks: Mesa before 25.0 ends any shader loop after
// 65 535 iterations.
const K_RUN: u32 = 4096u;

@compute @workgroup_size(INVOCATIONS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tile_n = INVOCATIONS * BLOCK_M * BLOCK_N / TILE_M;
    let dims = gemm_dims();
    let across = tile_n / BLOCK_N;
    // Consecutive invocations take consecutive columns (interleaved) or column blocks. When
    // a workgroup is one block of rows (TILE_M == BLOCK_M), m0 depends on the workgroup
    // alone: every load of A is then the same for all invocations.
    let m0 = wid.y * TILE_M + select(0u, (li / across) * BLOCK_M, TILE_M > BLOCK_M);
    let t = li % across;
    let n0 = wid.x * tile_n + select(t * BLOCK_N, t, INTERLEAVED);
    let n_step = select(1u, across, INTERLEAVED);
    let k_begin = wid.z * dims.w;
    let k_end = min(k_begin + dims.w, dims.z);
    let last_m = dims.x - 1u;
    let last_n = dims.y - 1u;
    let r0 = a_row(min(m0 + 0u, last_m));
    let r1 = a_row(min(m0 + 1u, last_m));
    let r2 = a_row(min(m0 + 2u, last_m));
    let r3 = a_row(min(m0 + 3u, last_m));
    let r4 = a_row(min(m0 + 4u, last_m));
    let r5 = a_row(min(m0 + 5u, last_m));
    let r6 = a_row(min(m0 + 6u, last_m));
    let r7 = a_row(min(m0 + 7u, last_m));
    let r8 = a_row(min(m0 + 8u, last_m));
    let r9 = a_row(min(m0 + 9u, last_m));
    let r10 = a_row(min(m0 + 10u, last_m));
    let r11 = a_row(min(m0 + 11u, last_m));
    let r12 = a_row(min(m0 + 12u, last_m));
    let r13 = a_row(min(m0 + 13u, last_m));
    let r14 = a_row(min(m0 + 14u, last_m));
    let r15 = a_row(min(m0 + 15u, last_m));
    let c0 = b_col(min(n0 + 0u * n_step, last_n));
    let c1 = b_col(min(n0 + 1u * n_step, last_n));
    let c2 = b_col(min(n0 + 2u * n_step, last_n));
    let c3 = b_col(min(n0 + 3u * n_step, last_n));
    let c4 = b_col(min(n0 + 4u * n_step, last_n));
    let c5 = b_col(min(n0 + 5u * n_step, last_n));
    let c6 = b_col(min(n0 + 6u * n_step, last_n));
    let c7 = b_col(min(n0 + 7u * n_step, last_n));
    // Row i of the block: acc{i}_0 .. acc{i}_1 (four columns each).
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0); var acc8_1 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0); var acc9_1 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0); var acc13_1 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0); var acc14_1 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0); var acc15_1 = vec4<f32>(0.0);
    for (var run = k_begin; run < k_end; run = run + K_RUN) {
        let run_end = min(run + K_RUN, k_end);
        for (var k = run; k < run_end; k = k + 1u) {
            let sa = a_step(k);
            let sb = b_step(k);
            let b0 = vec4<f32>(load_b(sb, c0), load_b(sb, c1), load_b(sb, c2), load_b(sb, c3));
            let b1 = vec4<f32>(load_b(sb, c4), load_b(sb, c5), load_b(sb, c6), load_b(sb, c7));
            let a0 = vec4<f32>(load_a(r0, sa));
            acc0_0 = acc0_0 + a0 * b0;
            acc0_1 = acc0_1 + a0 * b1;
            let a1 = vec4<f32>(load_a(r1, sa));
            acc1_0 = acc1_0 + a1 * b0;
            acc1_1 = acc1_1 + a1 * b1;
            let a2 = vec4<f32>(load_a(r2, sa));
            acc2_0 = acc2_0 + a2 * b0;
            acc2_1 = acc2_1 + a2 * b1;
            let a3 = vec4<f32>(load_a(r3, sa));
            acc3_0 = acc3_0 + a3 * b0;
            acc3_1 = acc3_1 + a3 * b1;
            let a4 = vec4<f32>(load_a(r4, sa));
            acc4_0 = acc4_0 + a4 * b0;
            acc4_1 = acc4_1 + a4 * b1;
            let a5 = vec4<f32>(load_a(r5, sa));
            acc5_0 = acc5_0 + a5 * b0;
            acc5_1 = acc5_1 + a5 * b1;
            let a6 = vec4<f32>(load_a(r6, sa));
            acc6_0 = acc6_0 + a6 * b0;
            acc6_1 = acc6_1 + a6 * b1;
            let a7 = vec4<f32>(load_a(r7, sa));
            acc7_0 = acc7_0 + a7 * b0;
            acc7_1 = acc7_1 + a7 * b1;
            let a8 = vec4<f32>(load_a(r8, sa));
            acc8_0 = acc8_0 + a8 * b0;
            acc8_1 = acc8_1 + a8 * b1;
            let a9 = vec4<f32>(load_a(r9, sa));
            acc9_0 = acc9_0 + a9 * b0;
            acc9_1 = acc9_1 + a9 * b1;
            let a10 = vec4<f32>(load_a(r10, sa));
            acc10_0 = acc10_0 + a10 * b0;
            acc10_1 = acc10_1 + a10 * b1;
            let a11 = vec4<f32>(load_a(r11, sa));
            acc11_0 = acc11_0 + a11 * b0;
            acc11_1 = acc11_1 + a11 * b1;
            let a12 = vec4<f32>(load_a(r12, sa));
            acc12_0 = acc12_0 + a12 * b0;
            acc12_1 = acc12_1 + a12 * b1;
            let a13 = vec4<f32>(load_a(r13, sa));
            acc13_0 = acc13_0 + a13 * b0;
            acc13_1 = acc13_1 + a13 * b1;
            let a14 = vec4<f32>(load_a(r14, sa));
            acc14_0 = acc14_0 + a14 * b0;
            acc14_1 = acc14_1 + a14 * b1;
            let a15 = vec4<f32>(load_a(r15, sa));
            acc15_0 = acc15_0 + a15 * b0;
            acc15_1 = acc15_1 + a15 * b1;
        }
    }
    store_row(m0 + 0u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc0_0, acc0_1));
    store_row(m0 + 1u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc1_0, acc1_1));
    store_row(m0 + 2u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc2_0, acc2_1));
    store_row(m0 + 3u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc3_0, acc3_1));
    store_row(m0 + 4u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc4_0, acc4_1));
    store_row(m0 + 5u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc5_0, acc5_1));
    store_row(m0 + 6u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc6_0, acc6_1));
    store_row(m0 + 7u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc7_0, acc7_1));
    store_row(m0 + 8u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc8_0, acc8_1));
    store_row(m0 + 9u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc9_0, acc9_1));
    store_row(m0 + 10u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc10_0, acc10_1));
    store_row(m0 + 11u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc11_0, acc11_1));
    store_row(m0 + 12u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc12_0, acc12_1));
    store_row(m0 + 13u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc13_0, acc13_1));
    store_row(m0 + 14u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc14_0, acc14_1));
    store_row(m0 + 15u, n0, n_step, wid.z, dims, array<vec4<f32>, 2>(acc15_0, acc15_1));
}

// Stores the in-bounds part of one row of the block (columns n0, n0 + n_step, ...).
fn store_row(m: u32, n0: u32, n_step: u32, slice: u32, dims: vec4<u32>, row: array<vec4<f32>, 2>) {
    if m >= dims.x {
        return;
    }
    for (var j = 0u; j < BLOCK_N; j = j + 1u) {
        let n = n0 + j * n_step;
        if n < dims.y {
            store_c(m, n, slice, row[j / 4u][j % 4u]);
        }
    }
}
