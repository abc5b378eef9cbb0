// The k largest values of each row of a [rows, cols] matrix (1:N search: a probe's scores
// against every gallery row), by falling value, ties to the lower column, so the result is
// the same on every adapter. One workgroup per row: each invocation keeps the best k of its
// strided columns, sorted, in private arrays (most values fail the first comparison), then
// k rounds of a workgroup arg-max over the invocations' heads pick the row's best k.

struct TopKParams {
    rows: u32,
    cols: u32,
    k: u32,
    _pad: u32,
}

#import arg_max

// The largest k the arrays hold.
const MAX_K: u32 = 64u;
const TOP_K_WORKGROUP: u32 = ARG_MAX_WORKGROUP;
// Column of an empty slot: loses every tie.
const NO_COLUMN: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> tk: TopKParams;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> top_values: array<f32>;
@group(0) @binding(3) var<storage, read_write> top_columns: array<u32>;

// The lowest finite f32, exactly (a decimal spelling that rounds to it is out of f32's
// range before rounding, which some compilers reject).
const LOWEST: f32 = -0x1.fffffep+127f;

@compute @workgroup_size(TOP_K_WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x;
    var best_value: array<f32, MAX_K>;
    var best_column: array<u32, MAX_K>;
    for (var i = 0u; i < tk.k; i = i + 1u) {
        best_value[i] = LOWEST;
        best_column[i] = NO_COLUMN;
    }
    let base = row * tk.cols;
    let last = tk.k - 1u;
    // Columns rise along each invocation's walk, so a tie never displaces a kept column.
    for (var col = lid; col < tk.cols; col = col + TOP_K_WORKGROUP) {
        let v = values[base + col];
        if ranks_before(v, col, best_value[last], best_column[last]) {
            var at = last;
            while at > 0u && ranks_before(v, col, best_value[at - 1u], best_column[at - 1u]) {
                best_value[at] = best_value[at - 1u];
                best_column[at] = best_column[at - 1u];
                at = at - 1u;
            }
            best_value[at] = v;
            best_column[at] = col;
        }
    }
    // k rounds: every invocation offers its best unused entry; the winner's head moves on.
    var head = 0u;
    for (var r = 0u; r < tk.k; r = r + 1u) {
        var offer_value = LOWEST;
        var offer_column = NO_COLUMN;
        if head < tk.k {
            offer_value = best_value[head];
            offer_column = best_column[head];
        }
        let winner = workgroup_arg_max(lid, offer_value, offer_column);
        if lid == 0u {
            top_values[row * tk.k + r] = winner.value;
            top_columns[row * tk.k + r] = winner.index;
        }
        if head < tk.k && offer_column == winner.index {
            head = head + 1u;
        }
    }
}
