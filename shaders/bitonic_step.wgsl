// Deterministic mode: one compare-exchange stage (k, j) of a bitonic sort of the keys,
// ascending by (label, row). Keys are unique, so the order is total and reproducible.

#import common
#import batch_bindings
#import scratch_sorted

struct SortStage {
    k: u32,
    j: u32,
}

@group(3) @binding(0) var<uniform> stage: SortStage;

fn key_greater(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y > b.y);
}

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
    let ascending = (i & stage.k) == 0u;
    if key_greater(a, b) == ascending {
        keys[i] = b;
        keys[partner] = a;
    }
}
