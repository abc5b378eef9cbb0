// Group 1 parameters: which center rows the bound buffers hold. Centers are stored as vec4
// words, each row padded to params.center_stride floats (a multiple of 4), so a row starts
// on a word and a forward pass over D divisible by 4 reads whole words.

struct ChunkParams {
    row_start: u32,
    row_end: u32,
    // Which group of center buffers this is (the loss partials it writes).
    index: u32,
    // Rows per buffer (several buffers bound together).
    rows_per_buffer: u32,
}

@group(1) @binding(0) var<uniform> chunk: ChunkParams;

fn in_chunk(label: u32) -> bool {
    return label >= chunk.row_start && label < chunk.row_end;
}

// (buffer, float index in it) of element d of center `label`.
fn center_place(label: u32, d: u32) -> vec2<u32> {
    let local = label - chunk.row_start;
    // At most four buffers: compares, not a division per access.
    let rows = chunk.rows_per_buffer;
    let buffer = u32(local >= rows) + u32(local >= 2u * rows) + u32(local >= 3u * rows);
    return vec2<u32>(buffer, (local - buffer * chunk.rows_per_buffer) * params.center_stride + d);
}
