// Group 3 in deterministic mode: the bitonic stage (k, j) of a dispatch (a dynamic offset
// into the table of stages), and the order both sort kernels use: ascending by (label, row).
// Keys are unique, so the order is total and reproducible.

struct SortStage {
    k: u32,
    j: u32,
}

@group(3) @binding(0) var<uniform> stage: SortStage;

fn key_greater(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y > b.y);
}

// Whether keys a (at global index i) and b (its partner above) must swap in a stage of
// merge size k: the direction alternates with bit k of i.
fn out_of_order(a: vec2<u32>, b: vec2<u32>, i: u32, k: u32) -> bool {
    return key_greater(a, b) == ((i & k) == 0u);
}
