//! What a face run is asked to do: where the faces come from, which network and losses
//! train, and every option of [`super::run`].

use std::path::PathBuf;

use crate::data::faces::FaceSetConfig;
use crate::data::Prefetch;
use crate::nn::{CenterFeatures, Head, NetworkSpec, ARCFACE_MARGIN, COSFACE_MARGIN};
use crate::{Error, Result, UpdateMode, DEFAULT_ALPHA, DEFAULT_LAMBDA};

/// Where the faces come from.
#[derive(Clone, Debug, PartialEq)]
pub enum FaceSource {
    /// The built-in procedural set.
    BuiltIn(FaceSetConfig),
    /// `ROOT/<identity>/<image>`, with a fraction of the identities held out.
    Folder {
        /// The root folder.
        root: PathBuf,
        /// Fraction of identities held out for evaluation.
        test_identities: f64,
    },
    /// A list file of `path label` lines, with a fraction of the identities held out.
    List {
        /// The list file.
        list: PathBuf,
        /// Fraction of identities held out for evaluation.
        test_identities: f64,
    },
}

/// [`FaceOptions::margin_scale`] by default: s of the ArcFace and CosFace heads. Chosen on
/// the built-in set (seed 4, 300 steps, lr 0.05): s = 16 trains both heads to 95% verification
/// accuracy; arcface_torch's s = 64 ([`crate::nn::MARGIN_SCALE`]) trains neither (validation accuracy
/// 1-3% at the end) with this network and learning rate.
pub const FACE_MARGIN_SCALE: f32 = 16.0;

/// [`FaceOptions::in_memory_max`] by default: 1 GiB of decoded images.
pub const DEFAULT_IN_MEMORY_MAX: u64 = 1 << 30;

/// The fraction of a folder's, list's or pack's identities held out for evaluation when
/// none is given (`--test-identities`).
pub const DEFAULT_TEST_IDENTITIES: f64 = 0.25;

/// The network the face job trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "experiments", derive(clap::ValueEnum))]
pub enum FaceNetwork {
    /// `paper` for inputs of 96 pixels and more, `small` below.
    Auto,
    /// [`NetworkSpec::face_resnet`]: about 10 MFLOP per 64 x 64 image, for CPU drivers.
    Small,
    /// [`NetworkSpec::face_resnet_paper`]: the paper's residual network, about 7 GFLOP per
    /// 112 x 112 image.
    Paper,
}

/// What a variant trains: a classifier head, alone or with center loss on the embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "experiments", derive(clap::ValueEnum))]
pub enum Loss {
    /// Softmax cross-entropy on a linear classifier.
    Softmax,
    /// Softmax + lambda * center loss (the paper's).
    Center,
    /// ArcFace: a normalised head with the additive angular margin.
    Arcface,
    /// ArcFace + lambda * center loss.
    #[cfg_attr(feature = "experiments", value(name = "arcface+center"))]
    ArcfaceCenter,
    /// CosFace: a normalised head with the additive cosine margin.
    Cosface,
    /// CosFace + lambda * center loss.
    #[cfg_attr(feature = "experiments", value(name = "cosface+center"))]
    CosfaceCenter,
}

impl Loss {
    /// The six, each head alone and then with center loss.
    pub const ALL: [Loss; 6] =
        [Loss::Softmax, Loss::Center, Loss::Arcface, Loss::ArcfaceCenter, Loss::Cosface, Loss::CosfaceCenter];

    /// The variant's name: its checkpoint's file name and its row in the report.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Softmax => "softmax",
            Loss::Center => "center",
            Loss::Arcface => "arcface",
            Loss::ArcfaceCenter => "arcface+center",
            Loss::Cosface => "cosface",
            Loss::CosfaceCenter => "cosface+center",
        }
    }

    /// Whether center loss is added.
    pub fn with_center(self) -> bool {
        matches!(self, Loss::Center | Loss::ArcfaceCenter | Loss::CosfaceCenter)
    }

    /// The same head without center loss.
    pub fn head_alone(self) -> Loss {
        match self {
            Loss::Center => Loss::Softmax,
            Loss::ArcfaceCenter => Loss::Arcface,
            Loss::CosfaceCenter => Loss::Cosface,
            other => other,
        }
    }

    /// The classifier head with the job's scale and margins.
    pub fn head(self, opts: &FaceOptions) -> Head {
        match self.head_alone() {
            Loss::Arcface => Head::arcface(opts.margin_scale, opts.arcface_margin),
            Loss::Cosface => Head::cosface(opts.margin_scale, opts.cosface_margin),
            _ => Head::linear(),
        }
    }
}

/// The variants a run trains, in order: each of `opts.losses` (without center loss when
/// lambda is 0), preceded with `opts.compare` by its head alone; each once.
pub fn variants(opts: &FaceOptions) -> Vec<Loss> {
    let mut out = Vec::new();
    for &loss in &opts.losses {
        let loss = if opts.lambda == 0.0 { loss.head_alone() } else { loss };
        let twin = (opts.compare && loss.with_center()).then(|| loss.head_alone());
        for v in twin.into_iter().chain([loss]) {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

impl FaceOptions {
    /// [`Error::Config`] for options no run can use, checked before any data is read or
    /// generated: the input's channels and size, the built-in set
    /// ([`FaceSetConfig::validate`]), a held-out fraction strictly between 0 and 1, at
    /// least one device and embedding value, a prefetch queue of 1 to
    /// [`Prefetch::MAX_BATCHES`] batches. (The network's own sizes are checked against the
    /// adapter before it is built, [`NetworkSpec::footprint`]; the optimiser's and center
    /// loss's settings by their own configurations.)
    pub fn validate(&self) -> Result<()> {
        let fail = |why: String| Err(Error::Config(why));
        if !matches!(self.channels, 1 | 3) {
            return fail(format!("an input has 1 (grey) or 3 (RGB) channels, not {}", self.channels));
        }
        if self.resolution == 0 || self.width == Some(0) {
            return fail("the input's side must be at least 1 pixel (--resolution, --width)".into());
        }
        match &self.source {
            FaceSource::BuiltIn(cfg) => {
                let cfg = FaceSetConfig { resolution: self.resolution, rgb: self.channels == 3, ..cfg.clone() };
                cfg.validate(cfg.train_identities.saturating_add(cfg.test_identities))?;
            }
            FaceSource::Folder { test_identities: t, .. } | FaceSource::List { test_identities: t, .. } => {
                if !(*t > 0.0 && *t < 1.0) {
                    return fail(format!(
                        "the fraction of identities held out (--test-identities) must be strictly between 0 and 1, got {t}"
                    ));
                }
            }
        }
        if self.devices == 0 {
            return fail("train on at least 1 device (--devices)".into());
        }
        if self.embed_dim == 0 {
            return fail("the embedding needs at least 1 value (--embed-dim)".into());
        }
        if !(1..=Prefetch::MAX_BATCHES).contains(&self.prefetch.batches) {
            return fail(format!(
                "hold 1 to {} batches ready (--prefetch-batches), not {}",
                Prefetch::MAX_BATCHES,
                self.prefetch.batches
            ));
        }
        Ok(())
    }

    /// The network input: channels, height, width.
    pub fn input(&self) -> [usize; 3] {
        [self.channels, self.resolution, self.width.unwrap_or(self.resolution)]
    }

    /// Whether the paper's network trains (`network`, or `auto` at 96 pixels and more).
    pub fn paper_network(&self) -> bool {
        let [_, h, w] = self.input();
        self.network == FaceNetwork::Paper || (self.network == FaceNetwork::Auto && h.min(w) >= 96)
    }

    /// The network for `classes` identities.
    pub fn spec(&self, classes: usize) -> NetworkSpec {
        let [c, h, w] = self.input();
        if self.paper_network() {
            NetworkSpec::face_resnet_paper(c, [h, w], self.embed_dim, classes)
        } else {
            NetworkSpec { input: [c, h, w], ..NetworkSpec::face_resnet(c, h, self.embed_dim, classes) }
        }
    }
}

/// Settings of [`super::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct FaceOptions {
    /// The data.
    pub source: FaceSource,
    /// Channels and side of the network input (a real folder is resized to it).
    pub channels: usize,
    /// Input height in pixels (and width, unless `width` says otherwise).
    pub resolution: usize,
    /// Input width of a real folder, list or pack, when not `resolution` (the paper's
    /// 112 x 96: resolution 112, width 96; the built-in faces are square).
    pub width: Option<usize>,
    /// Which network trains.
    pub network: FaceNetwork,
    /// An LFW-style pairs.txt for verification (real folders only).
    pub pairs: Option<PathBuf>,
    /// Verification benchmarks (insightface `.bin` files, or folders of them) each variant
    /// is also scored on, with the standard protocol ([`crate::eval::benchmark`]).
    pub eval_bins: Vec<PathBuf>,
    /// A folder, list or pack whose decoded images would take more bytes than this is
    /// streamed from disk in bounded memory instead of decoded up front (0: always stream).
    pub in_memory_max: u64,
    /// How a streamed set is read ahead of the GPU.
    pub prefetch: Prefetch,
    /// Passes over the training set (`None`: the budget is sized by the data, [`crate::experiments::training::Plan`]).
    pub epochs: Option<usize>,
    /// Optimisation steps (overrides `epochs`).
    pub steps: Option<u64>,
    /// Past the budget, train on at the schedule's last rate until validation accuracy
    /// converges ([`crate::experiments::training::ValidationRecord::converged`]), validating as before.
    pub until_converged: bool,
    /// With `until_converged`: the most steps a variant may take in all (`None`:
    /// [`crate::experiments::training::CONVERGENCE_CAP`] times the budget).
    pub max_steps: Option<u64>,
    /// Batch size.
    pub batch: usize,
    /// Learning rate (warm-up over the first 5% of the steps, divided by 10 at 60% and 85%).
    pub lr: f32,
    /// Gradient-norm clipping ([`crate::nn::SgdConfig::clip_grad_norm`]; `None`: off).
    pub clip_grad_norm: Option<f32>,
    /// Random flips and 2-pixel crops of the training batches.
    pub augment: bool,
    /// Fraction of each training identity's images held out for validation.
    pub validation_fraction: f64,
    /// Center-loss weight of the center-loss variant.
    pub lambda: f32,
    /// Center learning rate.
    pub alpha: f32,
    /// Embedding size.
    pub embed_dim: usize,
    /// Seed of initialisation, shuffling, augmentation and evaluation pairs.
    pub seed: u64,
    /// Continue each variant from `{out}/{variant}-last.safetensors` where one exists (a
    /// run with the same options that was stopped or killed).
    pub resume: bool,
    /// Where checkpoints and plots go.
    pub out: PathBuf,
    /// What to train ([`variants`]).
    pub losses: Vec<Loss>,
    /// Also train each of `losses` without center loss, with the same seed, data and budget.
    pub compare: bool,
    /// s of the margin heads.
    pub margin_scale: f32,
    /// ArcFace's angular margin (radians).
    pub arcface_margin: f32,
    /// CosFace's cosine margin.
    pub cosface_margin: f32,
    /// Where center loss applies under a margin head.
    pub center_features: CenterFeatures,
    /// How the centers are updated; deterministic by default, so that a run with the same
    /// options reproduces its table bit for bit on the same adapter.
    pub center_update: UpdateMode,
    /// Show progress bars.
    pub progress: bool,
    /// Devices to train on in this process (data-parallel, [`crate::nn::Group::Devices`]):
    /// each takes `batch / devices` rows of every batch; the run equals a one-device run
    /// with the same options, and checkpoints resume on any device count.
    pub devices: usize,
    /// Stop with an error when an image of a folder, list or pack does not decode (by
    /// default it is skipped, and the data's description says how many were).
    pub strict: bool,
}

impl Default for FaceOptions {
    fn default() -> Self {
        Self {
            source: FaceSource::BuiltIn(FaceSetConfig::default()),
            channels: 1,
            resolution: 64,
            width: None,
            network: FaceNetwork::Auto,
            pairs: None,
            eval_bins: Vec::new(),
            in_memory_max: DEFAULT_IN_MEMORY_MAX,
            prefetch: Prefetch::default(),
            epochs: None,
            steps: None,
            until_converged: false,
            max_steps: None,
            batch: 64,
            lr: 0.05,
            clip_grad_norm: None,
            augment: true,
            validation_fraction: 0.1,
            lambda: DEFAULT_LAMBDA,
            alpha: DEFAULT_ALPHA,
            embed_dim: 128,
            seed: 1,
            resume: false,
            out: PathBuf::from("out/faces"),
            losses: vec![Loss::Center],
            compare: false,
            margin_scale: FACE_MARGIN_SCALE,
            arcface_margin: ARCFACE_MARGIN,
            cosface_margin: COSFACE_MARGIN,
            center_features: CenterFeatures::Raw,
            center_update: UpdateMode::Deterministic,
            progress: true,
            devices: 1,
            strict: false,
        }
    }
}
