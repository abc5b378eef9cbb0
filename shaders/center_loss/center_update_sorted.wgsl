// Deterministic mode, center update for the classes of this window of center buffers, without float atomics.
// One invocation per (sorted position p, d); the first position of each class's run of
// equal labels sums that run in row order:
//   c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)
// Skipped entirely when the step is poisoned (status[0] != 0).

#import common
#import batch_bindings
#import batch_data
#import window
#import scratch_sorted

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if e >= params.batch * params.dim {
        return;
    }
    let p = e / params.dim;
    let d = e - p * params.dim;
    let label = keys[p].x;
    if label >= params.num_classes || !in_window(label) {
        return;
    }
    if p > 0u && keys[p - 1u].x == label {
        return;
    }
    if atomicLoad(&status[0]) != 0u {
        return;
    }
    let c = center_load(label, d);
    var sum = 0.0;
    var n = 0u;
    for (var q = p; q < params.batch; q = q + 1u) {
        let key = keys[q];
        if key.x != label {
            break;
        }
        sum = sum + (c - feature(key.y * params.dim + d));
        n = n + 1u;
    }
    center_store(label, d, c - params.alpha * sum / (1.0 + f32(n)));
}
