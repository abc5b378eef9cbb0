//! What the Rust side shares with the center-loss kernels: the `#[repr(C)]` mirrors of
//! their uniforms and the constants both sides use. A unit test reads each WGSL twin with
//! naga and compares field names, offsets and values.

use bytemuck::{Pod, Zeroable};

use crate::gpu;

/// Elements per invocation of `center_forward` (its `PER_INVOCATION`, element_walk.wgsl);
/// `center_forward_vec4` handles as many vec4 words, four times the elements.
pub(super) const FORWARD_PER_INVOCATION: u64 = 8;
/// `WORKGROUP_SIZE` of the center kernels (common.wgsl): the forward kernel writes one loss
/// partial per invocation.
pub(super) const WORKGROUP_SIZE: u32 = gpu::WORKGROUP_SIZE;
/// Keys one workgroup of `bitonic_local` sorts in workgroup memory (its `LOCAL_KEYS`).
pub(super) const LOCAL_SORT_KEYS: u32 = 2 * WORKGROUP_SIZE;
/// Most vec4 words one invocation of `center_runs_vec4` handles (`WORDS_PER_INVOCATION`,
/// run_lanes.wgsl).
pub(super) const RUN_WORDS_PER_INVOCATION: usize = 16;
/// A class that owns no slot in the current batch (atomic mode): `EMPTY_SLOT` in
/// scratch_atomic.wgsl, the value the slot table holds between steps.
pub(super) const EMPTY_SLOT: u32 = u32::MAX;

/// Mirrors `StepParams` in `shaders/center_loss/lib/batch_bindings.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(super) struct StepParams {
    pub batch: u32,
    pub dim: u32,
    pub num_classes: u32,
    pub padded_batch: u32,
    pub grad_scale: f32,
    pub alpha: f32,
    pub grad_accumulate: u32,
    pub partials_per_window: u32,
    pub num_windows: u32,
    pub center_stride: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Mirrors `WindowParams` in `shaders/center_loss/lib/window_params.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(super) struct WindowParams {
    pub row_start: u32,
    pub row_end: u32,
    pub index: u32,
    pub rows_per_buffer: u32,
}

/// Mirrors `SortStage` in `shaders/center_loss/lib/sort_stage.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(super) struct SortStage {
    pub k: u32,
    pub j: u32,
}

/// Bytes of one [`SortStage`].
pub(super) const SORT_STAGE_BYTES: u64 = std::mem::size_of::<SortStage>() as u64;

/// The kernel that scales a gradient in place by one value read on the device
/// (`center_grad_scale.wgsl`): the backward of the burn integration, G times the loss's
/// incoming gradient, bound to a range of another library's buffer.
pub const GRAD_SCALE_KERNELS: &[&gpu::shaders::Kernel] = &[&gpu::shaders::kernel::CENTER_GRAD_SCALE];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{helper, kernel, layout, mirror};

    /// Every constant and uniform the Rust side shares with the center-loss kernels equals
    /// its WGSL twin.
    #[test]
    fn rust_mirrors_match_the_wgsl() {
        let aliases = [helper::ACCUMULATE_ATOMIC, helper::ACCUM_CAS];
        let forward = mirror::module(&kernel::CENTER_FORWARD, &aliases);
        assert_eq!(mirror::constant(&forward, "PER_INVOCATION"), FORWARD_PER_INVOCATION);
        assert_eq!(mirror::constant(&forward, "WORKGROUP_SIZE"), WORKGROUP_SIZE as u64);
        let vec4 = mirror::module(&kernel::CENTER_FORWARD_VEC4, &[helper::ACCUMULATE_NONE]);
        assert_eq!(mirror::constant(&vec4, "PER_INVOCATION"), FORWARD_PER_INVOCATION);
        assert_eq!(mirror::constant(&forward, "EMPTY_SLOT"), EMPTY_SLOT as u64);
        let inspect = mirror::module(&kernel::CENTER_INSPECT_VEC4, &[helper::RUNS_LINKS]);
        assert_eq!(mirror::constant(&inspect, "EMPTY_SLOT"), EMPTY_SLOT as u64);
        let runs = mirror::module(&kernel::CENTER_RUNS_VEC4, &[helper::RUNS_SORTED]);
        assert_eq!(mirror::constant(&runs, "WORDS_PER_INVOCATION"), RUN_WORDS_PER_INVOCATION as u64);
        let local = mirror::module(&kernel::BITONIC_LOCAL, &[]);
        assert_eq!(mirror::constant(&local, "LOCAL_KEYS"), LOCAL_SORT_KEYS as u64);
        mirror::assert_struct(
            &forward,
            "StepParams",
            layout!(StepParams {
                batch,
                dim,
                num_classes,
                padded_batch,
                grad_scale,
                alpha,
                grad_accumulate,
                partials_per_window,
                num_windows,
                center_stride,
                _pad1,
                _pad2
            }),
        );
        mirror::assert_struct(
            &forward,
            "WindowParams",
            layout!(WindowParams { row_start, row_end, index, rows_per_buffer }),
        );
        mirror::assert_struct(&local, "SortStage", layout!(SortStage { k, j }));
    }
}
