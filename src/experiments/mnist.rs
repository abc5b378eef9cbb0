//! The paper's MNIST experiment (Wen et al. 2016, Figures 2 and 3): LeNet++ with a 2-D
//! embedding, trained with softmax alone (lambda = 0) and softmax + center loss per lambda.

use std::path::PathBuf;

use crate::collective::Collective;
use crate::data::{mnist::Mnist, Augment, Dataset, Shard, TrainingSet};
use crate::experiments::json_f32;
use crate::experiments::training::{group, rank_shard, shard_batch};
use crate::nn::{fit, FitOptions, MultiStep, Network, NetworkSpec, SgdConfig, TrainConfig};
use crate::{eval, plot, CenterLossConfig, Error, GpuContext, Result, UpdateMode, DEFAULT_ALPHA};

/// Settings of [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct MnistOptions {
    /// Folder with the IDX files.
    pub data: PathBuf,
    /// Center-loss weights to train with; 0 is softmax alone.
    pub lambdas: Vec<f32>,
    /// Center learning rate.
    pub alpha: f32,
    /// Passes over the training set.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate (divided by 10 at 60% and 85% of training).
    pub lr: f32,
    /// Gradient-norm clipping ([`SgdConfig::clip_grad_norm`]; `None`: off).
    pub clip_grad_norm: Option<f32>,
    /// Seed.
    pub seed: u64,
    /// At most this many training images (0: all).
    pub max_train: usize,
    /// At most this many test images (0: all).
    pub max_test: usize,
    /// Where the plots go.
    pub out: PathBuf,
    /// Show progress bars.
    pub progress: bool,
    /// Devices to train on in this process (data-parallel: each takes `batch / devices`
    /// rows of every batch; the run equals a one-device run).
    pub devices: usize,
}

impl Default for MnistOptions {
    fn default() -> Self {
        Self {
            data: PathBuf::from("data/mnist"),
            lambdas: vec![0.0, 0.01],
            alpha: DEFAULT_ALPHA,
            epochs: 5,
            batch: 64,
            lr: 0.1,
            clip_grad_norm: Some(1.0),
            seed: 1,
            max_train: 0,
            max_test: 0,
            out: PathBuf::from("out/mnist_2d"),
            progress: true,
            devices: 1,
        }
    }
}

/// One lambda's results.
#[derive(Clone, Debug, PartialEq)]
pub struct MnistRun {
    /// The center-loss weight.
    pub lambda: f32,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Mean distance of a test feature to its class mean.
    pub intra_class_distance: f64,
    /// Mean distance between class means.
    pub inter_center_distance: f64,
    /// Their ratio.
    pub intra_inter_ratio: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Training seconds.
    pub train_seconds: f64,
    /// The scatter plot written.
    pub plot: PathBuf,
    /// How the GEMM dispatches were tiled ([`crate::nn::Graph::gemm_tiles_summary`]).
    pub gemm_tiles: String,
}

/// The whole experiment's results.
#[derive(Clone, Debug, PartialEq)]
pub struct MnistReport {
    /// Adapter summary.
    pub adapter: String,
    /// Images trained on and tested on.
    pub train_images: usize,
    /// Images tested on.
    pub test_images: usize,
    /// Whether the training images came from the train files (false: the first 8 000 of t10k).
    pub full_train_set: bool,
    /// One entry per lambda.
    pub runs: Vec<MnistRun>,
}

impl MnistReport {
    /// The report as the JSON object `{"runs": [{"lambda": ..., ...}], ...}`.
    pub fn to_json(&self, opts: &MnistOptions) -> serde_json::Value {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "lambda": json_f32(r.lambda),
                    "test_accuracy": r.test_accuracy,
                    "intra_class_distance": r.intra_class_distance,
                    "inter_center_distance": r.inter_center_distance,
                    "intra_inter_ratio": r.intra_inter_ratio,
                    "images_per_second": r.images_per_second,
                    "train_seconds": r.train_seconds,
                    "plot": r.plot.display().to_string(),
                    "gemm_tiles": r.gemm_tiles,
                })
            })
            .collect();
        serde_json::json!({
            "adapter": self.adapter,
            "train_images": self.train_images,
            "test_images": self.test_images,
            "full_train_set": self.full_train_set,
            "epochs": opts.epochs,
            "batch": opts.batch,
            "alpha": json_f32(opts.alpha),
            "lr": json_f32(opts.lr),
            "clip_grad_norm": opts.clip_grad_norm.map(json_f32),
            "seed": opts.seed,
            "runs": runs,
        })
    }
}

fn truncate(d: &Dataset, max: usize) -> Dataset {
    if max == 0 || max >= d.len() {
        d.clone()
    } else {
        d.select(&(0..max).collect::<Vec<_>>())
    }
}

/// Trains and evaluates LeNet++ once per lambda; writes one scatter plot per lambda.
pub fn run(ctx: &GpuContext, opts: &MnistOptions) -> Result<MnistReport> {
    run_on(ctx, opts, None)?.ok_or_else(|| Error::Internal("the lead member returned no report".into()))
}

/// [`run`] as one rank of a data-parallel job (MPI): every rank passes the same options;
/// each trains its `batch / ranks` rows of every batch; rank 0 alone evaluates, plots and
/// returns the report (`None` elsewhere). The figures equal a one-device run's.
pub fn run_collective(ctx: &GpuContext, opts: &MnistOptions, comm: &dyn Collective) -> Result<Option<MnistReport>> {
    if opts.devices > 1 {
        return Err(Error::Config("use either ranks (a collective) or --devices, not both".into()));
    }
    run_on(ctx, opts, Some(comm))
}

fn run_on(ctx: &GpuContext, opts: &MnistOptions, comm: Option<&dyn Collective>) -> Result<Option<MnistReport>> {
    let lead = comm.is_none_or(|c| c.rank() == 0);
    // A batch that does not split over the members is refused before anything loads.
    shard_batch(opts.batch, comm.map_or(opts.devices.max(1), |c| c.size()))?;
    let mnist = Mnist::load(&opts.data)?;
    let full_train_set = mnist.full_train_set;
    let mut train = truncate(&mnist.train, opts.max_train);
    // Rank 0 alone evaluates.
    let test = if lead {
        truncate(&mnist.test, opts.max_test)
    } else {
        Dataset { shape: mnist.test.shape, ..Default::default() }
    };
    let train_images = train.len();
    // Ranks other than 0 keep only the images their rows use.
    let own = rank_shard(&mut train, opts.batch, comm, opts.seed)?;
    drop(mnist);
    std::fs::create_dir_all(&opts.out)
        .map_err(|source| crate::Error::Io { path: opts.out.display().to_string(), source })?;
    let steps = FitOptions::epochs_to_steps(opts.epochs, train_images, opts.batch);
    let data = MnistData { train, own, test };
    let mut runs = Vec::new();
    for &lambda in &opts.lambdas {
        runs.extend(run_lambda(ctx, opts, &data, lambda, steps, comm)?);
    }
    if !lead {
        return Ok(None);
    }
    Ok(Some(MnistReport {
        adapter: ctx.adapter_summary(),
        train_images,
        test_images: data.test.len(),
        full_train_set,
        runs,
    }))
}
/// The images a member holds: the training set (or its shard) and the test set (rank 0).
struct MnistData {
    train: Dataset,
    own: Option<Shard>,
    test: Dataset,
}

/// Trains LeNet++ with center-loss weight `lambda` for `steps` steps over the run's group;
/// on the lead member, evaluates it on the test set and plots its features.
fn run_lambda(
    ctx: &GpuContext,
    opts: &MnistOptions,
    data: &MnistData,
    lambda: f32,
    steps: u64,
    comm: Option<&dyn Collective>,
) -> Result<Option<MnistRun>> {
    let devices = comm.map_or(opts.devices.max(1), |c| c.size());
    let sgd = SgdConfig {
        lr: opts.lr,
        schedule: MultiStep::at_fractions(steps, &[0.6, 0.85], 0.1),
        clip_grad_norm: opts.clip_grad_norm,
        ..Default::default()
    };
    let cfg = TrainConfig {
        batch: shard_batch(opts.batch, devices)?,
        sgd,
        center: CenterLossConfig { lambda, alpha: opts.alpha, update: UpdateMode::Atomic, ..Default::default() },
        seed: opts.seed,
        ..Default::default()
    };
    let mut net = Network::new(ctx, NetworkSpec::lenet_plus_plus(), cfg.clone())?;
    let fit_opts = FitOptions {
        steps,
        augment: Augment { flip: false, crop_pad: 2 },
        seed: opts.seed,
        label: format!("lambda {lambda}"),
        progress: opts.progress,
        ..Default::default()
    };
    let build = |ctx: &GpuContext| Network::new(ctx, NetworkSpec::lenet_plus_plus(), cfg.clone());
    let set = data.own.as_ref().map_or(TrainingSet::All(&data.train), TrainingSet::Shard);
    let fitted = fit(&mut net, set, &fit_opts, group(comm, devices, &build), None)?;
    // Ranks other than 0 train their shards; rank 0 evaluates and plots.
    if comm.is_some_and(|c| c.rank() > 0) {
        return Ok(None);
    }
    let test = &data.test;
    let out = net.infer(&test.images)?;
    let accuracy =
        out.predictions(10).iter().zip(&test.labels).filter(|(p, y)| p == y).count() as f64 / test.len().max(1) as f64;
    let c = eval::compactness(&out.embeddings, 2, &test.labels);
    let points: Vec<[f32; 2]> = out.embeddings.chunks(2).map(|p| [p[0], p[1]]).collect();
    let centers: Vec<[f32; 2]> = match net.center_loss() {
        Some(cl) => cl.centers()?.chunks(2).map(|p| [p[0], p[1]]).collect(),
        None => {
            eval::class_means(&out.embeddings, 2, &test.labels).values().map(|m| [m[0] as f32, m[1] as f32]).collect()
        }
    };
    let png = opts.out.join(format!("features_lambda_{lambda}.png"));
    let title = format!("LeNet++ test features, lambda = {lambda} (accuracy {:.2}%)", 100.0 * accuracy);
    plot::scatter_2d(&png, &title, &points, &test.labels, Some(&centers))?;
    Ok(Some(MnistRun {
        lambda,
        test_accuracy: accuracy,
        intra_class_distance: c.intra,
        inter_center_distance: c.inter,
        intra_inter_ratio: c.ratio,
        images_per_second: fitted.images_per_second,
        train_seconds: fitted.train_seconds,
        plot: png,
        gemm_tiles: net.graph().gemm_tiles_summary(),
    }))
}
