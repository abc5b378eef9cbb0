//! The main job: train a face-embedding network with softmax + center loss and evaluate it
//! on identities never seen in training (verification, identification, compactness).
//!
//! cargo run --release --example train_faces                 # built-in faces, center loss
//! cargo run --release --example train_faces -- --compare    # and the softmax-only baseline
//! cargo run --release --example train_faces -- --data DIR   # your ROOT/<identity>/<image>

use centerloss::experiments::commands::faces::{self, FaceArgs};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Train a face-embedding network with softmax + center loss; evaluate on unseen identities")]
struct Command {
    #[command(flatten)]
    args: FaceArgs,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    Ok(faces::run(&Command::parse().args)?)
}
