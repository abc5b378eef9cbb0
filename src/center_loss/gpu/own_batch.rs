//! The module's own batch buffers (grown to the largest batch seen) and the two paths that
//! go through them: `step`, `forward` and `loss` on host slices, checked before the GPU is
//! touched, and `run_on_device`, a batch copied in from another program's buffers.

use std::sync::Mutex;

use super::binding::CenterLossBinding;
use super::plan::CenterPass;
use super::{GpuCenterLoss, StepOutput};
use crate::gpu::{self, Staging};
use crate::{Error, Result};

/// The module's own batch buffers, grown to the largest batch seen.
pub(super) struct OwnBatch {
    capacity: usize,
    features: wgpu::Buffer,
    labels: wgpu::Buffer,
    grad: wgpu::Buffer,
    /// The gradient rows read back, then the loss (so the gradient is read in place).
    staging: Staging,
    /// Where each step's parameters, features and labels are written for the GPU to copy:
    /// chunks reused from step to step instead of a new staging buffer per write.
    belt: Mutex<wgpu::util::StagingBelt>,
    binding: CenterLossBinding,
}

/// A step submitted by [`GpuCenterLoss::step_async`]: its loss and gradient are read back
/// by [`PendingStep::wait`] (or awaited, [`PendingStep::output`]). It holds the module, so
/// the next step waits for this one.
#[must_use = "a pending step's loss and gradient are read by `wait` or `output`"]
pub struct PendingStep<'a> {
    module: &'a GpuCenterLoss,
    submission: Option<wgpu::SubmissionIndex>,
    grad_len: usize,
}

impl PendingStep<'_> {
    /// Waits for this step's submission (not for later work on the device) and reads its
    /// loss and gradient back.
    pub fn wait(self) -> Result<StepOutput> {
        gpu::block_on("PendingStep::wait", self.output())
    }

    /// The asynchronous form of [`PendingStep::wait`] (the browser's).
    pub async fn output(self) -> Result<StepOutput> {
        let Some(submission) = self.submission else {
            return Ok(StepOutput { loss: 0.0, grad: Vec::new() });
        };
        let host = self.module.host.as_ref().ok_or_else(|| Error::Internal("host buffers missing".into()))?;
        let mut grad: Vec<f32> =
            host.staging.read_after_async(&self.module.ctx, Some(submission), self.grad_len + 1).await?;
        let loss = grad.pop().ok_or_else(|| Error::Internal("the loss was not read back".into()))?;
        Ok(StepOutput { loss, grad })
    }
}

impl GpuCenterLoss {
    /// One training step: loss and gradient for the batch, then the center update.
    ///
    /// `features` holds B*D values, `labels` B values below K. On any bad input the
    /// error comes back before the GPU is touched and the centers stay as they were.
    pub fn step(&mut self, features: &[f32], labels: &[u32]) -> Result<StepOutput> {
        self.run_host(features, labels, CenterPass::Step)
    }

    /// [`GpuCenterLoss::step`] without waiting: checks and uploads the batch, submits the
    /// step and returns; the caller prepares its next batch while the GPU works, then
    /// [`PendingStep::wait`]s for the loss and gradient. The centers move whether or not
    /// the pending step is waited for; bad input is an error before the GPU is touched.
    pub fn step_async(&mut self, features: &[f32], labels: &[u32]) -> Result<PendingStep<'_>> {
        self.cfg.validate_batch(features, labels)?;
        self.submit_checked_rows(features, labels, CenterPass::Step, 0..labels.len())
    }

    /// The loss for a batch against the current centers; nothing is updated.
    pub fn loss(&mut self, features: &[f32], labels: &[u32]) -> Result<f32> {
        self.run_host(features, labels, CenterPass::LossOnly).map(|o| o.loss)
    }

    /// Loss and gradient against the current centers; nothing is updated.
    pub fn forward(&mut self, features: &[f32], labels: &[u32]) -> Result<StepOutput> {
        self.run_host(features, labels, CenterPass::Forward)
    }

    /// Grows the host-path buffers to hold `batch` rows.
    fn ensure_host_capacity(&mut self, batch: usize) -> Result<()> {
        if self.host.as_ref().is_some_and(|h| h.capacity >= batch) {
            return Ok(());
        }
        let capacity = batch.max(self.host.as_ref().map_or(0, |h| h.capacity * 2));
        self.check_batch_fits(capacity)?;
        let device = self.ctx.device();
        let values = (capacity * self.cfg.feat_dim) as u64 * 4;
        let host = self.ctx.try_capture(|| {
            let features = gpu::buffer(device, "host features", values, gpu::STORAGE_RW);
            let labels = gpu::buffer(device, "host labels", 4 * capacity as u64, gpu::STORAGE_RW);
            let grad = gpu::buffer(device, "host grad", values, gpu::STORAGE_RW);
            let staging = Staging::new(device, "host staging", values + 8);
            let belt_chunk = (values + 4 * capacity as u64 + 256).next_multiple_of(256);
            let belt = Mutex::new(wgpu::util::StagingBelt::new(device.clone(), belt_chunk));
            let binding = self.make_binding((&features, 0), (&labels, 0), (&grad, 0), capacity, false, None)?;
            Ok::<_, Error>(OwnBatch { capacity, features, labels, grad, staging, belt, binding })
        })?;
        self.host = Some(host);
        Ok(())
    }

    fn run_host(&mut self, features: &[f32], labels: &[u32], pass: CenterPass) -> Result<StepOutput> {
        self.run_host_rows(features, labels, pass, 0..labels.len())
    }

    /// [`Self::run_host`], reading back only the gradient of `rows` (none for
    /// [`CenterPass::LossOnly`]).
    pub(super) fn run_host_rows(
        &mut self,
        features: &[f32],
        labels: &[u32],
        pass: CenterPass,
        rows: std::ops::Range<usize>,
    ) -> Result<StepOutput> {
        self.cfg.validate_batch(features, labels)?;
        self.run_checked_rows(features, labels, pass, rows)
    }

    /// [`Self::run_host_rows`] for a batch whose shape, labels and values were already
    /// checked (the collective step's global batch, checked shard by shard by its owners).
    pub(super) fn run_checked_rows(
        &mut self,
        features: &[f32],
        labels: &[u32],
        pass: CenterPass,
        rows: std::ops::Range<usize>,
    ) -> Result<StepOutput> {
        self.submit_checked_rows(features, labels, pass, rows)?.wait()
    }

    /// Uploads a checked batch and submits its pass with the copies of the loss and of the
    /// gradient of `rows` into the staging buffer; [`PendingStep::wait`] reads them.
    fn submit_checked_rows(
        &mut self,
        features: &[f32],
        labels: &[u32],
        pass: CenterPass,
        rows: std::ops::Range<usize>,
    ) -> Result<PendingStep<'_>> {
        let batch = labels.len();
        if batch == 0 {
            return Ok(PendingStep { module: self, submission: None, grad_len: 0 });
        }
        self.ensure_host_capacity(batch)?;
        let Some(host) = &self.host else {
            return Err(Error::Internal("host buffers missing after they were made".into()));
        };
        let params = self.step_params(batch, false);
        let row_bytes = self.cfg.feat_dim as u64 * 4;
        let rows = rows.start.min(batch)..rows.end.min(batch);
        let grad_bytes = if pass == CenterPass::LossOnly { 0 } else { rows.len() as u64 * row_bytes };
        let mut belt = host.belt.lock().map_err(|_| Error::Internal("staging belt poisoned".into()))?;
        let submission = self.ctx.try_capture(|| {
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            let uploads: [(&wgpu::Buffer, &[u8]); 3] = [
                (&host.binding.params, bytemuck::bytes_of(&params)),
                (&host.features, bytemuck::cast_slice(features)),
                (&host.labels, bytemuck::cast_slice(labels)),
            ];
            for (target, bytes) in uploads {
                if let Some(size) = wgpu::BufferSize::new(bytes.len() as u64) {
                    belt.write_buffer(&mut encoder, target, 0, size).copy_from_slice(bytes);
                }
            }
            belt.finish();
            self.record(&mut encoder, &host.binding, batch as u32, pass)?;
            if grad_bytes > 0 {
                host.staging.copy_from(&mut encoder, &host.grad, rows.start as u64 * row_bytes, 0, grad_bytes);
            }
            host.staging.copy_from(&mut encoder, &host.binding.loss_scratch, 0, grad_bytes, 4);
            let submission = self.ctx.queue().submit([encoder.finish()]);
            belt.recall();
            Ok(submission)
        })?;
        drop(belt);
        Ok(PendingStep { module: self, submission: Some(submission), grad_len: grad_bytes as usize / 4 })
    }

    /// A step (or forward pass) on a batch that lives in another program's buffers at byte
    /// offsets (a framework's memory pool, where inputs and outputs may share one buffer, so
    /// they cannot be bound together): copies features and labels into the module's own
    /// buffers, runs the pass, and copies the gradient and the loss out, in one submission,
    /// on the device. Labels >= K and non-finite features are not checked on the host: the
    /// kernels guard themselves ([`GpuCenterLoss::health`]).
    #[cfg_attr(not(feature = "burn"), allow(dead_code))]
    pub(crate) fn run_on_device(
        &mut self,
        batch: usize,
        features: (&wgpu::Buffer, u64),
        labels: (&wgpu::Buffer, u64),
        grad_out: (&wgpu::Buffer, u64),
        loss_out: (&wgpu::Buffer, u64),
        update: bool,
    ) -> Result<()> {
        if batch == 0 {
            return Ok(());
        }
        self.ensure_host_capacity(batch)?;
        let Some(host) = &self.host else {
            return Err(Error::Internal("host buffers missing after they were made".into()));
        };
        let params = self.step_params(batch, false);
        let values = (batch * self.cfg.feat_dim) as u64 * 4;
        let queue = self.ctx.queue();
        self.ctx.try_capture(|| {
            queue.write_buffer(&host.binding.params, 0, bytemuck::bytes_of(&params));
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(features.0, features.1, &host.features, 0, values);
            encoder.copy_buffer_to_buffer(labels.0, labels.1, &host.labels, 0, 4 * batch as u64);
            let pass = if update { CenterPass::Step } else { CenterPass::Forward };
            self.record(&mut encoder, &host.binding, batch as u32, pass)?;
            encoder.copy_buffer_to_buffer(&host.grad, 0, grad_out.0, grad_out.1, values);
            encoder.copy_buffer_to_buffer(&host.binding.loss_scratch, 0, loss_out.0, loss_out.1, 4);
            queue.submit([encoder.finish()]);
            Ok(())
        })
    }
}
