// What both forward kernels (center_forward, center_forward_vec4) report besides the
// gradient: poisoned inputs in the health counters, and one loss partial per invocation.

#import health_report

// The invocation's sum of squared distances, summed in a fixed order by loss_reduce: no
// workgroup barriers here (a tree reduction per workgroup cost ~40% of the kernel on lavapipe).
fn write_loss_partial(wg: u32, lid: u32, sq: f32) {
    let slot = wg * WORKGROUP_SIZE + lid;
    if slot < params.partials_per_window {
        loss_scratch.partials[window.index * params.partials_per_window + slot] = sq;
    }
}
