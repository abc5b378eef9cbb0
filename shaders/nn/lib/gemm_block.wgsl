// The 8 x 8 block of C one invocation of a tiled GEMM core holds in 16 vec4 accumulators
// (row i: acc[2i], columns 0-3, and acc[2i + 1], columns 4-7): one k's update, a k-step's
// updates from the core's workgroup tiles, and the store of the block's in-bounds outputs
// through the including kernel's store_c.

// acc += (a0, a1) (b0, b1)^T: the block's rows are a0.xyzw, a1.xyzw; its columns b0, b1.
fn block_fma(
    acc: ptr<function, array<vec4<f32>, 16>>,
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
) {
    (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(a0.x), b1, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(a0.y), b0, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(a0.y), b1, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(a0.z), b0, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(a0.z), b1, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(a0.w), b0, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(a0.w), b1, (*acc)[7]);
    (*acc)[8] = fma(vec4<f32>(a1.x), b0, (*acc)[8]);
    (*acc)[9] = fma(vec4<f32>(a1.x), b1, (*acc)[9]);
    (*acc)[10] = fma(vec4<f32>(a1.y), b0, (*acc)[10]);
    (*acc)[11] = fma(vec4<f32>(a1.y), b1, (*acc)[11]);
    (*acc)[12] = fma(vec4<f32>(a1.z), b0, (*acc)[12]);
    (*acc)[13] = fma(vec4<f32>(a1.z), b1, (*acc)[13]);
    (*acc)[14] = fma(vec4<f32>(a1.w), b0, (*acc)[14]);
    (*acc)[15] = fma(vec4<f32>(a1.w), b1, (*acc)[15]);
}

// acc += this k-step's products from the including core's workgroup tiles (TILE_K rows of
// vec4s: tile_a[kk * tm4 + ...] holds A's tile rows, tile_b[kk * tn4 + ...] B's columns),
// for the block at row 8 ty and column 8 tx of the tile, k in order.
fn block_fma_tiles(acc: ptr<function, array<vec4<f32>, 16>>, tm4: u32, tn4: u32, ty: u32, tx: u32) {
    for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
        let a0 = tile_a[kk * tm4 + 2u * ty];
        let a1 = tile_a[kk * tm4 + 2u * ty + 1u];
        let b0 = tile_b[kk * tn4 + 2u * tx];
        let b1 = tile_b[kk * tn4 + 2u * tx + 1u];
        block_fma(acc, a0, a1, b0, b1);
    }
}

// Stores the block whose first output is (m, n) of split-K slice `slice`; dims as
// gemm_dims() gives them.
fn block_store(acc: ptr<function, array<vec4<f32>, 16>>, m: u32, n: u32, slice: u32, dims: vec4<u32>) {
    for (var i = 0u; i < 8u; i = i + 1u) {
        if m + i < dims.x {
            for (var j = 0u; j < 8u; j = j + 1u) {
                if n + j < dims.y {
                    store_c(m + i, n + j, slice, (*acc)[2u * i + j / 4u][j % 4u]);
                }
            }
        }
    }
}
