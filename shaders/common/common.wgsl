// What every 1-D kernel shares: its workgroup size, the fold of a spilled grid, a
// finiteness test.

const WORKGROUP_SIZE: u32 = 256u;

// Grids larger than 65 535 workgroups spill into y; this folds them back to one index.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// NaN and +-inf have every exponent bit set.
fn is_finite_f32(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}
