// Softmax cross-entropy, one workgroup per row of logits [B, C], numerically stable:
//   loss_b = log(sum_c exp(z_c - max)) + max - z_y
//   dz_c   = (softmax_c - [c == y]) * grad_scale      (grad_scale = 1/B for the batch mean)
// row_stats[2b] = loss_b, row_stats[2b + 1] = 1 when argmax (first on ties) == y.
// A label >= C contributes loss 0, gradient 0 and never indexes out of bounds.

#import arg_max
#import softmax_params

const WG: u32 = ARG_MAX_WORKGROUP;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * 65535u;
    let valid_row = row < sm.batch;
    let base = row * sm.classes;
    // Max and argmax.
    var best = -3.4e38;
    var best_i = 0xffffffffu;
    if valid_row {
        for (var c = lid; c < sm.classes; c = c + WG) {
            let z = logits[base + c];
            if z > best {
                best = z;
                best_i = c;
            }
        }
    }
    let max_at = workgroup_arg_max(lid, best, best_i);
    let zmax = max_at.value;
    let argmax = max_at.index;
    // Sum of exponentials.
    var sum = 0.0;
    if valid_row {
        for (var c = lid; c < sm.classes; c = c + WG) {
            sum = sum + exp(logits[base + c] - zmax);
        }
    }
    let total = workgroup_sum(lid, sum);
    if !valid_row {
        return;
    }
    let label = labels[row];
    let label_ok = label < sm.classes;
    for (var c = lid; c < sm.classes; c = c + WG) {
        let p = exp(logits[base + c] - zmax) / total;
        let onehot = select(0.0, 1.0, c == label);
        grad_logits[base + c] = select(0.0, (p - onehot) * sm.grad_scale, label_ok);
    }
    if lid == 0u {
        var loss = 0.0;
        if label_ok {
            loss = log(total) + zmax - logits[base + label];
        }
        row_stats[2u * row] = loss;
        row_stats[2u * row + 1u] = select(0.0, 1.0, label_ok && argmax == label);
    }
}
