//! What a network description asks of the adapter and the host, worked out with checked
//! arithmetic before anything is allocated: a description read from a model file or built
//! from command-line sizes may hold anything. Every layer's shapes are checked as
//! [`super::Graph::layer`] checks them; every buffer the network will create (activations
//! at the batch, each parameter, split-K partial sums) against the adapter's largest
//! storage binding; their total against [`MAX_NETWORK_BYTES`]; and the forward FLOPs per
//! image against [`MAX_FLOPS_PER_IMAGE`]. An error names the layer and the limit.

use super::arena::CHUNK_VALUES;
use super::graph::MAX_K_PER_SLICE;
use super::spec::{LayerSpec, NetworkSpec, Shape};
use super::tiles::split_k;
use crate::gpu::KernelFamily;
use crate::{Error, Result};

/// The most bytes a network's buffers may take together at its batch (parameters with
/// their gradients and momenta, activations with their gradients, split-K partial sums):
/// 64 GiB. The paper's network at 112 x 112 takes about 4.8 GiB at batch 64.
pub const MAX_NETWORK_BYTES: u64 = 64 << 30;

/// The most forward FLOPs per image (2 per multiply-add of the convolutions and linear
/// layers): 10^12, about 140 times the paper's network at 112 x 112.
pub const MAX_FLOPS_PER_IMAGE: u64 = 1_000_000_000_000;

/// What a network takes, from [`NetworkSpec::footprint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Parameter values, the classifier's included.
    pub params: u64,
    /// Activation values per image (the input and every layer's output).
    pub activations: u64,
    /// Forward FLOPs per image.
    pub flops: u64,
    /// Bytes of the network's buffers at its batch.
    pub bytes: u64,
}

/// The walk over a description: the limits, and what it has added up so far.
struct Walk {
    batch: u64,
    /// The adapter's largest storage binding, in bytes.
    binding: u64,
    family: KernelFamily,
    total: Footprint,
}

/// `a * b`, or an error saying what overflowed.
fn mul(a: u64, b: u64) -> std::result::Result<u64, String> {
    a.checked_mul(b).ok_or_else(|| "its sizes overflow 64 bits".to_string())
}

fn product(values: &[usize]) -> std::result::Result<u64, String> {
    values.iter().try_fold(1u64, |n, &v| mul(n, v as u64))
}

impl Walk {
    /// Counts a buffer of `values` f32 values (`copies` of it) named `what`, refusing one
    /// over the binding limit.
    fn buffer(&mut self, what: &str, values: u64, copies: u64) -> std::result::Result<(), String> {
        let bytes = mul(values, 4)?;
        if bytes > self.binding {
            return Err(format!(
                "its {what} take {bytes} bytes, more than the {} bytes this adapter binds at once: make the layer \
                 smaller{}",
                self.binding,
                if self.batch > 1 { " or the batch" } else { "" }
            ));
        }
        self.total.bytes = self.total.bytes.saturating_add(bytes.saturating_mul(copies));
        Ok(())
    }

    /// An activation of `shape` per image: its values and gradient at the batch.
    fn activation(&mut self, shape: Shape) -> std::result::Result<(), String> {
        if shape.contains(&0) {
            return Err(format!("its output {shape:?} is empty"));
        }
        let per_image = product(&shape)?;
        self.total.activations = self.total.activations.saturating_add(per_image);
        self.buffer("activations at the batch", mul(per_image, self.batch)?, 2)
    }

    /// A parameter of `values` values: values, gradient and momentum, each padded to the
    /// arena's 64-value alignment.
    fn param(&mut self, values: u64) -> std::result::Result<(), String> {
        let padded = values.div_ceil(CHUNK_VALUES as u64).saturating_mul(CHUNK_VALUES as u64);
        self.total.params = self.total.params.saturating_add(values);
        self.buffer("weights", padded, 3)
    }

    fn flops(&mut self, multiply_adds: u64) -> std::result::Result<(), String> {
        self.total.flops = self.total.flops.saturating_add(mul(multiply_adds, 2)?);
        if self.total.flops > MAX_FLOPS_PER_IMAGE {
            return Err(format!(
                "the network reaches {} FLOPs per image here, more than {MAX_FLOPS_PER_IMAGE}",
                self.total.flops
            ));
        }
        Ok(())
    }

    /// The partial sums of a dense GEMM C[m, n] = A[m, k] B[k, n] split over k.
    fn dense_partials(&mut self, m: u64, n: u64, k: u64) -> std::result::Result<(), String> {
        let slices = k.div_ceil(MAX_K_PER_SLICE as u64);
        if slices > 1 {
            self.buffer("split-K partial sums", mul(slices, mul(m, n)?)?, 1)?;
        }
        Ok(())
    }

    /// The layers `specs` applied to `input`, each named `{name}.{i}`.
    fn sequence(&mut self, input: Shape, specs: &[LayerSpec], name: &str) -> Result<Shape> {
        specs.iter().enumerate().try_fold(input, |x, (i, spec)| self.layer(x, spec, &format!("{name}.{i}")))
    }

    fn layer(&mut self, x: Shape, spec: &LayerSpec, name: &str) -> Result<Shape> {
        let fail = |why: String| Error::Config(format!("layer {name} ({}): {why}", spec.describe()));
        if let LayerSpec::Residual { body, shortcut } = spec {
            return self.residual(x, body, shortcut, name);
        }
        self.shape_of(x, spec).map_err(fail)
    }

    /// The output shape of a plain layer on `x`, its buffers and FLOPs counted.
    fn shape_of(&mut self, x: Shape, spec: &LayerSpec) -> std::result::Result<Shape, String> {
        let [c, h, w] = x;
        let out = match *spec {
            LayerSpec::Conv2d { out_channels, kernel, stride, pad, bias } => {
                if out_channels == 0 || kernel == 0 || stride == 0 {
                    return Err("channels, kernel and stride must be at least 1".into());
                }
                let padded = |n: usize| pad.checked_mul(2).and_then(|p| p.checked_add(n));
                let (Some(ph), Some(pw)) = (padded(h), padded(w)) else {
                    return Err(format!("its padding {pad} overflows"));
                };
                if ph < kernel || pw < kernel {
                    return Err(format!("input {c}x{h}x{w} is smaller than the kernel"));
                }
                let out = [out_channels, (ph - kernel) / stride + 1, (pw - kernel) / stride + 1];
                let taps = product(&[c, kernel, kernel])?;
                self.param(mul(out_channels as u64, taps)?)?;
                if bias {
                    self.param(out_channels as u64)?;
                }
                let pixels = product(&out[1..])?;
                self.flops(mul(mul(out_channels as u64, pixels)?, taps)?)?;
                let reduce = mul(self.batch, pixels)?;
                let (_, slices) = split_k(self.family, out_channels, taps as usize, reduce as usize);
                if slices > 1 {
                    self.buffer("split-K partial sums", mul(slices as u64, mul(out_channels as u64, taps)?)?, 1)?;
                }
                out
            }
            LayerSpec::MaxPool { kernel, stride } => {
                if kernel == 0 || stride == 0 {
                    return Err("kernel and stride must be at least 1".into());
                }
                if h < kernel || w < kernel {
                    return Err(format!("input {c}x{h}x{w} is smaller than the window"));
                }
                [c, (h - kernel) / stride + 1, (w - kernel) / stride + 1]
            }
            LayerSpec::PRelu { shared } => {
                self.param(if shared { 1 } else { c as u64 })?;
                x
            }
            LayerSpec::Linear { out_features, bias } => {
                if out_features == 0 {
                    return Err("out_features must be at least 1".into());
                }
                self.dense(product(&x)?, out_features as u64, bias)?;
                [out_features, 1, 1]
            }
            LayerSpec::Flatten => {
                let n = product(&x)?;
                return usize::try_from(n).map(|n| [n, 1, 1]).map_err(|_| "its size overflows".into());
            }
            LayerSpec::L2Norm => x,
            LayerSpec::Residual { .. } => return Err("a residual block is walked as a block".into()),
        };
        self.activation(out)?;
        Ok(out)
    }

    /// A dense layer of `outputs` on `inputs` values: its weights, bias, FLOPs and the
    /// partial sums of its three GEMMs (forward, weight gradient, input gradient).
    fn dense(&mut self, inputs: u64, outputs: u64, bias: bool) -> std::result::Result<(), String> {
        self.param(mul(outputs, inputs)?)?;
        if bias {
            self.param(outputs)?;
        }
        self.flops(mul(outputs, inputs)?)?;
        self.dense_partials(self.batch, outputs, inputs)?;
        self.dense_partials(outputs, inputs, self.batch)?;
        self.dense_partials(self.batch, inputs, outputs)
    }

    fn residual(&mut self, x: Shape, body: &[LayerSpec], shortcut: &[LayerSpec], name: &str) -> Result<Shape> {
        let fail = |why: String| Error::Config(format!("residual block {name}: {why}"));
        if body.is_empty() {
            return Err(fail("empty body".into()));
        }
        // Each branch's input gradient has a buffer of its own.
        let branches = if shortcut.is_empty() { 1 } else { 2 };
        let per_image = product(&x).map_err(fail)?;
        self.buffer("branch input gradients", mul(per_image, self.batch).map_err(fail)?, branches).map_err(fail)?;
        let out = self.sequence(x, body, &format!("{name}.body"))?;
        let skip = self.sequence(x, shortcut, &format!("{name}.shortcut"))?;
        if out != skip {
            return Err(fail(format!("body gives {out:?} but shortcut gives {skip:?}")));
        }
        self.activation(out).map_err(fail)?;
        Ok(out)
    }
}

impl NetworkSpec {
    /// What this network takes at `batch` on an adapter with `limits` running the kernel
    /// `family`, or an [`Error::Config`] naming the first layer (or total) that is out of
    /// bounds: an empty or overflowing shape, a buffer over the adapter's storage binding,
    /// the buffers over [`MAX_NETWORK_BYTES`], the FLOPs over [`MAX_FLOPS_PER_IMAGE`].
    /// Nothing is allocated: [`super::Network::new`] calls it before building anything.
    pub fn footprint(&self, batch: usize, limits: &wgpu::Limits, family: KernelFamily) -> Result<Footprint> {
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let mut walk = Walk { batch: batch as u64, binding, family, total: Footprint::default() };
        let input = self.input;
        walk.activation(input).map_err(|why| Error::Config(format!("the network input {input:?}: {why}")))?;
        let embedding = walk.sequence(input, &self.trunk, "trunk")?;
        let fail = |why: String| Error::Config(format!("the classifier of {} classes: {why}", self.num_classes));
        if self.num_classes == 0 {
            return Err(fail("a classifier needs at least 1 class".into()));
        }
        let features = product(&embedding).map_err(fail)?;
        let classes = self.num_classes as u64;
        let bias = self.classifier_bias && !self.head.normalized;
        walk.dense(features, classes, bias).map_err(fail)?;
        if self.head.normalized {
            // The unit class weights and their gradient, and the unit embedding.
            walk.buffer("unit class weights", mul(classes, features).map_err(fail)?, 2).map_err(fail)?;
            walk.activation([features as usize, 1, 1]).map_err(fail)?;
        }
        walk.activation([self.num_classes, 1, 1]).map_err(fail)?;
        let total = walk.total;
        if total.bytes > MAX_NETWORK_BYTES {
            return Err(Error::Config(format!(
                "the network's buffers take {} bytes at batch {batch} ({} parameters, {} activation values per \
                 image), more than {MAX_NETWORK_BYTES}: use a smaller batch, input or network",
                total.bytes, total.params, total.activations
            )));
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> wgpu::Limits {
        wgpu::Limits { max_storage_buffer_binding_size: 128 << 20, max_buffer_size: 256 << 20, ..Default::default() }
    }

    fn check(spec: &NetworkSpec, batch: usize) -> Result<Footprint> {
        spec.footprint(batch, &limits(), KernelFamily::Cpu)
    }

    #[test]
    fn the_presets_fit_and_are_counted() {
        let lenet = check(&NetworkSpec::lenet_plus_plus(), 128).unwrap();
        // Weights of LeNet++: 6 convolutions, 6 PReLUs, the 2-D embedding, the classifier.
        let convs = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)];
        let weights: u64 = convs.iter().map(|&(i, o)| o * i * 25 + o).sum::<u64>()
            + convs.iter().map(|&(_, o)| o).sum::<u64>()
            + (128 * 3 * 3 * 2 + 2 + 2)
            + 2 * 10;
        assert_eq!(lenet.params, weights);
        // The paper's network at batch 64 needs a GPU's bindings (its first activations take
        // 196 MiB), not lavapipe's 128 MiB.
        let paper = NetworkSpec::face_resnet_paper(3, [112, 112], 512, 10_575);
        let err = check(&paper, 64).unwrap_err().to_string();
        assert!(
            err.contains("layer trunk.2 (conv 3x3/1 pad 1 -> 64): its activations at the batch take 205520896 bytes")
        );
        let gpu = wgpu::Limits { max_storage_buffer_binding_size: 1 << 31, max_buffer_size: 1 << 31, ..limits() };
        let paper = paper.footprint(64, &gpu, KernelFamily::Gpu).unwrap();
        assert!((6e9..9e9).contains(&(paper.flops as f64)), "{paper:?}");
        assert!((4 << 30..6 << 30).contains(&paper.bytes), "{paper:?}");
    }

    #[test]
    fn sizes_a_model_file_may_hold_are_refused_before_anything_is_built() {
        let conv = |out_channels| NetworkSpec {
            trunk: vec![LayerSpec::conv(out_channels, 3, 1, 1)],
            ..NetworkSpec::face_resnet(1, 32, 16, 4)
        };
        for (spec, why) in [
            (conv(1 << 62), "overflow"),
            (conv(1_000_000_000), "bytes this adapter binds at once"),
            (conv(50_000_000), "bytes this adapter binds at once"),
            (NetworkSpec { input: [1, 1 << 32, 1 << 32], ..conv(4) }, "overflow"),
            (NetworkSpec { input: [1, 0, 32], ..conv(4) }, "is empty"),
            (
                NetworkSpec { trunk: vec![LayerSpec::Linear { out_features: 1_000_000_000, bias: true }], ..conv(4) },
                "bytes this adapter binds at once",
            ),
            (NetworkSpec { num_classes: 0, ..conv(4) }, "at least 1 class"),
            (
                NetworkSpec { trunk: vec![LayerSpec::conv(4, 3, 0, 1)], ..conv(4) },
                "channels, kernel and stride must be at least 1",
            ),
            (NetworkSpec { trunk: vec![LayerSpec::conv(4, 99, 1, 1)], ..conv(4) }, "smaller than the kernel"),
            (NetworkSpec { trunk: vec![LayerSpec::conv(4, 3, 1, usize::MAX / 2 + 1)], ..conv(4) }, "padding"),
        ] {
            let err = check(&spec, 64).unwrap_err().to_string();
            assert!(err.contains(why), "{spec:?}: {err}");
        }
        // Layers named in the message: the first convolution of the trunk.
        let err = check(&conv(1_000_000_000), 64).unwrap_err().to_string();
        assert!(err.starts_with("invalid configuration: layer trunk.0 (conv 3x3/1 pad 1 -> 1000000000)"), "{err}");
        // A deep residual stack of wide layers passes every binding but not the total.
        let wide =
            LayerSpec::Residual { body: vec![LayerSpec::conv(64, 3, 1, 1), LayerSpec::prelu()], shortcut: vec![] };
        let deep = NetworkSpec { input: [64, 64, 64], trunk: vec![wide; 400], ..conv(4) };
        let err = check(&deep, 64).unwrap_err().to_string();
        assert!(err.contains("more than 68719476736") || err.contains("FLOPs"), "{err}");
    }
}
