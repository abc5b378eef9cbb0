// PReLU gradient with respect to the input: dx = dy for x > 0, a[c] * dy otherwise.

#import common
#import elementwise
#import plane_walk

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> slope: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_in: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var walk = walk_begin(wid, nwg, lid, shape.pixels, shape.channels);
    for (var t = 0u; t < VALUES_PER_INVOCATION; t = t + 1u) {
        let i = walk.i;
        if i < shape.len {
            let g = grad_out[i];
            grad_in[i] = select(slope[walk.y] * g, g, input[i] > 0.0);
        }
        walk_next(&walk, shape.pixels, shape.channels);
    }
}
