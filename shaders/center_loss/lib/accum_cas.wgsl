#serves accum
// Accumulator words as u32 holding f32 bits, added with a compare-exchange loop:
// for adapters without float atomics (DX12, the web).

alias AccumWord = atomic<u32>;

fn acc_add(idx: u32, v: f32) {
    var old = atomicLoad(&acc[idx]);
    loop {
        let r = atomicCompareExchangeWeak(&acc[idx], old, bitcast<u32>(bitcast<f32>(old) + v));
        if r.exchanged {
            break;
        }
        old = r.old_value;
    }
}

fn acc_load(idx: u32) -> f32 {
    return bitcast<f32>(atomicLoad(&acc[idx]));
}

// Reads a word and leaves zero behind.
fn acc_take(idx: u32) -> f32 {
    return bitcast<f32>(atomicExchange(&acc[idx], 0u));
}
