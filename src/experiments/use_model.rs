//! The commands that use a trained model: `embed` image files, `verify` two images or a
//! list of pairs, `search` a gallery. Inputs are read with the preprocessing the model
//! records. Outputs are checked before any work (none may be an input), and every output
//! file is written whole or not at all (a temporary file renamed; E.npy and E.csv together).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::rows::{csv_bytes, output_files, Rows};
use super::values;
use crate::data::bin::VerificationSet;
use crate::data::folder::{numbered_names, ImageFolder};
use crate::data::recordio::RecordPack;
use crate::data::{npy, read_pairs, ImageSource};
use crate::eval::benchmark::{evaluate_benchmark, BenchmarkReport};
use crate::eval::{self, OperatingPoint};
use crate::files::{check_output, path_bytes, write_atomic};
use crate::model::{Embedded, Model};
use crate::search::{GallerySearch, Hit};
use crate::{Error, GpuContext, Result};

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

/// `centerloss search`: 1:N search of probes in a gallery.
#[derive(Args, Clone, Debug)]
pub struct SearchArgs {
    /// The model.
    #[arg(long)]
    pub model: PathBuf,
    /// The gallery: images (as for embed) or an E.npy that embed wrote (E.csv beside it names the rows).
    #[arg(long)]
    pub gallery: PathBuf,
    /// The probes: images (as for embed) or an E.npy.
    #[arg(long)]
    pub probe: PathBuf,
    /// Hits per probe (at most 64 and the gallery's size).
    #[arg(long, default_value_t = 5, value_parser = values::count(1..=crate::search::TOP_K_MAX as u64))]
    pub top_k: usize,
    /// Write the hits as CSV (probe, rank, gallery path, identity, score); default: stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

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
pub fn run_export(args: &ExportArgs) -> Result<()> {
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

/// What to do with an image that does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undecodable {
    /// Skip it (logged), and say how many were skipped.
    Skip,
    /// Fail: a verdict depends on it (a probe, a pair), or `--strict` asks so.
    Fail,
}

/// Lists `input`'s images and embeds them; none readable is an error, and so is any that
/// does not decode with [`Undecodable::Fail`].
fn embed_input(model: &Model, input: &Path, quiet: bool, undecodable: Undecodable) -> Result<Rows> {
    let source = if RecordPack::is_pack(input) {
        ImageSource::open(input)?
    } else {
        ImageSource::Files(ImageFolder::list_any(input)?)
    };
    let bar = progress_bar(source.len(), quiet, "embedding");
    let Embedded { embeddings, kept, skipped } =
        model.embed_source(&source, &mut |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if kept.is_empty() {
        return Err(Error::Data(format!(
            "{}: none of its {} images could be read ({})",
            input.display(),
            source.len(),
            skipped[0].1
        )));
    }
    if let Some((path, why)) = skipped.first() {
        if undecodable == Undecodable::Fail {
            return Err(Error::Data(format!(
                "{} of the {} images of {} do not decode, first {}: {why}",
                skipped.len(),
                source.len(),
                input.display(),
                path.display()
            )));
        }
        eprintln!("skipped {} of {} images that did not decode (listed above)", skipped.len(), source.len());
    }
    let (paths, identities) = kept.iter().map(|&i| (source.name(i), source.identity(i))).unzip();
    Ok(Rows { embeddings, paths, identities })
}

/// Embeds an .npy of preprocessed inputs, one per row; the rows are named `FILE#row`.
fn embed_pixel_rows(model: &Model, input: &Path) -> Result<Rows> {
    let (pixels, n, len) = npy::read_matrix(input)?;
    if let Some(at) = pixels.iter().position(|v| !v.is_finite()) {
        return Err(Error::Data(format!(
            "{}: row {} holds {} at column {}; inputs are finite",
            input.display(),
            at / len,
            pixels[at],
            at % len
        )));
    }
    if len != model.preprocessing().input_len() {
        return Err(Error::Data(format!(
            "{} holds rows of {len} values but {} takes {:?} = {} values per image",
            input.display(),
            model.path().display(),
            model.preprocessing().input,
            model.preprocessing().input_len()
        )));
    }
    let paths = (0..n).map(|i| PathBuf::from(format!("{}#{i}", input.display()))).collect();
    Ok(Rows { embeddings: model.embed_pixels(&pixels)?, paths, identities: vec![String::new(); n] })
}

fn progress_bar(len: usize, quiet: bool, label: &str) -> indicatif::ProgressBar {
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(len as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} images")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// Writes `centerloss embed`'s outputs.
pub fn run_embed(args: &EmbedArgs) -> Result<()> {
    for out in output_files(&args.out) {
        check_output(&out, "--out", &[&args.model, &args.input], true)?;
    }
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    let rows = if args.input.extension().is_some_and(|e| e == "npy") {
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

/// The threshold `args` asks for, with a sentence saying where it comes from.
fn decision_threshold(model: &Model, threshold: Option<f64>, far: Option<f64>) -> Result<(f64, String)> {
    if let Some(t) = threshold {
        return Ok((t, "given".into()));
    }
    let OperatingPoint { target_far, threshold, far, tar, pairs } = model.operating_point(far)?;
    let at = target_far.map_or("the equal-error point".to_string(), |t| format!("FAR <= {t:e}"));
    Ok((
        threshold,
        format!(
            "{at} of the model's evaluation: FAR {far:.4}, TAR {tar:.4} on {} genuine and {} impostor pairs",
            pairs.0, pairs.1
        ),
    ))
}

/// `centerloss verify`: one verdict for two images, or the table of a pairs list.
pub fn run_verify(args: &VerifyArgs) -> Result<()> {
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
    crate::files::open(pairs_file)?; // before the folder is embedded, not after
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

/// Gallery or probe rows from images, or from an E.npy (E.csv beside it names the rows).
fn rows_of(model: &Model, input: &Path, what: &str, quiet: bool, undecodable: Undecodable) -> Result<Rows> {
    if input.extension().is_some_and(|e| e == "npy") {
        let mut rows = Rows::read_npy(input, what, model.dim())?;
        crate::model::normalize_rows(&mut rows.embeddings, model.dim());
        Ok(rows)
    } else {
        embed_input(model, input, quiet, undecodable)
    }
}

/// `centerloss search`: the best gallery rows of every probe, as CSV, and the rank-1 rate
/// where probes and gallery name identities. A probe never matches its own file.
pub fn run_search(args: &SearchArgs) -> Result<()> {
    if let Some(out) = &args.out {
        let (gallery_csv, probe_csv) = (args.gallery.with_extension("csv"), args.probe.with_extension("csv"));
        check_output(out, "--out", &[&args.model, &args.gallery, &args.probe, &gallery_csv, &probe_csv], false)?;
    }
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    let gallery = rows_of(&model, &args.gallery, "gallery", args.quiet, Undecodable::Skip)?;
    // Every probe's hits are a verdict: a probe that does not decode is an error.
    let probes = rows_of(&model, &args.probe, "probe", args.quiet, Undecodable::Fail)?;
    let rows = gallery.paths.len();
    if rows == 0 {
        return Err(Error::Data(format!("the gallery {} holds no rows", args.gallery.display())));
    }
    if args.top_k > rows {
        return Err(Error::Config(format!(
            "--top-k {} asks for more hits than the gallery {} holds ({rows})",
            args.top_k,
            args.gallery.display()
        )));
    }
    let overlap = gallery.paths.iter().any(|p| probes.paths.contains(p));
    let k = if overlap { (args.top_k + 1).min(rows).min(64) } else { args.top_k };
    let mut search = GallerySearch::new(&ctx, &gallery.embeddings, model.dim(), k)?;
    let hits = search.search(&probes.embeddings)?;
    let mut records = Vec::new();
    let (mut asked, mut first_right) = (0usize, 0usize);
    let known: std::collections::HashSet<&str> =
        gallery.identities.iter().map(String::as_str).filter(|id| !id.is_empty()).collect();
    for ((probe, identity), found) in probes.paths.iter().zip(&probes.identities).zip(hits) {
        let found: Vec<Hit> = found.into_iter().filter(|h| &gallery.paths[h.index] != probe).take(args.top_k).collect();
        if known.contains(identity.as_str()) {
            asked += 1;
            first_right += found.first().is_some_and(|h| &gallery.identities[h.index] == identity) as usize;
        }
        for (rank, hit) in found.iter().enumerate() {
            records.push([
                path_bytes(probe),
                (rank + 1).to_string().into_bytes().into(),
                path_bytes(&gallery.paths[hit.index]),
                gallery.identities[hit.index].as_bytes().into(),
                format!("{:.6}", hit.score).into_bytes().into(),
            ]);
        }
    }
    let csv = csv_bytes(&["probe", "rank", "gallery_path", "identity", "score"], records)?;
    match &args.out {
        Some(out) => {
            write_atomic(out, &csv)?;
            eprintln!("wrote the top {} of {} probes to {}", args.top_k, probes.paths.len(), out.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&csv).map_err(|source| Error::Io { path: "standard output".into(), source })?
        }
    }
    if asked > 0 {
        eprintln!(
            "rank-1: {:.2}% of the {asked} probes whose identity the gallery holds",
            100.0 * first_right as f64 / asked as f64
        );
    }
    Ok(())
}
