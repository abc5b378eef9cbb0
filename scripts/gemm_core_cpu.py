#!/usr/bin/env python3
"""Writes shaders/nn/lib/gemm_core_cpu.wgsl: the CPU-driver GEMM core, one statement per
multiply-add of the register block (a CPU driver's compiler neither unrolls loops nor keeps
a dynamically indexed array in registers). Run from the repository root after changing
the block shape: python3 scripts/gemm_core_cpu.py [BLOCK_M BLOCK_N]"""

import sys

BLOCK_M, BLOCK_N = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) >= 3 else (16, 8)
# Invocations per workgroup: one SIMD vector of an AVX2 CPU driver, so that a workgroup
# wastes at most one vector on the edge of a small C.
WORKGROUP = int(sys.argv[3]) if len(sys.argv) == 4 else 8
Q = BLOCK_N // 4
TILE_OUTPUTS = WORKGROUP * BLOCK_M * BLOCK_N

head = f"""// Written by scripts/gemm_core_cpu.py ({BLOCK_M} x {BLOCK_N} block); edit the script, not this file.
//
// GEMM core for CPU drivers (lavapipe, SwiftShader): C[M, N] = sum_k A(m, k) * B(k, n),
// the same interface as gemm_core (gemm_dims, a_row, b_col, a_step, b_step, load_a,
// load_b, store_c), but no workgroup memory and no barriers. A CPU driver runs each
// invocation as one lane of a SIMD loop and pays per lane for every storage or workgroup
// access, so what counts is the number of loads per multiply-add: each invocation keeps a
// {BLOCK_M} x {BLOCK_N} block of C in registers and, per k, loads {BLOCK_M} values of A and
// {BLOCK_N} of B straight from storage ({BLOCK_M + BLOCK_N} loads for {BLOCK_M * BLOCK_N}
// multiply-adds; the tiled core pays about 44 per 128, half of them through workgroup
// memory, and two barriers per 16 k). The per-k index work (a_step, b_step) is done once
// per k, not once per load.
//
// A workgroup of {WORKGROUP} invocations (one SIMD vector of lavapipe on AVX2, so a small C
// wastes little) covers TILE_M rows ({BLOCK_M} per invocation row) by TILE_OUTPUTS / TILE_M
// columns. Rows and columns past the edge are clamped to the last
// valid one and never stored, so the inner loop has no branch. wid.z selects a slice of K
// (split-K) as in gemm_core.

// {BLOCK_M} times a power of two, at most {BLOCK_M * WORKGROUP}.
override TILE_M: u32 = 64u;
// Outputs of one workgroup: TILE_M x TILE_N.
const TILE_OUTPUTS: u32 = {TILE_OUTPUTS}u;
const BLOCK_M: u32 = {BLOCK_M}u;
const BLOCK_N: u32 = {BLOCK_N}u;
// The longest run of k one loop walks: Mesa before 25.0 ends any shader loop after
// 65 535 iterations.
const K_RUN: u32 = 4096u;

"""
L = []
a = L.append
a(f"@compute @workgroup_size({WORKGROUP})")
a("fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {")
a("    let tile_n = TILE_OUTPUTS / TILE_M;")
a("    let dims = gemm_dims();")
a("    let across = tile_n / BLOCK_N;")
a("    // Consecutive invocations take consecutive column blocks. When a workgroup is one")
a("    // block of rows (TILE_M == BLOCK_M), m0 depends on the workgroup alone: every load of A")
a("    // is then the same for all lanes, and a CPU driver loads it once for the vector.")
a("    let m0 = wid.y * TILE_M + select(0u, (li / across) * BLOCK_M, TILE_M > BLOCK_M);")
a("    let n0 = wid.x * tile_n + (li % across) * BLOCK_N;")
a("    let k_begin = wid.z * dims.w;")
a("    let k_end = min(k_begin + dims.w, dims.z);")
a("    let last_m = dims.x - 1u;")
a("    let last_n = dims.y - 1u;")
for i in range(BLOCK_M):
    a(f"    let r{i} = a_row(min(m0 + {i}u, last_m));")
for j in range(BLOCK_N):
    a(f"    let c{j} = b_col(min(n0 + {j}u, last_n));")
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
    a(f"    store_row(m0 + {i}u, n0, wid.z, dims, array<vec4<f32>, {Q}>({accs}));")
a("}")
a("")
a("// Stores the in-bounds part of one row of the block.")
a(f"fn store_row(m: u32, n0: u32, slice: u32, dims: vec4<u32>, row: array<vec4<f32>, {Q}>) {{")
a("    if m >= dims.x {")
a("        return;")
a("    }")
a("    for (var j = 0u; j < BLOCK_N; j = j + 1u) {")
a("        if n0 + j < dims.y {")
a("            store_c(m, n0 + j, slice, row[j / 4u][j % 4u]);")
a("        }")
a("    }")
a("}")
open("shaders/nn/lib/gemm_core_cpu.wgsl", "w").write(head + "\n".join(L) + "\n")
