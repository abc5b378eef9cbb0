#serves accumulate
// Forward only: nothing is accumulated.

fn accumulate(label: u32, d: u32, value: f32) {}
