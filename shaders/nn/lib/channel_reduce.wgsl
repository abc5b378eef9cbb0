// Per-channel sums over (batch, pixels) of an NCHW tensor in a fixed order: one workgroup
// per channel, strided partial sums, then a tree in workgroup memory (no float atomics).
// The including kernel defines channel_term(flat index) -> f32.

#import tree_sum

struct ChannelParams {
    batch: u32,
    channels: u32,
    pixels: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> shape: ChannelParams;

fn channel_sum(c: u32, lid: u32) -> f32 {
    let count = shape.batch * shape.pixels;
    var sum = 0.0;
    for (var t = lid; t < count; t = t + WORKGROUP_SIZE) {
        let b = t / shape.pixels;
        let p = t - b * shape.pixels;
        sum = sum + channel_term((b * shape.channels + c) * shape.pixels + p);
    }
    return tree_sum(lid, sum);
}
