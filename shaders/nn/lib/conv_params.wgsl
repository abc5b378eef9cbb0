// Shapes of one 2-D convolution (NCHW), shared by its three GEMM kernels. They are
// pipeline constants, so every division by a size compiles to a multiply and shift.

override BATCH: u32 = 1u;
override IN_C: u32 = 1u;
override IN_H: u32 = 1u;
override IN_W: u32 = 1u;
override OUT_C: u32 = 1u;
override OUT_H: u32 = 1u;
override OUT_W: u32 = 1u;
override KERNEL: u32 = 1u;
override STRIDE: u32 = 1u;
override PAD: u32 = 0u;
override HAS_BIAS: bool = false;
// K per split-K slice (backward weight); the other kernels use all of K.
override K_PER_SLICE: u32 = 1u;

override TAPS: u32 = KERNEL * KERNEL;

struct ConvUniform {
    unused: vec4<u32>,
}

@group(0) @binding(0) var<uniform> conv_uniform: ConvUniform;

// Input pixel (b, c, y, x) read with zero padding; y and x are signed positions.
fn conv_input_index(b: u32, c: u32, y: i32, x: i32) -> i32 {
    if y < 0 || x < 0 || y >= i32(IN_H) || x >= i32(IN_W) {
        return -1;
    }
    return i32(((b * IN_C + c) * IN_H + u32(y)) * IN_W + u32(x));
}
