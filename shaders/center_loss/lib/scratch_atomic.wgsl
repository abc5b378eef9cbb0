// Group 2 in atomic mode: the class -> slot table (K words, EMPTY_SLOT between steps)
// and the slot accumulators: B*D sums of (c_j - x_i), then B sample counts.
// AccumWord comes from accum_native or accum_cas.

// Marks a class that owns no slot in the current batch.
const EMPTY_SLOT: u32 = 0xffffffffu;

@group(2) @binding(0) var<storage, read_write> slots: array<atomic<u32>>;
@group(2) @binding(1) var<storage, read_write> acc: array<AccumWord>;

fn count_index(slot: u32) -> u32 {
    return params.batch * params.dim + slot;
}
