// The sum of squares of one parameter's gradient, for gradient-norm clipping, in a fixed
// order (one workgroup: strided partial sums, then a tree): sums[slot] = sum_i grad[i]^2.
// Four values per lane and iteration: a 128 MiB binding takes 32 768 iterations, within
// the 65 535 at which Mesa before 25.0 silently ends a loop.

#import common
#import tree_sum

struct SumSquaresParams {
    len: u32,
    slot: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> sp: SumSquaresParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    var sum = 0.0;
    for (var base = 0u; base < sp.len; base = base + 4u * WORKGROUP_SIZE) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            let i = base + j * WORKGROUP_SIZE + lid;
            if i < sp.len {
                let g = grad[i];
                sum = sum + g * g;
            }
        }
    }
    let total = tree_sum(lid, sum);
    if lid == 0u {
        sums[sp.slot] = total;
    }
}
