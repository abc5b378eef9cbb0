// Deterministic mode: one compare-exchange stage (k, j) of a bitonic sort of the keys,
// in the order of sort_stage.

#import common
#import batch_bindings
#import scratch_sorted
#import sort_stage

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if i >= params.padded_batch {
        return;
    }
    let partner = i ^ stage.j;
    if partner <= i {
        return;
    }
    let a = keys[i];
    let b = keys[partner];
    if out_of_order(a, b, i, stage.k) {
        keys[i] = b;
        keys[partner] = a;
    }
}
