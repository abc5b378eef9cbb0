//! Inference: embeddings and logits of any number of images, batch by batch through the
//! forward pass alone.

use super::network::Network;
use crate::error::check_finite;
use crate::gpu;
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

impl Network {
    /// Embeddings and logits of `images` (`n * input_len` values, any n), batch by batch.
    pub fn infer(&self, images: &[f32]) -> Result<Inference> {
        let per = self.input_len();
        if !images.len().is_multiple_of(per) {
            return Err(Error::Shape {
                what: "images",
                expected: images.len().div_ceil(per) * per,
                actual: images.len(),
            });
        }
        check_finite("images", images)?;
        let n = images.len() / per;
        let b = self.cfg.batch;
        let ctx = self.graph.context();
        let mut out = Inference::default();
        let mut chunk = vec![0.0f32; b * per];
        for start in (0..n).step_by(b) {
            let rows = (n - start).min(b);
            chunk[..rows * per].copy_from_slice(&images[start * per..(start + rows) * per]);
            chunk[rows * per..].fill(0.0);
            ctx.capture(|| {
                ctx.queue().write_buffer(&self.input.buffer, 0, bytemuck::cast_slice(&chunk));
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                {
                    let mut cpass = encoder.begin_compute_pass(&Default::default());
                    self.graph.record_forward(&mut cpass);
                }
                ctx.queue().submit([encoder.finish()]);
            })?;
            let e: Vec<f32> = gpu::read_buffer(ctx, &self.embedding.buffer, rows * self.embed_dim())?;
            let l: Vec<f32> = gpu::read_buffer(ctx, &self.logits.buffer, rows * self.spec.num_classes)?;
            out.embeddings.extend(e);
            let scale = if self.spec.head.normalized { self.spec.head.scale } else { 1.0 };
            out.logits.extend(l.into_iter().map(|z| scale * z));
        }
        Ok(out)
    }
}
