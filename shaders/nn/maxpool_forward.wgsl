// Max pooling: out = max over the window; the flat input index of the maximum (first on
// ties) is kept for the backward pass.

#import common
#import pool_params

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if o >= pool.batch * pool.channels * pool.out_h * pool.out_w {
        return;
    }
    let ox = o % pool.out_w;
    let oy = (o / pool.out_w) % pool.out_h;
    let plane = o / (pool.out_w * pool.out_h);
    let base = plane * pool.in_h * pool.in_w;
    var best = base + oy * pool.stride * pool.in_w + ox * pool.stride;
    var best_v = input[best];
    for (var ky = 0u; ky < pool.kernel; ky = ky + 1u) {
        for (var kx = 0u; kx < pool.kernel; kx = kx + 1u) {
            let idx = base + (oy * pool.stride + ky) * pool.in_w + ox * pool.stride + kx;
            let v = input[idx];
            if v > best_v {
                best_v = v;
                best = idx;
            }
        }
    }
    output[o] = best_v;
    argmax[o] = best;
}
