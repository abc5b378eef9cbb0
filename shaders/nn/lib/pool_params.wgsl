// Shapes of one max-pooling layer (NCHW, no padding, floor mode).

struct PoolParams {
    batch: u32,
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
}

@group(0) @binding(0) var<uniform> pool: PoolParams;
