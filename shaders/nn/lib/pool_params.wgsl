// Shapes of one max-pooling layer (NCHW, no padding, floor mode). They are pipeline
// constants, so every division by a size compiles to a multiply and shift.

// Batch x channels.
override PLANES: u32 = 1u;
override IN_H: u32 = 1u;
override IN_W: u32 = 1u;
override OUT_H: u32 = 1u;
override OUT_W: u32 = 1u;
override KERNEL: u32 = 1u;
override STRIDE: u32 = 1u;

struct PoolUniform {
    unused: vec4<u32>,
}

@group(0) @binding(0) var<uniform> pool_uniform: PoolUniform;

// Both pooling kernels take PIXELS_PER_INVOCATION pixels each (walk_width: 1 on GPUs, 8 on
// CPU drivers), WORKGROUP_SIZE apart (consecutive invocations, consecutive pixels), and
// follow the pixel's (plane, y, x) in a width x height plane without a division per pixel.
#import walk_width

struct PixelWalk {
    i: u32,
    plane: u32,
    y: u32,
    x: u32,
}

fn pixel_walk_begin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, width: u32, height: u32) -> PixelWalk {
    let i = linear_workgroup(wid, nwg) * PIXELS_PER_INVOCATION * WORKGROUP_SIZE + lid;
    let row = i / width;
    let plane = row / height;
    return PixelWalk(i, plane, row - plane * height, i - row * width);
}

// Advances by WORKGROUP_SIZE pixels.
fn pixel_walk_next(w: ptr<function, PixelWalk>, width: u32, height: u32) {
    let rows = WORKGROUP_SIZE / width;
    (*w).i = (*w).i + WORKGROUP_SIZE;
    (*w).x = (*w).x + (WORKGROUP_SIZE - rows * width);
    var carry = 0u;
    if (*w).x >= width {
        (*w).x = (*w).x - width;
        carry = 1u;
    }
    // y < height and rows % height + carry <= height: one wrap at most.
    (*w).y = (*w).y + rows % height + carry;
    carry = rows / height;
    if (*w).y >= height {
        (*w).y = (*w).y - height;
        carry = carry + 1u;
    }
    (*w).plane = (*w).plane + carry;
}
