//! The commands that use a trained model: `embed` image files, `verify` two images or a
//! list of pairs, `search` a gallery. Inputs are read with the preprocessing the model
//! records; every output file is written whole or not at all (a temporary file renamed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;
use safetensors::tensor::{Dtype, TensorView};

use crate::checkpoint::write_atomic;
use crate::data::bin::VerificationSet;
use crate::data::folder::{numbered_names, ImageFolder};
use crate::data::recordio::RecordPack;
use crate::data::{npy, parse_pairs, ImageSource};
use crate::eval::benchmark::{evaluate_benchmark, BenchmarkReport};
use crate::eval::{self, OperatingPoint};
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
    #[arg(long, conflicts_with = "threshold")]
    pub far: Option<f64>,
    /// Decide at this cosine similarity instead.
    #[arg(long)]
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
    #[arg(long, default_value_t = 5)]
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

/// Embedded rows with the file and identity of each.
struct Rows {
    embeddings: Vec<f32>,
    paths: Vec<PathBuf>,
    identities: Vec<String>,
}

/// Lists `input`'s images and embeds them (skipped files are logged); none readable is an error.
fn embed_input(model: &Model, input: &Path, quiet: bool) -> Result<Rows> {
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
    if !skipped.is_empty() {
        eprintln!("skipped {} of {} images that did not decode (listed above)", skipped.len(), source.len());
    }
    let (paths, identities) = kept.iter().map(|&i| (source.name(i), source.identity(i))).unzip();
    Ok(Rows { embeddings, paths, identities })
}

/// Embeds an .npy of preprocessed inputs, one per row; the rows are named `FILE#row`.
fn embed_pixel_rows(model: &Model, input: &Path) -> Result<Rows> {
    let (pixels, n, len) = npy::read_matrix(input)?;
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

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The files `--out E` names: (E.npy, E.csv), or None for a .safetensors output.
fn npy_outputs(out: &Path) -> Option<(PathBuf, PathBuf)> {
    match out.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => None,
        Some("npy") | Some("csv") => Some((out.with_extension("npy"), out.with_extension("csv"))),
        _ => {
            let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Some((out.with_file_name(format!("{name}.npy")), out.with_file_name(format!("{name}.csv"))))
        }
    }
}

/// Writes `centerloss embed`'s outputs.
pub fn run_embed(args: &EmbedArgs) -> Result<()> {
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    let rows = if args.input.extension().is_some_and(|e| e == "npy") {
        embed_pixel_rows(&model, &args.input)?
    } else {
        embed_input(&model, &args.input, args.quiet)?
    };
    let (n, dim) = (rows.paths.len(), model.dim());
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.display().to_string(), source })?;
    }
    match npy_outputs(&args.out) {
        Some((npy_path, csv_path)) => {
            write_atomic(&npy_path, &npy::encode(&rows.embeddings, n, dim)?)?;
            let mut csv = String::from("index,path,identity\n");
            for (i, (path, identity)) in rows.paths.iter().zip(&rows.identities).enumerate() {
                csv.push_str(&format!("{i},{},{}\n", csv_field(&path.to_string_lossy()), csv_field(identity)));
            }
            write_atomic(&csv_path, csv.as_bytes())?;
            eprintln!("wrote {n} embeddings of {dim} values: {} and {}", npy_path.display(), csv_path.display());
        }
        None => {
            let bytes: Vec<u8> = bytemuck::cast_slice(&rows.embeddings).to_vec();
            let view = TensorView::new(Dtype::F32, vec![n, dim], &bytes).map_err(|e| Error::Internal(e.to_string()))?;
            let paths: Vec<String> = rows.paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let metadata = HashMap::from([
                ("paths".to_string(), serde_json::to_string(&paths).expect("strings serialise")),
                ("identities".to_string(), serde_json::to_string(&rows.identities).expect("strings serialise")),
                ("model".to_string(), args.model.display().to_string()),
            ]);
            let bytes = safetensors::serialize([("embeddings", view)], Some(metadata))
                .map_err(|e| Error::Internal(e.to_string()))?;
            write_atomic(&args.out, &bytes)?;
            eprintln!("wrote {n} embeddings of {dim} values to {}", args.out.display());
        }
    }
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
        return Err(Error::Data(format!("{} does not decode as an image: {why}", path.display())));
    }
    let dim = model.dim();
    let e = &embedded.embeddings;
    let score: f64 = e[..dim].iter().zip(&e[dim..]).map(|(&x, &y)| x as f64 * y as f64).sum();
    let (threshold, source) = decision_threshold(&model, args.threshold, args.far)?;
    println!("cosine similarity {score:.4}");
    println!("threshold {threshold:.4} ({source})");
    println!("{}", if score >= threshold { "same person" } else { "different people" });
    Ok(())
}

/// Scores the model on verification benchmarks and prints their table.
fn verify_benchmarks(model: &Model, bins: &[PathBuf]) -> Result<()> {
    let sets = VerificationSet::read_all(bins)?;
    let lead = model.path().file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let mut embed = |pixels: &[f32]| Ok(model.network().infer(pixels)?.embeddings);
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
    let text = std::fs::read_to_string(pairs_file)
        .map_err(|source| Error::Io { path: pairs_file.display().to_string(), source })?;
    let rows = embed_input(model, data, true)?;
    let numbered = numbered_names(rows.identities.iter().map(String::as_str));
    let pairs = parse_pairs(&text, &numbered).map_err(|e| Error::Data(format!("{}: {e}", pairs_file.display())))?;
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
fn rows_of(model: &Model, input: &Path, what: &str, quiet: bool) -> Result<Rows> {
    if input.extension().is_none_or(|e| e != "npy") {
        return embed_input(model, input, quiet);
    }
    let (mut embeddings, n, dim) = npy::read_matrix(input)?;
    if dim != model.dim() {
        return Err(Error::Data(format!(
            "{what} {} holds {dim}-value rows but {} embeds {} values: embed the {what} with this model (centerloss embed)",
            input.display(),
            model.path().display(),
            model.dim()
        )));
    }
    crate::model::normalize_rows(&mut embeddings, dim);
    let csv = input.with_extension("csv");
    let (mut paths, mut identities): (Vec<PathBuf>, Vec<String>) =
        (0..n).map(|i| (PathBuf::from(format!("{}#{i}", input.display())), String::new())).unzip();
    if let Ok(text) = std::fs::read_to_string(&csv) {
        for (i, line) in text.lines().skip(1).enumerate().take(n) {
            let fields = split_csv(line);
            if let [_, path, identity] = &fields[..] {
                paths[i] = PathBuf::from(path);
                identities[i] = identity.clone();
            }
        }
    }
    Ok(Rows { embeddings, paths, identities })
}

/// The fields of one CSV line as [`csv_field`] writes them.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// `centerloss search`: the best gallery rows of every probe, as CSV, and the rank-1 rate
/// where probes and gallery name identities. A probe never matches its own file.
pub fn run_search(args: &SearchArgs) -> Result<()> {
    let ctx = GpuContext::new()?;
    let model = Model::open(&ctx, &args.model)?;
    let gallery = rows_of(&model, &args.gallery, "gallery", args.quiet)?;
    let probes = rows_of(&model, &args.probe, "probe", args.quiet)?;
    let rows = gallery.paths.len();
    if args.top_k == 0 || args.top_k > rows.min(64) {
        return Err(Error::Config(format!(
            "--top-k must be in 1..={} ({} holds {rows} images; at most 64 hits per probe), got {}",
            rows.min(64),
            args.gallery.display(),
            args.top_k
        )));
    }
    let overlap = gallery.paths.iter().any(|p| probes.paths.contains(p));
    let k = if overlap { (args.top_k + 1).min(rows).min(64) } else { args.top_k };
    let mut search = GallerySearch::new(&ctx, &gallery.embeddings, model.dim(), k)?;
    let hits = search.search(&probes.embeddings)?;
    let mut csv = String::from("probe,rank,gallery_path,identity,score\n");
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
            csv.push_str(&format!(
                "{},{},{},{},{:.6}\n",
                csv_field(&probe.to_string_lossy()),
                rank + 1,
                csv_field(&gallery.paths[hit.index].to_string_lossy()),
                csv_field(&gallery.identities[hit.index]),
                hit.score
            ));
        }
    }
    match &args.out {
        Some(out) => {
            write_atomic(out, csv.as_bytes())?;
            eprintln!("wrote the top {} of {} probes to {}", args.top_k, probes.paths.len(), out.display());
        }
        None => print!("{csv}"),
    }
    if asked > 0 {
        eprintln!(
            "rank-1: {:.2}% of the {asked} probes whose identity the gallery holds",
            100.0 * first_right as f64 / asked as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_round_trip() {
        let fields = ["plain", "a,b", "say \"hi\"", ""];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        assert_eq!(split_csv(&line.join(",")), fields);
    }

    #[test]
    fn out_names_the_npy_and_csv_or_one_safetensors() {
        let (npy, csv) = npy_outputs(Path::new("out/emb")).unwrap();
        assert_eq!((npy, csv), (PathBuf::from("out/emb.npy"), PathBuf::from("out/emb.csv")));
        assert_eq!(npy_outputs(Path::new("e.npy")).unwrap().1, PathBuf::from("e.csv"));
        assert!(npy_outputs(Path::new("e.safetensors")).is_none());
    }
}
