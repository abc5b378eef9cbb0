// Closes a step's health record (one invocation): a step whose inputs were poisoned
// (bad label or non-finite feature) counts as a skipped center update; the flags clear.

#import common
#import batch_bindings

// false after a loss-only pass, which updates nothing and so skips nothing.
override COUNT_SKIPPED: bool = true;

@compute @workgroup_size(1)
fn main() {
    let flags = atomicExchange(&status[0], 0u);
    if COUNT_SKIPPED && flags != 0u {
        atomicAdd(&status[1], 1u);
    }
}
