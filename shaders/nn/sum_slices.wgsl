// Adds split-K partial results in a fixed slice order: out[i] = sum_s partial[s * len + i].
// (shape.channels holds the number of slices.)

#import common
#import elementwise

@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if i >= shape.len {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < shape.channels; s = s + 1u) {
        sum = sum + partial[s * shape.len + i];
    }
    out[i] = sum;
}
