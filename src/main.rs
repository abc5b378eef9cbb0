//! `centerloss`: train a face-embedding network with softmax + center loss, or run the
//! paper's MNIST experiment, from one command.
//!
//! cargo run --release -- faces --compare                 # built-in faces, both variants
//! cargo run --release -- faces --data DIR --out out/mine # your ROOT/<identity>/<image>
//! cargo run --release -- mnist --data ../shared/data/mnist

use std::process::ExitCode;

use centerloss::experiments::cli::{run_faces, run_mnist, FaceArgs, MnistArgs};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "centerloss", version, about = "Discriminative embeddings with softmax + center loss on any GPU")]
struct Command {
    #[command(subcommand)]
    job: Job,
}

#[derive(Subcommand, Debug)]
enum Job {
    /// Train a face-embedding network (softmax, or softmax + center loss) and evaluate it
    /// on identities never seen in training.
    Faces(FaceArgs),
    /// The paper's MNIST experiment: LeNet++ with a 2-D embedding, a scatter plot per lambda.
    Mnist(MnistArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let outcome = match Command::parse().job {
        Job::Faces(args) => run_faces(&args),
        Job::Mnist(args) => run_mnist(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
