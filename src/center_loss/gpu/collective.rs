//! The collective step: one center-loss step over a global batch split across the members
//! of a [`Collective`], equal to [`GpuCenterLoss::step`] on the concatenated batch.
//!
//! Protocol (two rendezvous per step, O(B*D) bytes, never O(K)):
//! 1. all-gather of each member's message: a configuration fingerprint, the verdict of its
//!    own input checks and, when they pass, its shard (B_r rows of features and labels);
//! 2. every member checks every message (the lowest rank at fault is named by all), runs
//!    the step on the concatenated batch on its own device and keeps its own gradient rows;
//! 3. all-gather of each member's outcome, rank 0's carrying its loss and the updated rows
//!    of the classes present (U <= B rows), which the others write over theirs: the
//!    centers are bit-identical on every member whatever the update mode, driver or device.

use std::ops::Range;

use super::plan::CenterPass;
use super::{CenterLossBinding, GpuCenterLoss, StepOutput};
use crate::center_loss::config::{Reduction, UpdateMode};
use crate::collective::wire::{clone_error, Reader, Writer};
use crate::collective::Collective;
use crate::{Error, Result};

/// Version of the wire format, first in every message.
const WIRE: u32 = 0xC1_0001;

/// A member's shard and the rows of each member's shard in the global batch.
pub(crate) struct GlobalBatch {
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    /// Row ranges by rank.
    pub shards: Vec<Range<usize>>,
}

impl GpuCenterLoss {
    /// One collective step for this member's shard of a global batch (the shards of all
    /// members, in rank order, form the batch; sizes may differ, an empty shard is fine).
    ///
    /// Equal to [`GpuCenterLoss::step`] on the concatenated batch: the loss (over the
    /// global batch, the same on every member), this shard's gradient rows
    /// (lambda (x_i - c_{y_i}) / B with the global B) and the center update with the
    /// global counts n_j. Afterwards the centers are bit-identical on every member.
    ///
    /// Bad input on any member (wrong shape, label >= K, a NaN) or a configuration that
    /// differs between members (K, D, alpha, lambda, reduction, mode) makes every member
    /// return the same [`Error::Rank`] naming the lowest rank at fault, before any center
    /// changes. A member that leaves makes the others return [`Error::Collective`].
    pub fn step_collective(&mut self, features: &[f32], labels: &[u32], comm: &dyn Collective) -> Result<StepOutput> {
        self.step_collective_rows(features, labels, comm, true)
    }

    /// The collective step on the GPU-resident path: this member's shard is the batch of
    /// `binding` (the caller's buffers). Reads the shard back once to exchange it, writes
    /// this shard's gradient rows (scaled by the global batch, with the pre-step centers)
    /// into the binding's gradient buffer on the device (added when the binding
    /// accumulates), updates the centers as [`GpuCenterLoss::step_collective`] does, and
    /// writes the global loss to the binding's loss target. Returns the global loss.
    pub fn step_collective_bound(&mut self, binding: &CenterLossBinding, comm: &dyn Collective) -> Result<f32> {
        self.check_owner(binding)?;
        // A shard that cannot be read is this member's bad input: every member hears of it.
        let shard = self.read_inputs(binding);
        let global = self.gather_shards(shard.as_ref().map(|(f, l)| (f.as_slice(), l.as_slice())), comm)?;
        // This shard's gradient rows against the pre-step centers, scaled by the global
        // batch; the scale is restored for the binding's own later steps (queue writes are
        // applied in order, before each submission).
        self.scale_binding_for(binding, global.labels.len().max(1))?;
        let forward = self
            .ctx
            .capture(|| {
                let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
                self.record(&mut encoder, binding, binding.batch, CenterPass::Forward)?;
                self.ctx.queue().submit([encoder.finish()]);
                Ok(())
            })
            .and_then(|recorded| recorded);
        self.scale_binding_for(binding, binding.batch as usize)?;
        let outcome = forward.and_then(|()| {
            self.run_checked_rows(&global.features, &global.labels, CenterPass::Step, 0..0).map(|o| o.loss)
        });
        let loss = self.agree_on_centers(comm, &global.labels, outcome.as_ref().copied())?;
        if let Some((target, offset)) = &binding.loss_target {
            self.ctx.capture(|| {
                self.ctx.queue().write_buffer(target, *offset, &loss.to_le_bytes());
                self.ctx.queue().submit(None);
            })?;
        }
        Ok(loss)
    }

    /// Reads a binding's features and labels back (one submission).
    fn read_inputs(&self, binding: &CenterLossBinding) -> Result<(Vec<f32>, Vec<u32>)> {
        for (what, (buffer, _)) in [("features", &binding.inputs[0]), ("labels", &binding.inputs[1])] {
            if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
                return Err(Error::Buffer {
                    what,
                    reason: format!(
                        "the collective step reads it back, so it needs usage COPY_SRC (has {:?})",
                        buffer.usage()
                    ),
                });
            }
        }
        let batch = binding.batch as usize;
        let feature_bytes = (batch * self.cfg.feat_dim * 4) as u64;
        let staging =
            crate::gpu::Staging::new(self.ctx.device(), "collective inputs", feature_bytes + 4 * batch as u64);
        let [(features, f_offset), (labels, l_offset)] = &binding.inputs;
        self.ctx.capture(|| {
            let mut encoder = self.ctx.device().create_command_encoder(&Default::default());
            staging.copy_from(&mut encoder, features, *f_offset, 0, feature_bytes);
            staging.copy_from(&mut encoder, labels, *l_offset, feature_bytes, 4 * batch as u64);
            self.ctx.queue().submit([encoder.finish()]);
        })?;
        let words: Vec<u32> = staging.read_values(&self.ctx, batch * (self.cfg.feat_dim + 1))?;
        let (f, l) = words.split_at(batch * self.cfg.feat_dim);
        Ok((bytemuck::cast_slice(f).to_vec(), l.to_vec()))
    }

    /// [`GpuCenterLoss::step_collective`] without reading the gradient back (the trainer
    /// computes its rows on the device): returns the global loss.
    pub(crate) fn update_collective(&mut self, features: &[f32], labels: &[u32], comm: &dyn Collective) -> Result<f32> {
        Ok(self.step_collective_rows(features, labels, comm, false)?.loss)
    }

    fn step_collective_rows(
        &mut self,
        features: &[f32],
        labels: &[u32],
        comm: &dyn Collective,
        with_grad: bool,
    ) -> Result<StepOutput> {
        if comm.size() == 1 {
            // A group of one exchanges nothing: the plain step.
            let rows = if with_grad { 0..labels.len() } else { 0..0 };
            return self.run_host_rows(features, labels, CenterPass::Step, rows);
        }
        let global = self.gather_batch(features, labels, comm)?;
        let own = global.shards[comm.rank()].clone();
        let rows = if with_grad { own } else { 0..0 };
        // Every shard passed its owner's checks (gather_batch), so the batch is not checked again.
        let outcome = self.run_checked_rows(&global.features, &global.labels, CenterPass::Step, rows);
        let loss = self.agree_on_centers(comm, &global.labels, outcome.as_ref().map(|o| o.loss))?;
        let grad = outcome?.grad;
        Ok(StepOutput { loss, grad })
    }

    /// Exchanges the shards and the checks' verdicts; the global batch, or the same error
    /// on every member.
    pub(crate) fn gather_batch(&self, features: &[f32], labels: &[u32], comm: &dyn Collective) -> Result<GlobalBatch> {
        self.gather_shards(Ok((features, labels)), comm)
    }

    /// [`Self::gather_batch`] for a shard that may have failed before its checks (a read).
    fn gather_shards(&self, shard: Result<(&[f32], &[u32]), &Error>, comm: &dyn Collective) -> Result<GlobalBatch> {
        let checked = shard.map_err(clone_error).and_then(|(f, l)| Ok((self.cfg.validate_batch(f, l)?, f, l)));
        let mut message = Writer::default();
        message.u32(WIRE);
        self.fingerprint().write(&mut message);
        message.verdict(checked.as_ref().map(|_| ()));
        if let Ok((batch, features, labels)) = &checked {
            message.u64(*batch as u64);
            message.bytes(bytemuck::cast_slice(features));
            message.bytes(bytemuck::cast_slice(labels));
        }
        let messages = comm.all_gather(&message.0)?;
        let dim = self.cfg.feat_dim;
        let mut global = GlobalBatch { features: Vec::new(), labels: Vec::new(), shards: Vec::new() };
        // Rank 0's configuration is the reference; messages are read in rank order, so
        // every member names the same (lowest) rank at fault.
        let mut reference = None;
        for (rank, bytes) in messages.iter().enumerate() {
            let mut r = Reader::new(bytes, rank);
            if r.u32()? != WIRE {
                return Err(Error::Collective(format!("rank {rank} speaks another wire format")));
            }
            let theirs = Fingerprint::read(&mut r)?;
            let first = *reference.get_or_insert(theirs);
            if theirs != first {
                return Err(Error::Rank {
                    rank,
                    source: Box::new(Error::Config(format!(
                        "its center-loss configuration ({}) differs from rank 0's ({})",
                        theirs.describe(),
                        first.describe()
                    ))),
                });
            }
            r.verdict()?;
            let batch = r.u64()? as usize;
            let start = global.labels.len();
            global.features.extend(bytemuck::pod_collect_to_vec::<u8, f32>(r.bytes(4 * batch * dim)?));
            global.labels.extend(bytemuck::pod_collect_to_vec::<u8, u32>(r.bytes(4 * batch)?));
            global.shards.push(start..start + batch);
        }
        Ok(global)
    }

    /// After the step: every member learns every member's outcome; on success rank 0's
    /// loss and updated rows replace everyone's. Returns the agreed loss.
    fn agree_on_centers(&mut self, comm: &dyn Collective, labels: &[u32], outcome: Result<f32, &Error>) -> Result<f32> {
        if comm.size() == 1 {
            return outcome.map_err(clone_error);
        }
        let mut classes = labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        // Rank 0 sends its loss and the updated rows; a failure to read them is its verdict.
        let rows = match (&outcome, comm.rank()) {
            (Ok(_), 0) => Some(self.table.read_rows(&self.ctx, &classes)),
            _ => None,
        };
        let mut message = Writer::default();
        match (outcome, &rows) {
            (Err(e), _) | (_, Some(Err(e))) => message.verdict(Err(e)),
            (Ok(loss), rows) => {
                message.verdict(Ok(()));
                if let Some(Ok(rows)) = rows {
                    message.f32(loss);
                    message.bytes(bytemuck::cast_slice(rows));
                }
            }
        }
        let messages = comm.all_gather(&message.0)?;
        for (rank, bytes) in messages.iter().enumerate() {
            Reader::new(bytes, rank).verdict()?;
        }
        let mut r = Reader::new(&messages[0], 0);
        r.verdict()?;
        let loss = r.f32()?;
        if comm.rank() != 0 {
            let rows = bytemuck::pod_collect_to_vec::<u8, f32>(r.bytes(4 * classes.len() * self.cfg.feat_dim)?);
            self.ctx.capture(|| {
                self.table.write_rows(self.ctx.queue(), &classes, &rows);
                self.ctx.queue().submit(None);
            })?;
        }
        Ok(loss)
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            classes: self.cfg.num_classes as u64,
            dim: self.cfg.feat_dim as u64,
            alpha: self.cfg.alpha.to_bits(),
            lambda: self.cfg.lambda.to_bits(),
            reduction: (self.cfg.reduction == Reduction::Sum) as u8,
            update: (self.cfg.update == UpdateMode::Deterministic) as u8,
        }
    }
}

/// What members must agree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    classes: u64,
    dim: u64,
    alpha: u32,
    lambda: u32,
    reduction: u8,
    update: u8,
}

impl Fingerprint {
    fn write(&self, w: &mut Writer) {
        w.u64(self.classes);
        w.u64(self.dim);
        w.u32(self.alpha);
        w.u32(self.lambda);
        w.u8(self.reduction);
        w.u8(self.update);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            classes: r.u64()?,
            dim: r.u64()?,
            alpha: r.u32()?,
            lambda: r.u32()?,
            reduction: r.u8()?,
            update: r.u8()?,
        })
    }

    fn describe(&self) -> String {
        format!(
            "K {} D {} alpha {} lambda {} {} {}",
            self.classes,
            self.dim,
            f32::from_bits(self.alpha),
            f32::from_bits(self.lambda),
            if self.reduction == 1 { "Sum" } else { "Mean" },
            if self.update == 1 { "Deterministic" } else { "Atomic" }
        )
    }
}
