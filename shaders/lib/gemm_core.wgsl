// Tiled GEMM core: C[M, N] = sum_k A(m, k) * B(k, n), 64 x 64 tiles of C per workgroup of
// 16 x 16 invocations, 4 x 4 outputs each, K in steps of 16 through workgroup memory.
// wid.z selects a slice of K (split-K); each slice stores its own partial result.
// The including kernel defines the operands:
//   gemm_dims() -> vec4<u32>(M, N, K, K per slice)
//   load_a(m, k) -> f32, load_b(k, n) -> f32      (called in bounds only)
//   store_c(m, n, slice, value)                   (called in bounds only)

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [TILE_K][TILE_M]
var<workgroup> tile_b: array<f32, 1024>; // [TILE_K][TILE_N]

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let dims = gemm_dims();
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * TILE_N;
    let k_begin = wid.z * dims.w;
    let k_end = min(k_begin + dims.w, dims.z);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + TILE_K) {
        for (var t = 0u; t < 4u; t = t + 1u) {
            let idx = li + t * 256u;
            let ka = k0 + idx / TILE_M;
            let ma = m0 + idx % TILE_M;
            var va = 0.0;
            if ka < k_end && ma < dims.x {
                va = load_a(ma, ka);
            }
            tile_a[idx] = va;
            let kb = k0 + idx / TILE_N;
            let nb = n0 + idx % TILE_N;
            var vb = 0.0;
            if kb < k_end && nb < dims.y {
                vb = load_b(kb, nb);
            }
            tile_b[idx] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            let a = vec4<f32>(
                tile_a[kk * TILE_M + lid.y],
                tile_a[kk * TILE_M + lid.y + 16u],
                tile_a[kk * TILE_M + lid.y + 32u],
                tile_a[kk * TILE_M + lid.y + 48u],
            );
            let b = vec4<f32>(
                tile_b[kk * TILE_N + lid.x],
                tile_b[kk * TILE_N + lid.x + 16u],
                tile_b[kk * TILE_N + lid.x + 32u],
                tile_b[kk * TILE_N + lid.x + 48u],
            );
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + lid.y + 16u * i;
        if m < dims.x {
            let row = acc[i];
            for (var j = 0u; j < 4u; j = j + 1u) {
                let n = n0 + lid.x + 16u * j;
                if n < dims.y {
                    store_c(m, n, wid.z, row[j]);
                }
            }
        }
    }
}
