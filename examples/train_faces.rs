//! The main job: train a face-embedding network with softmax + center loss and evaluate it
//! on identities never seen in training (verification, identification, compactness).
//!
//! cargo run --release --example train_faces                 # built-in faces, center loss
//! cargo run --release --example train_faces -- --compare    # and the softmax-only baseline
//! cargo run --release --example train_faces -- --data DIR   # your ROOT/<identity>/<image>

use std::path::PathBuf;

use centerloss::data::faces::FaceSetConfig;
use centerloss::data::folder::{numbered, parse_pairs, ImageFolder};
use centerloss::data::{Augment, Dataset};
use centerloss::eval::{self, EvalReport, Pair};
use centerloss::nn::{fit, FitOptions, MultiStep, Network, NetworkSpec, SgdConfig, TrainConfig};
use centerloss::{checkpoint, plot, GpuContext, UpdateMode};
use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(about = "Train a face-embedding network with softmax + center loss; evaluate on unseen identities")]
struct Args {
    /// An image folder ROOT/<identity>/<image> (PGM, PNG, JPEG). Default: the built-in faces.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A list file of `path label` lines instead of a folder.
    #[arg(long, conflicts_with = "data")]
    list: Option<PathBuf>,
    /// An LFW-style pairs.txt for verification on a real folder (default: all genuine pairs
    /// of the held-out identities and as many seeded impostor pairs).
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Fraction of a real folder's identities held out for evaluation.
    #[arg(long, default_value_t = 0.25)]
    test_identities: f64,
    /// Built-in set: training identities.
    #[arg(long, default_value_t = 150)]
    identities: usize,
    /// Built-in set: held-out identities.
    #[arg(long, default_value_t = 50)]
    eval_identities: usize,
    /// Built-in set: images per identity.
    #[arg(long, default_value_t = 20)]
    images_per_identity: usize,
    /// Built-in set: colour images.
    #[arg(long)]
    rgb: bool,
    /// Input resolution (square).
    #[arg(long, default_value_t = 64)]
    resolution: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate (divided by 10 at 60% and 85% of training).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Center-loss weight.
    #[arg(long, default_value_t = 0.02)]
    lambda: f32,
    /// Center learning rate.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// Embedding size.
    #[arg(long, default_value_t = 128)]
    embed_dim: usize,
    /// Seed of data, initialisation, shuffling and evaluation pairs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Continue training from this checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Where checkpoints, plots and the report go.
    #[arg(long, default_value = "out/faces")]
    out: PathBuf,
    /// Also train the softmax-only baseline with the same seed, data and budget.
    #[arg(long)]
    compare: bool,
    /// Write the numbers as JSON here.
    #[arg(long)]
    report_json: Option<PathBuf>,
}

struct Data {
    train: Dataset,
    test: Dataset,
    /// For pairs.txt: every image of the folder and the pairs over them.
    all: Option<(Dataset, Vec<Pair>)>,
    description: String,
}

fn load_data(args: &Args) -> Result<Data, Box<dyn std::error::Error>> {
    let shape = [if args.rgb { 3 } else { 1 }, args.resolution, args.resolution];
    let folder = match (&args.data, &args.list) {
        (Some(dir), _) => Some(ImageFolder::load(dir, shape)?),
        (_, Some(list)) => Some(ImageFolder::load_list(list, shape)?),
        _ => None,
    };
    match folder {
        Some(folder) => {
            if !folder.skipped.is_empty() {
                eprintln!(
                    "skipped {} unreadable images (first: {})",
                    folder.skipped.len(),
                    folder.skipped[0].0.display()
                );
            }
            let (train, test, held_out) = folder.split_identities(args.test_identities, args.seed)?;
            let all = match &args.pairs {
                Some(p) => Some((folder.data.clone(), parse_pairs(&std::fs::read_to_string(p)?, &numbered(&folder))?)),
                None => None,
            };
            let description = format!(
                "{} images of {} identities ({} skipped); {} identities held out",
                folder.data.len(),
                folder.identities.len(),
                folder.skipped.len(),
                held_out.len()
            );
            Ok(Data { train, test, all, description })
        }
        None => {
            let cfg = FaceSetConfig {
                train_identities: args.identities,
                test_identities: args.eval_identities,
                images_per_identity: args.images_per_identity,
                resolution: args.resolution,
                rgb: args.rgb,
                seed: args.seed,
                ..Default::default()
            };
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
            Ok(Data { train, test, all: None, description })
        }
    }
}

struct Outcome {
    name: &'static str,
    report: EvalReport,
    train_seconds: f64,
    images_per_second: f64,
    final_accuracy: f32,
}

fn train_variant(
    ctx: &GpuContext,
    args: &Args,
    data: &Data,
    name: &'static str,
    lambda: f32,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let per_epoch = (data.train.len() / args.batch) as u64;
    let steps = per_epoch * args.epochs as u64;
    let sgd = SgdConfig {
        lr: args.lr,
        schedule: MultiStep { milestones: vec![steps * 6 / 10, steps * 85 / 100], gamma: 0.1 },
        ..Default::default()
    };
    let cfg = TrainConfig {
        batch: args.batch,
        sgd,
        lambda,
        alpha: args.alpha,
        center_update: UpdateMode::Atomic,
        seed: args.seed,
    };
    let spec = NetworkSpec::face_resnet(data.train.shape[0], args.resolution, args.embed_dim, data.train.num_classes());
    let mut net = Network::new(ctx, spec, cfg)?;
    let mut start_epoch = 0;
    if let Some(path) = &args.resume {
        checkpoint::load(&mut net, path)?;
        start_epoch = (net.step_count() / per_epoch.max(1)) as usize;
        eprintln!("{name}: resumed from {} at step {} (epoch {start_epoch})", path.display(), net.step_count());
    }
    let opts = FitOptions {
        epochs: args.epochs,
        start_epoch,
        augment: Augment { flip: true, crop_pad: 2 },
        seed: args.seed,
        label: name.to_string(),
        ..Default::default()
    };
    let fitted = fit(&mut net, &data.train, &opts)?;
    let ckpt = args.out.join(format!("{name}.safetensors"));
    checkpoint::save(&net, &ckpt)?;
    eprintln!("{name}: checkpoint {}", ckpt.display());

    let test = net.infer(&data.test.images)?;
    let dim = net.embed_dim();
    let mut report = eval::evaluate(&test.embeddings, dim, &data.test.labels, args.seed);
    if let Some((all, pairs)) = &data.all {
        let emb = net.infer(&all.images)?.embeddings;
        report.verification = eval::evaluate_pairs(&emb, dim, &all.labels, pairs, args.seed).verification;
    }
    // PCA of the first ten held-out identities.
    let keep: Vec<usize> = (0..data.test.len()).filter(|&i| data.test.labels[i] < 10).collect();
    let emb: Vec<f32> = keep.iter().flat_map(|&i| test.embeddings[i * dim..(i + 1) * dim].iter().copied()).collect();
    let labels: Vec<u32> = keep.iter().map(|&i| data.test.labels[i]).collect();
    let normalized: Vec<f32> = eval::l2_normalized(&emb, dim).into_iter().map(|v| v as f32).collect();
    let png = args.out.join(format!("pca_{name}.png"));
    plot::scatter_2d(
        &png,
        &format!("{name}: held-out embeddings, 10 identities (PCA)"),
        &eval::pca_2d(&normalized, dim),
        &labels,
        None,
    )?;
    let final_accuracy = fitted.history.last().map_or(0.0, |(_, m)| m.accuracy);
    Ok(Outcome {
        name,
        report,
        train_seconds: fitted.train_seconds,
        images_per_second: fitted.images_per_second,
        final_accuracy,
    })
}

fn json(o: &Outcome) -> serde_json::Value {
    let v = &o.report.verification;
    serde_json::json!({
        "verification_accuracy": v.accuracy,
        "verification_accuracy_std": v.accuracy_std,
        "roc_auc": v.roc_auc,
        "tar_at_far_1e-3": v.tar_at_far_1e3,
        "tar_at_far_1e-2": v.tar_at_far_1e2,
        "eer": v.eer,
        "rank1": o.report.rank1,
        "intra_inter_ratio": o.report.compactness.ratio,
        "intra_class_distance": o.report.compactness.intra,
        "inter_center_distance": o.report.compactness.inter,
        "genuine_pairs": v.pairs.0,
        "impostor_pairs": v.pairs.1,
        "train_seconds": o.train_seconds,
        "images_per_second": o.images_per_second,
        "final_train_batch_accuracy": o.final_accuracy,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let args = Args::parse();
    let ctx = GpuContext::new()?;
    eprintln!("adapter: {}", ctx.adapter_summary());
    std::fs::create_dir_all(&args.out)?;
    let data = load_data(&args)?;
    eprintln!("{}; {} training images, {} evaluation images", data.description, data.train.len(), data.test.len());
    let mut variants: Vec<(&'static str, f32)> = Vec::new();
    if args.compare || args.lambda == 0.0 {
        variants.push(("softmax", 0.0));
    }
    if args.lambda > 0.0 {
        variants.push(("center", args.lambda));
    }
    let mut outcomes = Vec::new();
    for (name, lambda) in variants {
        outcomes.push(train_variant(&ctx, &args, &data, name, lambda)?);
    }

    println!("\nHeld-out identities ({}):", data.description);
    println!("| variant | verification acc | ROC AUC | TAR@FAR=1e-3 | TAR@FAR=1e-2 | EER | rank-1 | intra/inter | train s | img/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for o in &outcomes {
        let v = &o.report.verification;
        println!(
            "| {} (lambda {}) | {:.2}% ± {:.2} | {:.4} | {:.3} | {:.3} | {:.3} | {:.2}% | {:.3} | {:.0} | {:.1} |",
            o.name,
            if o.name == "softmax" { 0.0 } else { args.lambda },
            100.0 * v.accuracy,
            100.0 * v.accuracy_std,
            v.roc_auc,
            v.tar_at_far_1e3,
            v.tar_at_far_1e2,
            v.eer,
            100.0 * o.report.rank1,
            o.report.compactness.ratio,
            o.train_seconds,
            o.images_per_second
        );
    }
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        outcomes.iter().map(|o| (o.name, o.report.verification.roc.clone())).collect();
    let roc = args.out.join("roc.png");
    plot::roc_curves(&roc, "Verification on held-out identities", &curves)?;
    eprintln!("wrote {} and the PCA plots in {}", roc.display(), args.out.display());
    if let Some(path) = &args.report_json {
        let mut report = serde_json::Map::new();
        for o in &outcomes {
            report.insert(o.name.to_string(), json(o));
        }
        report.insert("data".into(), serde_json::Value::String(data.description.clone()));
        report.insert("adapter".into(), serde_json::Value::String(ctx.adapter_summary()));
        std::fs::write(path, serde_json::to_string_pretty(&serde_json::Value::Object(report))?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
