// Fused gather + loss + gradient, for the rows whose class lies in this chunk.
// One invocation per feature element (i, d):
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

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wg = linear_workgroup(wid, nwg);
    let e = wg * WORKGROUP_SIZE + lid;
    var sq = 0.0;
    if e < params.batch * params.dim {
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
        } else if in_chunk(label) {
            let x = features[e];
            let c = centers[center_index(label, d)];
            let diff = x - c;
            if !is_finite_f32(x) {
                atomicOr(&status[0], FLAG_NON_FINITE);
                atomicAdd(&status[3], 1u);
            }
            if WRITE_GRAD {
                write_grad(e, params.grad_scale * diff);
            }
            sq = diff * diff;
            accumulate(label, d, -diff);
        }
    }
    let total = tree_sum(lid, sq);
    if lid == 0u && wg < params.partials_per_chunk {
        loss_scratch.partials[chunk.index * params.partials_per_chunk + wg] = total;
    }
}
