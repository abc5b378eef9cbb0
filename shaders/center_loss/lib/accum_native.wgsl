#serves accum
// Accumulator words as native float atomics (Features::SHADER_FLOAT32_ATOMIC).

alias AccumWord = atomic<f32>;

fn acc_add(idx: u32, v: f32) {
    atomicAdd(&acc[idx], v);
}

fn acc_load(idx: u32) -> f32 {
    return atomicLoad(&acc[idx]);
}

// Reads a word and leaves zero behind.
fn acc_take(idx: u32) -> f32 {
    return atomicExchange(&acc[idx], 0.0);
}
