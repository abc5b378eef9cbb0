// Bias gradient: out[c] = sum_{b, p} grad[b, c, p] (conv: p over pixels; linear: one pixel).

#import common
#import channel_reduce

@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn channel_term(idx: u32) -> f32 {
    return values[idx];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let total = channel_sum(wid.x, lid);
    if lid == 0u {
        out[wid.x] = total;
    }
}
