// Atomic mode, center update for the classes of this window. One invocation per (row, d);
// only the row that owns its class's slot writes:
//   c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)
// The accumulator word is taken (read and zeroed) even when the step is poisoned
// (status[0] != 0), in which case the center is left as it was.

#import common
#import batch_bindings
#import window
#import accum
#import scratch_atomic

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
    let row = e / params.dim;
    let d = e - row * params.dim;
    let label = labels[row];
    if label >= params.num_classes || !in_window(label) {
        return;
    }
    if atomicLoad(&slots[label]) != row {
        return;
    }
    let sum = acc_take(row * params.dim + d);
    let count = acc_load(count_index(row));
    if atomicLoad(&status[0]) == 0u {
        center_store(label, d, center_load(label, d) - params.alpha * sum / (1.0 + count));
    }
}
