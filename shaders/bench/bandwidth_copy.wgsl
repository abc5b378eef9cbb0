// Bandwidth probe: dst = src, 16 bytes per invocation. Reads + writes 2 x len x 16 bytes:
// the ceiling a memory-bound kernel can reach on the adapter.

#import common

struct CopyParams {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> copy: CopyParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if i < copy.len {
        dst[i] = src[i];
    }
}
