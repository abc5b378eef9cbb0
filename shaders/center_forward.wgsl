// Fused gather + loss + gradient, for the rows whose class lies in this chunk.
// Each invocation handles PER_INVOCATION feature elements (i, d):
//   diff = x[i, d] - c[y_i, d];  grad[i, d] = grad_scale * diff;  partial += diff^2
// and, in atomic mode, acc[slot(y_i), d] += c - x (see accumulate_atomic).
// Each workgroup reduces its squared distances in workgroup memory to one partial.
// Labels >= K write no center access: grad 0, flagged in status. Non-finite x is flagged.

#import common
#import tree_sum
#import batch_bindings
#import chunk_bindings
#import accumulate

// false for loss-only evaluation.
override WRITE_GRAD: bool = true;

fn write_grad(e: u32, g: f32) {
    if params.grad_accumulate != 0u {
        grad[e] = grad[e] + g;
    } else {
        grad[e] = g;
    }
}

// Elements per invocation: fewer workgroups (and reduction barriers) per element.
const PER_INVOCATION: u32 = 8u;

// One element (i, d): gradient, accumulation, and its squared distance.
fn element(e: u32) -> f32 {
    let row = e / params.dim;
    let d = e - row * params.dim;
    let label = labels[row];
    if label >= params.num_classes {
        if chunk.index == 0u {
            if WRITE_GRAD {
                write_grad(e, 0.0);
            }
            if d == 0u {
                atomicOr(&status[0], FLAG_BAD_LABEL);
                atomicAdd(&status[2], 1u);
            }
        }
        return 0.0;
    }
    if !in_chunk(label) {
        return 0.0;
    }
    let x = features[e];
    let diff = x - center_load(label, d);
    if !is_finite_f32(x) {
        atomicOr(&status[0], FLAG_NON_FINITE);
        atomicAdd(&status[3], 1u);
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
    var sq = 0.0;
    for (var t = 0u; t < PER_INVOCATION; t = t + 1u) {
        let e = (wg * PER_INVOCATION + t) * WORKGROUP_SIZE + lid;
        if e < n {
            sq = sq + element(e);
        }
    }
    let total = tree_sum(lid, sq);
    if lid == 0u && wg < params.partials_per_chunk {
        loss_scratch.partials[chunk.index * params.partials_per_chunk + wg] = total;
    }
}
