//! What a variant's run records and resumes from: its run key (the options that decide its
//! training), the model file validation picks and the latest state (`--resume`), and the
//! thresholds written into the model once it is evaluated.

use std::path::{Path, PathBuf};

use super::{variant_lambda, FaceOptions, Loss};
use crate::data::ImageStore;
use crate::eval;
use crate::experiments::training::{classify_store, Plan, ValidationRecord};
use crate::nn::Network;
use crate::{checkpoint, Error, Result};

/// The options that decide a variant's training, one `name=value` line each, as a
/// checkpoint records them: resuming with any of them changed is refused. Every field of
/// [`FaceOptions`] is named below, in the key or as not deciding what trains, so that a new
/// option does not compile until it is placed (the text of the key is what checkpoints
/// already record, so it is written out rather than generated).
pub(super) fn run_key(opts: &FaceOptions, plan: &Plan, loss: Loss) -> String {
    let FaceOptions {
        source,
        channels,
        resolution,
        width,
        batch,
        alpha,
        embed_dim,
        seed,
        augment,
        validation_fraction,
        center_update,
        clip_grad_norm,
        center_features,
        // Through the plan (steps, rate, warm-up, milestones), the variant's lambda and head,
        // and whether the network is the paper's.
        network: _,
        epochs: _,
        steps: _,
        lr: _,
        lambda: _,
        losses: _,
        margin_scale: _,
        arcface_margin: _,
        cosface_margin: _,
        // What the run does past the budget, and what it does around training: evaluation,
        // reading (in memory or streamed, the same images), devices (the same steps),
        // output and reporting.
        until_converged: _,
        max_steps: _,
        compare: _,
        pairs: _,
        eval_bins: _,
        in_memory_max: _,
        prefetch: _,
        devices: _,
        resume: _,
        out: _,
        progress: _,
        strict: _,
    } = opts;
    let lambda = variant_lambda(opts, loss);
    let head = loss.head(opts);
    [
        format!("source={source:?}"),
        format!("channels={channels}"),
        format!("resolution={resolution}"),
        format!("batch={batch}"),
        format!("steps={}", plan.steps),
        format!("lr={}", plan.lr),
        format!("warmup={}", plan.warmup),
        format!("milestones={:?}", plan.milestones),
        format!("lambda={lambda}"),
        format!("alpha={alpha}"),
        format!("embed_dim={embed_dim}"),
        format!("seed={seed}"),
        format!("augment={augment}"),
        format!("validation={validation_fraction}"),
        format!("update={center_update:?}"),
    ]
    .into_iter()
    // Only when set: a run without clipping keeps the key of a checkpoint that records none.
    .chain(clip_grad_norm.map(|c| format!("clip_grad_norm={c}")))
    .chain(width.map(|w| format!("width={w}")))
    .chain(opts.paper_network().then(|| "network=paper".to_string()))
    .chain(head.normalized.then(|| format!("head={}", head.describe())))
    .chain((head.normalized && lambda > 0.0).then(|| format!("center_features={center_features:?}")))
    .collect::<Vec<_>>()
    .join("\n")
}

/// Says which recorded options (lines of [`run_key`]) differ from this run's.
fn key_difference(recorded: &str, now: &str) -> String {
    let (was, is): (Vec<&str>, Vec<&str>) = (recorded.lines().collect(), now.lines().collect());
    let line = |lines: &[&str], i: usize| lines.get(i).copied().unwrap_or("(not set)").to_string();
    let diffs: Vec<String> = (0..was.len().max(is.len()))
        .filter(|&i| was.get(i) != is.get(i))
        .map(|i| format!("was {}, now {}", line(&was, i), line(&is, i)))
        .collect();
    if diffs.is_empty() {
        "the recorded options differ".into()
    } else {
        diffs.join("; ")
    }
}

/// With `opts.resume`, restores `net` from `last` when it exists and was written with the
/// options `key`, and returns its validation record (empty otherwise).
pub(super) fn resume(
    opts: &FaceOptions,
    net: &mut Network,
    last: &Path,
    key: &str,
    name: &str,
    steps: u64,
) -> Result<ValidationRecord> {
    if !opts.resume {
        return Ok(ValidationRecord::default());
    }
    if !last.exists() {
        log::info!("{name}: no {} to resume from; training from the start", last.display());
        return Ok(ValidationRecord::default());
    }
    let meta = checkpoint::metadata(last)?;
    let recorded = meta.get("run").map(String::as_str).unwrap_or("");
    if recorded != key {
        return Err(Error::Config(format!(
            "{} was written by a run with other options ({}); resume with the same options, or leave out --resume to start over",
            last.display(),
            key_difference(recorded, key)
        )));
    }
    let record = meta.get("validation").and_then(|v| ValidationRecord::decode(v)).ok_or_else(|| Error::Checkpoint {
        path: last.display().to_string(),
        reason: "its validation record is unreadable".into(),
    })?;
    checkpoint::load(net, last)?;
    log::info!("{name}: resumed from {} at step {} of {steps}", last.display(), net.step_count());
    Ok(record)
}

/// Where a variant's checkpoints go and what they record: `best`, the model file validation
/// picks (with its preprocessing), and `last`, the latest state with the run's key and
/// validation record (what `--resume` continues from).
pub(super) struct Checkpoints {
    pub(super) best: PathBuf,
    pub(super) last: PathBuf,
    pub(super) key: String,
    pub(super) preprocessing: String,
}

impl Checkpoints {
    /// The fit's hook at `step`: with `validates`, measure `validation` into `record` and
    /// save `best` when it improved (every time when there are no validation images); then
    /// save `last`. Returns what the progress bar shows.
    pub(super) fn at_step(
        &self,
        net: &mut Network,
        step: u64,
        validates: bool,
        validation: &dyn ImageStore,
        record: &mut ValidationRecord,
    ) -> Result<Option<String>> {
        let model_entries = [(checkpoint::PREPROCESSING, self.preprocessing.clone())];
        let mut text = None;
        if validates {
            if validation.is_empty() {
                checkpoint::save_with(net, &self.best, &model_entries)?;
            } else {
                let (accuracy, loss) = classify_store(net, validation)?;
                if record.push(step, accuracy, loss) {
                    checkpoint::save_with(net, &self.best, &model_entries)?;
                }
                text = Some(format!("val {accuracy:.3}"));
            }
        }
        checkpoint::save_with(net, &self.last, &[("run", self.key.clone()), ("validation", record.encode())])?;
        Ok(text)
    }

    /// Rewrites the evaluated model file `best` with its preprocessing and the verification
    /// thresholds its held-out pairs gave, so that `centerloss verify` can decide with them.
    pub(super) fn record_thresholds(&self, net: &Network, eval: &eval::EvalReport) -> Result<()> {
        let points = serde_json::to_string(&eval.verification.operating_points)
            .map_err(|e| Error::Internal(format!("operating points: {e}")))?;
        let entries = [(checkpoint::PREPROCESSING, self.preprocessing.clone()), (checkpoint::OPERATING_POINTS, points)];
        checkpoint::save_with(net, &self.best, &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_difference_names_changed_and_added_options() {
        let recorded = "batch=64\nlr=0.05";
        assert_eq!(key_difference(recorded, "batch=64\nlr=0.1"), "was lr=0.05, now lr=0.1");
        assert_eq!(
            key_difference(recorded, "batch=64\nlr=0.05\nclip_grad_norm=2"),
            "was (not set), now clip_grad_norm=2"
        );
        // A key without clipping has no clipping line at all.
        let plan = Plan::new(100, 10, 0.05, Some(1), None).unwrap();
        let opts = FaceOptions::default();
        let plain = run_key(&opts, &plan, Loss::Center);
        assert!(!plain.contains("clip") && !plain.contains("head"));
        let clipped = run_key(&FaceOptions { clip_grad_norm: Some(2.0), ..opts.clone() }, &plan, Loss::Center);
        assert_eq!(clipped, format!("{plain}\nclip_grad_norm=2"));
        assert!(run_key(&opts, &plan, Loss::ArcfaceCenter).ends_with("head=margin (s 16, m2 0.5)\ncenter_features=Raw"));
    }
}
