// Convolution forward as an implicit GEMM (no im2col buffer):
//   out[b, oc, oy, ox] = bias[oc] + sum_{ic, ky, kx} W[oc, ic, ky, kx] * in[b, ic, oy*s - p + ky, ox*s - p + kx]
// M = out_c, N = batch * out_h * out_w, K = in_c * kernel_h * kernel_w.

#import gemm_core
#import conv_params

@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

fn gemm_dims() -> vec4<u32> {
    let k = conv.in_c * conv.kernel_h * conv.kernel_w;
    return vec4<u32>(conv.out_c, conv.batch * conv.out_h * conv.out_w, k, k);
}

fn load_a(m: u32, k: u32) -> f32 {
    return weight[m * conv.in_c * conv.kernel_h * conv.kernel_w + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    let kx = k % conv.kernel_w;
    let ky = (k / conv.kernel_w) % conv.kernel_h;
    let ic = k / (conv.kernel_w * conv.kernel_h);
    let ox = n % conv.out_w;
    let oy = (n / conv.out_w) % conv.out_h;
    let b = n / (conv.out_w * conv.out_h);
    let y = i32(oy * conv.stride + ky) - i32(conv.pad);
    let x = i32(ox * conv.stride + kx) - i32(conv.pad);
    let idx = conv_input_index(b, ic, y, x);
    if idx < 0 {
        return 0.0;
    }
    return input[idx];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    let pixels = conv.out_h * conv.out_w;
    let b = n / pixels;
    let p = n % pixels;
    var v = value;
    if conv.has_bias != 0u {
        v = v + bias[m];
    }
    output[(b * conv.out_c + m) * pixels + p] = v;
}
