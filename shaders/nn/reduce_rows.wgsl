// Column sums of a small [rows, cols] matrix in a fixed order (one workgroup per column):
// out[out_offset + col] = scale * sum_r values[r * cols + col]. Used for the batch's
// mean loss and accuracy from per-row statistics.

#import common
#import tree_sum

struct ReduceParams {
    rows: u32,
    cols: u32,
    out_offset: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> rp: ReduceParams;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var sum = 0.0;
    for (var r = lid; r < rp.rows; r = r + WORKGROUP_SIZE) {
        sum = sum + values[r * rp.cols + wid.x];
    }
    let total = tree_sum(lid, sum);
    if lid == 0u {
        out[rp.out_offset + wid.x] = rp.scale * total;
    }
}
