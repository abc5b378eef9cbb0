// PReLU gradient with respect to the input: dx = dy for x > 0, a[c] * dy otherwise.

#import common
#import elementwise

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> slope: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_in: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if i >= shape.len {
        return;
    }
    let g = grad_out[i];
    grad_in[i] = select(slope[channel_of(i)] * g, g, input[i] > 0.0);
}
