// Dense GEMM with strided operands (so either may be transposed), split over K when K is
// long:
//   C[m, n] = sum_k A[m*a_sm + k*a_sk] * B[k*b_sk + n*b_sn] (+ bias[n]) (+ C[m, n])
// Used by Linear forward (X W^T + b), backward data (dY W) and weight gradient (dY^T X).

#import gemm_core

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    a_stride_m: u32,
    a_stride_k: u32,
    b_stride_k: u32,
    b_stride_n: u32,
    // bit 0: add bias[n]; bit 1: add to the existing C.
    flags: u32,
    // K per split-K slice: slice z sums k in [z * k_per_slice, (z + 1) * k_per_slice) and
    // writes its own M x N block of C (sum_slices adds the blocks); k when not split.
    k_per_slice: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> gemm: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn gemm_dims() -> vec4<u32> {
    return vec4<u32>(gemm.m, gemm.n, gemm.k, gemm.k_per_slice);
}

struct RowA {
    base: u32,
}

struct ColB {
    base: u32,
}

struct StepA {
    offset: u32,
}

struct StepB {
    offset: u32,
}

fn a_row(m: u32) -> RowA {
    return RowA(m * gemm.a_stride_m);
}

fn b_col(n: u32) -> ColB {
    return ColB(n * gemm.b_stride_n);
}

fn a_step(k: u32) -> StepA {
    return StepA(k * gemm.a_stride_k);
}

fn b_step(k: u32) -> StepB {
    return StepB(k * gemm.b_stride_k);
}

fn load_a(row: RowA, step: StepA) -> f32 {
    return a[row.base + step.offset];
}

fn load_b(step: StepB, col: ColB) -> f32 {
    return b[step.offset + col.base];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    var v = value;
    if (gemm.flags & 1u) != 0u && slice == 0u {
        v = v + bias[n];
    }
    let idx = (slice * gemm.m + m) * gemm.n + n;
    if (gemm.flags & 2u) != 0u {
        v = v + c[idx];
    }
    c[idx] = v;
}
