// out = a + b, element-wise (residual sums, forward and backward).

#import common
#import elementwise
#import plane_walk

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Only the flat index matters here: no (plane, y, x) to follow.
    var i = walk_first(wid, nwg, lid);
    for (var t = 0u; t < VALUES_PER_INVOCATION; t = t + 1u) {
        if i < shape.len {
            out[i] = a[i] + b[i];
        }
        i = i + WORKGROUP_SIZE;
    }
}
