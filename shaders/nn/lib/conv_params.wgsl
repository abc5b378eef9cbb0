// Shapes of one 2-D convolution (NCHW), shared by its three GEMM kernels: the window
// (spatial_window) and the rest, pipeline constants too.

#import spatial_window

override BATCH: u32 = 1u;
override IN_C: u32 = 1u;
override OUT_C: u32 = 1u;
override PAD: u32 = 0u;
override HAS_BIAS: bool = false;
// K per split-K slice (backward weight); the other kernels use all of K.
override K_PER_SLICE: u32 = 1u;

override TAPS: u32 = KERNEL * KERNEL;

// Values per input plane (one sample's channel) and per input sample.
override IN_PLANE: u32 = IN_H * IN_W;
override IN_SAMPLE: u32 = IN_C * IN_H * IN_W;
override OUT_PLANE: u32 = OUT_H * OUT_W;
override OUT_SAMPLE: u32 = OUT_C * OUT_H * OUT_W;

// Whether the signed input position (y, x) lies inside the image (not in the padding).
fn inside_input(y: i32, x: i32) -> bool {
    return y >= 0 && x >= 0 && y < i32(IN_H) && x < i32(IN_W);
}
