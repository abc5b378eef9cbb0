// PReLU backward for per-channel slopes in one pass, one workgroup per channel c:
//   dx = dy for x > 0, a[c] * dy otherwise          (when WRITE_DX)
//   da[c] = sum_{b, p} dy * x over the inputs x <= 0
//   db[c] = sum_{b, p} dx                           (when BIAS: the bias gradient of the
//                                                     convolution that produced x)
// The sums run in channel_sum's order (strided per invocation, then a tree), so they equal
// prelu_slope_grad's and channel_sum's bit for bit; x and dy are read once for all three.

#import common
#import channel_reduce

override WRITE_DX: bool = true;
override BIAS: bool = false;

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> slope: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_slope: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_bias: array<f32>;

// channel_reduce asks for one term per value; this kernel walks the values itself.
fn channel_term(idx: u32) -> f32 {
    return 0.0;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.x;
    let a = slope[c];
    let count = shape.batch * shape.pixels;
    var slope_sum = 0.0;
    var bias_sum = 0.0;
    for (var t = lid; t < count; t = t + WORKGROUP_SIZE) {
        let b = t / shape.pixels;
        let p = t - b * shape.pixels;
        let idx = (b * shape.channels + c) * shape.pixels + p;
        let x = input[idx];
        let g = grad_out[idx];
        let dx = select(a * g, g, x > 0.0);
        if WRITE_DX {
            grad_in[idx] = dx;
        }
        slope_sum = slope_sum + select(0.0, g * x, x <= 0.0);
        bias_sum = bias_sum + dx;
    }
    let slope_total = tree_sum(lid, slope_sum);
    if lid == 0u {
        grad_slope[c] = slope_total;
    }
    if BIAS {
        // Every invocation has read the tree before it is written again.
        workgroupBarrier();
        let bias_total = tree_sum(lid, bias_sum);
        if lid == 0u {
            grad_bias[c] = bias_total;
        }
    }
}
