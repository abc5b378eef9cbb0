//! The main job: train a face-embedding network with softmax + center loss and evaluate it
//! on identities never seen in training (verification, identification, compactness).
//!
//! cargo run --release --example train_faces                 # built-in faces, center loss
//! cargo run --release --example train_faces -- --compare    # and the softmax-only baseline
//! cargo run --release --example train_faces -- --data DIR   # your ROOT/<identity>/<image>

use std::path::PathBuf;

use centerloss::data::faces::FaceSetConfig;
use centerloss::data::folder::write_folder;
use centerloss::experiments::faces::{run, FaceOptions, FaceSource};
use clap::Parser;

#[derive(Parser, Debug)]
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
    /// Built-in set: scale of every nuisance (pose, light, expression, noise, occlusion).
    #[arg(long, default_value_t = FaceSetConfig::default().difficulty)]
    difficulty: f32,
    /// Colour input (3 channels) instead of grey.
    #[arg(long)]
    rgb: bool,
    /// Input resolution (square).
    #[arg(long, default_value_t = 64)]
    resolution: usize,
    /// Passes over the training set (default: sized by the data, at least 600 steps and
    /// 10 epochs; the plan is printed before training).
    #[arg(long)]
    epochs: Option<usize>,
    /// Optimisation steps (overrides --epochs).
    #[arg(long)]
    steps: Option<u64>,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate (linear warm-up over the first 5% of the steps, divided by 10 at 60%
    /// and 85%).
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Scale the gradients down to this L2 norm (all parameters together) when they exceed
    /// it (off by default).
    #[arg(long)]
    clip_grad_norm: Option<f32>,
    /// Train on the images as they are: no random flips and 2-pixel crops.
    #[arg(long)]
    no_augment: bool,
    /// Fraction of each training identity's images held out for validation (which picks
    /// the checkpoint that is evaluated).
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
    /// Seed of data, initialisation, shuffling and evaluation pairs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Continue a stopped or killed run with the same options from OUT/<variant>-last.safetensors.
    #[arg(long)]
    resume: bool,
    /// Where checkpoints, plots and the report go.
    #[arg(long, default_value = "out/faces")]
    out: PathBuf,
    /// Also train the softmax-only baseline with the same seed, data and budget.
    #[arg(long)]
    compare: bool,
    /// Train on this many devices in this process (data-parallel: each takes batch / N rows
    /// of every batch; the result equals a one-device run). Devices are opened over the
    /// adapters found, round-robin.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Write the numbers as JSON here.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Write the built-in set (training and held-out identities) as an image folder
    /// DIR/<identity>/<n>.png, to try the --data workflow, and exit.
    #[arg(long, value_name = "DIR")]
    write_folder: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let a = Args::parse();
    if let Some(dir) = &a.write_folder {
        let cfg = FaceSetConfig {
            train_identities: a.identities,
            test_identities: a.eval_identities,
            images_per_identity: a.images_per_identity,
            difficulty: a.difficulty,
            seed: a.seed,
            resolution: a.resolution,
            rgb: a.rgb,
        };
        let all = cfg.generate(0, a.identities + a.eval_identities);
        let n = write_folder(&all, dir, |label| format!("id{label:05}"))?;
        eprintln!("wrote {n} images of {} identities to {}", a.identities + a.eval_identities, dir.display());
        return Ok(());
    }
    // Under `mpirun` (built with --features mpi) each rank trains its rows of every batch.
    let (comm, ctx) = centerloss::experiments::launch()?;
    eprintln!("adapter: {}", ctx.adapter_summary());
    let source = match (a.data, a.list) {
        (Some(root), _) => FaceSource::Folder { root, test_identities: a.test_identities },
        (_, Some(list)) => FaceSource::List { list, test_identities: a.test_identities },
        _ => FaceSource::BuiltIn(FaceSetConfig {
            train_identities: a.identities,
            test_identities: a.eval_identities,
            images_per_identity: a.images_per_identity,
            difficulty: a.difficulty,
            seed: a.seed,
            ..Default::default()
        }),
    };
    let opts = FaceOptions {
        source,
        channels: if a.rgb { 3 } else { 1 },
        resolution: a.resolution,
        pairs: a.pairs,
        epochs: a.epochs,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        clip_grad_norm: a.clip_grad_norm,
        augment: !a.no_augment,
        validation_fraction: a.validation,
        lambda: a.lambda,
        alpha: a.alpha,
        embed_dim: a.embed_dim,
        seed: a.seed,
        resume: a.resume,
        out: a.out,
        compare: a.compare,
        progress: true,
        devices: a.devices,
        ..Default::default()
    };
    let report = match comm.as_deref() {
        Some(comm) => match centerloss::experiments::faces::run_collective(&ctx, &opts, comm)? {
            Some(report) => report,
            None => return Ok(()), // ranks other than 0 report nothing
        },
        None => run(&ctx, &opts)?,
    };
    println!("\nHeld-out identities ({}):\n{}", report.data, report.table());
    for v in &report.variants {
        eprintln!(
            "{}: evaluated checkpoint {} (step {} of {}; {})",
            v.name,
            v.checkpoint.display(),
            v.evaluated_step,
            v.steps,
            if v.converged { "converged" } else { "validation still improving: the budget ran out first" }
        );
    }
    eprintln!("plots: {} and the PCA plots in {}", report.roc_plot.display(), opts.out.display());
    if let Some(path) = &a.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report.to_json())?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
