// The row-wise loss heads over logits [B, C] (softmax and margin cross-entropy): the rows,
// the classes, the gradient's scale (1/B for the batch mean), and their four buffers.

struct SoftmaxParams {
    batch: u32,
    classes: u32,
    grad_scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> sm: SoftmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad_logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_stats: array<f32>;
