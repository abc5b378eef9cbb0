//! The dispatch plan of a pass: which kernels run, in which order, on which window, with
//! which grid; and its recording into one compute pass.

use super::binding::CenterLossBinding;
use super::pipelines::{walk_lanes, ModePipelines, SortPipelines, LOCAL_SORT_KEYS};
use super::GpuCenterLoss;
use crate::gpu;
use crate::Result;

/// What a recorded pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// Loss, gradient and center update.
    Step,
    /// Loss and gradient.
    Forward,
    /// The loss alone.
    LossOnly,
}

/// One dispatch of a step: its pipeline, the bind groups it changes, its grid.
pub(super) struct Dispatch<'a> {
    pub kernel: &'static str,
    pipeline: &'a wgpu::ComputePipeline,
    window: Option<&'a wgpu::BindGroup>,
    stage: Option<(&'a wgpu::BindGroup, u32)>,
    grid: (u32, u32),
}

impl Dispatch<'_> {
    pub fn record(&self, cpass: &mut wgpu::ComputePass<'_>) {
        cpass.set_pipeline(self.pipeline);
        if let Some(group) = self.window {
            cpass.set_bind_group(1, group, &[]);
        }
        if let Some((group, offset)) = self.stage {
            cpass.set_bind_group(3, group, &[offset]);
        }
        cpass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
    }
}

/// The position of bitonic stage (k, j) (powers of two, j < k) in stage order: k = 2, 4, ...
/// and for each k, j = k/2 down to 1.
fn stage_index(k: u32, j: u32) -> u32 {
    let m = k.trailing_zeros();
    m * (m - 1) / 2 + (m - 1 - j.trailing_zeros())
}

impl GpuCenterLoss {
    /// Records a full step (loss, gradient, center update) for `binding` into `encoder`.
    /// Nothing is read back; labels >= K and non-finite features are counted in
    /// [`GpuCenterLoss::health`] and their step's center update is skipped.
    pub fn encode_step(&self, encoder: &mut wgpu::CommandEncoder, binding: &CenterLossBinding) -> Result<()> {
        self.check_owner(binding)?;
        self.record(encoder, binding, binding.batch, Pass::Step);
        Ok(())
    }

    /// Records loss and gradient only (no center update) for `binding` into `encoder`.
    pub fn encode_forward(&self, encoder: &mut wgpu::CommandEncoder, binding: &CenterLossBinding) -> Result<()> {
        self.check_owner(binding)?;
        self.record(encoder, binding, binding.batch, Pass::Forward);
        Ok(())
    }

    /// The dispatches of `pass` over the first `batch` rows of `binding`, in order.
    pub(super) fn plan<'a>(&'a self, binding: &'a CenterLossBinding, batch: u32, pass: Pass) -> Vec<Dispatch<'a>> {
        let batch = batch as u64;
        let dim = self.cfg.feat_dim as u64;
        let max = self.max_grid();
        let rows = gpu::grid(batch, max);
        let forward = self.forward_grid(batch as usize);
        let p = &self.kernels.pipelines;
        let mut plan = Vec::new();
        let once = |plan: &mut Vec<Dispatch<'a>>, kernel, pipeline, grid| {
            plan.push(Dispatch { kernel, pipeline, window: None, stage: None, grid })
        };
        let per_window = |plan: &mut Vec<Dispatch<'a>>, kernel, pipeline, grid| {
            plan.extend(self.table.windows.iter().map(|w| Dispatch {
                kernel,
                pipeline,
                window: Some(w),
                stage: None,
                grid,
            }))
        };
        match (pass, &p.mode) {
            (Pass::LossOnly, _) => per_window(&mut plan, "center_forward", &p.forward_loss, forward),
            (Pass::Forward, _) => per_window(&mut plan, "center_forward", &p.forward_grad, forward),
            (Pass::Step, ModePipelines::Atomic { claim, forward_accumulate, .. }) => {
                once(&mut plan, "center_claim", claim, rows);
                per_window(&mut plan, "center_forward", forward_accumulate, forward);
            }
            (Pass::Step, ModePipelines::Sorted { init, sort, .. }) => {
                once(&mut plan, "sort_keys_init", init, gpu::grid(batch.next_power_of_two(), max));
                self.plan_sort(&mut plan, binding, batch, sort);
                per_window(&mut plan, "center_forward", &p.forward_grad, forward);
            }
            (Pass::Step, ModePipelines::Walk { inspect, sort, walk, close }) => {
                // Both walk (row, lane); the inspection also writes every padded sort key.
                let lanes = walk_lanes(self.cfg.feat_dim) as u64;
                let keys = if sort.is_some() { batch.next_power_of_two() } else { 0 };
                once(&mut plan, "center_inspect_vec4", inspect, gpu::grid((batch * lanes).max(keys), max));
                if let Some(sort) = sort {
                    self.plan_sort(&mut plan, binding, batch, sort);
                }
                per_window(&mut plan, "center_walk_vec4", walk, gpu::grid(batch * lanes, max));
                once(&mut plan, "center_close", close, (1, 1));
                return plan;
            }
        }
        once(&mut plan, "loss_reduce", &p.reduce, (1, 1));
        let updated = gpu::grid(batch * dim, max);
        match (pass, &p.mode) {
            (Pass::Step, ModePipelines::Atomic { apply, release, .. }) => {
                per_window(&mut plan, "center_apply", apply, updated);
                once(&mut plan, "center_release", release, rows);
            }
            (Pass::Step, ModePipelines::Sorted { update, .. }) => {
                per_window(&mut plan, "center_update_sorted", update, updated)
            }
            _ => {}
        }
        let finalize = if pass == Pass::Step { &p.finalize_step } else { &p.finalize_forward };
        once(&mut plan, "status_finalize", finalize, (1, 1));
        plan
    }

    /// The bitonic sort of the (label, row) keys of the first `batch` rows: each block of
    /// LOCAL_SORT_KEYS sorted locally, then per merge the stages whose partners are a block
    /// or more apart globally, the rest locally.
    fn plan_sort<'a>(
        &self,
        plan: &mut Vec<Dispatch<'a>>,
        binding: &'a CenterLossBinding,
        batch: u64,
        sort: &'a SortPipelines,
    ) {
        let Some(stages) = &binding.sort_stages else { return };
        let max = self.max_grid();
        let padded_keys = batch.next_power_of_two() as u32;
        if padded_keys < 2 {
            return;
        }
        // One workgroup per block of LOCAL_SORT_KEYS keys, one invocation per pair.
        let blocks = gpu::grid(padded_keys.div_ceil(2) as u64, max);
        let padded = gpu::grid(padded_keys as u64, max);
        let stage = |kernel, pipeline, k: u32, j: u32, grid| {
            let index = stage_index(k, j).min(stages.count.saturating_sub(1));
            Dispatch { kernel, pipeline, window: None, stage: Some((&stages.group, index * stages.stride)), grid }
        };
        plan.push(stage("bitonic_local", &sort.local, 2, 1, blocks));
        let mut k = 2 * LOCAL_SORT_KEYS;
        while k <= padded_keys {
            let mut j = k / 2;
            while j >= LOCAL_SORT_KEYS {
                plan.push(stage("bitonic_step", &sort.bitonic, k, j, padded));
                j /= 2;
            }
            plan.push(stage("bitonic_local", &sort.local, k, j, blocks));
            k *= 2;
        }
    }

    /// A compute pass with `binding`'s groups and the first window bound.
    pub(super) fn begin_pass<'e>(
        &self,
        encoder: &'e mut wgpu::CommandEncoder,
        binding: &CenterLossBinding,
    ) -> wgpu::ComputePass<'e> {
        let mut cpass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("center loss"), timestamp_writes: None });
        cpass.set_bind_group(0, &binding.batch_group, &[]);
        cpass.set_bind_group(1, &self.table.windows[0], &[]);
        cpass.set_bind_group(2, &binding.scratch_group, &[]);
        cpass
    }

    /// Records `pass` over the first `batch` rows of `binding` (its own batch, or fewer on
    /// the host buffers): the whole step in one compute pass, then the loss copy.
    pub(super) fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        binding: &CenterLossBinding,
        batch: u32,
        pass: Pass,
    ) {
        {
            let mut cpass = self.begin_pass(encoder, binding);
            for dispatch in self.plan(binding, batch, pass) {
                dispatch.record(&mut cpass);
            }
        }
        if let Some((target, offset)) = &binding.loss_target {
            encoder.copy_buffer_to_buffer(&binding.loss_scratch, 0, target, *offset, 4);
        }
    }
}
