// PReLU: y = x for x > 0, a[c] * x otherwise (per-channel slopes, or one shared slope).

#import common
#import elementwise

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> slope: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if i >= shape.len {
        return;
    }
    let x = input[i];
    output[i] = select(slope[channel_of(i)] * x, x, x > 0.0);
}
