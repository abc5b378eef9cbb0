// Sums the forward kernel's workgroup partials in a fixed order (one workgroup):
// loss = grad_scale / 2 * sum_i ||x_i - c_{y_i}||^2, bit-reproducible in every mode.

#import common
#import batch_bindings

var<workgroup> tree: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    let total = params.partials_per_chunk * params.num_chunks;
    var sum = 0.0;
    for (var k = lid; k < total; k = k + WORKGROUP_SIZE) {
        sum = sum + loss_scratch.partials[k];
    }
    tree[lid] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            tree[lid] = tree[lid] + tree[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        loss_scratch.loss = 0.5 * params.grad_scale * tree[0];
    }
}
