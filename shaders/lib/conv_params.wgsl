// Shapes of one 2-D convolution (NCHW), shared by its three GEMM kernels.

struct ConvParams {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    // K per split-K slice (backward weight); the other kernels use all of K.
    k_per_slice: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> conv: ConvParams;

// Input pixel (b, c, y, x) read with zero padding; y and x are signed positions.
fn conv_input_index(b: u32, c: u32, y: i32, x: i32) -> i32 {
    if y < 0 || x < 0 || y >= i32(conv.in_h) || x >= i32(conv.in_w) {
        return -1;
    }
    return i32(((b * conv.in_c + c) * conv.in_h + u32(y)) * conv.in_w + u32(x));
}
