// CPU family (D divisible by 4), first pass of a step: reads every label and feature once,
// so that the runs that follow know before it writes a center whether the step is
// poisoned. Counts non-finite features and labels >= K in the health counters, and hands
// each row to the runs' bookkeeping (runs_links: links it into its class's list;
// runs_sorted: writes its sort key, and the padding keys). One invocation per (row, lane),
// with the run lanes (run_lanes); lane 0 inspects the label.

#import common
#import batch_bindings
#import batch_data_vec4
#import health_report
#import run_lanes
#import runs

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_workgroup(wid, nwg) * WORKGROUP_SIZE + lid;
    pad_key(e);
    let lanes = run_lanes();
    if e >= params.batch * lanes {
        return;
    }
    let words = params.dim / 4u;
    let row = e / lanes;
    let lane = e - row * lanes;
    let base = row * words + lane;
    let count = (words - lane + lanes - 1u) / lanes;
    var non_finite = 0u;
    for (var t = 0u; t < count; t = t + 1u) {
        non_finite = non_finite + non_finite_count(features[base + t * lanes]);
    }
    if non_finite != 0u {
        report_non_finite(non_finite);
    }
    if lane == 0u {
        let label = labels[row];
        if label >= params.num_classes {
            report_bad_label();
        }
        row_inspected(row, label);
    }
}
