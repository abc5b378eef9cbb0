// Sums the forward kernel's loss partials (one per invocation and window) in a fixed order
// (one workgroup): see step_close's write_loss.

#import common
#import batch_bindings
#import step_close

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    write_loss(lid, params.partials_per_window * params.num_windows);
}
