// Convolution gradient with respect to the weights, as an implicit GEMM with split-K:
//   dW[oc, (ic, ky, kx)] = sum_{b, oy, ox} dOut[b, oc, oy, ox] * in[b, ic, oy*s - p + ky, ox*s - p + kx]
// M = out_c, N = in_c * kernel^2, K = batch * out_h * out_w. Slice z of K writes
// partial[z, oc, n]; sum_slices adds the slices in a fixed order (no float atomics).

#import conv_params
#import gemm_core

@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

struct RowA {
    offset: u32,
}

// A weight tap: its input plane and offsets.
struct ColB {
    plane: u32,
    ky: i32,
    kx: i32,
}

// k = (b, oy, ox): that output pixel's gradient in output channel 0.
struct StepA {
    base: u32,
}

// k = (b, oy, ox): the sample's first input value and the window's top-left position.
struct StepB {
    base: u32,
    y0: i32,
    x0: i32,
}

fn gemm_dims() -> vec4<u32> {
    return vec4<u32>(OUT_C, IN_C * TAPS, BATCH * OUT_H * OUT_W, K_PER_SLICE);
}

fn a_row(m: u32) -> RowA {
    return RowA(m * OUT_PLANE);
}

fn b_col(n: u32) -> ColB {
    let tap = n % TAPS;
    return ColB(n / TAPS * IN_PLANE, i32(tap / KERNEL) - i32(PAD), i32(tap % KERNEL) - i32(PAD));
}

fn a_step(k: u32) -> StepA {
    return StepA(k / OUT_PLANE * OUT_SAMPLE + k % OUT_PLANE);
}

fn b_step(k: u32) -> StepB {
    let ox = k % OUT_W;
    let oy = (k / OUT_W) % OUT_H;
    return StepB(k / OUT_PLANE * IN_SAMPLE, i32(oy * STRIDE), i32(ox * STRIDE));
}

fn load_a(row: RowA, step: StepA) -> f32 {
    return grad_out[step.base + row.offset];
}

fn load_b(step: StepB, col: ColB) -> f32 {
    let y = step.y0 + col.ky;
    let x = step.x0 + col.kx;
    if !inside_input(y, x) {
        return 0.0;
    }
    return input[step.base + col.plane + u32(y) * IN_W + u32(x)];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    partial[(slice * OUT_C + m) * IN_C * TAPS + n] = value;
}
