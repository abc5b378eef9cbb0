// Max pooling: out = max over the window; the flat input index of the maximum (first on
// ties) is kept for the backward pass.

#import common
#import pool_params

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let outputs = PLANES * OUT_H * OUT_W;
    var walk = walk_begin(wid, nwg, lid, OUT_W, OUT_H);
    for (var t = 0u; t < VALUES_PER_INVOCATION; t = t + 1u) {
        if walk.i < outputs {
            pool_output(walk.i, walk.plane, walk.y, walk.x);
        }
        walk_next(&walk, OUT_W, OUT_H);
    }
}

// Output o = (plane, oy, ox): the window's maximum and where it lies.
fn pool_output(o: u32, plane: u32, oy: u32, ox: u32) {
    let base = plane * IN_H * IN_W;
    var best = base + oy * STRIDE * IN_W + ox * STRIDE;
    var best_v = input[best];
    for (var ky = 0u; ky < KERNEL; ky = ky + 1u) {
        for (var kx = 0u; kx < KERNEL; kx = kx + 1u) {
            let idx = base + (oy * STRIDE + ky) * IN_W + ox * STRIDE + kx;
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
