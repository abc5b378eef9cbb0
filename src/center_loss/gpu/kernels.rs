//! The center loss's kernels: one table of kernels per pass and update mode, from which
//! both the pipelines are built and the dispatches planned (`plan`), and the bind-group
//! layouts they share.
//!
//! Bind groups: 0 the batch (`StepParams`, features, labels, grad, loss scratch, health),
//! 1 a window of center buffers, 2 the mode's scratch (slots and accumulators, or sort
//! keys), 3 the bitonic stage (deterministic mode, a dynamic offset).

use std::sync::Arc;

use super::interface::{StepParams, WindowParams, RUN_WORDS_PER_INVOCATION, SORT_STAGE_BYTES};
use crate::center_loss::config::UpdateMode;
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
    Accumulate(&'static str),
    /// `accum`: native float atomics or the compare-exchange loop.
    Accum,
    /// `batch_data`: scalar or vec4 features and gradient.
    Data,
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
    file: &'static str,
    /// The file it is built from when D is divisible by 4, if another.
    vec4_file: Option<&'static str>,
    imports: &'static [Import],
    constants: &'static [(&'static str, f64)],
    pub grid: Grid,
}

impl Stage {
    const fn new(name: &'static str, imports: &'static [Import], grid: Grid) -> Self {
        Self { key: name, name, file: name, vec4_file: None, imports, constants: &[], grid }
    }
}

/// A row of a pass's table: a kernel, or the bitonic sort of the (label, row) keys
/// (`bitonic_local` and `bitonic_step`, planned by `plan_sort`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Row {
    Kernel(Stage),
    Sort,
}

use Import::{Accum, Accumulate, Data, Runs};

const FORWARD: Stage = Stage {
    vec4_file: Some("center_forward_vec4"),
    ..Stage::new("center_forward", &[Accumulate("accumulate_none"), Data], Grid::Forward)
};
const FORWARD_LOSS: Stage = Stage { key: "center_forward (loss only)", constants: &[("WRITE_GRAD", 0.0)], ..FORWARD };
const FORWARD_ACCUMULATE: Stage =
    Stage { key: "center_forward (accumulate)", imports: &[Accumulate("accumulate_atomic"), Accum, Data], ..FORWARD };
const REDUCE: Stage = Stage::new("loss_reduce", &[], Grid::Single);
const FINALIZE_STEP: Stage = Stage::new("status_finalize", &[], Grid::Single);
const FINALIZE_FORWARD: Stage =
    Stage { key: "status_finalize (forward)", constants: &[("COUNT_SKIPPED", 0.0)], ..FINALIZE_STEP };
const CLAIM: Stage = Stage::new("center_claim", &[Accum], Grid::Rows);
const APPLY: Stage = Stage::new("center_apply", &[Accum], Grid::Values);
const RELEASE: Stage = Stage::new("center_release", &[Accum], Grid::Rows);
const SORT_INIT: Stage = Stage::new("sort_keys_init", &[], Grid::SortKeys);
const UPDATE_SORTED: Stage = Stage::new("center_update_sorted", &[], Grid::Values);
const INSPECT: Stage = Stage::new("center_inspect_vec4", &[Runs, Data], Grid::Inspect);
const RUNS: Stage = Stage::new("center_runs_vec4", &[Runs, Data], Grid::RunLanes);
const CLOSE: Stage = Stage::new("center_close", &[Runs], Grid::Single);
/// The two kernels of [`Row::Sort`] (their grids are the sort's own).
pub(super) const BITONIC_STEP: Stage = Stage::new("bitonic_step", &[], Grid::SortKeys);
pub(super) const BITONIC_LOCAL: Stage = Stage::new("bitonic_local", &[], Grid::SortKeys);

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

    /// The file and import aliases `stage` is built from.
    fn source(&self, stage: &Stage) -> (&'static str, Vec<(&'static str, &'static str)>) {
        let file = if self.vec4 { stage.vec4_file.unwrap_or(stage.file) } else { stage.file };
        let mut aliases: Vec<(&'static str, &'static str)> = stage
            .imports
            .iter()
            .map(|import| match import {
                Accumulate(helper) => ("accumulate", *helper),
                Accum => ("accum", if self.native_atomics { "accum_native" } else { "accum_cas" }),
                Data => ("batch_data", if self.vec4 { "batch_data_vec4" } else { "batch_data" }),
                Runs => ("runs", if self.update == UpdateMode::Atomic { "runs_links" } else { "runs_sorted" }),
            })
            .collect();
        let window = match self.center_bindings {
            1 => "window",
            2 => "window_2",
            _ => "window_4",
        };
        aliases.push(("window", window));
        (file, aliases)
    }
}

/// One shader module to build: (label, kernel file, import aliases).
pub type ShaderSpec = (&'static str, &'static str, Vec<(&'static str, &'static str)>);

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
            let (file, aliases) = variant.source(stage);
            (stage.key, file, aliases)
        })
        .collect()
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
            let (layouts, main, sort) = ctx.capture(|| {
                let layouts = create_layouts(&factory, update, center_bindings, vec4);
                let groups = [&layouts.batch, &layouts.window, &layouts.scratch, &layouts.stage];
                let main = factory.pipeline_layout("center loss", &groups[..3]);
                let sort = factory.pipeline_layout("center loss sort", &groups);
                (layouts, main, sort)
            })?;
            let kernels: Vec<gpu::GroupedKernel<'_>> = variant
                .stages()
                .iter()
                .map(|(stage, sorts)| {
                    let (file, aliases) = variant.source(stage);
                    let layout = if *sorts { &sort } else { &main };
                    gpu::GroupedKernel {
                        key: stage.key,
                        name: stage.name,
                        file,
                        aliases,
                        layout,
                        constants: stage.constants.to_vec(),
                    }
                })
                .collect();
            let set = gpu::KernelSet::grouped(ctx, &kernels)?;
            Ok(Self { layouts, set, step: step_table(update, fused_step(vec4, family)) })
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
    Layouts { batch, window, scratch, stage }
}
