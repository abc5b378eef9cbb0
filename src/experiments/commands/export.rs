//! `centerloss export`: the embedding network as ONNX.

use std::path::PathBuf;

use clap::Args;

use crate::files::{check_output, write_atomic};
use crate::model::Model;
use crate::{GpuContext, Result};

/// `centerloss export`: the embedding network as ONNX.
#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    /// The model.
    #[arg(long)]
    pub model: PathBuf,
    /// The .onnx file to write.
    #[arg(long)]
    pub onnx: PathBuf,
}

/// Writes the model's embedding network as ONNX and prints what a user of it must know.
pub fn run(args: &ExportArgs) -> Result<()> {
    check_output(&args.onnx, "--onnx", &[&args.model], false)?;
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    write_atomic(&args.onnx, &crate::onnx::export(&model)?)?;
    println!("wrote {} (ONNX opset {})", args.onnx.display(), crate::onnx::OPSET);
    println!(
        "input `input`: float32 [batch, {}, {}, {}]",
        model.preprocessing().input[0],
        model.preprocessing().input[1],
        model.preprocessing().input[2]
    );
    println!("  {}", model.preprocessing().describe());
    println!(
        "output `embedding`: float32 [batch, {}], L2-normalised: compare two faces by their dot product",
        model.dim()
    );
    if let Ok(p) = model.operating_point(None) {
        println!("equal-error threshold of the model's evaluation: {:.4} (more in the metadata, centerloss.operating_points)", p.threshold);
    }
    Ok(())
}
