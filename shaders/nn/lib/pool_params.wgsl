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

// Both pooling kernels walk their pixels (plane_walk) in OUT_H x OUT_W or IN_H x IN_W planes.
#import plane_walk
