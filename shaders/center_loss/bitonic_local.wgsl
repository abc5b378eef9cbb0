// Deterministic mode: the bitonic stages whose partners lie within one block of
// LOCAL_KEYS keys, run in workgroup memory by one workgroup per block, so that a whole
// run of stages costs one dispatch instead of one each (launches dominate small sorts).
// From stage (k, j) = (2, 1) it sorts each block (every stage up to k = block size); from
// (k, LOCAL_KEYS / 2) with k > LOCAL_KEYS it finishes that merge (j = LOCAL_KEYS / 2 .. 1).
// Ascending by (label, row), directions from the global index as in bitonic_step.

#import common
#import batch_bindings
#import scratch_sorted
#import sort_stage

const LOCAL_KEYS: u32 = 2u * WORKGROUP_SIZE;

var<workgroup> block: array<vec2<u32>, LOCAL_KEYS>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let size = min(LOCAL_KEYS, params.padded_batch);
    let base = linear_workgroup(wid, nwg) * LOCAL_KEYS;
    if base >= params.padded_batch {
        return;
    }
    for (var t = lid; t < size; t = t + WORKGROUP_SIZE) {
        block[t] = keys[base + t];
    }
    workgroupBarrier();
    var k = stage.k;
    var j = stage.j;
    let k_end = select(k, size, k <= size);
    loop {
        // Pair lid of this stage: i and i + j, both inside the block.
        let i = (lid / j) * 2u * j + lid % j;
        if i + j < size {
            let a = block[i];
            let b = block[i + j];
            if out_of_order(a, b, base + i, k) {
                block[i] = b;
                block[i + j] = a;
            }
        }
        workgroupBarrier();
        if j > 1u {
            j = j / 2u;
        } else if k < k_end {
            k = k * 2u;
            j = k / 2u;
        } else {
            break;
        }
    }
    for (var t = lid; t < size; t = t + WORKGROUP_SIZE) {
        keys[base + t] = block[t];
    }
}
