// Atomic mode, last pass: each slot owner zeroes its count and frees its class's slot,
// leaving the scratch as it was before the step. One invocation per row.

#import common
#import batch_bindings
#import accum
#import scratch_atomic

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if row >= params.batch {
        return;
    }
    let label = labels[row];
    if label >= params.num_classes {
        return;
    }
    if atomicLoad(&slots[label]) == row {
        acc_take(count_index(row));
        atomicStore(&slots[label], EMPTY_SLOT);
    }
}
