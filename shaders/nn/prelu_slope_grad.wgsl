// PReLU slope gradient: da[c] = sum_{b, p} dy * x over the inputs x <= 0 of channel c
// (one shared slope: channels = 1, pixels = C*H*W).

#import common
#import channel_reduce

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_slope: array<f32>;

fn channel_term(idx: u32) -> f32 {
    let x = input[idx];
    return select(0.0, grad_out[idx] * x, x <= 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let total = channel_sum(wid.x, lid);
    if lid == 0u {
        grad_slope[wid.x] = total;
    }
}
