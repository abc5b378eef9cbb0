//! `centerloss mnist`: the paper's MNIST experiment, LeNet++ with a 2-D embedding and a
//! scatter plot per lambda.

use std::path::PathBuf;

use clap::Args;

use super::super::mnist::MnistOptions;
use super::super::values;
use super::{launched, write_json};

/// The paper's MNIST 2-D experiment.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct MnistArgs {
    /// Folder with the MNIST IDX files (gzipped or raw); t10k alone is enough.
    #[arg(long, default_value_os_t = MnistOptions::default().data)]
    pub data: PathBuf,
    /// Comma-separated center-loss weights; 0 is softmax alone.
    #[arg(long, default_values_t = MnistOptions::default().lambdas, value_delimiter = ',', value_parser = values::non_negative)]
    pub lambdas: Vec<f32>,
    /// Center learning rate.
    #[arg(long, default_value_t = MnistOptions::default().alpha, value_parser = values::alpha)]
    pub alpha: f32,
    /// Passes over the training set.
    #[arg(long, default_value_t = MnistOptions::default().epochs, value_parser = values::count(1..=1_000_000))]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = MnistOptions::default().batch, value_parser = values::count(1..=65_535))]
    pub batch: usize,
    /// Learning rate (divided by 10 at 60% and 85% of training).
    #[arg(long, default_value_t = MnistOptions::default().lr, value_parser = values::positive)]
    pub lr: f32,
    /// Scale the gradients down to this L2 norm (all parameters together) when they exceed
    /// it; 0 turns clipping off.
    #[arg(long, default_value_t = MnistOptions::default().clip_grad_norm.unwrap_or(0.0), value_parser = values::non_negative)]
    pub clip_grad_norm: f32,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = MnistOptions::default().seed)]
    pub seed: u64,
    /// Use at most this many training images (0: all).
    #[arg(long, default_value_t = MnistOptions::default().max_train)]
    pub max_train: usize,
    /// Use at most this many test images (0: all).
    #[arg(long, default_value_t = MnistOptions::default().max_test)]
    pub max_test: usize,
    /// Where the plots go.
    #[arg(long, default_value_os_t = MnistOptions::default().out)]
    pub out: PathBuf,
    /// Train on this many devices in this process (data-parallel: each takes batch / N rows
    /// of every batch; the result equals a one-device run).
    #[arg(long, default_value_t = MnistOptions::default().devices, value_parser = values::count(1..=256))]
    pub devices: usize,
    /// Write the numbers as JSON here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
}

impl MnistArgs {
    /// The experiment's options.
    pub fn options(&self) -> MnistOptions {
        MnistOptions {
            data: self.data.clone(),
            lambdas: self.lambdas.clone(),
            alpha: self.alpha,
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            clip_grad_norm: (self.clip_grad_norm != 0.0).then_some(self.clip_grad_norm),
            seed: self.seed,
            max_train: self.max_train,
            max_test: self.max_test,
            out: self.out.clone(),
            progress: true,
            devices: self.devices,
        }
    }
}

/// Runs the MNIST experiment as a command does (as a rank under an MPI launcher, rank 0
/// alone reporting): prints its table and writes the JSON report.
pub fn run(args: &MnistArgs) -> crate::Result<()> {
    let opts = args.options();
    if let Some(path) = &args.report_json {
        crate::files::check_output(path, "--report-json", &[&args.data], true)?;
    }
    crate::files::check_folder(&opts.out, "--out")?;
    let Some(report) = launched(|ctx, comm| match comm {
        Some(comm) => super::super::mnist::run_collective(ctx, &opts, comm),
        None => super::super::mnist::run(ctx, &opts).map(Some),
    })?
    else {
        return Ok(());
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
    if let Some(r) = report.runs.first() {
        println!("\nGEMM tiles ({}): {}.", report.adapter, r.gemm_tiles);
    }
    eprintln!("plots in {}", opts.out.display());
    match &args.report_json {
        Some(path) => write_json(path, &report.to_json(&opts)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: MnistArgs,
    }

    /// The command's defaults are the library's.
    #[test]
    fn no_option_is_the_library_default() {
        assert_eq!(Command::parse_from(["mnist"]).args.options(), MnistOptions::default());
    }
}
