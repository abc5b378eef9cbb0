// The best (value, index) pair of a 64-invocation workgroup: the larger value, then the
// lower index, so ties resolve the same way on every adapter; and the sum of a value per
// invocation in a fixed tree order. Call them from uniform control flow; every invocation
// gets the result, and the workgroup arrays are free again after.

const ARG_MAX_WORKGROUP: u32 = 64u;

var<workgroup> arg_max_value: array<f32, ARG_MAX_WORKGROUP>;
var<workgroup> arg_max_index: array<u32, ARG_MAX_WORKGROUP>;

struct ArgMax {
    value: f32,
    index: u32,
}

// Whether (va, ia) ranks before (vb, ib): larger value, then lower index.
fn ranks_before(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
    return va > vb || (va == vb && ia < ib);
}

fn workgroup_arg_max(lid: u32, value: f32, index: u32) -> ArgMax {
    arg_max_value[lid] = value;
    arg_max_index[lid] = index;
    workgroupBarrier();
    for (var stride = ARG_MAX_WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            let v = arg_max_value[lid + stride];
            let i = arg_max_index[lid + stride];
            if ranks_before(v, i, arg_max_value[lid], arg_max_index[lid]) {
                arg_max_value[lid] = v;
                arg_max_index[lid] = i;
            }
        }
        workgroupBarrier();
    }
    let best = ArgMax(arg_max_value[0], arg_max_index[0]);
    workgroupBarrier();
    return best;
}

fn workgroup_sum(lid: u32, value: f32) -> f32 {
    arg_max_value[lid] = value;
    workgroupBarrier();
    for (var stride = ARG_MAX_WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            arg_max_value[lid] = arg_max_value[lid] + arg_max_value[lid + stride];
        }
        workgroupBarrier();
    }
    let total = arg_max_value[0];
    workgroupBarrier();
    return total;
}
