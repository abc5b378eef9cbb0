// Deterministic mode, the center update for CPU drivers when D is divisible by 4: as
// center_update_sorted, but one invocation per (sorted position p, four elements d .. d + 3),
// so the key, run and poison tests are paid once per four elements and the center and
// feature accesses move vec4 words (a CPU driver pays per lane for every storage access).
//   c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j)
// The same sums in the same row order as center_update_sorted, four elements at a time.
// Skipped entirely when the step is poisoned (status[0] != 0).

#import common
#import batch_bindings
#import window
#import scratch_sorted

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
    let p = e / words;
    let w = e - p * words;
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
    let c = center_load4(label, 4u * w);
    var sum = vec4<f32>(0.0);
    var n = 0u;
    for (var q = p; q < params.batch; q = q + 1u) {
        let key = keys[q];
        if key.x != label {
            break;
        }
        sum = sum + (c - features[key.y * words + w]);
        n = n + 1u;
    }
    center_store4(label, 4u * w, c - params.alpha * sum / (1.0 + f32(n)));
}
