#serves window
// Group 1: two buffers of the center table bound together (window_4 for three or
// four), so that a kernel walks the batch once per step over a split table.

#import window_params
#import window_words

@group(1) @binding(1) var<storage, read_write> centers0: array<vec4<f32>>;
@group(1) @binding(2) var<storage, read_write> centers1: array<vec4<f32>>;

// Word w of buffer b.
fn center_word(b: u32, w: u32) -> vec4<f32> {
    if b == 0u {
        return centers0[w];
    }
    return centers1[w];
}

fn center_store(label: u32, d: u32, value: f32) {
    let at = center_place(label, d);
    let w = at.y / 4u;
    if at.x == 0u {
        centers0[w][at.y % 4u] = value;
    } else {
        centers1[w][at.y % 4u] = value;
    }
}

// Elements d .. d + 3 (d a multiple of 4).
fn center_store4(label: u32, d: u32, value: vec4<f32>) {
    let at = center_place(label, d);
    if at.x == 0u {
        centers0[at.y / 4u] = value;
    } else {
        centers1[at.y / 4u] = value;
    }
}
