#serves accumulate
// Atomic mode: add (c_j - x_i) into the slot that center_claim gave class j,
// and count the row once (from its d = 0 invocation).

#import accum
#import scratch_atomic

fn accumulate(label: u32, d: u32, value: f32) {
    let slot = atomicLoad(&slots[label]);
    acc_add(slot * params.dim + d, value);
    if d == 0u {
        acc_add(count_index(slot), 1.0);
    }
}
