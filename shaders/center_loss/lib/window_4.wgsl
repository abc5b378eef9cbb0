#serves window
// Group 1: up to four buffers of the center table bound together, so that a kernel walks
// the batch once per step over a split table. Unused bindings hold a placeholder that no label reaches.
// Branches, not a switch: a CPU driver then skips the buffers no lane touches.

#import window_params
#import window_words

@group(1) @binding(1) var<storage, read_write> centers0: array<vec4<f32>>;
@group(1) @binding(2) var<storage, read_write> centers1: array<vec4<f32>>;
@group(1) @binding(3) var<storage, read_write> centers2: array<vec4<f32>>;
@group(1) @binding(4) var<storage, read_write> centers3: array<vec4<f32>>;

// Word w of buffer b.
fn center_word(b: u32, w: u32) -> vec4<f32> {
    if b < 2u {
        if b == 0u {
            return centers0[w];
        }
        return centers1[w];
    }
    if b == 2u {
        return centers2[w];
    }
    return centers3[w];
}

fn center_store(label: u32, d: u32, value: f32) {
    let at = center_place(label, d);
    let w = at.y / 4u;
    let j = at.y % 4u;
    if at.x < 2u {
        if at.x == 0u {
            centers0[w][j] = value;
        } else {
            centers1[w][j] = value;
        }
    } else if at.x == 2u {
        centers2[w][j] = value;
    } else {
        centers3[w][j] = value;
    }
}

// Elements d .. d + 3 (d a multiple of 4).
fn center_store4(label: u32, d: u32, value: vec4<f32>) {
    let at = center_place(label, d);
    let w = at.y / 4u;
    if at.x < 2u {
        if at.x == 0u {
            centers0[w] = value;
        } else {
            centers1[w] = value;
        }
    } else if at.x == 2u {
        centers2[w] = value;
    } else {
        centers3[w] = value;
    }
}
