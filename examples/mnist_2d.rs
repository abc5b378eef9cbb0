//! The paper's MNIST experiment (Wen et al. 2016, Figures 2 and 3): LeNet++ with a 2-D
//! embedding, trained with softmax alone (lambda = 0) and with softmax + center loss for
//! each lambda; writes a scatter plot of the 2-D test features per lambda and a JSON report.
//!
//! cargo run --release --example mnist_2d -- --data data/mnist

use centerloss::experiments::commands::mnist::{self, MnistArgs};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "LeNet++ on MNIST with softmax and softmax + center loss (the paper's 2-D experiment)")]
struct Command {
    #[command(flatten)]
    args: MnistArgs,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    Ok(mnist::run(&Command::parse().args)?)
}
