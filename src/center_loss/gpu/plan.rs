//! The dispatches of a pass, planned from its table of kernels (`kernels`): which kernels
//! run, in which order, on which window, with which grid; and their recording into one
//! compute pass.

use super::binding::CenterLossBinding;
use super::interface::LOCAL_SORT_KEYS;
use super::kernels::{run_lanes, Grid, Row, BITONIC_LOCAL, BITONIC_STEP, FORWARD_PASS, LOSS_PASS};
use super::GpuCenterLoss;
use crate::center_loss::config::UpdateMode;
use crate::gpu::{self, BoundGroup, Op};
use crate::Result;

/// What a recorded pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CenterPass {
    /// Loss, gradient and center update.
    Step,
    /// Loss and gradient.
    Forward,
    /// The loss alone.
    LossOnly,
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
        self.record(encoder, binding, binding.batch, CenterPass::Step)
    }

    /// Records loss and gradient only (no center update) for `binding` into `encoder`.
    pub fn encode_forward(&self, encoder: &mut wgpu::CommandEncoder, binding: &CenterLossBinding) -> Result<()> {
        self.check_owner(binding)?;
        self.record(encoder, binding, binding.batch, CenterPass::Forward)
    }

    /// The dispatches of `pass` over the first `batch` rows of `binding`, in order. Each
    /// sets the groups it changes (the window, the sort stage); [`Self::begin_pass`] binds
    /// the others.
    pub(super) fn plan(&self, binding: &CenterLossBinding, batch: u32, pass: CenterPass) -> Result<Vec<Op>> {
        let table = match pass {
            CenterPass::Step => self.kernels.step,
            CenterPass::Forward => FORWARD_PASS,
            CenterPass::LossOnly => LOSS_PASS,
        };
        let set = &self.kernels.set;
        let mut plan = Vec::new();
        for row in table {
            let stage = match row {
                Row::Sort => {
                    self.plan_sort(&mut plan, binding, batch)?;
                    continue;
                }
                Row::Kernel(stage) => stage,
            };
            let (x, y) = self.grid(stage.grid, batch as u64);
            if stage.grid.per_window() {
                for window in &self.table.windows {
                    plan.push(set.dispatch(stage.key, vec![BoundGroup::new(1, window)], (x, y, 1))?);
                }
            } else {
                plan.push(set.dispatch(stage.key, Vec::new(), (x, y, 1))?);
            }
        }
        Ok(plan)
    }

    /// The workgroups of a kernel with `grid` over `batch` rows.
    fn grid(&self, grid: Grid, batch: u64) -> (u32, u32) {
        let max = self.max_grid();
        let dim = self.cfg.feat_dim as u64;
        let lanes = run_lanes(self.cfg.feat_dim) as u64;
        match grid {
            Grid::Rows => gpu::grid(batch, max),
            Grid::Forward => self.forward_grid(batch as usize),
            Grid::Values => gpu::grid(batch * dim, max),
            Grid::Single => (1, 1),
            Grid::SortKeys => gpu::grid(batch.next_power_of_two(), max),
            Grid::Inspect => {
                // The inspection also writes every padded sort key.
                let keys = if self.cfg.update == UpdateMode::Deterministic { batch.next_power_of_two() } else { 0 };
                gpu::grid((batch * lanes).max(keys), max)
            }
            Grid::RunLanes => gpu::grid(batch * lanes, max),
        }
    }

    /// The bitonic sort of the (label, row) keys of the first `batch` rows: each block of
    /// LOCAL_SORT_KEYS sorted locally, then per merge the stages whose partners are a block
    /// or more apart globally, the rest locally.
    fn plan_sort(&self, plan: &mut Vec<Op>, binding: &CenterLossBinding, batch: u32) -> Result<()> {
        let Some(stages) = &binding.sort_stages else { return Ok(()) };
        let max = self.max_grid();
        let padded_keys = batch.next_power_of_two();
        if padded_keys < 2 {
            return Ok(());
        }
        // One workgroup per block of LOCAL_SORT_KEYS keys, one invocation per pair.
        let (bx, by) = gpu::grid(padded_keys.div_ceil(2) as u64, max);
        let (px, py) = gpu::grid(padded_keys as u64, max);
        let stage = |key, k: u32, j: u32, grid| {
            let index = stage_index(k, j).min(stages.count.saturating_sub(1));
            let group = BoundGroup { index: 3, group: stages.group.clone(), offset: Some(index * stages.stride) };
            self.kernels.set.dispatch(key, vec![group], grid)
        };
        plan.push(stage(BITONIC_LOCAL.key, 2, 1, (bx, by, 1))?);
        let mut k = 2 * LOCAL_SORT_KEYS;
        while k <= padded_keys {
            let mut j = k / 2;
            while j >= LOCAL_SORT_KEYS {
                plan.push(stage(BITONIC_STEP.key, k, j, (px, py, 1))?);
                j /= 2;
            }
            plan.push(stage(BITONIC_LOCAL.key, k, j, (bx, by, 1))?);
            k *= 2;
        }
        Ok(())
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
        pass: CenterPass,
    ) -> Result<()> {
        let plan = self.plan(binding, batch, pass)?;
        gpu::record_ops(&mut self.begin_pass(encoder, binding), &plan);
        if let Some((target, offset)) = &binding.loss_target {
            encoder.copy_buffer_to_buffer(&binding.loss_scratch, 0, target, *offset, 4);
        }
        Ok(())
    }
}
