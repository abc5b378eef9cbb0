#!/usr/bin/env python3
"""Writes shaders/nn/lib/gemm_core_registers.wgsl: the register GEMM core, one statement per
multiply-add of the register block (a CPU driver's compiler neither unrolls loops nor keeps
a dynamically indexed array in registers). Run from the repository root after changing
the block shape: python3 scripts/gemm_core_registers.py [BLOCK_M BLOCK_N]"""

import sys

BLOCK_M, BLOCK_N = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) >= 3 else (16, 8)
# The default invocations per workgroup: one SIMD vector of an AVX2 CPU driver, so that a
# workgroup wastes at most one vector on the edge of a small C.
WORKGROUP = int(sys.argv[3]) if len(sys.argv) == 4 else 8
Q = BLOCK_N // 4

head = f"""#serves gemm_core
// Written by scripts/gemm_core_registers.py ({BLOCK_M} x {BLOCK_N} block); edit the script, not this file.
//
// Register GEMM core: C[M, N] = sum_k A(m, k) * B(k, n), the same interface as gemm_core
// (gemm_dims, a_row, b_col, a_step, b_step, load_a, load_b, store_c), but no workgroup
// memory and no barriers: each invocation keeps a {BLOCK_M} x {BLOCK_N} block of C in
// registers and, per k, loads {BLOCK_M} values of A and {BLOCK_N} of B straight from storage
// ({BLOCK_M + BLOCK_N} loads for {BLOCK_M * BLOCK_N} multiply-adds). The per-k index work
// (a_step, b_step) is done once per k, not once per load.
//
// Written for CPU drivers (lavapipe, SwiftShader), which run each invocation as one lane of
// a SIMD loop and pay per lane for every storage or workgroup access, so what counts is the
// number of loads per multiply-add (the tiled core pays about 44 per 128, half of them
// through workgroup memory, and two barriers per 16 k). There a workgroup is {WORKGROUP}
// invocations (one SIMD vector of lavapipe on AVX2, so a small C wastes little), each
// taking {BLOCK_N} consecutive columns. On a GPU a workgroup of 32 to 128 invocations takes
// its columns interleaved (INTERLEAVED: invocation t of a row of invocations takes columns
// t, t + across, ...), so that each load of B is one contiguous run across the invocations
// where B is contiguous along n, and the loads of A are the same address for every
// invocation of a row.
//
// A workgroup covers TILE_M rows ({BLOCK_M} per row of invocations) by TILE_N columns
// (INVOCATIONS x {BLOCK_M * BLOCK_N} outputs). Rows and columns past the edge are clamped to
// the last valid one and never stored, so the inner loop has no branch. wid.z selects a
// slice of K (split-K) as in gemm_core.

// {BLOCK_M} times a power of two, at most {BLOCK_M} x INVOCATIONS.
override TILE_M: u32 = 64u;
// Invocations of a workgroup: a power of two.
override INVOCATIONS: u32 = {WORKGROUP}u;
// Each invocation's columns interleaved with its row's other invocations, or consecutive.
override INTERLEAVED: bool = false;
const BLOCK_M: u32 = {BLOCK_M}u;
const BLOCK_N: u32 = {BLOCK_N}u;
// The longest run of k one loop walks: Mesa before 25.0 ends any shader loop after
// 65 535 iterations.
const K_RUN: u32 = 4096u;

"""
L = []
a = L.append
a("@compute @workgroup_size(INVOCATIONS)")
a("fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {")
a("    let tile_n = INVOCATIONS * BLOCK_M * BLOCK_N / TILE_M;")
a("    let dims = gemm_dims();")
a("    let across = tile_n / BLOCK_N;")
a("    // Consecutive invocations take consecutive columns (interleaved) or column blocks. When")
a("    // a workgroup is one block of rows (TILE_M == BLOCK_M), m0 depends on the workgroup")
a("    // alone: every load of A is then the same for all invocations.")
a("    let m0 = wid.y * TILE_M + select(0u, (li / across) * BLOCK_M, TILE_M > BLOCK_M);")
a("    let t = li % across;")
a("    let n0 = wid.x * tile_n + select(t * BLOCK_N, t, INTERLEAVED);")
a("    let n_step = select(1u, across, INTERLEAVED);")
a("    let k_begin = wid.z * dims.w;")
a("    let k_end = min(k_begin + dims.w, dims.z);")
a("    let last_m = dims.x - 1u;")
a("    let last_n = dims.y - 1u;")
for i in range(BLOCK_M):
    a(f"    let r{i} = a_row(min(m0 + {i}u, last_m));")
for j in range(BLOCK_N):
    a(f"    let c{j} = b_col(min(n0 + {j}u * n_step, last_n));")
a(f"    // Row i of the block: acc{{i}}_0 .. acc{{i}}_{Q - 1} (four columns each).")
for i in range(BLOCK_M):
    a("    " + " ".join(f"var acc{i}_{q} = vec4<f32>(0.0);" for q in range(Q)))
a("    for (var run = k_begin; run < k_end; run = run + K_RUN) {")
a("        let run_end = min(run + K_RUN, k_end);")
a("        for (var k = run; k < run_end; k = k + 1u) {")
a("            let sa = a_step(k);")
a("            let sb = b_step(k);")
for q in range(Q):
    args = ", ".join(f"load_b(sb, c{4 * q + t})" for t in range(4))
    a(f"            let b{q} = vec4<f32>({args});")
for i in range(BLOCK_M):
    a(f"            let a{i} = vec4<f32>(load_a(r{i}, sa));")
    for q in range(Q):
        a(f"            acc{i}_{q} = acc{i}_{q} + a{i} * b{q};")
a("        }")
a("    }")
for i in range(BLOCK_M):
    accs = ", ".join(f"acc{i}_{q}" for q in range(Q))
    a(f"    store_row(m0 + {i}u, n0, n_step, wid.z, dims, array<vec4<f32>, {Q}>({accs}));")
a("}")
a("")
a("// Stores the in-bounds part of one row of the block (columns n0, n0 + n_step, ...).")
a(f"fn store_row(m: u32, n0: u32, n_step: u32, slice: u32, dims: vec4<u32>, row: array<vec4<f32>, {Q}>) {{")
a("    if m >= dims.x {")
a("        return;")
a("    }")
a("    for (var j = 0u; j < BLOCK_N; j = j + 1u) {")
a("        let n = n0 + j * n_step;")
a("        if n < dims.y {")
a("            store_c(m, n, slice, row[j / 4u][j % 4u]);")
a("        }")
a("    }")
a("}")
open("shaders/nn/lib/gemm_core_registers.wgsl", "w").write(head + "\n".join(L) + "\n")
