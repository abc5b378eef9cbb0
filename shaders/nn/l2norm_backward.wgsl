// L2 normalisation gradient: dx = (dy - y (y . dy)) / norm, per row.

#import common
#import row_params
@group(0) @binding(1) var<storage, read> output: array<f32>;
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_in: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if r >= rows.rows {
        return;
    }
    var dot = 0.0;
    for (var d = 0u; d < rows.dim; d = d + 1u) {
        dot = dot + output[r * rows.dim + d] * grad_out[r * rows.dim + d];
    }
    let norm = norms[r];
    for (var d = 0u; d < rows.dim; d = d + 1u) {
        let i = r * rows.dim + d;
        grad_in[i] = (grad_out[i] - output[i] * dot) / norm;
    }
}
