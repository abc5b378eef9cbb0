// Deterministic mode, first pass: key p = (label, row) for p < B, padding keys sort last.
// One invocation per padded row.

#import common
#import batch_bindings
#import scratch_sorted

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    if p >= params.padded_batch {
        return;
    }
    if p < params.batch {
        keys[p] = vec2<u32>(labels[p], p);
    } else {
        keys[p] = vec2<u32>(0xffffffffu, 0xffffffffu);
    }
}
