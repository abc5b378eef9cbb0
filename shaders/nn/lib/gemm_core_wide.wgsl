#serves gemm_core
// Wide tiled GEMM core: C[M, N] = sum_k A(m, k) * B(k, n), the operand interface of
// gemm_core (the including kernel defines gemm_dims, RowA/a_row, ColB/b_col, StepA/a_step,
// StepB/b_step, load_a, load_b, store_c). A workgroup of 256 invocations computes a
// TILE_M x TILE_N tile of C (128 x 128, or 64 x 256), each invocation an 8 x 8 block
// (16 vec4 accumulators); K advances in steps of TILE_K through workgroup memory. wid.z
// selects a slice of K (split-K). Every output sums its k in order, one fma after another,
// as gemm_core does, so all configurations of both cores give the same bits.
//
// How a k-step's tiles are loaded is chosen per operand: along the tile (consecutive
// invocations load consecutive rows of A / columns of B at one k: coalesced where the
// operand is contiguous along m / n) or along k (consecutive invocations load consecutive
// k of one row / column: coalesced where it is contiguous along k). Each invocation makes
// at most MAX_LOADS loads of each operand per k-step; the rows and columns it loads are
// worked out once.

#import gemm_block

// 128 or 64.
override TILE_M: u32 = 128u;
// Outputs of one workgroup: TILE_M x TILE_N.
const TILE_OUTPUTS: u32 = 16384u;
// 16 or 8 (8 only with TILE_M 64: a 16 x 256 tile of B does not fit workgroup memory).
override TILE_K: u32 = 16u;
const MAX_TILE_K: u32 = 16u;
// Load A (B) along k rather than along the tile.
override A_ALONG_K: bool = false;
override B_ALONG_K: bool = false;
const INVOCATIONS: u32 = 256u;
const MAX_LOADS: u32 = 8u;

var<workgroup> tile_a: array<vec4<f32>, 512u>; // [TILE_K][TILE_M / 4], 2 048 values at most
var<workgroup> tile_b: array<vec4<f32>, 512u>; // [TILE_K][TILE_N / 4]

// Load j of this invocation: (tile row or column, kk). Along k, kk is the same for every j.
fn load_slot(li: u32, j: u32, extent: u32, along_k: bool) -> vec2<u32> {
    if along_k {
        return vec2<u32>(li / TILE_K + (INVOCATIONS / TILE_K) * j, li % TILE_K);
    }
    return vec2<u32>(li % extent, li / extent + (INVOCATIONS / extent) * j);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tile_n = TILE_OUTPUTS / TILE_M;
    let tm4 = TILE_M / 4u;
    let tn4 = tile_n / 4u;
    let a_loads = TILE_M * TILE_K / INVOCATIONS;
    let b_loads = tile_n * TILE_K / INVOCATIONS;
    let dims = gemm_dims();
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * tile_n;
    let k_begin = wid.z * dims.w;
    let k_end = min(k_begin + dims.w, dims.z);
    // The 8 x 8 block of this invocation.
    let ty = li / (tile_n / 8u);
    let tx = li % (tile_n / 8u);
    // The rows of A and columns of B this invocation loads (along the tile the same one
    // for every j).
    var rows: array<RowA, MAX_LOADS>;
    var rows_ok: array<bool, MAX_LOADS>;
    var cols: array<ColB, MAX_LOADS>;
    var cols_ok: array<bool, MAX_LOADS>;
    for (var j = 0u; j < MAX_LOADS; j = j + 1u) {
        if j < a_loads {
            let m = m0 + load_slot(li, j, TILE_M, A_ALONG_K).x;
            rows[j] = a_row(min(m, dims.x - 1u));
            rows_ok[j] = m < dims.x;
        }
        if j < b_loads {
            let n = n0 + load_slot(li, j, tile_n, B_ALONG_K).x;
            cols[j] = b_col(min(n, dims.y - 1u));
            cols_ok[j] = n < dims.y;
        }
    }
    var acc: array<vec4<f32>, 16>;
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + TILE_K) {
        // Along k every load of an operand has the same k: its step is worked out once
        // (unused, and dropped by the compiler, along the tile).
        let k_along = min(k0 + li % TILE_K, k_end - 1u);
        let a_along = a_step(k_along);
        let b_along = b_step(k_along);
        for (var j = 0u; j < MAX_LOADS; j = j + 1u) {
            if j < a_loads {
                let slot = load_slot(li, j, TILE_M, A_ALONG_K);
                let k = k0 + slot.y;
                var v = 0.0;
                if k < k_end && rows_ok[j] {
                    var step = a_along;
                    if !A_ALONG_K {
                        step = a_step(k);
                    }
                    v = load_a(rows[j], step);
                }
                tile_a[slot.y * tm4 + slot.x / 4u][slot.x % 4u] = v;
            }
            if j < b_loads {
                let slot = load_slot(li, j, tile_n, B_ALONG_K);
                let k = k0 + slot.y;
                var v = 0.0;
                if k < k_end && cols_ok[j] {
                    var step = b_along;
                    if !B_ALONG_K {
                        step = b_step(k);
                    }
                    v = load_b(step, cols[j]);
                }
                tile_b[slot.y * tn4 + slot.x / 4u][slot.x % 4u] = v;
            }
        }
        workgroupBarrier();
        block_fma_tiles(&acc, tm4, tn4, ty, tx);
        workgroupBarrier();
    }
    block_store(&acc, m0 + 8u * ty, n0 + 8u * tx, wid.z, dims);
}
