// Margin softmax cross-entropy on the cosines of a normalised head, one workgroup per row
// of cos [B, C] in `logits` (nn::Head; twin nn::reference::margin_cross_entropy):
//   z_c = SCALE * cos_c for c != y,   z_y = SCALE * f(cos_y)
//   f(c) = cos(M1 * theta + M2) - M3 while cos > THRESHOLD (M1 * theta + M2 < pi),
//          c - FALLBACK - M3 beyond (arcface_torch's fallback, FALLBACK = M2 sin M2)
//   loss_b = log(sum_c exp(z_c - max z)) + max z - z_y
//   dcos_c = (softmax(z)_c - [c == y]) * SCALE * (c == y ? f'(cos_y) : 1) * grad_scale
// cos_y is clamped to [-1, 1] first (slope 0 outside). row_stats[2b] = loss_b,
// row_stats[2b + 1] = 1 when the arg-max cosine (first on ties), the prediction, is y.
// A label >= C contributes loss 0, gradient 0 and never indexes out of bounds.

#import arg_max
#import softmax_params

const WG: u32 = ARG_MAX_WORKGROUP;

override SCALE: f32 = 64.0;
override M1: f32 = 1.0;
override M2: f32 = 0.0;
override M3: f32 = 0.0;
override COS_M2: f32 = 1.0;
override SIN_M2: f32 = 0.0;
override THRESHOLD: f32 = -1.0;
override FALLBACK: f32 = 0.0;
override MIN_SIN: f32 = 1e-3;

// The true class's margin cosine f and its slope df/dcos.
struct Target {
    cosine: f32,
    slope: f32,
}

fn margin_target(c_in: f32) -> Target {
    let clamp_slope = select(0.0, 1.0, c_in >= -1.0 && c_in <= 1.0);
    let c = clamp(c_in, -1.0, 1.0);
    if c <= THRESHOLD {
        return Target(c - FALLBACK - M3, clamp_slope);
    }
    // (1 - c)(1 + c) keeps sin theta accurate near c = +-1, where 1 - c * c cancels.
    let sin_theta = sqrt((1.0 - c) * (1.0 + c));
    let inv_sin = 1.0 / max(sin_theta, MIN_SIN);
    if M1 == 1.0 {
        return Target(c * COS_M2 - sin_theta * SIN_M2 - M3, (COS_M2 + c * SIN_M2 * inv_sin) * clamp_slope);
    }
    let angle = M1 * atan2(sin_theta, c) + M2;
    return Target(cos(angle) - M3, M1 * sin(angle) * inv_sin * clamp_slope);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * 65535u;
    let valid_row = row < sm.batch;
    let base = row * sm.classes;
    var label = 0xffffffffu;
    var t = Target(0.0, 0.0);
    if valid_row {
        label = labels[row];
        if label < sm.classes {
            t = margin_target(logits[base + label]);
        }
    }
    // The largest logit (for a stable exponent) and the arg-max cosine (the prediction).
    var best_z = -3.4e38;
    var best_cos = -3.4e38;
    var best_i = 0xffffffffu;
    if valid_row {
        for (var c = lid; c < sm.classes; c = c + WG) {
            let cosine = logits[base + c];
            best_z = max(best_z, SCALE * select(cosine, t.cosine, c == label));
            if cosine > best_cos {
                best_cos = cosine;
                best_i = c;
            }
        }
    }
    let zmax = workgroup_arg_max(lid, best_z, 0u).value;
    let prediction = workgroup_arg_max(lid, best_cos, best_i).index;
    var sum = 0.0;
    if valid_row {
        for (var c = lid; c < sm.classes; c = c + WG) {
            sum = sum + exp(SCALE * select(logits[base + c], t.cosine, c == label) - zmax);
        }
    }
    let total = workgroup_sum(lid, sum);
    if !valid_row {
        return;
    }
    let label_ok = label < sm.classes;
    for (var c = lid; c < sm.classes; c = c + WG) {
        let is_label = c == label;
        let p = exp(SCALE * select(logits[base + c], t.cosine, is_label) - zmax) / total;
        let dz = (p - select(0.0, 1.0, is_label)) * SCALE * select(1.0, t.slope, is_label);
        grad_logits[base + c] = select(0.0, dz * sm.grad_scale, label_ok);
    }
    if lid == 0u {
        var loss = 0.0;
        if label_ok {
            loss = log(total) + zmax - SCALE * t.cosine;
        }
        row_stats[2u * row] = loss;
        row_stats[2u * row + 1u] = select(0.0, 1.0, label_ok && prediction == label);
    }
}
