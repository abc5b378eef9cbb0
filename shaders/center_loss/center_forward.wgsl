// Fused gather + loss + gradient, for the rows whose class lies in this window.
// Each invocation handles PER_INVOCATION feature elements (i, d) (see element_walk):
//   diff = x[i, d] - c[y_i, d];  grad[i, d] = grad_scale * diff;  partial += diff^2
// and, in atomic mode, acc[slot(y_i), d] += c - x (see accumulate_atomic).
// Each invocation writes the sum of its squared distances as one loss partial.
// Labels >= K write no center access: grad 0, flagged in status. Non-finite x is flagged.

#import common
#import batch_bindings
#import batch_data
#import window
#import accumulate
#import forward_report
#import element_walk

// false for loss-only evaluation.
override WRITE_GRAD: bool = true;

// One element e = (row, d): gradient, accumulation, and its squared distance.
fn element(e: u32, row: u32, d: u32) -> f32 {
    let label = labels[row];
    if label >= params.num_classes {
        if window.index == 0u {
            if WRITE_GRAD {
                write_grad(e, 0.0);
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
    let x = features[e];
    let diff = x - center_load(label, d);
    if !is_finite_f32(x) {
        report_non_finite(1u);
    }
    if WRITE_GRAD {
        write_grad(e, params.grad_scale * diff);
    }
    accumulate(label, d, -diff);
    return diff * diff;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = linear_workgroup(wid, nwg);
    let n = params.batch * params.dim;
    var walk = walk_begin(wg, lid);
    var sq = 0.0;
    for (var t = 0u; t < PER_INVOCATION; t = t + 1u) {
        if walk.e < n {
            sq = sq + element(walk.e, walk.row, walk.d);
        }
        walk_next(&walk);
    }
    write_loss_partial(wg, lid, sq);
}
