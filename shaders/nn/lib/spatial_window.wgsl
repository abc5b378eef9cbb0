// The window of a convolution or a pooling layer over NCHW planes: input and output plane
// sizes, window size and stride. They are pipeline constants, so every division by a
// size compiles to a multiply and shift; the uniform at binding 0 only fills the slot.

override IN_H: u32 = 1u;
override IN_W: u32 = 1u;
override OUT_H: u32 = 1u;
override OUT_W: u32 = 1u;
override KERNEL: u32 = 1u;
override STRIDE: u32 = 1u;

struct ShapeUniform {
    unused: vec4<u32>,
}

@group(0) @binding(0) var<uniform> shape_uniform: ShapeUniform;
