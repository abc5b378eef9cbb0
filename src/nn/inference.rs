//! Inference: embeddings and logits of any number of images, batch by batch through the
//! forward pass alone, of a training [`Network`] or of an [`InferenceNetwork`] (the forward
//! kernels and weights alone, what a trained model needs).

use super::graph::{Graph, Tensor};
use super::network::Network;
use super::spec::{LayerSpec, NetworkSpec};
use crate::error::check_finite;
use crate::gpu::{self, GpuContext};
use crate::{Error, Result};

/// Embeddings and logits of a set of images.
#[derive(Clone, Debug, Default)]
pub struct Inference {
    /// `n * embed_dim` values.
    pub embeddings: Vec<f32>,
    /// `n * num_classes` values (s · cos θ under a normalised head, without the margin).
    pub logits: Vec<f32>,
}

impl Inference {
    /// The arg-max class of each sample.
    pub fn predictions(&self, num_classes: usize) -> Vec<u32> {
        self.logits
            .chunks(num_classes)
            .map(|row| {
                let mut best = 0;
                for (c, &z) in row.iter().enumerate() {
                    if z > row[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }
}

/// Runs `graph`'s forward pass over `images` (`n * input` values of `input`'s shape, any
/// n), batch by batch, reading back `embedding` and, when given, `logits` times its factor
/// ([`super::Head::logit_scale`]).
async fn forward_batches(
    graph: &Graph,
    input: &Tensor,
    embedding: &Tensor,
    logits: Option<(&Tensor, f32)>,
    images: &[f32],
) -> Result<Inference> {
    let per = input.per_sample();
    if !images.len().is_multiple_of(per) {
        return Err(Error::Shape { what: "images", expected: images.len().div_ceil(per) * per, actual: images.len() });
    }
    check_finite("images", images)?;
    let n = images.len() / per;
    let b = graph.batch();
    let ctx = graph.context();
    let mut out = Inference::default();
    let mut chunk = vec![0.0f32; b * per];
    for start in (0..n).step_by(b) {
        let rows = (n - start).min(b);
        chunk[..rows * per].copy_from_slice(&images[start * per..(start + rows) * per]);
        chunk[rows * per..].fill(0.0);
        ctx.capture(|| {
            ctx.queue().write_buffer(&input.buffer, 0, bytemuck::cast_slice(&chunk));
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            {
                let mut cpass = encoder.begin_compute_pass(&Default::default());
                graph.record_forward(&mut cpass);
            }
            ctx.queue().submit([encoder.finish()]);
        })?;
        out.embeddings
            .extend(gpu::read_buffer_async::<f32>(ctx, &embedding.buffer, rows * embedding.per_sample()).await?);
        if let Some((logits, scale)) = logits {
            let l: Vec<f32> = gpu::read_buffer_async(ctx, &logits.buffer, rows * logits.per_sample()).await?;
            out.logits.extend(l.into_iter().map(|z| scale * z));
        }
    }
    Ok(out)
}

impl Network {
    /// Embeddings and logits of `images` (`n * input_len` values, any n), batch by batch.
    pub fn infer(&self, images: &[f32]) -> Result<Inference> {
        gpu::block_on("Network::infer", self.infer_async(images))
    }

    /// The asynchronous form of [`Network::infer`] (the browser's).
    pub async fn infer_async(&self, images: &[f32]) -> Result<Inference> {
        let logits = (&self.logits, self.spec.head.logit_scale());
        forward_batches(&self.graph, &self.input, &self.embedding, Some(logits), images).await
    }
}

/// A network for the forward pass alone, built from a description: the trunk's kernels and
/// weights (and, when asked, the classifier's), with no gradient, momentum, optimizer,
/// labels or center loss. Its weights start at the description's initialisation; a trained
/// model writes its own ([`crate::checkpoint::load_values`]).
pub struct InferenceNetwork {
    spec: NetworkSpec,
    graph: Graph,
    input: Tensor,
    embedding: Tensor,
    logits: Option<Tensor>,
}

impl InferenceNetwork {
    /// The forward pass of `spec` for batches of `batch` images; with `classifier` the
    /// logits too. Sizes are checked first, as [`Network::new`] checks them.
    pub fn new(ctx: &GpuContext, spec: NetworkSpec, batch: usize, classifier: bool) -> Result<Self> {
        spec.footprint(batch, &ctx.limits(), ctx.kernels())?;
        let mut graph = Graph::for_inference(ctx, batch)?;
        graph.init = spec.init;
        graph.reserve_params(spec.param_values(classifier));
        let input = graph.input(spec.input, false);
        let trunk = graph.sequence(&input, &spec.trunk, "trunk")?;
        let embedding = Tensor { shape: [trunk.per_sample(), 1, 1], ..trunk };
        let logits = if !classifier {
            None
        } else if spec.head.normalized {
            let unit = graph.layer(&embedding, &LayerSpec::L2Norm, "head")?;
            Some(graph.normalized_classifier(&unit, spec.num_classes, "classifier")?)
        } else {
            Some(graph.classifier(&embedding, spec.num_classes, spec.classifier_bias, "classifier")?)
        };
        Ok(Self { spec, graph, input, embedding, logits })
    }

    /// The network description.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The graph: the forward dispatches and the parameters (values only).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The embedding size.
    pub fn embed_dim(&self) -> usize {
        self.embedding.per_sample()
    }

    /// Values per input image.
    pub fn input_len(&self) -> usize {
        self.input.per_sample()
    }

    /// The embeddings of `images` (`n * input_len` values, any n), the trunk's output as it
    /// is (not normalised), batch by batch.
    pub fn embed(&self, images: &[f32]) -> Result<Vec<f32>> {
        gpu::block_on(
            "InferenceNetwork::embed",
            forward_batches(&self.graph, &self.input, &self.embedding, None, images),
        )
        .map(|inference| inference.embeddings)
    }

    /// Embeddings and logits of `images` (the logits of a network built with its
    /// classifier; empty otherwise).
    pub fn infer(&self, images: &[f32]) -> Result<Inference> {
        gpu::block_on("InferenceNetwork::infer", self.infer_async(images))
    }

    /// The asynchronous form of [`InferenceNetwork::infer`] (the browser's).
    pub async fn infer_async(&self, images: &[f32]) -> Result<Inference> {
        let logits = self.logits.as_ref().map(|l| (l, self.spec.head.logit_scale()));
        forward_batches(&self.graph, &self.input, &self.embedding, logits, images).await
    }

    /// Every parameter's values, in [`Graph::params`] order.
    pub fn param_values(&self) -> Result<Vec<Vec<f32>>> {
        self.graph.read_params(|p| Ok(&p.value))
    }
}
