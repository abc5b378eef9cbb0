//! The paper's MNIST experiment (Wen et al. 2016, Figures 2 and 3): LeNet++ with a 2-D
//! embedding, trained with softmax alone (lambda = 0) and with softmax + center loss for
//! each lambda; writes a scatter plot of the 2-D test features per lambda and a JSON report.
//!
//! cargo run --release --example mnist_2d -- --data ../shared/data/mnist

use std::path::PathBuf;

use centerloss::data::{mnist::Mnist, Augment, Dataset};
use centerloss::nn::{fit, FitOptions, MultiStep, Network, NetworkSpec, SgdConfig, TrainConfig};
use centerloss::{eval, plot, GpuContext, UpdateMode};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "LeNet++ on MNIST with softmax and softmax + center loss (the paper's 2-D experiment)")]
struct Args {
    /// Folder with the MNIST IDX files (gzipped or raw); t10k alone is enough.
    #[arg(long, default_value = "../shared/data/mnist")]
    data: PathBuf,
    /// Comma-separated center-loss weights; 0 is softmax alone.
    #[arg(long, default_value = "0,0.001,0.01,0.1", value_delimiter = ',')]
    lambdas: Vec<f32>,
    /// Center learning rate.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// Passes over the training set.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Learning rate (divided by 10 at 60% and 85% of training).
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use at most this many training images (0: all).
    #[arg(long, default_value_t = 0)]
    max_train: usize,
    /// Use at most this many test images (0: all).
    #[arg(long, default_value_t = 0)]
    max_test: usize,
    /// Where plots go.
    #[arg(long, default_value = "out/mnist_2d")]
    out: PathBuf,
    /// Write the numbers as JSON here.
    #[arg(long)]
    report_json: Option<PathBuf>,
}

fn truncate(d: &Dataset, max: usize) -> Dataset {
    if max == 0 || max >= d.len() {
        d.clone()
    } else {
        d.select(&(0..max).collect::<Vec<_>>())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let args = Args::parse();
    let ctx = GpuContext::new()?;
    eprintln!("adapter: {}", ctx.adapter_summary());
    let mnist = Mnist::load(&args.data)?;
    let train = truncate(&mnist.train, args.max_train);
    let test = truncate(&mnist.test, args.max_test);
    eprintln!(
        "MNIST: {} training images{}, {} test images",
        train.len(),
        if mnist.full_train_set { "" } else { " (first 8 000 of t10k)" },
        test.len()
    );
    std::fs::create_dir_all(&args.out)?;
    let steps = (train.len() / args.batch * args.epochs) as u64;
    let mut runs = Vec::new();
    println!("| lambda | test accuracy | intra | inter | intra/inter | images/s |");
    println!("|---|---|---|---|---|---|");
    for &lambda in &args.lambdas {
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
        let mut net = Network::new(&ctx, NetworkSpec::lenet_plus_plus(), cfg)?;
        let opts = FitOptions {
            epochs: args.epochs,
            augment: Augment { flip: false, crop_pad: 2 },
            seed: args.seed,
            label: format!("lambda {lambda}"),
            ..Default::default()
        };
        let fitted = fit(&mut net, &train, &opts)?;
        let out = net.infer(&test.images)?;
        let predictions = out.predictions(10);
        let accuracy = predictions.iter().zip(&test.labels).filter(|(p, y)| p == y).count() as f64 / test.len() as f64;
        let c = eval::compactness(&out.embeddings, 2, &test.labels);
        let points: Vec<[f32; 2]> = out.embeddings.chunks(2).map(|p| [p[0], p[1]]).collect();
        let centers = match net.center_loss() {
            Some(cl) => cl.centers()?.chunks(2).map(|p| [p[0], p[1]]).collect(),
            None => eval::class_means(&out.embeddings, 2, &test.labels)
                .values()
                .map(|m| [m[0] as f32, m[1] as f32])
                .collect::<Vec<_>>(),
        };
        let png = args.out.join(format!("features_lambda_{lambda}.png"));
        let title = format!("LeNet++ test features, lambda = {lambda} (accuracy {:.2}%)", 100.0 * accuracy);
        plot::scatter_2d(&png, &title, &points, &test.labels, Some(&centers))?;
        println!(
            "| {lambda} | {:.2}% | {:.3} | {:.3} | {:.3} | {:.1} |",
            100.0 * accuracy,
            c.intra,
            c.inter,
            c.ratio,
            fitted.images_per_second
        );
        eprintln!("wrote {}", png.display());
        runs.push(serde_json::json!({
            "lambda": lambda,
            "test_accuracy": accuracy,
            "intra_class_distance": c.intra,
            "inter_center_distance": c.inter,
            "intra_inter_ratio": c.ratio,
            "images_per_second": fitted.images_per_second,
            "train_seconds": fitted.train_seconds,
            "steps": fitted.steps,
            "plot": png.display().to_string(),
        }));
    }
    if let Some(path) = &args.report_json {
        let report = serde_json::json!({
            "adapter": ctx.adapter_summary(),
            "train_images": train.len(),
            "test_images": test.len(),
            "epochs": args.epochs,
            "batch": args.batch,
            "alpha": args.alpha,
            "seed": args.seed,
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
