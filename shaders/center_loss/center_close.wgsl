// CPU family, last pass of a step (one workgroup): the loss from the runs' partials (one
// per row and run lane), the class slots freed (runs_links), and the step's health record
// closed: loss_reduce and status_finalize in one dispatch (step_close).

#import common
#import batch_bindings
#import step_close
#import run_lanes
#import runs

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
    write_loss(lid, params.batch * run_lanes());
    release_rows(lid);
    if lid == 0u {
        close_health(true);
    }
}
