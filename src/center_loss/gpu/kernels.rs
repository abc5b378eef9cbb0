//! The center loss's kernels: one table of kernels per pass and update mode, from which
//! both the pipelines are built and the dispatches planned (`plan`), and the bind-group
//! layouts they share.
//!
//! Bind groups: 0 the batch (`StepParams`, features, labels, grad, loss scratch, health),
//! 1 a window of center buffers, 2 the mode's scratch (slots and accumulators, or sort
//! keys), 3 the bitonic stage (deterministic mode, a dynamic offset).

use std::sync::Arc;

use super::interface::RUN_WORDS_PER_INVOCATION;
use crate::center_loss::config::UpdateMode;
use crate::gpu::shaders::{helper, kernel, Alias, Kernel, KernelVariant};
use crate::gpu::{self, KernelFamily};
use crate::Result;

/// Whether the forward pass reads features, centers and gradient as vec4 words.
pub(super) fn vec4_forward(dim: usize) -> bool {
    dim.is_multiple_of(4)
}

/// Whether a step is the CPU family's fused step (`center_inspect_vec4`,
/// `center_runs_vec4`, `center_close`: CPU drivers, D divisible by 4) instead of the
/// forward pass, the accumulation and the update as separate passes.
pub(super) fn fused_step(vec4: bool, family: KernelFamily) -> bool {
    vec4 && family == KernelFamily::Cpu
}

/// Invocations of `center_runs_vec4` and `center_inspect_vec4` per row (`run_lanes()`,
/// run_lanes.wgsl); each lane writes one loss partial.
pub(super) fn run_lanes(dim: usize) -> usize {
    (dim / 4).div_ceil(RUN_WORDS_PER_INVOCATION)
}

/// An import whose helper the configuration chooses.
#[derive(Clone, Copy, Debug)]
enum Import {
    /// `accumulate`: the given helper (what the forward kernel does with c - x).
    Accumulate(Alias),
    /// `accum`: native float atomics or the compare-exchange loop.
    Accum,
    /// `runs`: each class's rows as a linked list (atomic mode) or a sorted run.
    Runs,
}

/// How often a kernel runs in a pass and on which grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grid {
    /// Once, an invocation per row.
    Rows,
    /// Once per window, the forward kernel's grid ([`super::GpuCenterLoss::forward_grid`]).
    Forward,
    /// Once per window, an invocation per value (B * D).
    Values,
    /// Once, one workgroup.
    Single,
    /// Once, an invocation per padded sort key.
    SortKeys,
    /// Once, an invocation per (row, run lane) and at least one per padded sort key (when
    /// the step sorts).
    Inspect,
    /// Once per window, an invocation per (row, run lane).
    RunLanes,
}

impl Grid {
    /// Whether the kernel runs once per window of center buffers.
    pub fn per_window(self) -> bool {
        matches!(self, Grid::Forward | Grid::Values | Grid::RunLanes)
    }
}

/// One kernel of a pass.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stage {
    /// Its pipeline's key, unique within a configuration.
    pub key: &'static str,
    /// Its name in profiles.
    pub name: &'static str,
    kernel: &'static Kernel,
    /// The kernel built instead when D is divisible by 4, if another.
    vec4_kernel: Option<&'static Kernel>,
    imports: &'static [Import],
    constants: &'static [(&'static str, f64)],
    pub grid: Grid,
}

impl Stage {
    const fn new(kernel: &'static Kernel, imports: &'static [Import], grid: Grid) -> Self {
        Self { key: kernel.name, name: kernel.name, kernel, vec4_kernel: None, imports, constants: &[], grid }
    }
}

/// A row of a pass's table: a kernel, or the bitonic sort of the (label, row) keys
/// (`bitonic_local` and `bitonic_step`, planned by `plan_sort`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Row {
    Kernel(Stage),
    Sort,
}

use Import::{Accum, Accumulate, Runs};

const FORWARD: Stage = Stage {
    vec4_kernel: Some(&kernel::CENTER_FORWARD_VEC4),
    ..Stage::new(&kernel::CENTER_FORWARD, &[Accumulate(helper::ACCUMULATE_NONE)], Grid::Forward)
};
const FORWARD_LOSS: Stage = Stage { key: "center_forward (loss only)", constants: &[("WRITE_GRAD", 0.0)], ..FORWARD };
const FORWARD_ACCUMULATE: Stage =
    Stage { key: "center_forward (accumulate)", imports: &[Accumulate(helper::ACCUMULATE_ATOMIC), Accum], ..FORWARD };
const REDUCE: Stage = Stage::new(&kernel::LOSS_REDUCE, &[], Grid::Single);
const FINALIZE_STEP: Stage = Stage::new(&kernel::STATUS_FINALIZE, &[], Grid::Single);
const FINALIZE_FORWARD: Stage =
    Stage { key: "status_finalize (forward)", constants: &[("COUNT_SKIPPED", 0.0)], ..FINALIZE_STEP };
const CLAIM: Stage = Stage::new(&kernel::CENTER_CLAIM, &[Accum], Grid::Rows);
const APPLY: Stage = Stage::new(&kernel::CENTER_APPLY, &[Accum], Grid::Values);
const RELEASE: Stage = Stage::new(&kernel::CENTER_RELEASE, &[Accum], Grid::Rows);
const SORT_INIT: Stage = Stage::new(&kernel::SORT_KEYS_INIT, &[], Grid::SortKeys);
const UPDATE_SORTED: Stage = Stage::new(&kernel::CENTER_UPDATE_SORTED, &[], Grid::Values);
const INSPECT: Stage = Stage::new(&kernel::CENTER_INSPECT_VEC4, &[Runs], Grid::Inspect);
const RUNS: Stage = Stage::new(&kernel::CENTER_RUNS_VEC4, &[Runs], Grid::RunLanes);
const CLOSE: Stage = Stage::new(&kernel::CENTER_CLOSE, &[Runs], Grid::Single);
/// The two kernels of [`Row::Sort`] (their grids are the sort's own).
pub(super) const BITONIC_STEP: Stage = Stage::new(&kernel::BITONIC_STEP, &[], Grid::SortKeys);
pub(super) const BITONIC_LOCAL: Stage = Stage::new(&kernel::BITONIC_LOCAL, &[], Grid::SortKeys);

/// Loss and gradient, every mode.
pub(super) const FORWARD_PASS: &[Row] = &[Row::Kernel(FORWARD), Row::Kernel(REDUCE), Row::Kernel(FINALIZE_FORWARD)];
/// The loss alone, every mode.
pub(super) const LOSS_PASS: &[Row] = &[Row::Kernel(FORWARD_LOSS), Row::Kernel(REDUCE), Row::Kernel(FINALIZE_FORWARD)];
/// A step in atomic mode: slots claimed, (c - x) scattered into them, applied, released.
const ATOMIC_STEP: &[Row] = &[
    Row::Kernel(CLAIM),
    Row::Kernel(FORWARD_ACCUMULATE),
    Row::Kernel(REDUCE),
    Row::Kernel(APPLY),
    Row::Kernel(RELEASE),
    Row::Kernel(FINALIZE_STEP),
];
/// A step in deterministic mode: (label, row) keys sorted, each class's run summed in row
/// order.
const SORTED_STEP: &[Row] = &[
    Row::Kernel(SORT_INIT),
    Row::Sort,
    Row::Kernel(FORWARD),
    Row::Kernel(REDUCE),
    Row::Kernel(UPDATE_SORTED),
    Row::Kernel(FINALIZE_STEP),
];
/// The fused step ([`fused_step`]), atomic mode: inspect, each class's run once, close.
const FUSED_ATOMIC_STEP: &[Row] = &[Row::Kernel(INSPECT), Row::Kernel(RUNS), Row::Kernel(CLOSE)];
/// The fused step, deterministic mode: inspect, sort, each class's run once, close.
const FUSED_SORTED_STEP: &[Row] = &[Row::Kernel(INSPECT), Row::Sort, Row::Kernel(RUNS), Row::Kernel(CLOSE)];

/// The table of a full step.
pub(super) fn step_table(update: UpdateMode, fused: bool) -> &'static [Row] {
    match (update, fused) {
        (UpdateMode::Atomic, false) => ATOMIC_STEP,
        (UpdateMode::Deterministic, false) => SORTED_STEP,
        (UpdateMode::Atomic, true) => FUSED_ATOMIC_STEP,
        (UpdateMode::Deterministic, true) => FUSED_SORTED_STEP,
    }
}

/// The shader variant a configuration builds: which helper each import names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Variant {
    update: UpdateMode,
    native_atomics: bool,
    center_bindings: usize,
    vec4: bool,
    family: KernelFamily,
}

impl Variant {
    /// Every kernel the configuration runs (a step and both forward passes), once each,
    /// and whether it binds the sort stage (group 3).
    fn stages(&self) -> Vec<(Stage, bool)> {
        let mut stages: Vec<(Stage, bool)> = Vec::new();
        let tables = [step_table(self.update, fused_step(self.vec4, self.family)), FORWARD_PASS, LOSS_PASS];
        for row in tables.into_iter().flatten() {
            let add: &[(Stage, bool)] = match row {
                Row::Kernel(stage) => &[(*stage, false)],
                Row::Sort => &[(BITONIC_STEP, true), (BITONIC_LOCAL, true)],
            };
            for &(stage, sort) in add {
                if !stages.iter().any(|(s, _)| s.key == stage.key) {
                    stages.push((stage, sort));
                }
            }
        }
        stages
    }

    /// The kernel and import aliases `stage` is built from.
    fn source(&self, stage: &Stage) -> (&'static Kernel, Vec<Alias>) {
        let kernel = if self.vec4 { stage.vec4_kernel.unwrap_or(stage.kernel) } else { stage.kernel };
        let mut aliases: Vec<Alias> = stage
            .imports
            .iter()
            .map(|import| match import {
                Accumulate(helper) => *helper,
                Accum if self.native_atomics => helper::ACCUM_NATIVE,
                Accum => helper::ACCUM_CAS,
                Runs if self.update == UpdateMode::Atomic => helper::RUNS_LINKS,
                Runs => helper::RUNS_SORTED,
            })
            .collect();
        aliases.push(match self.center_bindings {
            1 => helper::WINDOW,
            2 => helper::WINDOW_2,
            _ => helper::WINDOW_4,
        });
        (kernel, aliases)
    }
}

/// One shader module to build: (label, kernel, import aliases).
pub type ShaderSpec = (&'static str, &'static Kernel, Vec<Alias>);

/// Every shader module a configuration builds (for tools that validate them offline):
/// `center_bindings` > 1 selects the kernels that bind several center buffers at once,
/// `vec4` the kernels for D divisible by 4 (the forward kernel in both families, the
/// fused step in the CPU family).
pub fn shader_plan(
    update: UpdateMode,
    native_atomics: bool,
    center_bindings: usize,
    vec4: bool,
    family: KernelFamily,
) -> Vec<ShaderSpec> {
    let variant = Variant { update, native_atomics, center_bindings, vec4, family };
    variant
        .stages()
        .iter()
        .map(|(stage, _)| {
            let (kernel, aliases) = variant.source(stage);
            (stage.key, kernel, aliases)
        })
        .collect()
}

/// Storage buffers per shader stage that the kernels of `update` bind besides the centers
/// (group 0, the batch, and group 2, the mode's scratch), read from their WGSL: every one
/// the shared layouts hold, in either family.
pub(super) fn storage_bindings_besides_centers(update: UpdateMode) -> Result<u32> {
    let mut bindings = std::collections::BTreeSet::new();
    for (native_atomics, vec4, family) in [(false, false, KernelFamily::Gpu), (false, true, KernelFamily::Cpu)] {
        let variant = Variant { update, native_atomics, center_bindings: 1, vec4, family };
        for (stage, _) in variant.stages() {
            let (kernel, aliases) = variant.source(&stage);
            for b in kernel.variant(&aliases)?.bindings {
                if b.group != 1 && matches!(b.kind, gpu::shaders::BindingKind::Storage { .. }) {
                    bindings.insert((b.group, b.binding));
                }
            }
        }
    }
    Ok(bindings.len() as u32)
}

/// The bind-group layouts of a configuration.
pub(super) struct Layouts {
    pub batch: wgpu::BindGroupLayout,
    pub window: wgpu::BindGroupLayout,
    pub scratch: wgpu::BindGroupLayout,
    pub stage: wgpu::BindGroupLayout,
}

/// The layouts and kernels of one center-loss configuration on one device, built once
/// and shared by every [`super::GpuCenterLoss`] with the same shader variant there.
pub(super) struct CenterKernels {
    pub layouts: Layouts,
    pub set: gpu::KernelSet,
    /// The table of a full step.
    pub step: &'static [Row],
}

impl CenterKernels {
    /// The kernels of this configuration on `ctx`: built on the first call, shared after it.
    pub fn for_context(
        ctx: &gpu::GpuContext,
        update: UpdateMode,
        native_atomics: bool,
        center_bindings: usize,
        vec4: bool,
    ) -> Result<Arc<Self>> {
        let family = ctx.kernels();
        let variant = Variant { update, native_atomics, center_bindings, vec4, family };
        ctx.cached(&format!("center loss {variant:?}"), || {
            let factory = ctx.pipeline_factory();
            let stages = variant.stages();
            let sources: Vec<(&'static Kernel, Vec<Alias>)> = stages.iter().map(|(s, _)| variant.source(s)).collect();
            let variants =
                sources.iter().map(|(kernel, aliases)| kernel.variant(aliases)).collect::<Result<Vec<_>>>()?;
            let (layouts, main, sort) = ctx.try_capture(|| {
                let layouts = create_layouts(&factory, &variants)?;
                let groups = [&layouts.batch, &layouts.window, &layouts.scratch, &layouts.stage];
                let main = factory.pipeline_layout("center loss", &groups[..3]);
                let sort = factory.pipeline_layout("center loss sort", &groups);
                Ok((layouts, main, sort))
            })?;
            let kernels: Vec<gpu::GroupedKernel<'_>> = stages
                .iter()
                .zip(sources)
                .map(|((stage, sorts), (kernel, aliases))| gpu::GroupedKernel {
                    key: stage.key,
                    name: stage.name,
                    kernel,
                    aliases,
                    layout: if *sorts { &sort } else { &main },
                    constants: stage.constants.to_vec(),
                })
                .collect();
            let set = gpu::KernelSet::grouped(ctx, &kernels)?;
            Ok(Self { layouts, set, step: step_table(update, fused_step(vec4, family)) })
        })
    }
}

/// The layouts of groups 0 to 3, each the union of what `variants` declare there (group 3,
/// the sort stage, read at a dynamic offset).
fn create_layouts(factory: &gpu::PipelineFactory, variants: &[&KernelVariant]) -> Result<Layouts> {
    let layout = |label, group| -> Result<wgpu::BindGroupLayout> {
        Ok(factory.bind_group_layout(label, &gpu::layout_entries(variants, group, group == 3)?))
    };
    Ok(Layouts {
        batch: layout("center loss batch", 0)?,
        window: layout("center window", 1)?,
        scratch: layout("center loss scratch", 2)?,
        stage: layout("sort stage", 3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Besides the centers: features, labels, grad, loss scratch and health, then slots and
    /// accumulators (atomic mode) or sort keys (deterministic).
    #[test]
    fn storage_bindings_besides_the_centers_are_read_from_the_wgsl() {
        assert_eq!(storage_bindings_besides_centers(UpdateMode::Atomic).unwrap(), 7);
        assert_eq!(storage_bindings_besides_centers(UpdateMode::Deterministic).unwrap(), 6);
    }
}
