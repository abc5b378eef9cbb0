#serves runs
// Deterministic mode, CPU family: the rows of each class as a run of the (label, row) keys
// that the bitonic kernels sort, so every class sums its rows in ascending row order
// (the same sums as center_update_sorted, bit for bit).

#import scratch_sorted

// A position in a class's run: `at` (a sorted position; RUN_END past the run) and its row.
struct Cursor {
    at: u32,
    row: u32,
}

const RUN_END: u32 = 0xffffffffu;

// center_inspect_vec4, once per row: its key, bad labels included (they sort last).
fn row_inspected(row: u32, label: u32) {
    keys[row] = vec2<u32>(label, row);
}

// center_inspect_vec4, once per invocation g: the padding keys sort after every row.
fn pad_key(g: u32) {
    if g >= params.batch && g < params.padded_batch {
        keys[g] = vec2<u32>(0xffffffffu, 0xffffffffu);
    }
}

// Run positions are sorted positions.
fn run_label(p: u32) -> u32 {
    return keys[p].x;
}

fn run_row(p: u32) -> u32 {
    return keys[p].y;
}

// Whether position p runs over its class (label < K): it starts the class's run.
fn run_owns(p: u32, label: u32) -> bool {
    return p == 0u || keys[p - 1u].x != label;
}

fn run_first(p: u32) -> Cursor {
    return Cursor(p, keys[p].y);
}

fn run_next(c: Cursor, label: u32) -> Cursor {
    let q = c.at + 1u;
    if q >= params.batch {
        return Cursor(RUN_END, RUN_END);
    }
    let key = keys[q];
    if key.x != label {
        return Cursor(RUN_END, RUN_END);
    }
    return Cursor(q, key.y);
}

// center_close: nothing to release.
fn release_rows(lid: u32) {}
