// Group 2 in deterministic mode: (label, row) keys, sorted by label then row.

@group(2) @binding(0) var<storage, read_write> keys: array<vec2<u32>>;
