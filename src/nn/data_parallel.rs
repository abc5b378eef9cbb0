//! The data-parallel training step: each member of a [`Collective`] trains on its shard of
//! a global batch, and the step equals one [`Network::train_step`] on the whole batch.
//!
//! Per step:
//! 1. a small all-gather of each member's verdict on its shard (shape, labels, finite
//!    values) and its shard size: bad input anywhere fails every member the same way;
//! 2. on the device: forward, softmax head and center-loss gradient scaled by the global
//!    batch (1/B, lambda/B with the pre-step centers), backward; the parameter gradients,
//!    the embeddings and the metrics are read back in one submission;
//! 3. one all-reduce of all gradients and metrics together (one bucket, not one per
//!    parameter), summed in rank order so every member gets the same bits;
//! 4. the center update on the global batch ([`GpuCenterLoss::step_collective`]'s
//!    exchange of embeddings and labels, rank 0's rows kept everywhere);
//! 5. the summed gradients written back and the same SGD step on every member.

use super::network::{Network, StepMetrics};
use crate::collective::wire::{Reader, Writer};
use crate::collective::Collective;
use crate::gpu::Staging;
use crate::nn::kernels::SoftmaxParams;
use crate::{Error, Result};

impl Network {
    /// One data-parallel training step on this member's shard (`images`, `labels`: a
    /// full batch of [`TrainConfig::batch`](super::TrainConfig::batch) rows on every
    /// member). Equal to [`Network::train_step`] on the members' shards concatenated in
    /// rank order, and leaves the weights, momenta and centers bit-identical on every
    /// member. Metrics (when `read_metrics`) are those of the global batch.
    ///
    /// Bad input on any member makes every member return the same [`Error::Rank`] before
    /// anything changes; a member that leaves makes the others return
    /// [`Error::Collective`].
    pub fn train_step_collective(
        &mut self,
        images: &[f32],
        labels: &[u32],
        comm: &dyn Collective,
        read_metrics: bool,
    ) -> Result<Option<StepMetrics>> {
        self.agree_on_shards(images, labels, comm)?;
        let members = comm.size();
        let global = self.train_config().batch * members;
        self.scale_for(members)?;
        let outcome = self.collective_step(images, labels, comm, global);
        // Back to one member's scales whatever happened, so other passes stay exact.
        let restored = self.scale_for(1);
        let metrics = outcome?;
        restored?;
        self.step += 1;
        self.warm = true;
        Ok(read_metrics.then_some(metrics))
    }

    fn collective_step(
        &mut self,
        images: &[f32],
        labels: &[u32],
        comm: &dyn Collective,
        global: usize,
    ) -> Result<StepMetrics> {
        self.apply_schedule()?;
        let ctx = self.graph.context().clone();
        let b = self.train_config().batch;
        let dim = self.embed_dim();
        // The parameter arena's gradient pages in use (padding between parameters is zero).
        let lens: Vec<usize> = self.graph.param_pages().iter().map(|page| page.used).collect();
        let total: usize = lens.iter().sum();
        // Layout of the read-back: gradients, then the 4 metric words, then embeddings. The
        // staging buffer is made on the first step and kept.
        let staging = self
            .collective_readback
            .take()
            .unwrap_or_else(|| Staging::new(ctx.device(), "data-parallel readback", 4 * (total + 4 + b * dim) as u64));
        ctx.try_capture(|| {
            let queue = ctx.queue();
            queue.write_buffer(&self.input.buffer, 0, bytemuck::cast_slice(images));
            queue.write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            self.record_loss_and_head_backward(&mut encoder, true);
            if let Some((cl, binding)) = &self.center {
                cl.encode_forward(&mut encoder, binding)?;
            }
            {
                let mut cpass = encoder.begin_compute_pass(&Default::default());
                self.graph.record_backward_groups(&mut cpass, 0..self.trunk_groups);
            }
            let mut offset = 0u64;
            for page in self.graph.param_pages() {
                let [_, grad, _] = page.in_use()?;
                staging.copy_from(&mut encoder, &grad.buffer, 0, offset, 4 * page.used as u64);
                offset += 4 * page.used as u64;
            }
            staging.copy_from(&mut encoder, &self.metrics, 0, offset, 16);
            staging.copy_from(&mut encoder, &self.embedding.buffer, 0, offset + 16, 4 * (b * dim) as u64);
            queue.submit([encoder.finish()]);
            Ok::<_, Error>(())
        })?;
        let mut values: Vec<f32> = staging.read_values(&ctx, total + 4 + b * dim)?;
        self.collective_readback = Some(staging);
        let embeddings = values.split_off(total + 4);
        // Metrics are means over this shard: as shares of the global mean they sum.
        let share = b as f32 / global as f32;
        for m in &mut values[total..] {
            *m *= share;
        }
        comm.all_reduce_sum(&mut values)?;
        let center_loss = match &mut self.center {
            Some((cl, _)) => cl.update_collective(&embeddings, labels, comm)?,
            None => 0.0,
        };
        ctx.try_capture(|| {
            let mut start = 0;
            for (page, len) in self.graph.param_pages().iter().zip(&lens) {
                let [_, grad, _] = page.in_use()?;
                ctx.queue().write_buffer(&grad.buffer, 0, bytemuck::cast_slice(&values[start..start + len]));
                start += len;
            }
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            {
                let mut cpass = encoder.begin_compute_pass(&Default::default());
                self.graph.record_ops(&mut cpass, &self.sgd.ops);
            }
            ctx.queue().submit([encoder.finish()]);
            Ok(())
        })?;
        Ok(StepMetrics { softmax_loss: values[total], accuracy: values[total + 1], center_loss })
    }

    /// Every member checks its shard; all learn every verdict and shard size, and fail
    /// alike (naming the lowest rank at fault) unless all are good and equal in size.
    fn agree_on_shards(&self, images: &[f32], labels: &[u32], comm: &dyn Collective) -> Result<()> {
        let mut message = Writer::default();
        message.u64(self.train_config().batch as u64);
        message.verdict(self.check_batch(images, labels).as_ref().copied());
        let messages = comm.all_gather(&message.0)?;
        let mut first_batch = None;
        for (rank, bytes) in messages.iter().enumerate() {
            let mut r = Reader::new(bytes, rank);
            let batch = r.u64()?;
            if *first_batch.get_or_insert(batch) != batch {
                let why = format!(
                    "its batch is {batch} rows, rank 0's {}; every member trains on equal shards",
                    first_batch.unwrap_or(0)
                );
                return Err(Error::Rank { rank, source: Box::new(Error::Config(why)) });
            }
            r.verdict()?;
        }
        Ok(())
    }

    /// Sets the gradient scales of the softmax head and the center loss for a global
    /// batch of `members` shards (1: this member alone).
    fn scale_for(&mut self, members: usize) -> Result<()> {
        if self.members == members {
            return Ok(());
        }
        let b = self.train_config().batch;
        let global = b * members;
        let params = SoftmaxParams {
            batch: b as u32,
            classes: self.spec().num_classes as u32,
            grad_scale: 1.0 / global as f32,
            _pad: 0,
        };
        let ctx = self.graph.context();
        ctx.capture(|| ctx.queue().write_buffer(&self.softmax_uniform, 0, bytemuck::bytes_of(&params)))?;
        if let Some((cl, binding)) = &self.center {
            cl.scale_binding_for(binding, global)?;
        }
        self.members = members;
        Ok(())
    }
}
