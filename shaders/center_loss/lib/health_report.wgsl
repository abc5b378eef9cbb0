// Poisoned inputs in the health counters (status, batch_bindings): the kernels that first
// read a step's labels and features report them here.

// A row with a label >= K (call once per row).
fn report_bad_label() {
    atomicOr(&status[0], FLAG_BAD_LABEL);
    atomicAdd(&status[2], 1u);
}

// `count` non-finite feature values (count > 0).
fn report_non_finite(count: u32) {
    atomicOr(&status[0], FLAG_NON_FINITE);
    atomicAdd(&status[3], count);
}

// How many of four feature values are NaN or +-inf (every exponent bit set).
fn non_finite_count(x: vec4<f32>) -> u32 {
    let bits = bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u);
    return dot(select(vec4<u32>(0u), vec4<u32>(1u), bits == vec4<u32>(0x7f800000u)), vec4<u32>(1u));
}
