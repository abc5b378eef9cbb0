// Atomic mode, the center update for CPU drivers when D is divisible by 4: as center_apply,
// but one invocation per (row, four elements d .. d + 3), so the label, slot, count and
// poison reads are paid once per four elements and the center moves as vec4 words (a CPU
// driver pays per lane for every storage access). Only the row that owns its class's slot
// writes:
//   c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)
// The accumulator words are taken (read and zeroed) even when the step is poisoned
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
    let words = params.dim / 4u;
    let e = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if e >= params.batch * words {
        return;
    }
    let row = e / words;
    let d = 4u * (e - row * words);
    let label = labels[row];
    if label >= params.num_classes || !in_window(label) {
        return;
    }
    if atomicLoad(&slots[label]) != row {
        return;
    }
    let at = row * params.dim + d;
    let sum = vec4<f32>(acc_take(at), acc_take(at + 1u), acc_take(at + 2u), acc_take(at + 3u));
    let count = acc_load(count_index(row));
    if atomicLoad(&status[0]) == 0u {
        center_store4(label, d, center_load4(label, d) - params.alpha * sum / (1.0 + count));
    }
}
