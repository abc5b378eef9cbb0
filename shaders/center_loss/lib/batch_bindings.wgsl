// Group 0: one batch (its shapes, caller data, per-step scratch, health counters).

struct StepParams {
    batch: u32,
    dim: u32,
    num_classes: u32,
    // Power of two >= batch (bitonic sort length).
    padded_batch: u32,
    // lambda / B for Reduction::Mean, lambda for Reduction::Sum.
    grad_scale: f32,
    alpha: f32,
    // 1: grad += g (the caller sums several losses), 0: grad = g.
    grad_accumulate: u32,
    // Loss partial sums written per window dispatch (invocations of the forward grid).
    partials_per_window: u32,
    num_windows: u32,
    // Floats per center row in the center buffers: D rounded up to a multiple of 4.
    center_stride: u32,
    _pad1: u32,
    _pad2: u32,
}

// loss: the reduced loss of the last step; partials: one per forward invocation.
struct LossScratch {
    loss: f32,
    partials: array<f32>,
}

@group(0) @binding(0) var<uniform> params: StepParams;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> loss_scratch: LossScratch;
// features (binding 1) and grad (binding 3): a kernel that reads them imports batch_data
// or batch_data_vec4.
// [0] poison flags of the step in flight, [1] skipped center updates,
// [2] rows with a label >= K, [3] non-finite feature values (all cumulative).
@group(0) @binding(5) var<storage, read_write> status: array<atomic<u32>, 4>;
// Bits of status[0], the per-step poison flags.
const FLAG_BAD_LABEL: u32 = 1u;
const FLAG_NON_FINITE: u32 = 2u;
