// CPU family, last pass of a step (one workgroup): sums the walk's loss partials in a fixed
// order, loss = grad_scale / 2 * sum_i ||x_i - c_{y_i}||^2 (bit-reproducible in both
// modes); frees the class slots (runs_links); and closes the step's health record as
// status_finalize does (a poisoned step counts as a skipped center update).

#import common
#import tree_sum
#import batch_bindings
#import walk_shape
#import runs

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    let count = params.batch * walk_lanes();
    var sum = 0.0;
    for (var k = lid; k < count; k = k + WORKGROUP_SIZE) {
        sum = sum + loss_scratch.partials[k];
    }
    let total = tree_sum(lid, sum);
    release_rows(lid);
    if lid == 0u {
        loss_scratch.loss = 0.5 * params.grad_scale * total;
        if atomicExchange(&status[0], 0u) != 0u {
            atomicAdd(&status[1], 1u);
        }
    }
}
