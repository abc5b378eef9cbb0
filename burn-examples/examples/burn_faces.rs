//! The main job in burn: a burn CNN trained with burn's SGD and this crate's center loss on
//! one shared device (no copy through the host), evaluated on held-out identities with this
//! crate's `eval`: the same table as `train_faces`.
//!
//! cargo run --release -p centerloss-burn-examples --example burn_faces                # center loss
//! cargo run --release -p centerloss-burn-examples --example burn_faces -- --compare   # and softmax alone
//!
//! The network mirrors `NetworkSpec::face_resnet` (a 5x5 stride-2 stem, max pool, three
//! stages of a residual unit of two 3x3 convolutions with PReLU, a linear embedding) and
//! the run mirrors `train_faces`'s: the same built-in faces, validation split, schedule
//! (warm-up, rate / 10 at 60% and 85%), augmentation and evaluation pairs.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig, PaddingConfig2d};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use centerloss::burn::CenterLoss;
use centerloss::data::{Augment, Batches, Dataset};
use centerloss::experiments::commands::faces::{FaceSetArgs, FaceTrainingArgs};
use centerloss::experiments::faces::{pca_plot, FaceReport, Loss, VariantReport};
use centerloss::experiments::training::{score_logits, validation_split, Plan, ValidationRecord};
use centerloss::nn::Head;
use centerloss::{eval, plot, CenterLossConfig, GpuContext, UpdateMode};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// What the example's functions return: any error, shown as it is.
type BurnResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(about = "Train a burn CNN with softmax + this crate's center loss; evaluate on unseen identities")]
struct Args {
    #[command(flatten)]
    set: FaceSetArgs,
    #[command(flatten)]
    training: FaceTrainingArgs,
    /// Where the models (burnpack), centers and plots go.
    #[arg(long, default_value = "out/burn_faces")]
    out: PathBuf,
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
fn infer(net: &FaceNet, data: &Dataset, device: &Device) -> BurnResult<(Vec<f32>, Vec<f32>)> {
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
fn classify(net: &FaceNet, data: &Dataset, device: &Device) -> BurnResult<(f64, f64)> {
    Ok(score_logits(&infer(net, data, device)?.1, &data.labels))
}

struct Data {
    train: Dataset,
    validation: Dataset,
    test: Dataset,
    description: String,
}

/// What one variant trains with: the run's options and data, burn's autodiff device, the
/// loss terms.
struct Run<'a> {
    a: &'a Args,
    data: &'a Data,
    /// burn's autodiff device (training) and the plain one (inference).
    auto: &'a Device,
    device: &'a Device,
    lambda: f32,
    cross_entropy: CrossEntropyLoss,
    center: CenterLoss,
}

impl Run<'_> {
    /// Softmax loss (+ lambda * center loss, stepping the centers when `step` is set) and
    /// the logits of a batch.
    fn loss(&mut self, net: &FaceNet, pixels: Vec<f32>, ys: &[u32], step: bool) -> BurnResult<(Tensor<1>, Tensor<2>)> {
        let (x, y) = (images(pixels, self.data.train.shape, self.auto), labels(ys, self.auto));
        let (embeddings, logits) = net.forward(x);
        let softmax = self.cross_entropy.forward(logits.clone(), y.clone());
        let loss = match (self.lambda > 0.0, step) {
            (false, _) => softmax,
            (true, true) => softmax + self.center.step(embeddings, y)?,
            (true, false) => softmax + self.center.forward(embeddings, y)?,
        };
        Ok((loss, logits))
    }

    /// Trains `net` for the plan's steps on the crate's batches (`data::Batches`: the
    /// sampler and augmentation of `train_faces`), validating as `train_faces` does; returns
    /// the best network, the validation record and the last reported batch accuracy.
    fn train(&mut self, mut net: FaceNet, plan: &Plan, name: &str) -> BurnResult<(FaceNet, ValidationRecord, f32)> {
        let (a, data) = (self.a, self.data);
        let schedule = plan.schedule();
        let mut optim = SgdConfig::new()
            .with_momentum(Some(MomentumConfig { momentum: 0.9, dampening: 0.0, nesterov: false }))
            .with_weight_decay(Some(WeightDecayConfig { penalty: 5e-4 }))
            .init();
        let augment = Augment { flip: true, crop_pad: 2 };
        let mut batches =
            Batches::new((&data.train).into(), a.training.batch, 0..a.training.batch, augment, a.training.seed)?;
        let (mut pixels, mut ys) =
            (vec![0.0f32; a.training.batch * data.train.image_len()], vec![0u32; a.training.batch]);
        let (mut record, mut best, mut last_accuracy) = (ValidationRecord::default(), None, 0.0f32);
        let bar = ProgressBar::new(plan.steps).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")?.progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        for step in 0..plan.steps {
            batches.fill(step, &mut pixels, &mut ys)?;
            let (loss, logits) = self.loss(&net, pixels.clone(), &ys, true)?;
            if (step + 1) % 10 == 0 {
                let right = logits.argmax(1).flatten::<1>(0, 1).equal(labels(&ys, self.auto)).int().sum();
                last_accuracy = right.into_scalar::<i64>() as f32 / a.training.batch as f32;
                bar.set_message(format!("loss {:.3} acc {last_accuracy:.2}", loss.clone().into_scalar::<f32>()));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(schedule.lr_at(a.training.lr, step) as f64, net, grads);
            bar.inc(1);
            let done = step + 1;
            if done % plan.validate_every == 0 || done == plan.steps {
                let (accuracy, vloss) = classify(&net.valid(), &data.validation, self.device)?;
                if data.validation.is_empty() || record.push(done, accuracy, vloss) {
                    best = Some(net.valid());
                }
            }
        }
        bar.finish();
        Ok((best.ok_or("no validation ran")?, record, last_accuracy))
    }
}

fn train_variant(
    ctx: &GpuContext,
    device: &Device,
    a: &Args,
    data: &Data,
    name: &'static str,
    lambda: f32,
) -> BurnResult<VariantReport> {
    let plan = Plan::new(data.train.len(), a.training.batch, a.training.lr, a.training.epochs, a.training.steps)?;
    eprintln!("{name}: {}", plan.describe());
    let auto = device.clone().autodiff();
    auto.seed(a.training.seed);
    let net = FaceNet::new(a.set.resolution, a.training.embed_dim, data.train.num_classes(), &auto);
    let cfg = CenterLossConfig {
        num_classes: data.train.num_classes(),
        feat_dim: a.training.embed_dim,
        lambda,
        alpha: a.training.alpha,
        update: UpdateMode::Deterministic,
        ..Default::default()
    };
    let center = CenterLoss::new(ctx, cfg)?;
    let cross_entropy = CrossEntropyLossConfig::new().init(&auto);
    let mut run = Run { a, data, auto: &auto, device, lambda, cross_entropy, center };
    // Compile burn's kernels before the clock starts: a forward and backward pass that
    // changes nothing (no optimiser step, no center update).
    let warm = data.train.select(&(0..a.training.batch).collect::<Vec<_>>());
    let _ = run.loss(&net, warm.images, &warm.labels, false)?.0.backward();
    device.sync()?;
    let started = Instant::now();
    let (best, record, last_accuracy) = run.train(net, &plan, name)?;
    device.sync()?;
    let train_seconds = started.elapsed().as_secs_f64();
    let evaluated_step = record.best().map_or(plan.steps, |b| b.0);
    std::fs::create_dir_all(&a.out)?;
    let model_path = a.out.join(format!("{name}.bpk"));
    best.clone().save_file(&model_path).map_err(|e| format!("saving {}: {e}", model_path.display()))?;
    if lambda > 0.0 {
        run.center.save(&a.out.join(format!("{name}-centers.safetensors")))?;
    }
    let (final_train_accuracy, _) = classify(&best, &data.train, device)?;
    let (test, _) = infer(&best, &data.test, device)?;
    let report = eval::evaluate(&test, a.training.embed_dim, &data.test.labels, a.training.seed);
    let title = format!("burn {name}: held-out embeddings of 10 identities (PCA)");
    pca_plot(&a.out.join(format!("pca_{name}.png")), &title, &test, a.training.embed_dim, &data.test.labels)?;
    Ok(VariantReport {
        name,
        lambda,
        head: Head::linear(),
        eval: report,
        benchmarks: Vec::new(),
        train_seconds,
        images_per_second: (plan.steps as usize * a.training.batch) as f64 / train_seconds,
        final_train_batch_accuracy: last_accuracy,
        final_train_accuracy,
        best_validation_accuracy: record.best().map(|b| b.1),
        converged: record.converged(),
        steps: plan.steps,
        budget: plan.steps,
        evaluated_step,
        checkpoint: model_path,
        gemm_tiles: "burn's own kernels".into(),
    })
}

fn main() -> BurnResult<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let a = Args::parse();
    let losses = &a.training.loss;
    if a.training.until_converged {
        return Err(
            "burn_faces trains to the budget (--steps, --epochs); --until-converged is `centerloss faces`'s".into()
        );
    }
    if a.training.all_losses || losses.iter().any(|l| !matches!(l, Loss::Softmax | Loss::Center)) {
        return Err("burn_faces trains softmax and softmax + center loss (--loss softmax,center); an ArcFace or \
                    CosFace head is burn's to write (docs/burn.md), or train it with `centerloss faces`"
            .into());
    }
    let ctx = GpuContext::new()?;
    let device = centerloss::burn::device(&ctx)?;
    eprintln!("adapter: {} (shared by burn and center loss)", ctx.adapter_summary());
    let faces = a.set.config(a.training.seed, false);
    let (train, test) = faces.split();
    let (train, validation) = validation_split(train, a.training.validation, a.training.seed)?;
    let description = format!(
        "built-in faces {}x{} grey: {} training images of {} identities, {} validation images, {} held-out images of {} identities",
        a.set.resolution,
        a.set.resolution,
        train.len(),
        a.set.identities,
        validation.len(),
        test.len(),
        a.set.eval_identities
    );
    eprintln!("{description}");
    let data = Data { train, validation, test, description };
    let mut variants = Vec::new();
    if a.training.compare || a.training.lambda == 0.0 || losses.contains(&Loss::Softmax) {
        variants.push(train_variant(&ctx, &device, &a, &data, "softmax", 0.0)?);
    }
    if a.training.lambda > 0.0 && losses.contains(&Loss::Center) {
        variants.push(train_variant(&ctx, &device, &a, &data, "center", a.training.lambda)?);
    }
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        variants.iter().map(|v| (v.name, v.eval.verification.roc.clone())).collect();
    let roc_plot = a.out.join("roc.png");
    let lowest_far = variants.first().map(|v| v.eval.verification.lowest_far);
    plot::roc_curves(&roc_plot, "burn: verification on held-out identities", &curves, lowest_far)?;
    let report =
        FaceReport { data: data.description, adapter: ctx.adapter_summary(), variants, diverged: Vec::new(), roc_plot };
    println!("\nHeld-out identities ({}):\n{}", report.data, report.table());
    eprintln!("models (burnpack), centers and plots in {}", a.out.display());
    Ok(())
}
