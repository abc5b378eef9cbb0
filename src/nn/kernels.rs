//! The trainer's kernels by typed name (their bindings are read from the WGSL by
//! `build.rs`), the helpers each family imports, and the `#[repr(C)]` mirrors of their WGSL
//! uniforms (a unit test compares each mirror with the
//! WGSL struct's field names and offsets, read by naga).

use bytemuck::{Pod, Zeroable};

use crate::gpu::shaders::{helper, kernel, Alias, Kernel};
use crate::gpu::KernelFamily;

/// Mirrors `GemmParams` in `shaders/nn/gemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub a_stride_m: u32,
    pub a_stride_k: u32,
    pub b_stride_k: u32,
    pub b_stride_n: u32,
    /// Bit 0: add bias[n]; bit 1: add to the existing C.
    pub flags: u32,
    /// K per split-K slice (K when not split).
    pub k_per_slice: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Values each invocation of the walking kernels takes (`add`, `prelu_forward`,
/// `prelu_backward`, max pooling: `VALUES_PER_INVOCATION`), per family: walk_width.wgsl
/// and walk_width_cpu.wgsl.
pub(crate) fn values_per_invocation(family: KernelFamily) -> usize {
    match family {
        KernelFamily::Gpu => 1,
        KernelFamily::Cpu => 8,
    }
}

/// Mirrors `ElementParams` in `shaders/nn/lib/elementwise.wgsl`: element-wise kernels over
/// `len` values of an NCHW tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ElementParams {
    pub len: u32,
    /// Channels (PReLU), or split-K slices (`sum_slices`).
    pub channels: u32,
    /// Pixels per channel.
    pub pixels: u32,
    pub _pad: u32,
}

/// Mirrors `ChannelParams` in `shaders/nn/lib/channel_reduce.wgsl`: per-channel sums over
/// batch and pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ChannelParams {
    pub batch: u32,
    pub channels: u32,
    pub pixels: u32,
    pub _pad: u32,
}

/// Mirrors `RowParams` in `shaders/nn/lib/row_params.wgsl`: row-wise kernels over [rows, dim].
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct RowParams {
    pub rows: u32,
    pub dim: u32,
    pub eps: f32,
    pub _pad: u32,
}

/// Mirrors `SgdParams` in `shaders/nn/sgd_momentum.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct SgdParams {
    pub len: u32,
    pub lr: f32,
    pub momentum: f32,
    pub _pad: u32,
    /// Weight decay by [`super::ParamKind`]: weight, bias, slope (and one unused).
    pub decay: [f32; 4],
}

/// Mirrors `SumSquaresParams` in `shaders/nn/grad_sum_squares.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct SumSquaresParams {
    pub len: u32,
    pub slot: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Mirrors `ClipParams` in `shaders/nn/clip_scale.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ClipParams {
    pub count: u32,
    pub max_norm: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Mirrors `SoftmaxParams` in `shaders/nn/lib/softmax_params.wgsl` (the softmax and margin
/// cross-entropy kernels).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct SoftmaxParams {
    pub batch: u32,
    pub classes: u32,
    pub grad_scale: f32,
    pub _pad: u32,
}

/// Mirrors `ReduceParams` in `shaders/nn/reduce_rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ReduceParams {
    pub rows: u32,
    pub cols: u32,
    pub out_offset: u32,
    pub scale: f32,
}

/// The helpers the CPU family's trainer kernels import instead of the GPU ones, chosen by
/// [`crate::gpu::KernelFamily`]: the register GEMM core and eight values per invocation.
pub const CPU_KERNEL_ALIASES: &[Alias] = &[helper::GEMM_CORE_REGISTERS, helper::WALK_WIDTH_CPU];

/// The helper the GPU family's GEMM and convolution kernels import to run on the wide GEMM
/// core (`nn::GemmCore::Wide`).
pub(crate) const WIDE_GEMM_ALIASES: &[Alias] = &[helper::GEMM_CORE_WIDE];

/// The helper the GPU family's GEMM and convolution kernels import to run on the register
/// GEMM core (`nn::GemmCore::Registers`).
pub(crate) const REGISTER_GEMM_ALIASES: &[Alias] = &[helper::GEMM_CORE_REGISTERS];

/// The kernels built on a GEMM core (`#import gemm_core`).
pub(crate) const GEMM_KERNELS: &[&Kernel] =
    &[&kernel::GEMM, &kernel::CONV2D_FORWARD, &kernel::CONV2D_BACKWARD_INPUT, &kernel::CONV2D_BACKWARD_WEIGHT];

/// Every trainer kernel in `shaders/nn/`.
pub const KERNELS: &[&Kernel] = &[
    &kernel::GEMM,
    &kernel::CONV2D_FORWARD,
    &kernel::CONV2D_BACKWARD_INPUT,
    &kernel::CONV2D_BACKWARD_WEIGHT,
    &kernel::SUM_SLICES,
    &kernel::CHANNEL_SUM,
    &kernel::PRELU_FORWARD,
    &kernel::PRELU_BACKWARD,
    &kernel::PRELU_SLOPE_GRAD,
    &kernel::PRELU_BACKWARD_CHANNEL,
    &kernel::ADD,
    &kernel::MAXPOOL_FORWARD,
    &kernel::MAXPOOL_BACKWARD,
    &kernel::SOFTMAX_CROSS_ENTROPY,
    &kernel::MARGIN_CROSS_ENTROPY,
    &kernel::REDUCE_ROWS,
    &kernel::L2NORM_FORWARD,
    &kernel::L2NORM_BACKWARD,
    &kernel::GRAD_SUM_SQUARES,
    &kernel::CLIP_SCALE,
    &kernel::SGD_MOMENTUM,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{kernel, layout, mirror};
    use crate::nn::graph::{
        GEMM_REGISTER_BLOCK_M, GEMM_REGISTER_BLOCK_N, GEMM_REGISTER_INVOCATIONS, GEMM_TILE_K, GEMM_TILE_OUTPUTS,
        GEMM_WIDE_TILE_OUTPUTS,
    };

    /// Every uniform mirror and GEMM tile constant equals its WGSL twin.
    #[test]
    fn rust_mirrors_match_the_wgsl() {
        let gemm = mirror::module(&kernel::GEMM, &[]);
        mirror::assert_struct(
            &gemm,
            "GemmParams",
            layout!(GemmParams {
                m,
                n,
                k,
                a_stride_m,
                a_stride_k,
                b_stride_k,
                b_stride_n,
                flags,
                k_per_slice,
                _pad0,
                _pad1,
                _pad2
            }),
        );
        assert_eq!(mirror::constant(&gemm, "TILE_OUTPUTS"), GEMM_TILE_OUTPUTS as u64);
        assert_eq!(mirror::constant(&gemm, "MAX_TILE_K"), GEMM_TILE_K as u64);
        let gemm_wide = mirror::module(&kernel::GEMM, WIDE_GEMM_ALIASES);
        assert_eq!(mirror::constant(&gemm_wide, "TILE_OUTPUTS"), GEMM_WIDE_TILE_OUTPUTS as u64);
        assert_eq!(mirror::constant(&gemm_wide, "MAX_TILE_K"), GEMM_TILE_K as u64);
        let gemm_registers = mirror::module(&kernel::GEMM, REGISTER_GEMM_ALIASES);
        assert_eq!(mirror::constant(&gemm_registers, "INVOCATIONS"), GEMM_REGISTER_INVOCATIONS as u64);
        assert_eq!(mirror::constant(&gemm_registers, "BLOCK_M"), GEMM_REGISTER_BLOCK_M as u64);
        assert_eq!(mirror::constant(&gemm_registers, "BLOCK_N"), GEMM_REGISTER_BLOCK_N as u64);
        let element = layout!(ElementParams { len, channels, pixels, _pad });
        for kernel in [&kernel::ADD, &kernel::PRELU_FORWARD, &kernel::PRELU_BACKWARD, &kernel::SUM_SLICES] {
            mirror::assert_struct(&mirror::module(kernel, &[]), "ElementParams", element);
        }
        for (family, aliases) in [(KernelFamily::Gpu, &[][..]), (KernelFamily::Cpu, CPU_KERNEL_ALIASES)] {
            let per = values_per_invocation(family) as u64;
            assert_eq!(mirror::constant(&mirror::module(&kernel::ADD, aliases), "VALUES_PER_INVOCATION"), per);
        }
        let channel = layout!(ChannelParams { batch, channels, pixels, _pad });
        for kernel in [&kernel::CHANNEL_SUM, &kernel::PRELU_SLOPE_GRAD, &kernel::PRELU_BACKWARD_CHANNEL] {
            mirror::assert_struct(&mirror::module(kernel, &[]), "ChannelParams", channel);
        }
        let rows = layout!(RowParams { rows, dim, eps, _pad });
        for kernel in [&kernel::L2NORM_FORWARD, &kernel::L2NORM_BACKWARD] {
            mirror::assert_struct(&mirror::module(kernel, &[]), "RowParams", rows);
        }
        let sgd = mirror::module(&kernel::SGD_MOMENTUM, &[]);
        mirror::assert_struct(&sgd, "SgdParams", layout!(SgdParams { len, lr, momentum, _pad, decay }));
        assert_eq!(mirror::constant(&sgd, "CHUNK_VALUES"), crate::nn::arena::CHUNK_VALUES as u64);
        let sum_squares = mirror::module(&kernel::GRAD_SUM_SQUARES, &[]);
        mirror::assert_struct(&sum_squares, "SumSquaresParams", layout!(SumSquaresParams { len, slot, _pad0, _pad1 }));
        let clip = mirror::module(&kernel::CLIP_SCALE, &[]);
        mirror::assert_struct(&clip, "ClipParams", layout!(ClipParams { count, max_norm, _pad0, _pad1 }));
        for kernel in [&kernel::SOFTMAX_CROSS_ENTROPY, &kernel::MARGIN_CROSS_ENTROPY] {
            let softmax = mirror::module(kernel, &[]);
            mirror::assert_struct(
                &softmax,
                "SoftmaxParams",
                layout!(SoftmaxParams { batch, classes, grad_scale, _pad }),
            );
        }
        let reduce = mirror::module(&kernel::REDUCE_ROWS, &[]);
        mirror::assert_struct(&reduce, "ReduceParams", layout!(ReduceParams { rows, cols, out_offset, scale }));
    }

    /// The GEMM kernels are those whose variants choose a GEMM core.
    #[test]
    fn the_gemm_kernels_are_those_on_the_gemm_core() {
        let slot = crate::gpu::shaders::helper::GEMM_CORE.slot;
        let mut on_core: Vec<&str> = kernel::ALL
            .iter()
            .filter(|k| k.variants.iter().any(|v| v.aliases.iter().any(|a| a.slot == slot)))
            .map(|k| k.name)
            .collect();
        let mut gemm: Vec<&str> = GEMM_KERNELS.iter().map(|k| k.name).collect();
        gemm.sort_unstable();
        on_core.sort_unstable();
        assert_eq!(gemm, on_core);
    }

    /// Every kernel of `shaders/nn/` is in the list, and only those.
    #[test]
    fn the_list_holds_every_nn_kernel() {
        let mut files: Vec<&str> = kernel::ALL.iter().filter(|k| k.family == "nn").map(|k| k.name).collect();
        let mut listed: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        files.sort_unstable();
        listed.sort_unstable();
        assert_eq!(files, listed);
    }
}
