// Max pooling gradient as a gather (no atomics, fixed order): each input pixel sums dOut of
// the windows that contain it and chose it as their maximum.

#import common
#import pool_params

@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read> argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if i >= pool.batch * pool.channels * pool.in_h * pool.in_w {
        return;
    }
    let x = i % pool.in_w;
    let y = (i / pool.in_w) % pool.in_h;
    let plane = i / (pool.in_w * pool.in_h);
    // Windows oy with oy*s <= y < oy*s + k.
    let oy_lo = select(0u, (y + 1u - pool.kernel + pool.stride - 1u) / pool.stride, y + 1u > pool.kernel);
    let ox_lo = select(0u, (x + 1u - pool.kernel + pool.stride - 1u) / pool.stride, x + 1u > pool.kernel);
    let oy_hi = min(y / pool.stride + 1u, pool.out_h);
    let ox_hi = min(x / pool.stride + 1u, pool.out_w);
    var sum = 0.0;
    for (var oy = oy_lo; oy < oy_hi; oy = oy + 1u) {
        for (var ox = ox_lo; ox < ox_hi; ox = ox + 1u) {
            let o = (plane * pool.out_h + oy) * pool.out_w + ox;
            if argmax[o] == i {
                sum = sum + grad_out[o];
            }
        }
    }
    grad_in[i] = sum;
}
