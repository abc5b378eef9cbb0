//! Which shader variants a configuration needs, its bind-group layouts and its pipelines.
//!
//! Bind groups: 0 the batch (`StepParams`, features, labels, grad, loss scratch, health),
//! 1 a window of center buffers, 2 the mode's scratch (slots and accumulators, or sort
//! keys), 3 the bitonic stage (deterministic mode, a dynamic offset).

use super::binding::{StepParams, SORT_STAGE_BYTES};
use super::table::WindowParams;
use crate::center_loss::config::UpdateMode;
use crate::gpu::{self, KernelFamily};
use crate::Result;

/// Elements per invocation of `center_forward` (its `PER_INVOCATION`, element_walk.wgsl);
/// `center_forward_vec4` handles as many vec4 words, four times the elements.
pub(super) const FORWARD_PER_INVOCATION: u64 = 8;
/// `WORKGROUP_SIZE` of the center kernels (common.wgsl): the forward kernel writes one loss
/// partial per invocation.
pub(super) const WORKGROUP_SIZE: u32 = gpu::WORKGROUP_SIZE;
/// Keys one workgroup of `bitonic_local` sorts in workgroup memory (its `LOCAL_KEYS`).
pub(super) const LOCAL_SORT_KEYS: u32 = 2 * WORKGROUP_SIZE;

/// Whether the forward pass reads features, centers and gradient as vec4 words.
pub(super) fn vec4_forward(dim: usize) -> bool {
    dim.is_multiple_of(4)
}

/// Whether a step runs the CPU family's fused walk (`center_inspect_vec4`,
/// `center_walk_vec4`, `center_close`: CPU drivers, D divisible by 4) instead of the
/// forward pass, the accumulation and the update as separate passes.
pub(super) fn walk_step(vec4: bool, family: KernelFamily) -> bool {
    vec4 && family == KernelFamily::Cpu
}

/// Most vec4 words one invocation of `center_walk_vec4` handles (`WORDS_PER_INVOCATION`,
/// walk_shape.wgsl).
pub(super) const WALK_WORDS_PER_INVOCATION: usize = 16;

/// Invocations of `center_walk_vec4` and `center_inspect_vec4` per row (`walk_lanes()`);
/// each walk lane writes one loss partial.
pub(super) fn walk_lanes(dim: usize) -> usize {
    (dim / 4).div_ceil(WALK_WORDS_PER_INVOCATION)
}

/// One shader module to build: (label, kernel file, import aliases).
pub type ShaderSpec = (&'static str, &'static str, Vec<(&'static str, &'static str)>);

/// The kernel that scales a gradient in place by one value read on the device
/// (`center_grad_scale.wgsl`): the backward of the burn integration, G times the loss's
/// incoming gradient, bound to a range of another library's buffer.
pub const GRAD_SCALE_KERNELS: &[gpu::KernelSpec] =
    &[gpu::KernelSpec::new("center_grad_scale", 16, &[gpu::Access::Read, gpu::Access::Write])];

/// Every shader module a configuration builds (for tools that validate them offline):
/// `center_bindings` > 1 selects the kernels that bind several center buffers at once,
/// `vec4` the kernels for D divisible by 4 (the forward kernel in both families, the
/// fused walk of a step in the CPU family).
pub fn shader_plan(
    update: UpdateMode,
    native_atomics: bool,
    center_bindings: usize,
    vec4: bool,
    family: KernelFamily,
) -> Vec<ShaderSpec> {
    let accum = ("accum", if native_atomics { "accum_native" } else { "accum_cas" });
    let window = (
        "window",
        match center_bindings {
            1 => "window",
            2 => "window_2",
            _ => "window_4",
        },
    );
    let (forward, data) = if vec4 {
        ("center_forward_vec4", ("batch_data", "batch_data_vec4"))
    } else {
        ("center_forward", ("batch_data", "batch_data"))
    };
    let mut plan = vec![
        ("forward", forward, vec![("accumulate", "accumulate_none"), data]),
        ("reduce", "loss_reduce", vec![]),
        ("finalize", "status_finalize", vec![]),
    ];
    let sort = [("bitonic", "bitonic_step", vec![]), ("bitonic_local", "bitonic_local", vec![])];
    match (update, walk_step(vec4, family)) {
        (UpdateMode::Atomic, false) => plan.extend([
            ("claim", "center_claim", vec![accum]),
            ("forward_accumulate", forward, vec![("accumulate", "accumulate_atomic"), accum, data]),
            ("apply", "center_apply", vec![accum]),
            ("release", "center_release", vec![accum]),
        ]),
        (UpdateMode::Deterministic, false) => {
            plan.push(("sort_init", "sort_keys_init", vec![]));
            plan.extend(sort);
            plan.push(("update_sorted", "center_update_sorted", vec![]));
        }
        (update, true) => {
            let runs = ("runs", if update == UpdateMode::Atomic { "runs_links" } else { "runs_sorted" });
            plan.extend([
                ("inspect", "center_inspect_vec4", vec![runs, data]),
                ("walk", "center_walk_vec4", vec![runs, data]),
                ("close", "center_close", vec![runs]),
            ]);
            if update == UpdateMode::Deterministic {
                plan.extend(sort);
            }
        }
    }
    for (_, _, aliases) in &mut plan {
        aliases.push(window);
    }
    plan
}

pub(super) struct Layouts {
    pub batch: wgpu::BindGroupLayout,
    pub window: wgpu::BindGroupLayout,
    pub scratch: wgpu::BindGroupLayout,
    pub stage: wgpu::BindGroupLayout,
    pub main: wgpu::PipelineLayout,
    pub sort: wgpu::PipelineLayout,
}

pub(super) struct Pipelines {
    pub forward_grad: wgpu::ComputePipeline,
    pub forward_loss: wgpu::ComputePipeline,
    pub reduce: wgpu::ComputePipeline,
    pub finalize_step: wgpu::ComputePipeline,
    pub finalize_forward: wgpu::ComputePipeline,
    pub mode: ModePipelines,
}

pub(super) enum ModePipelines {
    /// Atomic mode: slots claimed, (c - x) scattered into them, applied, released.
    Atomic {
        claim: wgpu::ComputePipeline,
        forward_accumulate: wgpu::ComputePipeline,
        apply: wgpu::ComputePipeline,
        release: wgpu::ComputePipeline,
    },
    /// Deterministic mode: (label, row) keys sorted, each class's run summed in row order.
    Sorted { init: wgpu::ComputePipeline, sort: SortPipelines, update: wgpu::ComputePipeline },
    /// The CPU family's fused step ([`walk_step`]): inspect, sort (deterministic mode only),
    /// walk each class once, close.
    Walk {
        inspect: wgpu::ComputePipeline,
        sort: Option<SortPipelines>,
        walk: wgpu::ComputePipeline,
        close: wgpu::ComputePipeline,
    },
}

/// The bitonic sort of deterministic mode: global stages and block-local runs of stages.
pub(super) struct SortPipelines {
    pub bitonic: wgpu::ComputePipeline,
    pub local: wgpu::ComputePipeline,
}

/// The layouts and pipelines of one center-loss configuration on one device, built once
/// and shared by every [`super::GpuCenterLoss`] with the same shader plan there.
pub(super) struct CenterKernels {
    pub layouts: Layouts,
    pub pipelines: Pipelines,
}

impl CenterKernels {
    /// The kernels of this shader plan on `ctx`: built on the first call, shared after it.
    pub fn for_context(
        ctx: &gpu::GpuContext,
        update: UpdateMode,
        native_atomics: bool,
        center_bindings: usize,
        vec4: bool,
    ) -> Result<std::sync::Arc<Self>> {
        let family = ctx.kernels();
        let key = format!(
            "center loss {update:?} native_atomics={native_atomics} bindings={center_bindings} vec4={vec4} {family:?}"
        );
        ctx.cached(&key, || {
            ctx.capture(|| {
                let factory = ctx.pipeline_factory();
                let layouts = create_layouts(&factory, update, center_bindings, vec4);
                let pipelines =
                    create_pipelines(&factory, &layouts, update, native_atomics, center_bindings, vec4, family)?;
                Ok(Self { layouts, pipelines })
            })?
        })
    }
}

fn create_layouts(factory: &gpu::PipelineFactory, update: UpdateMode, center_bindings: usize, vec4: bool) -> Layouts {
    let layout = |label, entries: &[wgpu::BindGroupLayoutEntry]| factory.bind_group_layout(label, entries);
    let batch = layout(
        "center loss batch",
        &[
            gpu::uniform_entry(0, std::mem::size_of::<StepParams>() as u64, false),
            gpu::storage_entry(1, true, if vec4 { 16 } else { 4 }),
            gpu::storage_entry(2, true, 4),
            gpu::storage_entry(3, false, if vec4 { 16 } else { 4 }),
            gpu::storage_entry(4, false, 8),
            gpu::storage_entry(5, false, 16),
        ],
    );
    let mut window_entries = vec![gpu::uniform_entry(0, std::mem::size_of::<WindowParams>() as u64, false)];
    window_entries.extend((1..=center_bindings as u32).map(|b| gpu::storage_entry(b, false, 16)));
    let window = layout("center window", &window_entries);
    let scratch = match update {
        UpdateMode::Atomic => {
            layout("atomic scratch", &[gpu::storage_entry(0, false, 4), gpu::storage_entry(1, false, 4)])
        }
        UpdateMode::Deterministic => layout("sort scratch", &[gpu::storage_entry(0, false, 8)]),
    };
    let stage = layout("sort stage", &[gpu::uniform_entry(0, SORT_STAGE_BYTES, true)]);
    let main = factory.pipeline_layout("center loss", &[&batch, &window, &scratch]);
    let sort = factory.pipeline_layout("center loss sort", &[&batch, &window, &scratch, &stage]);
    Layouts { batch, window, scratch, stage, main, sort }
}

fn create_pipelines(
    factory: &gpu::PipelineFactory,
    layouts: &Layouts,
    update: UpdateMode,
    native_atomics: bool,
    center_bindings: usize,
    vec4: bool,
    family: KernelFamily,
) -> Result<Pipelines> {
    let mut modules = std::collections::HashMap::new();
    for (label, kernel, aliases) in shader_plan(update, native_atomics, center_bindings, vec4, family) {
        modules.insert(label, factory.shader_module(label, kernel, &aliases)?);
    }
    let make = |label: &str, module: &str, layout: &wgpu::PipelineLayout, constants: &[(&str, f64)]| {
        factory.compute_pipeline(label, layout, &modules[module], constants)
    };
    let main = &layouts.main;
    let sort = || SortPipelines {
        bitonic: make("bitonic_step", "bitonic", &layouts.sort, &[]),
        local: make("bitonic_local", "bitonic_local", &layouts.sort, &[]),
    };
    let mode = match (update, walk_step(vec4, family)) {
        (UpdateMode::Atomic, false) => ModePipelines::Atomic {
            claim: make("center_claim", "claim", main, &[]),
            forward_accumulate: make("center_forward (accumulate)", "forward_accumulate", main, &[]),
            apply: make("center_apply", "apply", main, &[]),
            release: make("center_release", "release", main, &[]),
        },
        (UpdateMode::Deterministic, false) => ModePipelines::Sorted {
            init: make("sort_keys_init", "sort_init", main, &[]),
            sort: sort(),
            update: make("center_update_sorted", "update_sorted", main, &[]),
        },
        (update, true) => ModePipelines::Walk {
            inspect: make("center_inspect_vec4", "inspect", main, &[]),
            sort: (update == UpdateMode::Deterministic).then(sort),
            walk: make("center_walk_vec4", "walk", main, &[]),
            close: make("center_close", "close", main, &[]),
        },
    };
    Ok(Pipelines {
        forward_grad: make("center_forward", "forward", main, &[]),
        forward_loss: make("center_forward (loss only)", "forward", main, &[("WRITE_GRAD", 0.0)]),
        reduce: make("loss_reduce", "reduce", main, &[]),
        finalize_step: make("status_finalize", "finalize", main, &[]),
        finalize_forward: make("status_finalize (forward)", "finalize", main, &[("COUNT_SKIPPED", 0.0)]),
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::center_loss::gpu::binding::{SortStage, StepParams};
    use crate::gpu::shaders::{layout, mirror};

    /// Every constant and uniform the Rust side shares with the center-loss kernels equals
    /// its WGSL twin.
    #[test]
    fn rust_mirrors_match_the_wgsl() {
        let aliases = [("accumulate", "accumulate_atomic"), ("accum", "accum_cas")];
        let forward = mirror::module("center_forward", &aliases);
        assert_eq!(mirror::constant(&forward, "PER_INVOCATION"), FORWARD_PER_INVOCATION);
        assert_eq!(mirror::constant(&forward, "WORKGROUP_SIZE"), WORKGROUP_SIZE as u64);
        let vec4 = mirror::module(
            "center_forward_vec4",
            &[("accumulate", "accumulate_none"), ("batch_data", "batch_data_vec4")],
        );
        assert_eq!(mirror::constant(&vec4, "PER_INVOCATION"), FORWARD_PER_INVOCATION);
        assert_eq!(mirror::constant(&forward, "EMPTY_SLOT"), super::super::EMPTY_SLOT as u64);
        let inspect =
            mirror::module("center_inspect_vec4", &[("runs", "runs_links"), ("batch_data", "batch_data_vec4")]);
        assert_eq!(mirror::constant(&inspect, "EMPTY_SLOT"), super::super::EMPTY_SLOT as u64);
        let walk = mirror::module("center_walk_vec4", &[("runs", "runs_sorted"), ("batch_data", "batch_data_vec4")]);
        assert_eq!(mirror::constant(&walk, "WORDS_PER_INVOCATION"), WALK_WORDS_PER_INVOCATION as u64);
        let local = mirror::module("bitonic_local", &[]);
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
