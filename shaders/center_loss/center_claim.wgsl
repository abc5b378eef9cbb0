// Atomic mode, first pass: each class present in the batch claims the slot of its
// lowest row (atomicMin over EMPTY_SLOT). One invocation per row. O(B), never O(K).

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
    if label < params.num_classes {
        atomicMin(&slots[label], row);
    }
}
