// Group 1: one chunk of the center table (rows [row_start, row_end)).

struct ChunkParams {
    row_start: u32,
    row_end: u32,
    index: u32,
    _pad: u32,
}

@group(1) @binding(0) var<uniform> chunk: ChunkParams;
@group(1) @binding(1) var<storage, read_write> centers: array<f32>;

fn in_chunk(label: u32) -> bool {
    return label >= chunk.row_start && label < chunk.row_end;
}

fn center_index(label: u32, d: u32) -> u32 {
    return (label - chunk.row_start) * params.dim + d;
}
