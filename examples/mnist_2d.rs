//! The paper's MNIST experiment (Wen et al. 2016, Figures 2 and 3): LeNet++ with a 2-D
//! embedding, trained with softmax alone (lambda = 0) and with softmax + center loss for
//! each lambda; writes a scatter plot of the 2-D test features per lambda and a JSON report.
//!
//! cargo run --release --example mnist_2d -- --data ../shared/data/mnist

use std::path::PathBuf;

use centerloss::experiments::mnist::{run, MnistOptions};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "LeNet++ on MNIST with softmax and softmax + center loss (the paper's 2-D experiment)")]
struct Args {
    /// Folder with the MNIST IDX files (gzipped or raw); t10k alone is enough.
    #[arg(long, default_value = "../shared/data/mnist")]
    data: PathBuf,
    /// Comma-separated center-loss weights; 0 is softmax alone.
    #[arg(long, default_value = "0,0.01", value_delimiter = ',')]
    lambdas: Vec<f32>,
    /// Center learning rate.
    #[arg(long, default_value_t = centerloss::DEFAULT_ALPHA)]
    alpha: f32,
    /// Passes over the training set.
    #[arg(long, default_value_t = MnistOptions::default().epochs)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = MnistOptions::default().batch)]
    batch: usize,
    /// Learning rate (divided by 10 at 60% and 85% of training).
    #[arg(long, default_value_t = MnistOptions::default().lr)]
    lr: f32,
    /// Scale the gradients down to this L2 norm (all parameters together) when they exceed
    /// it; 0 turns clipping off.
    #[arg(long, default_value_t = MnistOptions::default().clip_grad_norm.unwrap_or(0.0))]
    clip_grad_norm: f32,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use at most this many training images (0: all).
    #[arg(long, default_value_t = 0)]
    max_train: usize,
    /// Use at most this many test images (0: all).
    #[arg(long, default_value_t = 0)]
    max_test: usize,
    /// Where the plots go.
    #[arg(long, default_value = "out/mnist_2d")]
    out: PathBuf,
    /// Train on this many devices in this process (data-parallel: each takes batch / N rows
    /// of every batch; the result equals a one-device run).
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Write the numbers as JSON here.
    #[arg(long)]
    report_json: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let a = Args::parse();
    // Under `mpirun` (built with --features mpi) each rank trains its rows of every batch.
    let (comm, ctx) = centerloss::experiments::launch()?;
    eprintln!("adapter: {}", ctx.adapter_summary());
    let opts = MnistOptions {
        data: a.data,
        lambdas: a.lambdas,
        alpha: a.alpha,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        clip_grad_norm: (a.clip_grad_norm != 0.0).then_some(a.clip_grad_norm),
        seed: a.seed,
        max_train: a.max_train,
        max_test: a.max_test,
        out: a.out,
        progress: true,
        devices: a.devices,
    };
    let report = match comm.as_deref() {
        Some(comm) => match centerloss::experiments::mnist::run_collective(&ctx, &opts, comm)? {
            Some(report) => report,
            None => return Ok(()), // ranks other than 0 report nothing
        },
        None => run(&ctx, &opts)?,
    };
    println!(
        "MNIST: {} training images{}, {} test images",
        report.train_images,
        if report.full_train_set { "" } else { " (the first 8 000 of t10k)" },
        report.test_images
    );
    println!("| lambda | test accuracy | intra | inter | intra/inter | images/s |\n|---|---|---|---|---|---|");
    for r in &report.runs {
        println!(
            "| {} | {:.2}% | {:.3} | {:.3} | {:.3} | {:.1} |",
            r.lambda,
            100.0 * r.test_accuracy,
            r.intra_class_distance,
            r.inter_center_distance,
            r.intra_inter_ratio,
            r.images_per_second
        );
    }
    eprintln!("plots in {}", opts.out.display());
    if let Some(path) = &a.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report.to_json(&opts))?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
