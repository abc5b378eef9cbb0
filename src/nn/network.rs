//! `Network`: a classification network trained with softmax cross-entropy (on a linear
//! or a margin head) plus lambda * center loss on its embedding, one GPU step per batch
//! with no host round trip.

use super::graph::{Graph, Tensor};
use super::head::{CenterFeatures, Head};
use super::kernels::SoftmaxParams;
use super::optimizer::{Sgd, SgdConfig};
use super::spec::{LayerSpec, NetworkSpec};
use crate::error::{check_finite, check_len};
use crate::gpu::shaders::kernel;
use crate::gpu::{self, GpuContext, Op, Staging, Storage};
use crate::{BatchBuffers, CenterLossBinding, CenterLossConfig, Error, GpuCenterLoss, Reduction, Result};

/// How a network is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Samples per step (fixed; the last partial batch of an epoch is dropped).
    pub batch: usize,
    /// Optimizer settings.
    pub sgd: SgdConfig,
    /// The center loss on the embedding: α, λ (0 trains with softmax alone, no centers at
    /// all), reduction and update mode. `num_classes` and `feat_dim` come from the network
    /// spec: leave them 0, or they must match it.
    pub center: CenterLossConfig,
    /// Where the center loss applies under a normalised head: on the embedding (the
    /// paper's form) or on its L2-normalised rows.
    pub center_features: CenterFeatures,
    /// Seed of the weight initialisation.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 64,
            sgd: SgdConfig::default(),
            center: CenterLossConfig::default(),
            center_features: CenterFeatures::Raw,
            seed: 0,
        }
    }
}

/// The scalars of one step, read back when asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepMetrics {
    /// Mean softmax cross-entropy of the batch (with a margin head, on its margin logits).
    pub softmax_loss: f32,
    /// Fraction of the batch classified correctly (before the update).
    pub accuracy: f32,
    /// lambda/2 * mean ||x_i - c_{y_i}||^2 (0 without center loss).
    pub center_loss: f32,
}

impl StepMetrics {
    /// softmax + center loss.
    pub fn total_loss(&self) -> f32 {
        self.softmax_loss + self.center_loss
    }
}

/// What a recorded pass over a batch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// Forward, backward, center update, SGD.
    Train,
    /// Forward and the loss terms only.
    Evaluate,
    /// Forward and backward, no update.
    Gradients,
}

/// A network on the GPU with its optimizer state and (when lambda > 0) its centers.
pub struct Network {
    pub(super) spec: NetworkSpec,
    pub(super) cfg: TrainConfig,
    pub(super) graph: Graph,
    pub(super) input: Tensor,
    pub(super) labels: wgpu::Buffer,
    pub(super) embedding: Tensor,
    pub(super) logits: Tensor,
    pub(super) trunk_groups: usize,
    pub(super) head: Vec<Op>,
    /// The optimizer's dispatches (clipping, when on, and SGD).
    pub(super) sgd: Sgd,
    /// The softmax head's uniform (its gradient scale, 1 / global batch).
    pub(super) softmax_uniform: wgpu::Buffer,
    /// How many members' shards the gradient scales assume (1: not data-parallel).
    pub(super) members: usize,
    /// The data-parallel step's read-back of gradients, metrics and embeddings (made on
    /// its first step).
    pub(super) collective_readback: Option<Staging>,
    pub(super) metrics: wgpu::Buffer,
    pub(super) metrics_staging: Staging,
    pub(super) center: Option<(GpuCenterLoss, CenterLossBinding)>,
    pub(super) step: u64,
    pub(super) lr: f32,
    /// Whether every kernel of a step has run once ([`Network::warm_up`]).
    pub(super) warm: bool,
}

/// `center` with the network's K and D filled in (0 means "from the network"), validated.
/// The trainer averages both losses over the batch, so the reduction must be the mean.
fn center_config(center: &CenterLossConfig, num_classes: usize, feat_dim: usize) -> Result<CenterLossConfig> {
    for (what, given, network) in
        [("num_classes", center.num_classes, num_classes), ("feat_dim", center.feat_dim, feat_dim)]
    {
        if given != 0 && given != network {
            return Err(Error::Config(format!(
                "TrainConfig::center.{what} is {given} but the network has {network}: leave it 0"
            )));
        }
    }
    if center.reduction != Reduction::Mean {
        return Err(Error::Config(
            "TrainConfig::center.reduction must be Reduction::Mean: the trainer averages softmax and center loss over the batch".into(),
        ));
    }
    let cfg = CenterLossConfig { num_classes, feat_dim, ..center.clone() };
    cfg.validate()?;
    Ok(cfg)
}

/// [`Error::Config`] for a head that cannot train ([`Head::validate`](super::Head::validate)), a
/// bias on a normalised head, or center loss on normalised features without a normalised head.
fn check_head(spec: &NetworkSpec, cfg: &TrainConfig) -> Result<()> {
    spec.head.validate()?;
    if spec.head.normalized && spec.classifier_bias {
        return Err(Error::Config("a normalised head has no bias: set classifier_bias to false".into()));
    }
    if cfg.center_features == CenterFeatures::Normalized && !spec.head.normalized {
        return Err(Error::Config(
            "center loss on normalised features needs a normalised head (Head::normalized, arcface or cosface)".into(),
        ));
    }
    Ok(())
}

/// The loss head's dispatches (the softmax or margin cross-entropy of `logits` against
/// `labels` into per-row statistics, then their batch means into `metrics` as [loss,
/// accuracy]) and its uniform, whose gradient scale is 1 / batch.
fn loss_ops(
    graph: &Graph,
    head: &Head,
    logits: &Tensor,
    labels: &wgpu::Buffer,
    metrics: &wgpu::Buffer,
) -> Result<(Vec<Op>, wgpu::Buffer)> {
    let b = graph.batch();
    let row_stats = gpu::buffer(graph.context().device(), "row stats", 8 * b as u64, gpu::STORAGE_RW);
    let dlogits = logits.grad.clone().ok_or_else(|| Error::Internal("logits have no gradient".into()))?;
    let su = graph.uniform(&SoftmaxParams {
        batch: b as u32,
        classes: logits.per_sample() as u32,
        grad_scale: 1.0 / b as f32,
        _pad: 0,
    });
    let (kernel, constants) = if head.normalized {
        (&kernel::MARGIN_CROSS_ENTROPY, head.kernel_constants())
    } else {
        (&kernel::SOFTMAX_CROSS_ENTROPY, Vec::new())
    };
    let storage: [&dyn Storage; 4] = [&logits.buffer, labels, &dlogits, &row_stats];
    let ops = vec![
        graph.kernels.op(kernel, &constants, Some(&su), &storage, (b as u32, 1, 1))?,
        graph.column_sums((b, 2), &row_stats, metrics, 0, 1.0 / b as f32)?,
    ];
    Ok((ops, su))
}

impl Network {
    /// Builds the network, its optimizer and its centers. Shapes and sizes are checked
    /// first ([`NetworkSpec::footprint`]), before anything is allocated: a mismatch, or a
    /// layer over the adapter's limits, is an [`Error::Config`] naming the layer.
    pub fn new(ctx: &GpuContext, spec: NetworkSpec, mut cfg: TrainConfig) -> Result<Self> {
        cfg.sgd.validate()?;
        spec.footprint(cfg.batch, &ctx.limits(), ctx.kernels())?;
        let mut graph = Graph::new(ctx, cfg.batch, cfg.seed)?;
        graph.init = spec.init;
        graph.reserve_params(spec.arena_values());
        check_head(&spec, &cfg)?;
        let input = graph.input(spec.input, false);
        let embedding = graph.sequence(&input, &spec.trunk, "trunk")?;
        let mut embedding = Tensor { shape: [embedding.per_sample(), 1, 1], ..embedding };
        let center_normalized = cfg.center_features == CenterFeatures::Normalized;
        if center_normalized {
            embedding = graph.layer(&embedding, &LayerSpec::L2Norm, "embedding")?;
        }
        // Kept complete (K and D filled in): the rules every batch's labels are checked by.
        cfg.center = center_config(&cfg.center, spec.num_classes, embedding.per_sample())?;
        let trunk_groups = graph.backward_groups();
        let logits = if spec.head.normalized {
            let unit = if center_normalized {
                embedding.clone()
            } else {
                graph.layer(&embedding, &LayerSpec::L2Norm, "head")?
            };
            graph.normalized_classifier(&unit, spec.num_classes, "classifier")?
        } else {
            graph.classifier(&embedding, spec.num_classes, spec.classifier_bias, "classifier")?
        };
        let device = ctx.device();
        let b = cfg.batch;
        let labels = gpu::buffer(device, "labels", 4 * b as u64, gpu::STORAGE_RW);
        let metrics = gpu::buffer(device, "metrics", 16, gpu::STORAGE_RW);
        let metrics_staging = Staging::new(device, "metrics staging", 16);
        let (head, su) = loss_ops(&graph, &spec.head, &logits, &labels, &metrics)?;
        let sgd = Sgd::new(&graph, &cfg.sgd)?;
        let center = if cfg.center.lambda > 0.0 {
            let cl = GpuCenterLoss::new(ctx, cfg.center.clone())?;
            let grad = embedding.grad.as_ref().ok_or_else(|| Error::Internal("embedding has no gradient".into()))?;
            let binding = cl.bind(BatchBuffers {
                features: &embedding.buffer,
                labels: &labels,
                grad,
                loss: &metrics,
                loss_offset: 8,
                batch: b,
                accumulate_grad: true,
            })?;
            Some((cl, binding))
        } else {
            None
        };
        let mut net = Self {
            spec,
            cfg,
            graph,
            input,
            labels,
            embedding,
            logits,
            trunk_groups,
            head,
            sgd,
            softmax_uniform: su,
            members: 1,
            collective_readback: None,
            metrics,
            metrics_staging,
            center,
            step: 0,
            lr: f32::NAN,
            warm: false,
        };
        net.apply_schedule()?;
        Ok(net)
    }

    /// The network description.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The training settings, the center loss's K and D filled in from the network.
    pub fn train_config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The underlying graph (parameters, buffers).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The center-loss module, when lambda > 0.
    pub fn center_loss(&self) -> Option<&GpuCenterLoss> {
        self.center.as_ref().map(|(cl, _)| cl)
    }

    /// Mutable access to the center-loss module (checkpoint restore).
    pub(crate) fn center_loss_mut(&mut self) -> Option<&mut GpuCenterLoss> {
        self.center.as_mut().map(|(cl, _)| cl)
    }

    /// The embedding size.
    pub fn embed_dim(&self) -> usize {
        self.embedding.per_sample()
    }

    /// Values per input image.
    pub fn input_len(&self) -> usize {
        self.input.per_sample()
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Sets the step count (checkpoint restore) and the learning rate that goes with it.
    pub(crate) fn set_step_count(&mut self, step: u64) -> Result<()> {
        self.step = step;
        self.apply_schedule()
    }

    /// The learning rate of the next step.
    pub fn learning_rate(&self) -> f32 {
        self.lr
    }

    /// Writes the optimizer uniforms when the scheduled learning rate changes.
    pub(super) fn apply_schedule(&mut self) -> Result<()> {
        let lr = self.cfg.sgd.schedule.lr_at(self.cfg.sgd.lr, self.step);
        if lr == self.lr {
            return Ok(());
        }
        self.lr = lr;
        self.sgd.set_rate(&self.graph, &self.cfg.sgd, lr)
    }

    pub(super) fn check_batch(&self, images: &[f32], labels: &[u32]) -> Result<()> {
        check_len("images", self.cfg.batch * self.input_len(), images.len())?;
        check_len("labels", self.cfg.batch, labels.len())?;
        self.cfg.center.check_labels(labels)?;
        check_finite("images", images)
    }

    /// One training step on a full batch: forward, softmax + lambda * center loss,
    /// backward, center update, SGD. With `read_metrics` the step's scalars are read back
    /// (a wait for the GPU); otherwise nothing is.
    pub fn train_step(&mut self, images: &[f32], labels: &[u32], read_metrics: bool) -> Result<Option<StepMetrics>> {
        self.submit_train_step(images, labels, read_metrics)?;
        if read_metrics {
            Ok(Some(self.read_metrics()?))
        } else {
            Ok(None)
        }
    }

    /// [`Network::train_step`] reading the step's scalars back asynchronously (the
    /// browser's form).
    pub async fn train_step_async(&mut self, images: &[f32], labels: &[u32]) -> Result<StepMetrics> {
        self.submit_train_step(images, labels, true)?;
        self.read_metrics_async().await
    }

    /// Checks the batch and submits one training step (with the copy of its scalars to
    /// the staging buffer when `read_metrics`).
    fn submit_train_step(&mut self, images: &[f32], labels: &[u32], read_metrics: bool) -> Result<()> {
        self.check_batch(images, labels)?;
        self.apply_schedule()?;
        self.run_batch(images, labels, Pass::Train, read_metrics)?;
        self.step += 1;
        self.warm = true;
        Ok(())
    }

    /// Uploads a batch and records one pass over it in a single submission.
    pub(super) fn run_batch(&self, images: &[f32], labels: &[u32], pass: Pass, read_metrics: bool) -> Result<()> {
        let ctx = self.graph.context();
        ctx.capture(|| {
            let queue = ctx.queue();
            queue.write_buffer(&self.input.buffer, 0, bytemuck::cast_slice(images));
            queue.write_buffer(&self.labels, 0, bytemuck::cast_slice(labels));
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            self.record_loss_and_head_backward(&mut encoder, pass != Pass::Evaluate);
            if let Some((cl, binding)) = &self.center {
                match pass {
                    Pass::Train => cl.encode_step(&mut encoder, binding)?,
                    _ => cl.encode_forward(&mut encoder, binding)?,
                }
            }
            if pass != Pass::Evaluate {
                let mut cpass = encoder.begin_compute_pass(&Default::default());
                self.graph.record_backward_groups(&mut cpass, 0..self.trunk_groups);
                if pass == Pass::Train {
                    self.graph.record_ops(&mut cpass, &self.sgd.ops);
                }
            }
            if read_metrics {
                self.metrics_staging.copy_from(&mut encoder, &self.metrics, 0, 0, 16);
            }
            queue.submit([encoder.finish()]);
            Ok::<_, Error>(())
        })?
    }

    /// Forward, softmax head and the classifier's backward group (or only the loss).
    pub(super) fn record_loss_and_head_backward(&self, encoder: &mut wgpu::CommandEncoder, backward: bool) {
        let mut cpass = encoder.begin_compute_pass(&Default::default());
        self.graph.record_forward(&mut cpass);
        self.graph.record_ops(&mut cpass, &self.head);
        if backward {
            self.graph.record_backward_groups(&mut cpass, self.trunk_groups..self.graph.backward_groups());
        }
    }

    pub(super) fn read_metrics(&self) -> Result<StepMetrics> {
        gpu::block_on("Network::train_step", self.read_metrics_async())
    }

    async fn read_metrics_async(&self) -> Result<StepMetrics> {
        let v: Vec<f32> = self.metrics_staging.read_values_async(self.graph.context(), 4).await?;
        Ok(StepMetrics {
            softmax_loss: v[0],
            accuracy: v[1],
            center_loss: if self.center.is_some() { v[2] } else { 0.0 },
        })
    }

    /// The loss terms of a batch without any update (the center loss against the current
    /// centers). Used for gradient checks and validation.
    pub fn evaluate_loss(&mut self, images: &[f32], labels: &[u32]) -> Result<StepMetrics> {
        self.check_batch(images, labels)?;
        self.run_batch(images, labels, Pass::Evaluate, true)?;
        self.read_metrics()
    }

    /// Gradients of (softmax + center loss) with respect to every parameter for one batch,
    /// without updating anything. Returns them in [`Graph::params`] order.
    pub fn gradients(&mut self, images: &[f32], labels: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.check_batch(images, labels)?;
        self.run_batch(images, labels, Pass::Gradients, false)?;
        self.graph.read_params(|p| p.grad())
    }

    /// Wall-clock seconds of one forward and backward pass over a batch (no update, nothing
    /// read back; the median of `runs` after a warm-up): what a training step costs, for
    /// a plan's time estimate.
    pub fn time_pass(&mut self, images: &[f32], labels: &[u32], runs: usize) -> Result<f64> {
        self.check_batch(images, labels)?;
        let ctx = self.graph.context().clone();
        let mut times = Vec::new();
        for run in 0..=runs.max(1) {
            let t = std::time::Instant::now();
            self.run_batch(images, labels, Pass::Gradients, false)?;
            ctx.wait_idle()?;
            if run > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        Ok(gpu::median(times))
    }

    /// Reads every parameter's values, in [`Graph::params`] order (one submission).
    pub fn param_values(&self) -> Result<Vec<Vec<f32>>> {
        self.graph.read_params(|p| Ok(&p.value))
    }

    /// Overwrites parameter `index` with `values`.
    pub fn set_param(&mut self, index: usize, values: &[f32]) -> Result<()> {
        let p = self.graph.params().get(index).ok_or_else(|| Error::Config(format!("no parameter {index}")))?;
        check_len("parameter", p.len, values.len())?;
        check_finite("parameter", values)?;
        self.graph.write(&p.value, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_center_config_takes_k_and_d_from_the_network_and_refuses_what_it_cannot_train() {
        let cfg = center_config(&CenterLossConfig::default(), 10, 2).unwrap();
        assert_eq!((cfg.num_classes, cfg.feat_dim), (10, 2));
        let mismatch = CenterLossConfig { feat_dim: 3, ..Default::default() };
        assert!(matches!(center_config(&mismatch, 10, 2), Err(Error::Config(_))));
        let sum = CenterLossConfig { reduction: Reduction::Sum, ..Default::default() };
        assert!(matches!(center_config(&sum, 10, 2), Err(Error::Config(_))));
        let bad_alpha = CenterLossConfig { alpha: 0.0, ..Default::default() };
        assert!(matches!(center_config(&bad_alpha, 10, 2), Err(Error::Config(_))));
    }
}
