// Group 1 parameters: the window, i.e. the consecutive center buffers one dispatch binds,
// and which center rows they hold. Centers are stored as vec4
// words, each row padded to params.center_stride floats (a multiple of 4), so a row starts
// on a word and a forward pass over D divisible by 4 reads whole words.

struct WindowParams {
    row_start: u32,
    row_end: u32,
    // Which window this is (the loss partials it writes).
    index: u32,
    // Rows per buffer (several buffers bound together).
    rows_per_buffer: u32,
}

@group(1) @binding(0) var<uniform> window: WindowParams;

fn in_window(label: u32) -> bool {
    return label >= window.row_start && label < window.row_end;
}

// (buffer, float index in it) of element d of center `label`.
fn center_place(label: u32, d: u32) -> vec2<u32> {
    let local = label - window.row_start;
    // At most four buffers: compares, not a division per access.
    let rows = window.rows_per_buffer;
    let buffer = u32(local >= rows) + u32(local >= 2u * rows) + u32(local >= 3u * rows);
    return vec2<u32>(buffer, (local - buffer * window.rows_per_buffer) * params.center_stride + d);
}
