//! The main job in burn: a burn CNN trained with burn's SGD and this crate's center loss on
//! one shared device (no copy through the host), evaluated on held-out identities with this
//! crate's `eval`: the same table as `train_faces`.
//!
//! cargo run --release --features burn --example burn_faces                # center loss
//! cargo run --release --features burn --example burn_faces -- --compare   # and softmax alone
//!
//! The network mirrors `NetworkSpec::face_resnet` (a 5x5 stride-2 stem, max pool, three
//! stages of a residual unit of two 3x3 convolutions with PReLU, a linear embedding) and
//! the run mirrors `train_faces`'s: the same built-in faces, validation split, schedule
//! (warm-up, rate / 10 at 60% and 85%), augmentation and evaluation pairs.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig, PaddingConfig2d};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use centerloss::burn::CenterLoss;
use centerloss::data::faces::FaceSetConfig;
use centerloss::data::{Augment, Dataset, Sampler};
use centerloss::experiments::faces::{pca_plot, FaceReport, VariantReport};
use centerloss::experiments::training::{score_logits, validation_split, Plan, ValidationRecord};
use centerloss::{eval, plot, CenterLossConfig, GpuContext, UpdateMode};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(about = "Train a burn CNN with softmax + this crate's center loss; evaluate on unseen identities")]
struct Args {
    /// Built-in set: training identities.
    #[arg(long, default_value_t = 150)]
    identities: usize,
    /// Built-in set: held-out identities.
    #[arg(long, default_value_t = 50)]
    eval_identities: usize,
    /// Built-in set: images per identity.
    #[arg(long, default_value_t = 20)]
    images_per_identity: usize,
    /// Input resolution (square, grey).
    #[arg(long, default_value_t = 64)]
    resolution: usize,
    /// Passes over the training set (default: at least 600 steps and 10 epochs, as
    /// `train_faces`).
    #[arg(long)]
    epochs: Option<usize>,
    /// Optimisation steps (overrides --epochs).
    #[arg(long)]
    steps: Option<u64>,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate (warm-up over the first 5% of the steps, divided by 10 at 60% and 85%).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Fraction of each training identity's images held out for validation (which picks
    /// the model that is evaluated).
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// Center-loss weight.
    #[arg(long, default_value_t = centerloss::DEFAULT_LAMBDA)]
    lambda: f32,
    /// Center learning rate.
    #[arg(long, default_value_t = centerloss::DEFAULT_ALPHA)]
    alpha: f32,
    /// Embedding size.
    #[arg(long, default_value_t = 128)]
    embed_dim: usize,
    /// Seed of data, initialisation, shuffling, augmentation and evaluation pairs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the models (burnpack), centers and plots go.
    #[arg(long, default_value = "out/burn_faces")]
    out: PathBuf,
    /// Also train the softmax-only baseline with the same seed, data and budget.
    #[arg(long)]
    compare: bool,
}

/// Two 3x3 convolutions with PReLU, added to the input.
#[derive(Module, Debug)]
struct Residual {
    conv1: Conv2d,
    act1: PRelu,
    conv2: Conv2d,
    act2: PRelu,
}

impl Residual {
    fn new(width: usize, device: &Device) -> Self {
        let conv = || {
            Conv2dConfig::new([width, width], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
        };
        let act = || PReluConfig::new().with_num_parameters(width).init(device);
        Self { conv1: conv(), act1: act(), conv2: conv(), act2: act() }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let body = self.act2.forward(self.conv2.forward(self.act1.forward(self.conv1.forward(x.clone()))));
        x + body
    }
}

/// A strided convolution that changes width, its PReLU, and a residual unit.
#[derive(Module, Debug)]
struct Stage {
    down: Conv2d,
    act: PRelu,
    unit: Residual,
}

impl Stage {
    fn new(from: usize, width: usize, kernel: usize, device: &Device) -> Self {
        let pad = kernel / 2;
        Self {
            down: Conv2dConfig::new([from, width], [kernel, kernel])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device),
            act: PReluConfig::new().with_num_parameters(width).init(device),
            unit: Residual::new(width, device),
        }
    }
}

/// The face network: embedding trunk and softmax classifier.
#[derive(Module, Debug)]
struct FaceNet {
    stem: Stage,
    pool: MaxPool2d,
    stage2: Stage,
    stage3: Stage,
    embed: Linear,
    classifier: Linear,
}

impl FaceNet {
    fn new(resolution: usize, embed_dim: usize, classes: usize, device: &Device) -> Self {
        // The stem's residual unit runs after the pool (as face_resnet's).
        let side = resolution.div_ceil(2) / 2;
        let side = side.div_ceil(2).div_ceil(2);
        Self {
            stem: Stage::new(1, 16, 5, device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            stage2: Stage::new(16, 32, 3, device),
            stage3: Stage::new(32, 64, 3, device),
            embed: LinearConfig::new(64 * side * side, embed_dim).init(device),
            classifier: LinearConfig::new(embed_dim, classes).init(device),
        }
    }

    /// Embeddings [B, embed_dim] and logits [B, classes] of images [B, 1, H, W].
    fn forward(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let x = self.pool.forward(self.stem.act.forward(self.stem.down.forward(images)));
        let x = self.stem.unit.forward(x);
        let x = self.stage2.unit.forward(self.stage2.act.forward(self.stage2.down.forward(x)));
        let x = self.stage3.unit.forward(self.stage3.act.forward(self.stage3.down.forward(x)));
        let embeddings = self.embed.forward(x.flatten::<2>(1, 3));
        let logits = self.classifier.forward(embeddings.clone());
        (embeddings, logits)
    }
}

/// A batch of `data`'s images [n, C, H, W] on `device`.
fn images(pixels: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<4> {
    let n = pixels.len() / (shape[0] * shape[1] * shape[2]);
    Tensor::from_data(TensorData::new(pixels, [n, shape[0], shape[1], shape[2]]), device)
}

fn labels(values: &[u32], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.iter().map(|&v| v as i32).collect(), [values.len()]), device)
}

/// Embeddings (row-major) and logits of every image of `data`, in chunks, without autodiff.
fn infer(net: &FaceNet, data: &Dataset, device: &Device) -> Result<(Vec<f32>, Vec<f32>), Box<dyn std::error::Error>> {
    let (mut emb, mut logits) = (Vec::new(), Vec::new());
    let chunk = 256 * data.image_len();
    for part in data.images.chunks(chunk) {
        let (e, l) = net.forward(images(part.to_vec(), data.shape, device));
        emb.extend(e.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?);
        logits.extend(l.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?);
    }
    Ok((emb, logits))
}

/// Closed-set accuracy and mean softmax loss (f64) of `net` on `data`.
fn classify(net: &FaceNet, data: &Dataset, device: &Device) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    Ok(score_logits(&infer(net, data, device)?.1, &data.labels))
}

struct Data {
    train: Dataset,
    validation: Dataset,
    test: Dataset,
    description: String,
}

fn train_variant(
    ctx: &GpuContext,
    device: &Device,
    a: &Args,
    data: &Data,
    name: &'static str,
    lambda: f32,
) -> Result<VariantReport, Box<dyn std::error::Error>> {
    let plan = Plan::new(data.train.len(), a.batch, a.lr, a.epochs, a.steps)?;
    let schedule = plan.schedule();
    eprintln!("{name}: {}", plan.describe());
    let auto = device.clone().autodiff();
    auto.seed(a.seed);
    let mut net = FaceNet::new(a.resolution, a.embed_dim, data.train.num_classes(), &auto);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig { momentum: 0.9, dampening: 0.0, nesterov: false }))
        .with_weight_decay(Some(WeightDecayConfig { penalty: 5e-4 }))
        .init();
    let cfg = CenterLossConfig {
        num_classes: data.train.num_classes(),
        feat_dim: a.embed_dim,
        lambda,
        alpha: a.alpha,
        update: UpdateMode::Deterministic,
        ..Default::default()
    };
    let mut center = CenterLoss::new(ctx, cfg)?;
    let cross_entropy = CrossEntropyLossConfig::new().init(&auto);
    // The batches and augmentation of `train_faces` (nn::fit): the same sampler, each
    // image flipped and cropped as (seed, epoch, image) draws it.
    let augment = Augment { flip: true, crop_pad: 2 };
    let sampler = Sampler::new(data.train.len(), a.batch, a.seed)?;
    let mut order = Vec::new();
    let mut record = ValidationRecord::default();
    let mut best: Option<FaceNet> = None;
    let mut last_accuracy = 0.0f32;
    let bar = ProgressBar::new(plan.steps).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})").unwrap().progress_chars("=> "),
    );
    bar.set_prefix(name);
    // Compile burn's kernels before the clock starts: a forward and backward pass that
    // changes nothing (no optimiser step, no center update).
    let warm = data.train.select(&(0..a.batch).collect::<Vec<_>>());
    let (embeddings, logits) = net.forward(images(warm.images, data.train.shape, &auto));
    let y = labels(&warm.labels, &auto);
    let mut warm_loss = cross_entropy.forward(logits, y.clone());
    if lambda > 0.0 {
        warm_loss = warm_loss + center.forward(embeddings, y)?;
    }
    let _ = warm_loss.backward();
    device.sync()?;
    let started = Instant::now();
    for step in 0..plan.steps {
        let (epoch, t) = (step / sampler.steps_per_epoch(), (step % sampler.steps_per_epoch()) as usize);
        if t == 0 {
            order = sampler.epoch(epoch, 0..a.batch);
        }
        let picked: Vec<usize> = order.iter().map(|slot| slot[t]).collect();
        let batch = data.train.select(&picked);
        let mut pixels = batch.images;
        for (image, &index) in pixels.chunks_mut(data.train.image_len()).zip(&picked) {
            augment.apply_image(image, data.train.shape, a.seed, epoch, index);
        }
        let (x, y) = (images(pixels, data.train.shape, &auto), labels(&batch.labels, &auto));
        let (embeddings, logits) = net.forward(x);
        let softmax = cross_entropy.forward(logits.clone(), y.clone());
        let loss = if lambda > 0.0 { softmax + center.step(embeddings, y.clone())? } else { softmax };
        let report = (step + 1) % 10 == 0;
        if report {
            let right = logits.argmax(1).flatten::<1>(0, 1).equal(y).int().sum().into_scalar::<i64>();
            last_accuracy = right as f32 / a.batch as f32;
            let value = loss.clone().into_scalar::<f32>();
            bar.set_message(format!("loss {value:.3} acc {last_accuracy:.2}"));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(schedule.lr_at(a.lr, step) as f64, net, grads);
        bar.inc(1);
        let done = step + 1;
        if done % plan.validate_every == 0 || done == plan.steps {
            let (accuracy, vloss) = classify(&net.valid(), &data.validation, device)?;
            if data.validation.is_empty() || record.push(done, accuracy, vloss) {
                best = Some(net.valid());
            }
        }
    }
    device.sync()?;
    let train_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    let best = best.expect("validated at the last step");
    let evaluated_step = record.best().map_or(plan.steps, |b| b.0);
    std::fs::create_dir_all(&a.out)?;
    let model_path = a.out.join(format!("{name}.bpk"));
    best.clone().save_file(&model_path).map_err(|e| format!("saving {}: {e}", model_path.display()))?;
    if lambda > 0.0 {
        center.save(&a.out.join(format!("{name}-centers.safetensors")))?;
    }
    let (final_train_accuracy, _) = classify(&best, &data.train, device)?;
    let (test, _) = infer(&best, &data.test, device)?;
    let report = eval::evaluate(&test, a.embed_dim, &data.test.labels, a.seed);
    let title = format!("burn {name}: held-out embeddings of 10 identities (PCA)");
    pca_plot(&a.out.join(format!("pca_{name}.png")), &title, &test, a.embed_dim, &data.test.labels)?;
    Ok(VariantReport {
        name,
        lambda,
        eval: report,
        train_seconds,
        images_per_second: (plan.steps as usize * a.batch) as f64 / train_seconds,
        final_train_batch_accuracy: last_accuracy,
        final_train_accuracy,
        best_validation_accuracy: record.best().map(|b| b.1),
        converged: record.converged(),
        steps: plan.steps,
        evaluated_step,
        checkpoint: model_path,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let a = Args::parse();
    let ctx = GpuContext::new()?;
    let device = centerloss::burn::device(&ctx)?;
    eprintln!("adapter: {} (shared by burn and center loss)", ctx.adapter_summary());
    let faces = FaceSetConfig {
        train_identities: a.identities,
        test_identities: a.eval_identities,
        images_per_identity: a.images_per_identity,
        resolution: a.resolution,
        seed: a.seed,
        ..Default::default()
    };
    let (train, test) = faces.split();
    let (train, validation) = validation_split(train, a.validation, a.seed)?;
    let description = format!(
        "built-in faces {}x{} grey: {} training images of {} identities, {} validation images, {} held-out images of {} identities",
        a.resolution,
        a.resolution,
        train.len(),
        a.identities,
        validation.len(),
        test.len(),
        a.eval_identities
    );
    eprintln!("{description}");
    let data = Data { train, validation, test, description };
    let mut variants = Vec::new();
    if a.compare || a.lambda == 0.0 {
        variants.push(train_variant(&ctx, &device, &a, &data, "softmax", 0.0)?);
    }
    if a.lambda > 0.0 {
        variants.push(train_variant(&ctx, &device, &a, &data, "center", a.lambda)?);
    }
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        variants.iter().map(|v| (v.name, v.eval.verification.roc.clone())).collect();
    let roc_plot = a.out.join("roc.png");
    let lowest_far = variants.first().map(|v| v.eval.verification.lowest_far);
    plot::roc_curves(&roc_plot, "burn: verification on held-out identities", &curves, lowest_far)?;
    let report = FaceReport { data: data.description, adapter: ctx.adapter_summary(), variants, roc_plot };
    println!("\nHeld-out identities ({}):\n{}", report.data, report.table());
    eprintln!("models (burnpack), centers and plots in {}", a.out.display());
    Ok(())
}
