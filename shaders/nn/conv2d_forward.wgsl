// Convolution forward as an implicit GEMM (no im2col buffer):
//   out[b, oc, oy, ox] = bias[oc] + sum_{ic, ky, kx} W[oc, ic, ky, kx] * in[b, ic, oy*s - p + ky, ox*s - p + kx]
// M = out_c, N = batch * out_h * out_w, K = in_c * kernel^2.
// With PRELU, a PReLU that takes the output is fused into the store: `output` keeps the
// convolution's values (the PReLU's backward pass reads them) and `activated` gets
// y = out for out > 0, a * out otherwise, as prelu_forward computes it.

#import conv_params
#import gemm_core

@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
@group(0) @binding(5) var<storage, read> slope: array<f32>;
@group(0) @binding(6) var<storage, read_write> activated: array<f32>;

// 0: no PReLU; 1: per-channel slopes; 2: one shared slope.
override PRELU: u32 = 0u;

struct RowA {
    base: u32,
}

// An output pixel: its sample's first input value and the top-left input position of its
// window.
struct ColB {
    base: u32,
    y0: i32,
    x0: i32,
}

struct StepA {
    k: u32,
}

// A tap (ic, ky, kx): its input plane and offsets, worked out once per k.
struct StepB {
    plane: u32,
    ky: i32,
    kx: i32,
}

fn gemm_dims() -> vec4<u32> {
    let k = IN_C * TAPS;
    return vec4<u32>(OUT_C, BATCH * OUT_H * OUT_W, k, k);
}

fn a_row(m: u32) -> RowA {
    return RowA(m * IN_C * TAPS);
}

fn b_col(n: u32) -> ColB {
    let ox = n % OUT_W;
    let oy = (n / OUT_W) % OUT_H;
    return ColB(n / OUT_PLANE * IN_SAMPLE, i32(oy * STRIDE) - i32(PAD), i32(ox * STRIDE) - i32(PAD));
}

fn a_step(k: u32) -> StepA {
    return StepA(k);
}

fn b_step(k: u32) -> StepB {
    let tap = k % TAPS;
    return StepB(k / TAPS * IN_PLANE, i32(tap / KERNEL), i32(tap % KERNEL));
}

fn load_a(row: RowA, step: StepA) -> f32 {
    return weight[row.base + step.k];
}

fn load_b(step: StepB, col: ColB) -> f32 {
    let y = col.y0 + step.ky;
    let x = col.x0 + step.kx;
    if !inside_input(y, x) {
        return 0.0;
    }
    return input[col.base + step.plane + u32(y) * IN_W + u32(x)];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    let pixels = OUT_H * OUT_W;
    var v = value;
    if HAS_BIAS {
        v = v + bias[m];
    }
    let i = (n / pixels * OUT_C + m) * pixels + n % pixels;
    output[i] = v;
    if PRELU != 0u {
        let a = slope[select(m, 0u, PRELU == 2u)];
        activated[i] = select(a * v, v, v > 0.0);
    }
}
