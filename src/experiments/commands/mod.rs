//! The `centerloss` command, one file per subcommand (as cargo's `src/bin/cargo/commands/`):
//! each holds its arguments (clap) and its `run` over a library call. `faces` and `mnist`
//! train; `embed`, `verify`, `search` and `export` use a trained model, reading inputs with
//! the preprocessing it records. Outputs are checked before any work (none may be an
//! input), and every output file is written whole or not at all (a temporary file renamed;
//! E.npy and E.csv together).

// clap prints these doc comments as `--help`, where ROOT/<identity>/<image> is a path
// pattern, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};

use super::rows::Rows;
use crate::data::{npy, ImageSource, InputKind};
use crate::eval::OperatingPoint;
use crate::model::{Embedded, Model};
use crate::{Error, Result};

pub mod embed;
pub mod export;
pub mod faces;
pub mod mnist;
pub mod search;
pub mod verify;

/// What to do with an image that does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Undecodable {
    /// Skip it (logged), and say how many were skipped.
    Skip,
    /// Fail: a verdict depends on it (a probe, a pair), or `--strict` asks so.
    Fail,
}

/// Lists `input`'s images and embeds them; none readable is an error, and so is any that
/// does not decode with [`Undecodable::Fail`].
pub(super) fn embed_input(model: &Model, input: &Path, quiet: bool, undecodable: Undecodable) -> Result<Rows> {
    let source = ImageSource::open_any(input)?;
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
pub(super) fn embed_pixel_rows(model: &Model, input: &Path) -> Result<Rows> {
    let (pixels, n, len) = npy::read_matrix(input)?;
    if let Some((row, column, value)) = npy::first_non_finite(&pixels, len) {
        return Err(Error::Data(format!(
            "{}: row {row} holds {value} at column {column}; inputs are finite",
            input.display()
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

/// A progress bar over `len` images, hidden with `quiet`.
pub(super) fn progress_bar(len: usize, quiet: bool, label: &str) -> indicatif::ProgressBar {
    let bar = if quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(len as u64) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} images")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// The threshold `args` asks for, with a sentence saying where it comes from.
pub(super) fn decision_threshold(model: &Model, threshold: Option<f64>, far: Option<f64>) -> Result<(f64, String)> {
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

/// Gallery or probe rows from images, or from an E.npy (E.csv beside it names the rows).
pub(super) fn rows_of(model: &Model, input: &Path, what: &str, quiet: bool, undecodable: Undecodable) -> Result<Rows> {
    if InputKind::of(input)? == InputKind::Npy {
        let mut rows = Rows::read_npy(input, what, model.dim())?;
        crate::model::normalize_rows(&mut rows.embeddings, model.dim());
        Ok(rows)
    } else {
        embed_input(model, input, quiet, undecodable)
    }
}

/// Writes `json` to `path`, pretty-printed (whole or not at all).
pub(super) fn write_json(path: &std::path::Path, json: &serde_json::Value) -> crate::Result<()> {
    let text = serde_json::to_string_pretty(json).map_err(|e| crate::Error::Internal(format!("JSON: {e}")))?;
    crate::files::write_atomic(path, text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Runs `job` on the default device, or under an MPI launcher (built with `--features
/// mpi`) as this rank on its device, each rank training its rows of every batch; the
/// report is `None` on ranks other than 0, which report nothing.
pub(super) fn launched<R>(
    job: impl FnOnce(&crate::GpuContext, Option<&dyn crate::collective::Collective>) -> crate::Result<Option<R>>,
) -> crate::Result<Option<R>> {
    let (comm, ctx) = super::launch()?;
    eprintln!("adapter: {}", ctx.adapter_summary());
    job(&ctx, comm.as_deref())
}
