// Tiled GEMM core: C[M, N] = sum_k A(m, k) * B(k, n). A workgroup of 64 invocations
// computes a TILE_M x TILE_N tile of C (64 x 64, or 32 x 128), each invocation an 8 x 8
// block (16 vec4 accumulators); K advances in steps of TILE_K through workgroup memory
// read as vec4s. wid.z selects a slice of K (split-K); each slice stores
// its own partial result. Invocation i loads row m0 + i of the A tile and columns n0 + i
// (and n0 + 64 + i) of the B tile, so per-row and per-column index work is done once per
// invocation and tile rather than once per load.
// The including kernel defines the operands:
//   gemm_dims() -> vec4<u32>(M, N, K, K per slice)
//   struct RowA, a_row(m) -> RowA; struct ColB, b_col(n) -> ColB     (per row / column)
//   struct StepA, a_step(k) -> StepA; struct StepB, b_step(k) -> StepB (per k)
//   load_a(row, step) -> f32, load_b(step, col) -> f32  (called in bounds only)
//   store_c(m, n, slice, value)                         (called in bounds only)

#import gemm_block

// 64 or 32.
override TILE_M: u32 = 64u;
// Outputs of one workgroup: TILE_M x TILE_N.
const TILE_OUTPUTS: u32 = 4096u;
// The k-step through workgroup memory: 8 or 16 (MAX_TILE_K). Every output still sums its
// k in order, one fma after another, so the results do not depend on it (nor on TILE_M).
override TILE_K: u32 = 16u;
const MAX_TILE_K: u32 = 16u;

var<workgroup> tile_a: array<vec4<f32>, MAX_TILE_K * 64u / 4u>; // [TILE_K][TILE_M / 4]
var<workgroup> tile_b: array<vec4<f32>, MAX_TILE_K * 128u / 4u>; // [TILE_K][TILE_N / 4]

fn load_tile_b(k: u32, k_end: u32, col: ColB, ok: bool) -> f32 {
    if k < k_end && ok {
        return load_b(b_step(k), col);
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tile_n = TILE_OUTPUTS / TILE_M;
    let tm4 = TILE_M / 4u;
    let tn4 = tile_n / 4u;
    let dims = gemm_dims();
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * tile_n;
    let k_begin = wid.z * dims.w;
    let k_end = min(k_begin + dims.w, dims.z);
    // The 8 x 8 block of this invocation.
    let ty = li / (tile_n / 8u);
    let tx = li % (tile_n / 8u);
    // What this invocation loads: A row li (if li < TILE_M), B columns li and 64 + li.
    let ma = m0 + li;
    let a_ok = li < TILE_M && ma < dims.x;
    let row = a_row(min(ma, dims.x - 1u));
    let nb0 = n0 + li;
    let nb1 = n0 + 64u + li;
    let b0_ok = nb0 < dims.y;
    let b1_ok = tile_n > 64u && nb1 < dims.y;
    let col0 = b_col(min(nb0, dims.y - 1u));
    let col1 = b_col(min(nb1, dims.y - 1u));
    var acc: array<vec4<f32>, 16>;
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + TILE_K) {
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            let k = k0 + kk;
            if li < TILE_M {
                var va = 0.0;
                if k < k_end && a_ok {
                    va = load_a(row, a_step(k));
                }
                tile_a[kk * tm4 + li / 4u][li % 4u] = va;
            }
            tile_b[kk * tn4 + li / 4u][li % 4u] = load_tile_b(k, k_end, col0, b0_ok);
            if tile_n > 64u {
                tile_b[kk * tn4 + 16u + li / 4u][li % 4u] = load_tile_b(k, k_end, col1, b1_ok);
            }
        }
        workgroupBarrier();
        block_fma_tiles(&acc, tm4, tn4, ty, tx);
        workgroupBarrier();
    }
    block_store(&acc, m0 + 8u * ty, n0 + 8u * tx, wid.z, dims);
}
