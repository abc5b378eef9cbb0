// How a pass ends, shared by loss_reduce / status_finalize and center_close.

#import tree_sum

// Sums the first `count` loss partials in a fixed order (strided per invocation, then a
// tree): loss = grad_scale / 2 * sum_i ||x_i - c_{y_i}||^2, bit-reproducible in every
// mode. Call from uniform control flow of a whole WORKGROUP_SIZE workgroup.
fn write_loss(lid: u32, count: u32) {
    var sum = 0.0;
    for (var k = lid; k < count; k = k + WORKGROUP_SIZE) {
        sum = sum + loss_scratch.partials[k];
    }
    let total = tree_sum(lid, sum);
    if lid == 0u {
        loss_scratch.loss = 0.5 * params.grad_scale * total;
    }
}

// Closes a step's health record (call once): the per-step poison flags clear, and with
// `count_skipped` a poisoned step (bad label or non-finite feature) counts as a skipped
// center update.
fn close_health(count_skipped: bool) {
    let flags = atomicExchange(&status[0], 0u);
    if count_skipped && flags != 0u {
        atomicAdd(&status[1], 1u);
    }
}
