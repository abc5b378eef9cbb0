// Closes a step's health record (one invocation): a step whose inputs were poisoned
// (bad label or non-finite feature) counts as a skipped center update; the flags clear.

#import common
#import batch_bindings
#import step_close

// false after a loss-only pass, which updates nothing and so skips nothing.
override COUNT_SKIPPED: bool = true;

@compute @workgroup_size(1)
fn main() {
    close_health(COUNT_SKIPPED);
}
