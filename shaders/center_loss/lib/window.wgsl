// Group 1: a window of one buffer of the center table (rows [row_start, row_end)).

#import window_params

@group(1) @binding(1) var<storage, read_write> centers: array<vec4<f32>>;

// Float index of element d of center `label` (one buffer: no division by rows_per_buffer).
fn center_index(label: u32, d: u32) -> u32 {
    return (label - window.row_start) * params.center_stride + d;
}

fn center_load(label: u32, d: u32) -> f32 {
    let i = center_index(label, d);
    return centers[i / 4u][i % 4u];
}

// Elements d .. d + 3 (d a multiple of 4).
fn center_load4(label: u32, d: u32) -> vec4<f32> {
    return centers[center_index(label, d) / 4u];
}

fn center_store(label: u32, d: u32, value: f32) {
    let i = center_index(label, d);
    centers[i / 4u][i % 4u] = value;
}

// Elements d .. d + 3 (d a multiple of 4).
fn center_store4(label: u32, d: u32, value: vec4<f32>) {
    centers[center_index(label, d) / 4u] = value;
}
