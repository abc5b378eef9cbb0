// Max pooling gradient as a gather (no atomics, fixed order): each input pixel sums dOut of
// the windows that contain it and chose it as their maximum.

#import common
#import pool_params

@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read> argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let inputs = PLANES * IN_H * IN_W;
    var walk = walk_begin(wid, nwg, lid, IN_W, IN_H);
    for (var t = 0u; t < VALUES_PER_INVOCATION; t = t + 1u) {
        if walk.i < inputs {
            grad_in[walk.i] = pool_input_grad(walk.i, walk.plane, walk.y, walk.x);
        }
        walk_next(&walk, IN_W, IN_H);
    }
}

// Input i = (plane, y, x): dOut summed over the windows that chose it.
fn pool_input_grad(i: u32, plane: u32, y: u32, x: u32) -> f32 {
    // Windows oy with oy*s <= y < oy*s + k.
    let oy_lo = select(0u, (y + 1u - KERNEL + STRIDE - 1u) / STRIDE, y + 1u > KERNEL);
    let ox_lo = select(0u, (x + 1u - KERNEL + STRIDE - 1u) / STRIDE, x + 1u > KERNEL);
    let oy_hi = min(y / STRIDE + 1u, OUT_H);
    let ox_hi = min(x / STRIDE + 1u, OUT_W);
    var sum = 0.0;
    for (var oy = oy_lo; oy < oy_hi; oy = oy + 1u) {
        for (var ox = ox_lo; ox < ox_hi; ox = ox + 1u) {
            let o = (plane * OUT_H + oy) * OUT_W + ox;
            if argmax[o] == i {
                sum = sum + grad_out[o];
            }
        }
    }
    return sum;
}
