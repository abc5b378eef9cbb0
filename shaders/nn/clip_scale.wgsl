// Gradient-norm clipping's factor from the parameters' sums of squares (in slot order):
//   norm = sqrt(sum_p sums[p]);  scale[0] = max_norm / norm if norm > max_norm, else 1.
// A non-finite norm leaves the factor at 1, so the step diverges visibly instead of being
// scaled to zero.

struct ClipParams {
    count: u32,
    max_norm: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> cp: ClipParams;
@group(0) @binding(1) var<storage, read> sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> scale: array<f32>;

@compute @workgroup_size(1)
fn main() {
    var total = 0.0;
    for (var p = 0u; p < cp.count; p = p + 1u) {
        total = total + sums[p];
    }
    let norm = sqrt(total);
    scale[0] = select(1.0, cp.max_norm / norm, norm > cp.max_norm);
}
