// The caller's features and gradient (B x D, row-major, D divisible by 4) as vec4 words:
// one access moves four elements.

@group(0) @binding(1) var<storage, read> features: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grad: array<vec4<f32>>;

fn feature(i: u32) -> f32 {
    return features[i / 4u][i % 4u];
}

// Writes gradient word w, or adds to it when the caller sums several losses
// (params.grad_accumulate).
fn write_grad(w: u32, g: vec4<f32>) {
    if params.grad_accumulate != 0u {
        grad[w] = grad[w] + g;
    } else {
        grad[w] = g;
    }
}
