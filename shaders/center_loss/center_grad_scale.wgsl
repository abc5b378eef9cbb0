// grad *= scale[0], in place: the center-loss gradient times the loss's incoming gradient
// (the backward of the burn integration, src/burn.rs). `grad` is bound as a range of
// another library's buffer; `scale` is a copy of the incoming gradient's one value.

#import common

struct ScaleParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: ScaleParams;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if i >= params.len {
        return;
    }
    grad[i] = grad[i] * scale[0];
}
