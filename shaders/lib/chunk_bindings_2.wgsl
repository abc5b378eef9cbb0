// Group 1: two buffers of the center table (chunk_bindings_4 for three or four), rows [row_start, row_end) with
// rows_per_buffer rows in each, so that a split table is walked once per step.

struct ChunkParams {
    row_start: u32,
    row_end: u32,
    // Which group of center buffers this is (the loss partials it writes).
    index: u32,
    rows_per_buffer: u32,
}

@group(1) @binding(0) var<uniform> chunk: ChunkParams;
@group(1) @binding(1) var<storage, read_write> centers0: array<f32>;
@group(1) @binding(2) var<storage, read_write> centers1: array<f32>;

fn in_chunk(label: u32) -> bool {
    return label >= chunk.row_start && label < chunk.row_end;
}

// (buffer, index in it) of element d of center `label`.
fn center_place(label: u32, d: u32) -> vec2<u32> {
    let local = label - chunk.row_start;
    let buffer = local / chunk.rows_per_buffer;
    return vec2<u32>(buffer, (local - buffer * chunk.rows_per_buffer) * params.dim + d);
}

fn center_load(label: u32, d: u32) -> f32 {
    let at = center_place(label, d);
    if at.x == 0u {
        return centers0[at.y];
    }
    return centers1[at.y];
}

fn center_store(label: u32, d: u32, value: f32) {
    let at = center_place(label, d);
    if at.x == 0u {
        centers0[at.y] = value;
    } else {
        centers1[at.y] = value;
    }
}
