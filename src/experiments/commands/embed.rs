//! `centerloss embed`: every image's embedding, as E.npy + E.csv or one .safetensors.

use std::path::PathBuf;

use clap::Args;

use super::super::rows::output_files;
use super::{embed_input, embed_pixel_rows, Undecodable};
use crate::data::InputKind;
use crate::files::check_output;
use crate::model::Model;
use crate::{GpuContext, Result};

/// `centerloss embed`: every image's embedding.
#[derive(Args, Clone, Debug)]
pub struct EmbedArgs {
    /// The model: a `.safetensors` a face run wrote (OUT/center.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// A folder of identity folders, a folder of images, a list of `path label` lines, an
    /// image, a RecordIO pack (a folder holding train.rec, or a .rec; rows named
    /// train.rec#key, identities the labels), or an .npy of preprocessed inputs
    /// ([N, C*H*W] float32).
    pub input: PathBuf,
    /// Output: E writes E.npy ([N, D] float32) and E.csv (index, path, identity); a name
    /// ending in .safetensors writes one safetensors file instead.
    #[arg(long)]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Stop with an error when an image does not decode (otherwise it is skipped, and the
    /// command says how many were).
    #[arg(long)]
    pub strict: bool,
}

/// Writes `centerloss embed`'s outputs.
pub fn run(args: &EmbedArgs) -> Result<()> {
    for out in output_files(&args.out) {
        check_output(&out, "--out", &[&args.model, &args.input], true)?;
    }
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    let rows = if InputKind::of(&args.input)? == InputKind::Npy {
        embed_pixel_rows(&model, &args.input)?
    } else {
        let undecodable = if args.strict { Undecodable::Fail } else { Undecodable::Skip };
        embed_input(&model, &args.input, args.quiet, undecodable)?
    };
    let (n, dim) = (rows.paths.len(), model.dim());
    let written = rows.write(&args.out, dim, &args.model)?;
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    eprintln!("wrote {n} embeddings of {dim} values: {}", names.join(" and "));
    Ok(())
}
