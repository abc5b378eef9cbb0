//! Network descriptions: sequential stacks and residual blocks, and the two presets. A
//! description serialises to JSON, which is how a checkpoint records its network.

use serde::{Deserialize, Serialize};

use super::arena::CHUNK_VALUES;
use super::Head;

/// Per-sample shape of an activation: channels, height, width (a vector is `[n, 1, 1]`).
pub type Shape = [usize; 3];

/// One layer (or block) of a network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LayerSpec {
    /// 2-D convolution, square kernel, NCHW; He-initialised.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        pad: usize,
        /// Whether the layer adds a per-channel bias.
        bias: bool,
    },
    /// Max pooling, square window, no padding, floor mode.
    MaxPool {
        /// Window size.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// PReLU with learnable slopes (initial 0.25): one per channel, or one shared.
    PRelu {
        /// One slope for all channels instead of one per channel.
        shared: bool,
    },
    /// Fully connected layer on the flattened input; He-initialised.
    Linear {
        /// Output features.
        out_features: usize,
        /// Whether the layer adds a bias.
        bias: bool,
    },
    /// Reshape to a vector (C*H*W, 1, 1); no data moves.
    Flatten,
    /// Divide each sample by its L2 norm.
    L2Norm,
    /// `body(x) + shortcut(x)`; an empty shortcut is the identity. The body's last weights
    /// are initialised to zero, so the block starts as the shortcut alone.
    Residual {
        /// The main branch.
        body: Vec<LayerSpec>,
        /// The projection branch (empty: identity).
        shortcut: Vec<LayerSpec>,
    },
}

impl LayerSpec {
    /// A convolution with bias.
    pub fn conv(out_channels: usize, kernel: usize, stride: usize, pad: usize) -> Self {
        Self::Conv2d { out_channels, kernel, stride, pad, bias: true }
    }

    /// Per-channel PReLU.
    pub fn prelu() -> Self {
        Self::PRelu { shared: false }
    }

    /// A short name for error messages and summaries.
    pub fn describe(&self) -> String {
        match self {
            Self::Conv2d { out_channels, kernel, stride, pad, .. } => {
                format!("conv {kernel}x{kernel}/{stride} pad {pad} -> {out_channels}")
            }
            Self::MaxPool { kernel, stride } => format!("maxpool {kernel}/{stride}"),
            Self::PRelu { shared } => format!("prelu{}", if *shared { " (shared)" } else { "" }),
            Self::Linear { out_features, .. } => format!("linear -> {out_features}"),
            Self::Flatten => "flatten".into(),
            Self::L2Norm => "l2norm".into(),
            Self::Residual { body, shortcut } => {
                format!("residual ({} layers, {} shortcut layers)", body.len(), shortcut.len())
            }
        }
    }

    /// The output shape for an input of shape `input`. For a shape the layer refuses (a
    /// kernel larger than the input) the figure means nothing: building it is the error.
    pub fn output_shape(&self, input: Shape) -> Shape {
        self.output_and_params(input, &mut Vec::new())
    }

    /// [`LayerSpec::output_shape`], and the length of each parameter the layer creates
    /// pushed onto `params` in the order the graph creates them (a residual block's body,
    /// then its shortcut). Sizes saturate instead of overflowing (a spec read from a file
    /// may hold anything; building it reports what is wrong).
    pub fn output_and_params(&self, input: Shape, params: &mut Vec<usize>) -> Shape {
        let [c, h, w] = input;
        let window = |n: usize, kernel: usize, stride: usize, pad: usize| {
            n.saturating_add(pad.saturating_mul(2)).saturating_sub(kernel) / stride.max(1) + 1
        };
        match self {
            Self::Conv2d { out_channels, kernel, stride, pad, bias } => {
                params.push(out_channels.saturating_mul(c).saturating_mul(kernel.saturating_mul(*kernel)));
                params.extend(bias.then_some(*out_channels));
                [*out_channels, window(h, *kernel, *stride, *pad), window(w, *kernel, *stride, *pad)]
            }
            Self::MaxPool { kernel, stride } => [c, window(h, *kernel, *stride, 0), window(w, *kernel, *stride, 0)],
            Self::PRelu { shared } => {
                params.push(if *shared { 1 } else { c });
                input
            }
            Self::Linear { out_features, bias } => {
                params.push(out_features.saturating_mul(c).saturating_mul(h.saturating_mul(w)));
                params.extend(bias.then_some(*out_features));
                [*out_features, 1, 1]
            }
            Self::Flatten => [c.saturating_mul(h).saturating_mul(w), 1, 1],
            Self::L2Norm => input,
            Self::Residual { body, shortcut } => {
                let out = body.iter().fold(input, |x, layer| layer.output_and_params(x, params));
                shortcut.iter().fold(input, |x, layer| layer.output_and_params(x, params));
                out
            }
        }
    }
}

/// How a network's convolution and hidden linear weights start (biases start at 0; the
/// classifier is Xavier-uniform either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightInit {
    /// He (Kaiming) normal, std √(2/fan_in): activations keep their scale through (P)ReLUs.
    /// The face network's, which trains at lr 0.05 behind its warm-up.
    #[default]
    HeNormal,
    /// U(±1/√fan_in), PyTorch's default for convolutions and linear layers: activations
    /// shrink layer by layer. LeNet++'s: with He-normal its 2-D features start at ~0.3 and
    /// SGD at lr 0.05 diverges within 5 steps, in PyTorch as here (docs/cpu-experiments.md).
    FanInUniform,
}

/// A classification network: `trunk` maps the input to the embedding (where center loss
/// applies), then the classifier `head` maps the embedding to `num_classes` logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Per-sample input shape (channels, height, width).
    pub input: Shape,
    /// Layers from the input to the embedding.
    pub trunk: Vec<LayerSpec>,
    /// Number of classes of the softmax classifier.
    pub num_classes: usize,
    /// Whether the classifier has a bias (a linear head only).
    pub classifier_bias: bool,
    /// How the trunk's weights start.
    pub init: WeightInit,
    /// The classifier head: linear, or normalised with a margin (ArcFace, CosFace).
    #[serde(default)]
    pub head: Head,
}

impl NetworkSpec {
    /// The values of the parameter arena the network fills: each parameter (trunk, then
    /// classifier) rounded up to a multiple of 64, its 256-byte alignment.
    pub fn arena_values(&self) -> usize {
        self.param_values(true)
    }

    /// [`NetworkSpec::arena_values`] of the trunk alone, or with `classifier` of the whole
    /// network.
    pub fn param_values(&self, classifier: bool) -> usize {
        let mut lens = Vec::new();
        let out = self.trunk.iter().fold(self.input, |x, layer| layer.output_and_params(x, &mut lens));
        if classifier {
            let embedding = out.iter().fold(1usize, |a, &n| a.saturating_mul(n));
            lens.push(self.num_classes.saturating_mul(embedding));
            lens.extend((self.classifier_bias && !self.head.normalized).then_some(self.num_classes));
        }
        lens.iter().fold(0usize, |sum, len| sum.saturating_add(len.div_ceil(CHUNK_VALUES).saturating_mul(CHUNK_VALUES)))
    }

    /// LeNet++, the paper's MNIST network (the authors' Caffe model): conv 5x5 pad 2 with
    /// PReLU after each, 32, 32, maxpool 2/2, 64, 64, maxpool 2/2, 128, 128, maxpool 3/2,
    /// then a 2-D embedding + PReLU, then 10 classes without bias. Input 1x28x28.
    pub fn lenet_plus_plus() -> Self {
        let conv = |c| LayerSpec::conv(c, 5, 1, 2);
        let pool = |k, s| LayerSpec::MaxPool { kernel: k, stride: s };
        Self {
            input: [1, 28, 28],
            trunk: vec![
                conv(32),
                LayerSpec::prelu(),
                conv(32),
                LayerSpec::prelu(),
                pool(2, 2),
                conv(64),
                LayerSpec::prelu(),
                conv(64),
                LayerSpec::prelu(),
                pool(2, 2),
                conv(128),
                LayerSpec::prelu(),
                conv(128),
                LayerSpec::prelu(),
                pool(3, 2),
                LayerSpec::Linear { out_features: 2, bias: true },
                LayerSpec::prelu(),
            ],
            num_classes: 10,
            classifier_bias: false,
            init: WeightInit::FanInUniform,
            head: Head::linear(),
        }
    }

    /// A small residual face-embedding network with PReLU in the spirit of the paper's
    /// Face-ResNet, for `channels` x `resolution` x `resolution` inputs (64 by default): conv 5x5 stride 2 (16) + PReLU and a
    /// 2x2 max pool to 16 x 16, then three stages of widths 16, 32, 64 at 16, 8 and 4 pixels
    /// (each: a strided conv 3x3 + PReLU where the width grows, then a residual unit of two
    /// conv 3x3 + PReLU), then a linear embedding of `embed_dim` (where center loss
    /// applies) and the classifier. About 10 MFLOP per image forward, sized so that a few
    /// epochs on a few thousand images take minutes on a CPU Vulkan driver.
    pub fn face_resnet(channels: usize, resolution: usize, embed_dim: usize, num_classes: usize) -> Self {
        let unit = residual_unit;
        let mut trunk = vec![
            LayerSpec::conv(16, 5, 2, 2),
            LayerSpec::prelu(),
            LayerSpec::MaxPool { kernel: 2, stride: 2 },
            unit(16),
        ];
        for width in [32, 64] {
            trunk.extend([LayerSpec::conv(width, 3, 2, 1), LayerSpec::prelu(), unit(width)]);
        }
        trunk.push(LayerSpec::Linear { out_features: embed_dim, bias: true });
        Self {
            input: [channels, resolution, resolution],
            trunk,
            num_classes,
            classifier_bias: true,
            init: WeightInit::HeNormal,
            head: Head::linear(),
        }
    }

    /// The paper's face network (Wen et al. 2016, Fig. 2; its released Caffe model
    /// `face_train_test.prototxt`) for `channels` x `height` x `width` inputs (112 x 96 in
    /// the paper, 112 x 112 in insightface's packs): conv 3x3 (32) and conv 3x3 (64) with
    /// PReLU, then four stages at 64, 128, 256 and 512 channels, each a conv 3x3 + PReLU
    /// that widens (from the second), a 2x2 max pool, and 1, 2, 5 and 3 residual units of
    /// two conv 3x3 + PReLU; then a linear embedding of `embed_dim` (512 in the paper) and
    /// the classifier. Convolutions keep their size (padding 1), so 112 x 96
    /// ends at 512 x 7 x 6. About 7 GFLOP per 112 x 112 image forward: a GPU network.
    /// Initialised U(±1/√fan_in): without normalisation layers, He-normal's variance
    /// doubles through each of the 11 residual units and the first logits run to the
    /// thousands (an initial softmax loss of 11.6 on 10 classes, diverged by the third step
    /// at lr 0.05 in `tests/network.rs`).
    pub fn face_resnet_paper(
        channels: usize,
        [height, width]: [usize; 2],
        embed_dim: usize,
        num_classes: usize,
    ) -> Self {
        let unit = residual_unit;
        let mut trunk =
            vec![LayerSpec::conv(32, 3, 1, 1), LayerSpec::prelu(), LayerSpec::conv(64, 3, 1, 1), LayerSpec::prelu()];
        for (stage, (channels, units)) in [(64, 1), (128, 2), (256, 5), (512, 3)].into_iter().enumerate() {
            if stage > 0 {
                trunk.extend([LayerSpec::conv(channels, 3, 1, 1), LayerSpec::prelu()]);
            }
            trunk.push(LayerSpec::MaxPool { kernel: 2, stride: 2 });
            trunk.extend((0..units).map(|_| unit(channels)));
        }
        trunk.push(LayerSpec::Linear { out_features: embed_dim, bias: true });
        Self {
            input: [channels, height, width],
            trunk,
            num_classes,
            classifier_bias: true,
            init: WeightInit::FanInUniform,
            head: Head::linear(),
        }
    }
}

/// A residual unit of the face networks: two conv 3x3 + PReLU of `width` channels, added
/// to its input.
fn residual_unit(width: usize) -> LayerSpec {
    LayerSpec::Residual {
        body: vec![
            LayerSpec::conv(width, 3, 1, 1),
            LayerSpec::prelu(),
            LayerSpec::conv(width, 3, 1, 1),
            LayerSpec::prelu(),
        ],
        shortcut: vec![],
    }
}
