// Group 1: one buffer of the center table (rows [row_start, row_end)).

#import chunk_params

@group(1) @binding(1) var<storage, read_write> centers: array<vec4<f32>>;

fn center_load(label: u32, d: u32) -> f32 {
    let i = center_place(label, d).y;
    return centers[i / 4u][i % 4u];
}

// Elements d .. d + 3 (d a multiple of 4).
fn center_load4(label: u32, d: u32) -> vec4<f32> {
    return centers[center_place(label, d).y / 4u];
}

fn center_store(label: u32, d: u32, value: f32) {
    let i = center_place(label, d).y;
    centers[i / 4u][i % 4u] = value;
}
