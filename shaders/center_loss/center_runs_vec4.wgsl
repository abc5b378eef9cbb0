// CPU family (D divisible by 4), the fused step for the classes of this window: the first
// row of each class in the batch (run_owns) runs over all of the class's rows, so every center
// word is read once and written once and no accumulator lies between the passes:
//   diff = x_i - c_j;  grad_i = grad_scale * diff;  partial(i) = |diff|^2
//   c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)
// One invocation per (run position p, lane) with run_lanes() lanes per row (run_lanes).
// Rows with a label >= K get a zero gradient (window 0). The center is written only when
// center_inspect_vec4 found the step clean (status[0] == 0); the gradient always.

#import common
#import batch_bindings
#import batch_data_vec4
#import window
#import run_lanes
#import runs

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lanes = run_lanes();
    let words = params.dim / 4u;
    let e = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if e >= params.batch * lanes {
        return;
    }
    let p = e / lanes;
    let lane = e - p * lanes;
    // The words of this lane: lane + t * lanes for t < count (count <= WORDS_PER_INVOCATION).
    let count = (words - lane + lanes - 1u) / lanes;
    let label = run_label(p);
    if label >= params.num_classes {
        if window.index == 0u {
            let row = run_row(p);
            for (var t = 0u; t < count; t = t + 1u) {
                write_grad(row * words + lane + t * lanes, vec4<f32>(0.0));
            }
            loss_scratch.partials[row * lanes + lane] = 0.0;
        }
        return;
    }
    if !in_window(label) || !run_owns(p, label) {
        return;
    }
    var c: array<vec4<f32>, WORDS_PER_INVOCATION>;
    var sum: array<vec4<f32>, WORDS_PER_INVOCATION>;
    for (var t = 0u; t < count; t = t + 1u) {
        c[t] = center_load4(label, 4u * (lane + t * lanes));
        sum[t] = vec4<f32>(0.0);
    }
    var n = 0u;
    var cursor = run_first(p);
    loop {
        let base = cursor.row * words + lane;
        var sq = 0.0;
        for (var t = 0u; t < count; t = t + 1u) {
            let w = base + t * lanes;
            let x = features[w];
            let diff = x - c[t];
            write_grad(w, params.grad_scale * diff);
            sum[t] = sum[t] + (c[t] - x);
            sq = sq + dot(diff, diff);
        }
        loss_scratch.partials[cursor.row * lanes + lane] = sq;
        n = n + 1u;
        cursor = run_next(cursor, label);
        if cursor.at == RUN_END {
            break;
        }
    }
    if atomicLoad(&status[0]) == 0u {
        for (var t = 0u; t < count; t = t + 1u) {
            center_store4(label, 4u * (lane + t * lanes), c[t] - params.alpha * sum[t] / (1.0 + f32(n)));
        }
    }
}
