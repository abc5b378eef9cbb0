// Shared constants and helpers for every center-loss kernel.

const WORKGROUP_SIZE: u32 = 256u;
// Marks a class that owns no slot in the current batch (atomic mode).
const EMPTY_SLOT: u32 = 0xffffffffu;
// Bits of status[0], the per-step poison flags.
const FLAG_BAD_LABEL: u32 = 1u;
const FLAG_NON_FINITE: u32 = 2u;

// Grids larger than 65 535 workgroups spill into y; this folds them back to one index.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// NaN and +-inf have every exponent bit set.
fn is_finite_f32(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}
