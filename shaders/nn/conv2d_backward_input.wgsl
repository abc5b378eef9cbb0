// Convolution gradient with respect to the input, as an implicit GEMM:
//   dIn[b, ic, y, x] = sum_{oc, ky, kx} W[oc, ic, ky, kx] * dOut[b, oc, (y + p - ky)/s, (x + p - kx)/s]
// over the (oy, ox) that divide exactly and lie inside the output.
// M = in_c, N = batch * in_h * in_w, K = out_c * kernel^2.

#import conv_params
#import gemm_core

@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;

struct RowA {
    ic: u32,
}

// An input pixel: its sample's first output-gradient value and its padded position.
struct ColB {
    base: u32,
    py: i32,
    px: i32,
}

// k = (oc, ky, kx): the weights of output channel oc at that tap.
struct StepA {
    base: u32,
}

// k = (oc, ky, kx): the output-gradient plane of oc and the tap's offsets.
struct StepB {
    plane: u32,
    ky: i32,
    kx: i32,
}

fn gemm_dims() -> vec4<u32> {
    let k = OUT_C * TAPS;
    return vec4<u32>(IN_C, BATCH * IN_H * IN_W, k, k);
}

fn a_row(m: u32) -> RowA {
    return RowA(m);
}

fn b_col(n: u32) -> ColB {
    let x = n % IN_W;
    let y = (n / IN_W) % IN_H;
    return ColB(n / IN_PLANE * OUT_SAMPLE, i32(y + PAD), i32(x + PAD));
}

fn a_step(k: u32) -> StepA {
    return StepA(k / TAPS * IN_C * TAPS + k % TAPS);
}

fn b_step(k: u32) -> StepB {
    let tap = k % TAPS;
    return StepB(k / TAPS * OUT_PLANE, i32(tap / KERNEL), i32(tap % KERNEL));
}

fn load_a(row: RowA, step: StepA) -> f32 {
    return weight[step.base + row.ic * TAPS];
}

fn load_b(step: StepB, col: ColB) -> f32 {
    let ty = col.py - step.ky;
    let tx = col.px - step.kx;
    if ty < 0 || tx < 0 {
        return 0.0;
    }
    let oy = u32(ty) / STRIDE;
    let ox = u32(tx) / STRIDE;
    if oy * STRIDE != u32(ty) || ox * STRIDE != u32(tx) || oy >= OUT_H || ox >= OUT_W {
        return 0.0;
    }
    return grad_out[col.base + step.plane + oy * OUT_W + ox];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    let pixels = IN_H * IN_W;
    grad_in[(n / pixels * IN_C + m) * pixels + n % pixels] = value;
}
