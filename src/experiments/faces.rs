//! The main job: a face-embedding network trained with softmax + center loss (and, to
//! compare, softmax alone), evaluated on identities never seen in training.

use std::path::PathBuf;

use crate::data::faces::FaceSetConfig;
use crate::data::folder::{numbered, ImageFolder};
use crate::data::{parse_pairs, Augment, Dataset, Pair};
use crate::eval::{self, EvalReport};
use crate::nn::{fit, FitOptions, MultiStep, Network, NetworkSpec, SgdConfig, TrainConfig};
use crate::{checkpoint, plot, Error, GpuContext, Result, UpdateMode};

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

/// Settings of [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct FaceOptions {
    /// The data.
    pub source: FaceSource,
    /// Channels and side of the network input (a real folder is resized to it).
    pub channels: usize,
    /// Input side in pixels.
    pub resolution: usize,
    /// An LFW-style pairs.txt for verification (real folders only).
    pub pairs: Option<PathBuf>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate (divided by 10 at 60% and 85% of training).
    pub lr: f32,
    /// Center-loss weight of the center-loss variant.
    pub lambda: f32,
    /// Center learning rate.
    pub alpha: f32,
    /// Embedding size.
    pub embed_dim: usize,
    /// Seed of initialisation, shuffling, augmentation and evaluation pairs.
    pub seed: u64,
    /// Continue training from this checkpoint (a single variant only).
    pub resume: Option<PathBuf>,
    /// Where checkpoints and plots go.
    pub out: PathBuf,
    /// Also train softmax alone with the same seed, data and budget.
    pub compare: bool,
    /// How the centers are updated; deterministic by default, so that a run with the same
    /// options reproduces its table bit for bit on the same adapter.
    pub center_update: UpdateMode,
    /// Show progress bars.
    pub progress: bool,
}

impl Default for FaceOptions {
    fn default() -> Self {
        Self {
            source: FaceSource::BuiltIn(FaceSetConfig::default()),
            channels: 1,
            resolution: 64,
            pairs: None,
            epochs: 5,
            batch: 64,
            lr: 0.05,
            lambda: 0.01,
            alpha: 0.5,
            embed_dim: 128,
            seed: 1,
            resume: None,
            out: PathBuf::from("out/faces"),
            compare: false,
            center_update: UpdateMode::Deterministic,
            progress: true,
        }
    }
}

/// One trained variant's results.
#[derive(Clone, Debug)]
pub struct VariantReport {
    /// `softmax` or `center`.
    pub name: &'static str,
    /// Its center-loss weight.
    pub lambda: f32,
    /// Held-out evaluation.
    pub eval: EvalReport,
    /// Training seconds.
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Accuracy on the last training batch.
    pub final_train_accuracy: f32,
    /// The checkpoint written.
    pub checkpoint: PathBuf,
}

/// The whole run's results.
#[derive(Clone, Debug)]
pub struct FaceReport {
    /// What data was used.
    pub data: String,
    /// Adapter summary.
    pub adapter: String,
    /// One entry per variant, softmax first.
    pub variants: Vec<VariantReport>,
    /// The ROC plot.
    pub roc_plot: PathBuf,
}

impl FaceReport {
    /// `{"softmax": {...}, "center": {...}, ...}` with the metrics of each variant.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for v in &self.variants {
            let ver = &v.eval.verification;
            map.insert(
                v.name.to_string(),
                serde_json::json!({
                    "lambda": v.lambda,
                    "verification_accuracy": ver.accuracy,
                    "verification_accuracy_std": ver.accuracy_std,
                    "roc_auc": ver.roc_auc,
                    "tar_at_far_1e-3": ver.tar_at_far_1e3,
                    "tar_at_far_1e-2": ver.tar_at_far_1e2,
                    "eer": ver.eer,
                    "rank1": v.eval.rank1,
                    "intra_inter_ratio": v.eval.compactness.ratio,
                    "intra_class_distance": v.eval.compactness.intra,
                    "inter_center_distance": v.eval.compactness.inter,
                    "genuine_pairs": ver.pairs.0,
                    "impostor_pairs": ver.pairs.1,
                    "train_seconds": v.train_seconds,
                    "images_per_second": v.images_per_second,
                    "final_train_batch_accuracy": v.final_train_accuracy,
                }),
            );
        }
        map.insert("data".into(), self.data.clone().into());
        map.insert("adapter".into(), self.adapter.clone().into());
        serde_json::Value::Object(map)
    }

    /// A markdown table of the variants.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| variant | verification acc | ROC AUC | TAR@FAR=1e-3 | TAR@FAR=1e-2 | EER | rank-1 | intra/inter | train batch acc | train s | img/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for v in &self.variants {
            let e = &v.eval.verification;
            s += &format!(
                "| {} (lambda {}) | {:.2}% ± {:.2} | {:.4} | {:.3} | {:.3} | {:.3} | {:.2}% | {:.3} | {:.2} | {:.0} | {:.1} |\n",
                v.name,
                v.lambda,
                100.0 * e.accuracy,
                100.0 * e.accuracy_std,
                e.roc_auc,
                e.tar_at_far_1e3,
                e.tar_at_far_1e2,
                e.eer,
                100.0 * v.eval.rank1,
                v.eval.compactness.ratio,
                v.final_train_accuracy,
                v.train_seconds,
                v.images_per_second
            );
        }
        s
    }
}

struct Data {
    train: Dataset,
    test: Dataset,
    all: Option<(Dataset, Vec<Pair>)>,
    description: String,
}

fn load(opts: &FaceOptions) -> Result<Data> {
    let shape = [opts.channels, opts.resolution, opts.resolution];
    let (folder, fraction) = match &opts.source {
        FaceSource::BuiltIn(cfg) => {
            let cfg = FaceSetConfig { resolution: opts.resolution, rgb: opts.channels == 3, ..cfg.clone() };
            let (train, test) = cfg.split();
            let description = format!(
                "built-in faces: {} training identities, {} held-out identities, {} images each, {}x{} {}",
                cfg.train_identities,
                cfg.test_identities,
                cfg.images_per_identity,
                cfg.resolution,
                cfg.resolution,
                if cfg.rgb { "RGB" } else { "grey" }
            );
            return Ok(Data { train, test, all: None, description });
        }
        FaceSource::Folder { root, test_identities } => (ImageFolder::load(root, shape)?, *test_identities),
        FaceSource::List { list, test_identities } => (ImageFolder::load_list(list, shape)?, *test_identities),
    };
    if let Some((path, why)) = folder.skipped.first() {
        log::warn!("skipped {} unreadable images, first {}: {why}", folder.skipped.len(), path.display());
    }
    let (train, test, held_out) = folder.split_identities(fraction, opts.seed)?;
    let all = match &opts.pairs {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
            Some((folder.data.clone(), parse_pairs(&text, &numbered(&folder))?))
        }
        None => None,
    };
    let description = format!(
        "{} images of {} identities ({} unreadable, skipped); {} identities held out",
        folder.data.len(),
        folder.identities.len(),
        folder.skipped.len(),
        held_out.len()
    );
    Ok(Data { train, test, all, description })
}

fn train_variant(
    ctx: &GpuContext,
    opts: &FaceOptions,
    data: &Data,
    name: &'static str,
    lambda: f32,
) -> Result<VariantReport> {
    let per_epoch = (data.train.len() / opts.batch.max(1)) as u64;
    let steps = per_epoch * opts.epochs as u64;
    let sgd =
        SgdConfig { lr: opts.lr, schedule: MultiStep::at_fractions(steps, &[0.6, 0.85], 0.1), ..Default::default() };
    let cfg = TrainConfig {
        batch: opts.batch,
        sgd,
        lambda,
        alpha: opts.alpha,
        center_update: opts.center_update,
        seed: opts.seed,
    };
    let spec = NetworkSpec::face_resnet(data.train.shape[0], opts.resolution, opts.embed_dim, data.train.num_classes());
    let mut net = Network::new(ctx, spec, cfg)?;
    let mut start_epoch = 0;
    if let Some(path) = &opts.resume {
        checkpoint::load(&mut net, path)?;
        start_epoch = (net.step_count() / per_epoch.max(1)) as usize;
        log::info!("{name}: resumed from {} at step {} (epoch {start_epoch})", path.display(), net.step_count());
    }
    let fit_opts = FitOptions {
        epochs: opts.epochs,
        start_epoch,
        augment: Augment { flip: true, crop_pad: 2 },
        seed: opts.seed,
        label: name.to_string(),
        progress: opts.progress,
        ..Default::default()
    };
    let fitted = fit(&mut net, &data.train, &fit_opts)?;
    let ckpt = opts.out.join(format!("{name}.safetensors"));
    checkpoint::save(&net, &ckpt)?;

    let test = net.infer(&data.test.images)?;
    let dim = net.embed_dim();
    let mut report = eval::evaluate(&test.embeddings, dim, &data.test.labels, opts.seed);
    if let Some((all, pairs)) = &data.all {
        let emb = net.infer(&all.images)?.embeddings;
        report.verification = eval::evaluate_pairs(&emb, dim, &all.labels, pairs, opts.seed).verification;
    }
    // A 2-D projection of the first ten held-out identities.
    let keep: Vec<usize> = (0..data.test.len()).filter(|&i| data.test.labels[i] < 10).collect();
    let emb: Vec<f32> = keep.iter().flat_map(|&i| test.embeddings[i * dim..(i + 1) * dim].iter().copied()).collect();
    let labels: Vec<u32> = keep.iter().map(|&i| data.test.labels[i]).collect();
    let normalized: Vec<f32> = eval::l2_normalized(&emb, dim).into_iter().map(|v| v as f32).collect();
    let png = opts.out.join(format!("pca_{name}.png"));
    let title = format!("{name}: held-out embeddings of 10 identities (PCA)");
    plot::scatter_2d(&png, &title, &eval::pca_2d(&normalized, dim), &labels, None)?;
    Ok(VariantReport {
        name,
        lambda,
        eval: report,
        train_seconds: fitted.train_seconds,
        images_per_second: fitted.images_per_second,
        final_train_accuracy: fitted.history.last().map_or(0.0, |(_, m)| m.accuracy),
        checkpoint: ckpt,
    })
}

/// Loads the data, trains the variant(s), evaluates each on the held-out identities,
/// writes checkpoints, a ROC plot and PCA plots into `opts.out`.
pub fn run(ctx: &GpuContext, opts: &FaceOptions) -> Result<FaceReport> {
    if opts.compare && opts.resume.is_some() {
        return Err(Error::Config("--resume continues one variant; leave out --compare".into()));
    }
    std::fs::create_dir_all(&opts.out).map_err(|source| Error::Io { path: opts.out.display().to_string(), source })?;
    let data = load(opts)?;
    log::info!("{}; {} training images, {} evaluation images", data.description, data.train.len(), data.test.len());
    let mut variants = Vec::new();
    if opts.compare || opts.lambda == 0.0 {
        variants.push(train_variant(ctx, opts, &data, "softmax", 0.0)?);
    }
    if opts.lambda > 0.0 {
        variants.push(train_variant(ctx, opts, &data, "center", opts.lambda)?);
    }
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        variants.iter().map(|v| (v.name, v.eval.verification.roc.clone())).collect();
    let roc_plot = opts.out.join("roc.png");
    plot::roc_curves(&roc_plot, "Verification on held-out identities", &curves)?;
    Ok(FaceReport { data: data.description, adapter: ctx.adapter_summary(), variants, roc_plot })
}
