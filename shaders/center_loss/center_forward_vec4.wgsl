// center_forward for D divisible by 4: each access moves a vec4 word of four elements
// (features, centers and gradient), the same results as center_forward element for
// element. Each invocation handles PER_INVOCATION words w, element e = 4 * w .. 4 * w + 3:
//   diff = x[i, d..d+3] - c[y_i, d..d+3];  grad = grad_scale * diff;  partial += |diff|^2
// and, in atomic mode, acc[slot(y_i), d + j] += c - x (see accumulate_atomic).
// Labels >= K write no center access: grad 0, flagged in status. Non-finite x is flagged.

#import common
#import batch_bindings
#import batch_data_vec4
#import window
#import accumulate
#import forward_report

// false for loss-only evaluation.
override WRITE_GRAD: bool = true;

const PER_INVOCATION: u32 = 8u;

// Word w = (row, d .. d + 3): gradient, accumulation, and its squared distance.
fn word(w: u32, row: u32, d: u32) -> f32 {
    let label = labels[row];
    if label >= params.num_classes {
        if window.index == 0u {
            if WRITE_GRAD {
                write_grad(w, vec4<f32>(0.0));
            }
            if d == 0u {
                report_bad_label();
            }
        }
        return 0.0;
    }
    if !in_window(label) {
        return 0.0;
    }
    let x = features[w];
    let diff = x - center_load4(label, d);
    let bad = non_finite_count(x);
    if bad != 0u {
        report_non_finite(bad);
    }
    if WRITE_GRAD {
        write_grad(w, params.grad_scale * diff);
    }
    accumulate(label, d, -diff.x);
    accumulate(label, d + 1u, -diff.y);
    accumulate(label, d + 2u, -diff.z);
    accumulate(label, d + 3u, -diff.w);
    return dot(diff, diff);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = linear_workgroup(wid, nwg);
    let words = params.batch * params.dim / 4u;
    var sq = 0.0;
    for (var t = 0u; t < PER_INVOCATION; t = t + 1u) {
        let w = (wg * PER_INVOCATION + t) * WORKGROUP_SIZE + lid;
        if w < words {
            let row = 4u * w / params.dim;
            sq = sq + word(w, row, 4u * w - row * params.dim);
        }
    }
    write_loss_partial(wg, lid, sq);
}
