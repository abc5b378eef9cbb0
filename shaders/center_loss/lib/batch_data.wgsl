// The caller's features and gradient (B x D, row-major) as f32 words.

@group(0) @binding(1) var<storage, read> features: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

fn feature(i: u32) -> f32 {
    return features[i];
}

// Writes gradient word w, or adds to it when the caller sums several losses
// (params.grad_accumulate).
fn write_grad(w: u32, g: f32) {
    if params.grad_accumulate != 0u {
        grad[w] = grad[w] + g;
    } else {
        grad[w] = g;
    }
}
