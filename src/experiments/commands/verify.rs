//! `centerloss verify`: two images at the model's recorded threshold, an LFW-style pairs
//! list over a folder, or insightface .bin benchmarks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::super::values;
use super::{decision_threshold, embed_input, Undecodable};
use crate::data::bin::VerificationSet;
use crate::data::folder::numbered_names;
use crate::data::read_pairs;
use crate::eval;
use crate::eval::benchmark::{evaluate_benchmark, BenchmarkReport};
use crate::model::Model;
use crate::{Error, GpuContext, Result};

/// `centerloss verify`: two images, or a list of pairs.
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// The model.
    #[arg(long)]
    pub model: PathBuf,
    /// Two images (leave out with --pairs).
    #[arg(num_args = 0..=2)]
    pub images: Vec<PathBuf>,
    /// Decide at the threshold the model's evaluation found for this false-accept rate
    /// (1e-2 or 1e-3, where its pairs resolved it); default: the equal-error threshold.
    #[arg(long, conflicts_with = "threshold", value_parser = values::rate)]
    pub far: Option<f64>,
    /// Decide at this cosine similarity instead (in [-1, 1]).
    #[arg(long, value_parser = values::cosine)]
    pub threshold: Option<f64>,
    /// An LFW-style pairs.txt over the folder --data: prints the verification table.
    #[arg(long, requires = "data")]
    pub pairs: Option<PathBuf>,
    /// The folder of identity folders the pairs name.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Verification benchmarks (insightface .bin files, or a folder of them): prints each
    /// one's standard 10-fold accuracy (image + flip) beside AUC, EER and TAR.
    #[arg(long, value_name = "BIN", value_delimiter = ',', conflicts_with_all = ["pairs", "images"])]
    pub bin: Vec<PathBuf>,
}

/// `centerloss verify`: one verdict for two images, or the table of a pairs list.
pub fn run(args: &VerifyArgs) -> Result<()> {
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    if let (Some(pairs), Some(data)) = (&args.pairs, &args.data) {
        return verify_pairs(&model, pairs, data, args);
    }
    if !args.bin.is_empty() {
        return verify_benchmarks(&model, &args.bin);
    }
    let [a, b] = &args.images[..] else {
        return Err(Error::Config("give two images, --pairs pairs.txt --data DIR, or --bin lfw.bin".into()));
    };
    let embedded = model.embed_files(&[a.clone(), b.clone()], &mut |_| {})?;
    if let Some((path, why)) = embedded.skipped.first() {
        return Err(Error::Data(format!("{}: {why}", path.display())));
    }
    let dim = model.dim();
    let e = &embedded.embeddings;
    let score: f64 = e[..dim].iter().zip(&e[dim..]).map(|(&x, &y)| x as f64 * y as f64).sum();
    let (threshold, source) = decision_threshold(&model, args.threshold, args.far)?;
    if !score.is_finite() {
        return Err(Error::Data(format!(
            "{} gives no finite embedding of {} and {} (similarity {score})",
            args.model.display(),
            a.display(),
            b.display()
        )));
    }
    println!("cosine similarity {score:.4}");
    println!("threshold {threshold:.4} ({source})");
    println!("{}", if score >= threshold { "same person" } else { "different people" });
    Ok(())
}

/// Scores the model on verification benchmarks and prints their table.
fn verify_benchmarks(model: &Model, bins: &[PathBuf]) -> Result<()> {
    let sets = VerificationSet::read_all(bins)?;
    let lead = model.path().file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let mut embed = |pixels: &[f32]| model.network().embed(pixels);
    let mut table = BenchmarkReport::markdown_header("model");
    for (name, set) in &sets {
        table += &evaluate_benchmark(name, set, model.preprocessing(), model.dim(), &mut embed)?.markdown_row(&lead);
    }
    print!("{table}");
    Ok(())
}

/// Verifies an LFW-style pairs list over a folder and prints the table, with the decisions
/// at the model's threshold.
fn verify_pairs(model: &Model, pairs_file: &Path, data: &Path, args: &VerifyArgs) -> Result<()> {
    // The pairs file is opened before the folder is embedded, not after.
    crate::files::open(pairs_file)?;
    // An image left out would renumber its identity's images: every one must decode.
    let rows = embed_input(model, data, true, Undecodable::Fail)?;
    let numbered = numbered_names(rows.identities.iter().map(String::as_str));
    let pairs = read_pairs(pairs_file, &numbered)?;
    let mut label_of: HashMap<&str, u32> = HashMap::new();
    let labels: Vec<u32> = rows
        .identities
        .iter()
        .map(|id| {
            let next = label_of.len() as u32;
            *label_of.entry(id).or_insert(next)
        })
        .collect();
    let report = eval::evaluate_pairs(&rows.embeddings, model.dim(), &labels, &pairs, 0);
    let v = &report.verification;
    let resolved = |t: Option<f64>| t.map_or("not resolved".into(), |t| format!("{:.2}%", 100.0 * t));
    println!("| pairs (genuine / impostor) | accuracy (10-fold) | AUC | EER | TAR@FAR=1e-2 | TAR@FAR=1e-3 |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} / {} | {:.2}% ± {:.2} | {:.4} | {:.4} | {} | {} |",
        v.pairs.0,
        v.pairs.1,
        100.0 * v.accuracy,
        100.0 * v.accuracy_std,
        v.roc_auc,
        v.eer,
        resolved(v.tar_at_far_1e2),
        resolved(v.tar_at_far_1e3)
    );
    let (threshold, source) = decision_threshold(model, args.threshold, args.far)?;
    let scores = eval::pair_scores(&rows.embeddings, model.dim(), &pairs);
    let right = scores.iter().zip(&pairs).filter(|(&s, p)| (s >= threshold) == p.genuine).count();
    println!(
        "at threshold {threshold:.4} ({source}): {right} of {} pairs decided right ({:.2}%)",
        pairs.len(),
        100.0 * right as f64 / pairs.len().max(1) as f64
    );
    Ok(())
}
