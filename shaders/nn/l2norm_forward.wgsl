// L2 normalisation of each row of [B, D]: y = x / sqrt(sum x^2 + eps); the norm is kept.

#import common
#import row_params
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> norms: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if r >= rows.rows {
        return;
    }
    var sq = 0.0;
    for (var d = 0u; d < rows.dim; d = d + 1u) {
        let x = input[r * rows.dim + d];
        sq = sq + x * x;
    }
    let norm = sqrt(sq + rows.eps);
    norms[r] = norm;
    for (var d = 0u; d < rows.dim; d = d + 1u) {
        output[r * rows.dim + d] = input[r * rows.dim + d] / norm;
    }
}
