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

use centerloss::experiments::cli::{run_faces, run_mnist, FaceArgs, MnistArgs};
use centerloss::experiments::use_model::{
    run_embed, run_export, run_search, run_verify, EmbedArgs, ExportArgs, SearchArgs, VerifyArgs,
};
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
    Faces(Box<FaceArgs>),
    /// The paper's MNIST experiment: LeNet++ with a 2-D embedding, a scatter plot per lambda.
    Mnist(MnistArgs),
    /// Embed image files with a trained model: E.npy ([N, D] float32) and E.csv, or one .safetensors.
    Embed(EmbedArgs),
    /// Same person or not: two images at the model's recorded threshold, or a pairs list.
    Verify(VerifyArgs),
    /// 1:N search on the GPU: the best gallery images of each probe, as CSV.
    Search(SearchArgs),
    /// The embedding network as ONNX (opset 17, dynamic batch), its preprocessing in the metadata.
    Export(ExportArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let outcome = match Command::parse().job {
        Job::Faces(args) => run_faces(&args),
        Job::Mnist(args) => run_mnist(&args),
        Job::Embed(args) => run_embed(&args),
        Job::Verify(args) => run_verify(&args),
        Job::Search(args) => run_search(&args),
        Job::Export(args) => run_export(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
