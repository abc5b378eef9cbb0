//! The trainer kernels' interfaces: the table the GPU toolkit builds them from, and the
//! `#[repr(C)]` mirrors of their WGSL uniforms (a unit test compares each mirror with the
//! WGSL struct's field names and offsets, read by naga).

use std::mem::size_of;

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Access, KernelFamily, KernelSpec};
use Access::{Read as R, Write as W};

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

/// Mirrors `TopKParams` in `shaders/nn/top_k.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct TopKParams {
    pub rows: u32,
    pub cols: u32,
    pub k: u32,
    pub _pad: u32,
}

/// The largest k `top_k.wgsl` selects: `MAX_K`.
pub(crate) const TOP_K_MAX: usize = 64;

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

/// The helpers the CPU-driver variants of the trainer kernels import instead of the GPU
/// ones (`#import` aliases), chosen by [`crate::gpu::KernelFamily`].
pub const CPU_KERNEL_ALIASES: &[(&str, &str)] = &[("gemm_core", "gemm_core_cpu"), ("walk_width", "walk_width_cpu")];

/// The helper the GPU family's GEMM and convolution kernels import to run on the wide GEMM
/// core (`nn::GemmCore::Wide`).
pub(crate) const WIDE_GEMM_ALIASES: &[(&str, &str)] = &[("gemm_core", "gemm_core_wide")];

/// The helper the GPU family's GEMM and convolution kernels import to run on the register
/// GEMM core (`nn::GemmCore::Registers`).
pub(crate) const REGISTER_GEMM_ALIASES: &[(&str, &str)] = &[("gemm_core", "gemm_core_cpu")];

const fn uniform<T>() -> u64 {
    size_of::<T>() as u64
}

/// The kernels built on a GEMM core (`#import gemm_core`): the first entries of
/// [`KERNELS`].
pub(crate) const GEMM_KERNELS: &[KernelSpec] = KERNELS.split_at(4).0;

/// Every trainer kernel in `shaders/nn/`: its uniform and its storage bindings (the GEMM
/// kernels first).
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec::new("gemm", uniform::<GemmParams>(), &[R, R, R, W]),
    KernelSpec::without_uniform("conv2d_forward", &[R, R, R, W, R, W]),
    KernelSpec::without_uniform("conv2d_backward_input", &[R, R, W]),
    KernelSpec::without_uniform("conv2d_backward_weight", &[R, R, W]),
    KernelSpec::new("sum_slices", uniform::<ElementParams>(), &[R, W]),
    KernelSpec::new("channel_sum", uniform::<ChannelParams>(), &[R, W]),
    KernelSpec::new("prelu_forward", uniform::<ElementParams>(), &[R, R, W]),
    KernelSpec::new("prelu_backward", uniform::<ElementParams>(), &[R, R, R, W]),
    KernelSpec::new("prelu_slope_grad", uniform::<ChannelParams>(), &[R, R, W]),
    KernelSpec::new("prelu_backward_channel", uniform::<ChannelParams>(), &[R, R, R, W, W, W]),
    KernelSpec::new("add", uniform::<ElementParams>(), &[R, R, W]),
    KernelSpec::without_uniform("maxpool_forward", &[R, W, W]),
    KernelSpec::without_uniform("maxpool_backward", &[R, R, W]),
    KernelSpec::new("softmax_cross_entropy", uniform::<SoftmaxParams>(), &[R, R, W, W]),
    KernelSpec::new("margin_cross_entropy", uniform::<SoftmaxParams>(), &[R, R, W, W]),
    KernelSpec::new("reduce_rows", uniform::<ReduceParams>(), &[R, W]),
    KernelSpec::new("l2norm_forward", uniform::<RowParams>(), &[R, W, W]),
    KernelSpec::new("l2norm_backward", uniform::<RowParams>(), &[R, R, R, W]),
    KernelSpec::new("grad_sum_squares", uniform::<SumSquaresParams>(), &[R, W]),
    KernelSpec::new("clip_scale", uniform::<ClipParams>(), &[R, W]),
    KernelSpec::new("sgd_momentum", uniform::<SgdParams>(), &[R, W, W, R, R]),
    KernelSpec::new("top_k", uniform::<TopKParams>(), &[R, W, W]),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{layout, mirror};
    use crate::nn::graph::{
        GEMM_CPU_BLOCK_M, GEMM_CPU_BLOCK_N, GEMM_CPU_INVOCATIONS, GEMM_TILE_K, GEMM_TILE_OUTPUTS,
        GEMM_WIDE_TILE_OUTPUTS,
    };

    /// Every kernel's WGSL bindings are those its table entry gives the layout.
    #[test]
    fn kernel_table_matches_the_wgsl_bindings() {
        for spec in KERNELS {
            mirror::assert_bindings(spec, &[]);
            mirror::assert_bindings(spec, CPU_KERNEL_ALIASES);
            mirror::assert_bindings(spec, WIDE_GEMM_ALIASES);
            mirror::assert_bindings(spec, REGISTER_GEMM_ALIASES);
        }
    }

    /// Every uniform mirror and GEMM tile constant equals its WGSL twin.
    #[test]
    fn rust_mirrors_match_the_wgsl() {
        let gemm = mirror::module("gemm", &[]);
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
        let gemm_wide = mirror::module("gemm", WIDE_GEMM_ALIASES);
        assert_eq!(mirror::constant(&gemm_wide, "TILE_OUTPUTS"), GEMM_WIDE_TILE_OUTPUTS as u64);
        assert_eq!(mirror::constant(&gemm_wide, "MAX_TILE_K"), GEMM_TILE_K as u64);
        let gemm_cpu = mirror::module("gemm", REGISTER_GEMM_ALIASES);
        assert_eq!(mirror::constant(&gemm_cpu, "INVOCATIONS"), GEMM_CPU_INVOCATIONS as u64);
        assert_eq!(mirror::constant(&gemm_cpu, "BLOCK_M"), GEMM_CPU_BLOCK_M as u64);
        assert_eq!(mirror::constant(&gemm_cpu, "BLOCK_N"), GEMM_CPU_BLOCK_N as u64);
        let element = layout!(ElementParams { len, channels, pixels, _pad });
        for kernel in ["add", "prelu_forward", "prelu_backward", "sum_slices"] {
            mirror::assert_struct(&mirror::module(kernel, &[]), "ElementParams", element);
        }
        for (family, aliases) in [(KernelFamily::Gpu, &[][..]), (KernelFamily::Cpu, CPU_KERNEL_ALIASES)] {
            let per = values_per_invocation(family) as u64;
            assert_eq!(mirror::constant(&mirror::module("add", aliases), "VALUES_PER_INVOCATION"), per);
        }
        let channel = layout!(ChannelParams { batch, channels, pixels, _pad });
        for kernel in ["channel_sum", "prelu_slope_grad", "prelu_backward_channel"] {
            mirror::assert_struct(&mirror::module(kernel, &[]), "ChannelParams", channel);
        }
        let rows = layout!(RowParams { rows, dim, eps, _pad });
        for kernel in ["l2norm_forward", "l2norm_backward"] {
            mirror::assert_struct(&mirror::module(kernel, &[]), "RowParams", rows);
        }
        let sgd = mirror::module("sgd_momentum", &[]);
        mirror::assert_struct(&sgd, "SgdParams", layout!(SgdParams { len, lr, momentum, _pad, decay }));
        assert_eq!(mirror::constant(&sgd, "CHUNK_VALUES"), crate::nn::arena::CHUNK_VALUES as u64);
        let sum_squares = mirror::module("grad_sum_squares", &[]);
        mirror::assert_struct(&sum_squares, "SumSquaresParams", layout!(SumSquaresParams { len, slot, _pad0, _pad1 }));
        let clip = mirror::module("clip_scale", &[]);
        mirror::assert_struct(&clip, "ClipParams", layout!(ClipParams { count, max_norm, _pad0, _pad1 }));
        for kernel in ["softmax_cross_entropy", "margin_cross_entropy"] {
            let softmax = mirror::module(kernel, &[]);
            mirror::assert_struct(
                &softmax,
                "SoftmaxParams",
                layout!(SoftmaxParams { batch, classes, grad_scale, _pad }),
            );
        }
        let top_k = mirror::module("top_k", &[]);
        mirror::assert_struct(&top_k, "TopKParams", layout!(TopKParams { rows, cols, k, _pad }));
        assert_eq!(mirror::constant(&top_k, "MAX_K"), TOP_K_MAX as u64);
        let reduce = mirror::module("reduce_rows", &[]);
        mirror::assert_struct(&reduce, "ReduceParams", layout!(ReduceParams { rows, cols, out_offset, scale }));
    }

    /// The GEMM kernels are those that import the GEMM core.
    #[test]
    fn the_gemm_kernels_are_those_on_the_gemm_core() {
        let on_core: Vec<&str> = crate::gpu::shaders::kernels()
            .filter(|s| s.family == "nn" && s.text.lines().any(|l| l.trim() == "#import gemm_core"))
            .map(|s| s.name)
            .collect();
        let mut gemm: Vec<&str> = GEMM_KERNELS.iter().map(|k| k.name).collect();
        let mut expected = on_core.clone();
        gemm.sort_unstable();
        expected.sort_unstable();
        assert_eq!(gemm, expected);
    }

    /// Every kernel of `shaders/nn/` is in the table, and only those.
    #[test]
    fn the_table_lists_every_nn_kernel() {
        let mut files: Vec<&str> =
            crate::gpu::shaders::kernels().filter(|s| s.family == "nn").map(|s| s.name).collect();
        let mut table: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        files.sort_unstable();
        table.sort_unstable();
        assert_eq!(files, table);
    }
}
