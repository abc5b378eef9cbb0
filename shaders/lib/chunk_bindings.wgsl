// Group 1: one buffer of the center table (rows [row_start, row_end)).

struct ChunkParams {
    row_start: u32,
    row_end: u32,
    // Which group of center buffers this is (the loss partials it writes).
    index: u32,
    // Rows per buffer (used by chunk_bindings_4).
    rows_per_buffer: u32,
}

@group(1) @binding(0) var<uniform> chunk: ChunkParams;
@group(1) @binding(1) var<storage, read_write> centers: array<f32>;

fn in_chunk(label: u32) -> bool {
    return label >= chunk.row_start && label < chunk.row_end;
}

fn center_load(label: u32, d: u32) -> f32 {
    return centers[(label - chunk.row_start) * params.dim + d];
}

fn center_store(label: u32, d: u32, value: f32) {
    centers[(label - chunk.row_start) * params.dim + d] = value;
}
