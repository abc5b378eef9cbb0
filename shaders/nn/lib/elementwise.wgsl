// Shapes for element-wise kernels over an NCHW tensor of `len` values.

struct ElementParams {
    len: u32,
    channels: u32,
    pixels: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> shape: ElementParams;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
}
