// Convolution gradient with respect to the weights, as an implicit GEMM with split-K:
//   dW[oc, (ic, ky, kx)] = sum_{b, oy, ox} dOut[b, oc, oy, ox] * in[b, ic, oy*s - p + ky, ox*s - p + kx]
// M = out_c, N = in_c * kernel_h * kernel_w, K = batch * out_h * out_w. Slice z of K writes
// partial[z, oc, n]; sum_slices adds the slices in a fixed order (no float atomics).

#import gemm_core
#import conv_params

@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

fn gemm_dims() -> vec4<u32> {
    return vec4<u32>(
        conv.out_c,
        conv.in_c * conv.kernel_h * conv.kernel_w,
        conv.batch * conv.out_h * conv.out_w,
        conv.k_per_slice,
    );
}

fn load_a(m: u32, k: u32) -> f32 {
    let pixels = conv.out_h * conv.out_w;
    return grad_out[(k / pixels * conv.out_c + m) * pixels + k % pixels];
}

fn load_b(k: u32, n: u32) -> f32 {
    let kx = n % conv.kernel_w;
    let ky = (n / conv.kernel_w) % conv.kernel_h;
    let ic = n / (conv.kernel_w * conv.kernel_h);
    let ox = k % conv.out_w;
    let oy = (k / conv.out_w) % conv.out_h;
    let b = k / (conv.out_w * conv.out_h);
    let y = i32(oy * conv.stride + ky) - i32(conv.pad);
    let x = i32(ox * conv.stride + kx) - i32(conv.pad);
    let idx = conv_input_index(b, ic, y, x);
    if idx < 0 {
        return 0.0;
    }
    return input[idx];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    let cols = conv.in_c * conv.kernel_h * conv.kernel_w;
    partial[(slice * conv.out_c + m) * cols + n] = value;
}
