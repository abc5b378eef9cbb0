//! `centerloss search`: 1:N search of probes in a gallery on the GPU, as CSV.

use std::path::PathBuf;

use clap::Args;

use super::super::rows::csv_bytes;
use super::super::values;
use super::{rows_of, Undecodable};
use crate::files::{check_output, path_bytes, write_atomic};
use crate::model::Model;
use crate::search::{GallerySearch, Hit};
use crate::{Error, GpuContext, Result};

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

/// `centerloss search`: the best gallery rows of every probe, as CSV, and the rank-1 rate
/// where probes and gallery name identities. A probe never matches its own file.
pub fn run(args: &SearchArgs) -> Result<()> {
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
