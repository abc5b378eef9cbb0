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

fn channel_of(i: u32) -> u32 {
    return (i / shape.pixels) % shape.channels;
}

// The walking kernels (add, PReLU) take ELEMENTS_PER_INVOCATION elements each (walk_width:
// 1 on GPUs, 8 on CPU drivers), WORKGROUP_SIZE apart (consecutive invocations, consecutive
// elements), and follow the element's channel without a division per element.
#import walk_width

struct ElementWalk {
    i: u32,
    pixel: u32,
    channel: u32,
}

fn walk_begin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> ElementWalk {
    let i = linear_workgroup(wid, nwg) * ELEMENTS_PER_INVOCATION * WORKGROUP_SIZE + lid;
    let plane = i / shape.pixels;
    return ElementWalk(i, i - plane * shape.pixels, plane % shape.channels);
}

// Advances by WORKGROUP_SIZE elements: whole planes, then the rest of a plane's pixels.
fn walk_next(w: ptr<function, ElementWalk>) {
    let planes = WORKGROUP_SIZE / shape.pixels;
    (*w).i = (*w).i + WORKGROUP_SIZE;
    (*w).pixel = (*w).pixel + (WORKGROUP_SIZE - planes * shape.pixels);
    var carry = 0u;
    if (*w).pixel >= shape.pixels {
        (*w).pixel = (*w).pixel - shape.pixels;
        carry = 1u;
    }
    // channel < C and planes % C < C: one wrap at most.
    (*w).channel = (*w).channel + planes % shape.channels + carry;
    if (*w).channel >= shape.channels {
        (*w).channel = (*w).channel - shape.channels;
    }
}
