// The window of a convolution or a pooling layer over NCHW planes: input and output plane
// sizes, window size and stride. They are pipeline constants, so every division by a
// size compiles to a multiply and shift. These kernels have no uniform: binding 0 is empty.

override IN_H: u32 = 1u;
override IN_W: u32 = 1u;
override OUT_H: u32 = 1u;
override OUT_W: u32 = 1u;
override KERNEL: u32 = 1u;
override STRIDE: u32 = 1u;
