#serves runs
// Atomic mode, CPU family: the rows of each class in the batch as a list threaded through
// the class -> slot table. center_inspect_vec4 swaps each row into its class's slot
// (atomicExchange) and links it to the row it displaced, so after that pass slots[j] holds
// the class's head row (its owner this step) and links[row] the next row of the class.
// The list's order is the order the atomics ran in: the center sums are not reproducible
// bit for bit (loss and gradient are). center_close empties the slots again.

// Marks a class that owns no slot in the current batch, and ends a list.
const EMPTY_SLOT: u32 = 0xffffffffu;
const RUN_END: u32 = EMPTY_SLOT;

@group(2) @binding(0) var<storage, read_write> slots: array<atomic<u32>>;
@group(2) @binding(1) var<storage, read_write> links: array<u32>;

// A position in a class's run: `at` (a row here; RUN_END past the end) and its row.
struct Cursor {
    at: u32,
    row: u32,
}

// center_inspect_vec4, once per row.
fn row_inspected(row: u32, label: u32) {
    if label < params.num_classes {
        links[row] = atomicExchange(&slots[label], row);
    }
}

// center_inspect_vec4, once per invocation: nothing to pad.
fn pad_key(g: u32) {}

// Run positions are rows.
fn run_label(p: u32) -> u32 {
    return labels[p];
}

fn run_row(p: u32) -> u32 {
    return p;
}

// Whether position p runs over its class (label < K): it is the head of the list.
fn run_owns(p: u32, label: u32) -> bool {
    return atomicLoad(&slots[label]) == p;
}

fn run_first(p: u32) -> Cursor {
    return Cursor(p, p);
}

fn run_next(c: Cursor, label: u32) -> Cursor {
    let next = links[c.row];
    return Cursor(next, next);
}

// center_close: the heads free their classes' slots, leaving the table empty between steps.
fn release_rows(lid: u32) {
    for (var row = lid; row < params.batch; row = row + WORKGROUP_SIZE) {
        let label = labels[row];
        if label < params.num_classes && atomicLoad(&slots[label]) == row {
            atomicStore(&slots[label], EMPTY_SLOT);
        }
    }
}
