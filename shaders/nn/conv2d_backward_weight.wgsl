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
    oc: u32,
}

// A weight tap: its input channel and offsets.
struct ColB {
    ic: u32,
    ky: i32,
    kx: i32,
}

fn gemm_dims() -> vec4<u32> {
    return vec4<u32>(OUT_C, IN_C * TAPS, BATCH * OUT_H * OUT_W, K_PER_SLICE);
}

fn a_row(m: u32) -> RowA {
    return RowA(m);
}

fn b_col(n: u32) -> ColB {
    let tap = n % TAPS;
    return ColB(n / TAPS, i32(tap / KERNEL) - i32(PAD), i32(tap % KERNEL) - i32(PAD));
}

fn load_a(row: RowA, k: u32) -> f32 {
    let pixels = OUT_H * OUT_W;
    return grad_out[(k / pixels * OUT_C + row.oc) * pixels + k % pixels];
}

fn load_b(k: u32, col: ColB) -> f32 {
    let ox = k % OUT_W;
    let oy = (k / OUT_W) % OUT_H;
    let b = k / (OUT_W * OUT_H);
    let idx = conv_input_index(b, col.ic, i32(oy * STRIDE) + col.ky, i32(ox * STRIDE) + col.kx);
    if idx < 0 {
        return 0.0;
    }
    return input[idx];
}

fn store_c(m: u32, n: u32, slice: u32, value: f32) {
    partial[(slice * OUT_C + m) * IN_C * TAPS + n] = value;
}
