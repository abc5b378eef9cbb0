// Sums the forward kernel's workgroup partials in a fixed order (one workgroup):
// loss = grad_scale / 2 * sum_i ||x_i - c_{y_i}||^2, bit-reproducible in every mode.

#import common
#import tree_sum
#import batch_bindings

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    let count = params.partials_per_window * params.num_windows;
    var sum = 0.0;
    for (var k = lid; k < count; k = k + WORKGROUP_SIZE) {
        sum = sum + loss_scratch.partials[k];
    }
    let total = tree_sum(lid, sum);
    if lid == 0u {
        loss_scratch.loss = 0.5 * params.grad_scale * total;
    }
}
