// out = a + b, element-wise (residual sums, forward and backward).

#import common
#import elementwise

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var walk = walk_begin(wid, nwg, lid);
    for (var t = 0u; t < ELEMENTS_PER_INVOCATION; t = t + 1u) {
        let i = walk.i;
        if i < shape.len {
            out[i] = a[i] + b[i];
        }
        walk.i = walk.i + WORKGROUP_SIZE;
    }
}
