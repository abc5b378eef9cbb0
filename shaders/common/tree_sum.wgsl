// Sum of one value per invocation of a WORKGROUP_SIZE workgroup in a fixed order (a tree in
// workgroup memory), so the result is reproducible. Call it from uniform control flow;
// every invocation gets the sum.

var<workgroup> tree: array<f32, WORKGROUP_SIZE>;

fn tree_sum(lid: u32, value: f32) -> f32 {
    tree[lid] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            tree[lid] = tree[lid] + tree[lid + stride];
        }
        workgroupBarrier();
    }
    return tree[0];
}
