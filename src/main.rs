//! `centerloss`: train a face-embedding network with softmax + center loss (or run the
//! paper's MNIST experiment), then use the model: embed, verify, search.
//!
//! cargo run --release -- faces --compare                 # built-in faces, both variants
//! cargo run --release -- faces --data DIR --out out/mine # your ROOT/<identity>/<image>
//! cargo run --release -- embed --model out/mine/center.safetensors DIR --out out/mine/emb
//! cargo run --release -- verify --model out/mine/center.safetensors A.jpg B.jpg
//! cargo run --release -- search --model out/mine/center.safetensors --gallery out/mine/emb.npy --probe IMG
//! cargo run --release -- export --model out/mine/center.safetensors --onnx out/mine/face.onnx
//! cargo run --release -- mnist --data data/mnist

use std::process::ExitCode;

use centerloss::experiments::commands::{embed, export, faces, mnist, search, verify};
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
    Faces(Box<faces::FaceArgs>),
    /// The paper's MNIST experiment: LeNet++ with a 2-D embedding, a scatter plot per lambda.
    Mnist(mnist::MnistArgs),
    /// Embed image files with a trained model: E.npy ([N, D] float32) and E.csv, or one .safetensors.
    Embed(embed::EmbedArgs),
    /// Same person or not: two images at the model's recorded threshold, or a pairs list.
    Verify(verify::VerifyArgs),
    /// 1:N search on the GPU: the best gallery images of each probe, as CSV.
    Search(search::SearchArgs),
    /// The embedding network as ONNX (opset 17, dynamic batch), its preprocessing in the metadata.
    Export(export::ExportArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let outcome = match Command::parse().job {
        Job::Faces(args) => faces::run(&args),
        Job::Mnist(args) => mnist::run(&args),
        Job::Embed(args) => embed::run(&args),
        Job::Verify(args) => verify::run(&args),
        Job::Search(args) => search::run(&args),
        Job::Export(args) => export::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
