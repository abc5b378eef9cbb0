// Reads through center_word(buffer, word), which window_2 and window_4
// define over their bindings.

fn center_load(label: u32, d: u32) -> f32 {
    let at = center_place(label, d);
    return center_word(at.x, at.y / 4u)[at.y % 4u];
}

// Elements d .. d + 3 (d a multiple of 4).
fn center_load4(label: u32, d: u32) -> vec4<f32> {
    let at = center_place(label, d);
    return center_word(at.x, at.y / 4u);
}
