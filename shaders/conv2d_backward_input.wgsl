// Convolution gradient with respect to the input, as an implicit GEMM:
//   dIn[b, ic, y, x] = sum_{oc, ky, kx} W[oc, ic, ky, kx] * dOut[b, oc, (y + p - ky)/s, (x + p - kx)/s]
// over the (oy, ox) that divide exactly and lie inside the output.
// M = in_c, N = batch * in_h * in_w, K = out_c * kernel_h * kernel_w.

#import gemm_core
#import conv_params

@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;

fn gemm_dims() -> vec4<u32> {
    let k = conv.out_c * conv.kernel_h * conv.kernel_w;
    return vec4<u32>(conv.in_c, conv.batch * conv.in_h * conv.in_w, k, k);
}

fn load_a(m: u32, k: u32) -> f32 {
    let taps = conv.kernel_h * conv.kernel_w;
    let oc = k / taps;
    return weight[(oc * conv.in_c + m) * taps + k % taps];
}

fn load_b(k: u32, n: u32) -> f32 {
    let kx = k % conv.kernel_w;
    let ky = (k / conv.kernel_w) % conv.kernel_h;
    let oc = k / (conv.kernel_w * conv.kernel_h);
    let x = n % conv.in_w;
    let y = (n / conv.in_w) % conv.in_h;
    let b = n / (conv.in_w * conv.in_h);
    let ty = i32(y + conv.pad) - i32(ky);
    let tx = i32(x + conv.pad) - i32(kx);
    let s = i32(conv.stride);
    if ty < 0 || tx < 0 || ty % s != 0 || tx % s != 0 {
        return 0.0;
    }
    let oy = u32(ty / s);
    let ox = u32(tx / s);
    if oy >= conv.out_h || ox >= conv.out_w {
        return 0.0;
    }
    return grad_out[((b * conv.out_c + oc) * conv.out_h + oy) * conv.out_w + ox];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    let pixels = conv.in_h * conv.in_w;
    grad_in[(n / pixels * conv.in_c + m) * pixels + n % pixels] = value;
}
