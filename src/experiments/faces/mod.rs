//! The main job: a face-embedding network trained with softmax + center loss (and, to
//! compare, softmax alone, or ArcFace / CosFace heads with and without center loss),
//! evaluated on identities never seen in training.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

mod data;
mod options;
mod report;

use data::{load, Data};
pub use options::*;
pub use report::{FaceReport, VariantReport};

use super::training::{
    classify_sample, classify_store, infer_store, store_labels, train_rounds, Plan, ValidationRecord,
};
use crate::collective::Collective;
use crate::data::{Augment, ImageStore, Preprocessing};
use crate::eval;
use crate::eval::benchmark::{evaluate_benchmark, BenchmarkReport};
use crate::experiments::training::{group, shard_batch};
use crate::nn::{fit, CenterFeatures, FitOptions, Network, NetworkSpec, SgdConfig, TrainConfig};
use crate::{checkpoint, plot, CenterLossConfig, Error, GpuContext, Result};

/// The final training accuracy is measured on at most this many training images (a seeded
/// sample of a larger set).
pub const TRAIN_ACCURACY_IMAGES: usize = 20_000;

/// The options that decide a variant's training, one `name=value` line each, as a
/// checkpoint records them: resuming with any of them changed is refused. Every field of
/// [`FaceOptions`] is named below, in the key or as not deciding what trains, so that a new
/// option does not compile until it is placed (the text of the key is what checkpoints
/// already record, so it is written out rather than generated).
fn run_key(opts: &FaceOptions, plan: &Plan, loss: Loss) -> String {
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

/// Seconds one training step takes, from forward and backward passes on the first
/// training batch after [`Network::warm_up`] (no update, so the run is unchanged).
fn seconds_per_step(net: &mut Network, data: &dyn ImageStore) -> Result<f64> {
    net.warm_up()?;
    let b = net.train_config().batch;
    let first: Vec<usize> = (0..b.min(data.len())).collect();
    let batch = data.load_many(&first, 0)?;
    net.time_pass(&batch.images, &batch.labels, 3)
}

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

/// The center-loss weight of `loss`: the job's lambda, or 0 without center loss.
fn variant_lambda(opts: &FaceOptions, loss: Loss) -> f32 {
    if loss.with_center() {
        opts.lambda
    } else {
        0.0
    }
}

/// The trainer's configuration of variant `loss`, each of `devices` members taking its
/// share of the batch.
fn train_config(opts: &FaceOptions, plan: &Plan, loss: Loss, devices: usize) -> Result<TrainConfig> {
    let lambda = variant_lambda(opts, loss);
    let normalized = loss.head(opts).normalized;
    let sgd =
        SgdConfig { lr: opts.lr, schedule: plan.schedule(), clip_grad_norm: opts.clip_grad_norm, ..Default::default() };
    Ok(TrainConfig {
        batch: shard_batch(opts.batch, devices)?,
        sgd,
        center: CenterLossConfig { lambda, alpha: opts.alpha, update: opts.center_update, ..Default::default() },
        center_features: if normalized { opts.center_features } else { CenterFeatures::Raw },
        seed: opts.seed,
    })
}

/// With `opts.resume`, restores `net` from `last` when it exists and was written with the
/// options `key`, and returns its validation record (empty otherwise).
fn resume(
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

/// Logs the plan and how long the steps left should take, timed on a training batch.
fn log_estimate(net: &mut Network, data: &Data, plan: &Plan, name: &str) -> Result<()> {
    let remaining = plan.steps.saturating_sub(net.step_count());
    if remaining == 0 {
        return Ok(());
    }
    let per_step = seconds_per_step(net, data.train_store())?;
    log::info!("{name}: {}", plan.describe());
    log::info!(
        "{name}: {remaining} steps to go, about {} of training ({:.0} ms per step measured now)",
        minutes(per_step * remaining as f64),
        1e3 * per_step
    );
    Ok(())
}

/// The evaluation of `net` on the held-out identities (and the pairs, where given), the PCA
/// plot of its embeddings, and its scores on the verification benchmarks.
fn evaluate_variant(
    net: &Network,
    data: &Data,
    opts: &FaceOptions,
    name: &str,
) -> Result<(eval::EvalReport, Vec<BenchmarkReport>)> {
    let test = infer_store(net, data.test.as_ref())?;
    let test_labels = store_labels(data.test.as_ref());
    let dim = net.embed_dim();
    let mut report = eval::evaluate(&test.embeddings, dim, &test_labels, opts.seed);
    if let Some((all, pairs)) = &data.all {
        let emb = infer_store(net, all.as_ref())?.embeddings;
        let labels = store_labels(all.as_ref());
        report.verification = eval::evaluate_pairs(&emb, dim, &labels, pairs, opts.seed).verification;
    }
    let png = opts.out.join(format!("pca_{name}.png"));
    let title = format!("{name}: held-out embeddings of 10 identities (PCA)");
    pca_plot(&png, &title, &test.embeddings, dim, &test_labels)?;
    let preprocessing = Preprocessing::centre(net.spec().input)?;
    let mut embed = |pixels: &[f32]| Ok(net.infer(pixels)?.embeddings);
    let benchmarks = data
        .benchmarks
        .iter()
        .map(|(set_name, set)| evaluate_benchmark(set_name, set, &preprocessing, dim, &mut embed))
        .collect::<Result<Vec<_>>>()?;
    Ok((report, benchmarks))
}

/// How `nn::fit` runs a variant: the plan's budget, the job's augmentation, a hook once
/// per epoch or validation.
fn fit_options(opts: &FaceOptions, plan: &Plan, name: &str) -> FitOptions {
    FitOptions {
        steps: plan.steps,
        augment: if opts.augment { Augment { flip: true, crop_pad: 2 } } else { Augment::NONE },
        seed: opts.seed,
        hook_every: plan.per_epoch.min(plan.validate_every),
        label: name.to_string(),
        progress: opts.progress,
        prefetch: opts.prefetch,
        ..Default::default()
    }
}

fn train_variant(
    ctx: &GpuContext,
    opts: &FaceOptions,
    data: &Data,
    loss: Loss,
    comm: Option<&dyn Collective>,
) -> Result<Option<VariantReport>> {
    let name = loss.name();
    let plan = Plan::new(data.train_images, opts.batch, opts.lr, opts.epochs, opts.steps)?;
    let devices = comm.map_or(opts.devices.max(1), |c| c.size());
    let cfg = train_config(opts, &plan, loss, devices)?;
    let head = loss.head(opts);
    let spec = NetworkSpec { head, classifier_bias: !head.normalized, ..opts.spec(data.classes) };
    let mut net = Network::new(ctx, spec.clone(), cfg.clone())?;
    let saves = Checkpoints {
        best: opts.out.join(format!("{name}.safetensors")),
        last: opts.out.join(format!("{name}-last.safetensors")),
        key: run_key(opts, &plan, loss),
        preprocessing: Preprocessing::centre(spec.input)?.to_json(),
    };
    let mut record = resume(opts, &mut net, &saves.last, &saves.key, name, plan.steps)?;
    if comm.is_none_or(|c| c.rank() == 0) {
        log_estimate(&mut net, data, &plan, name)?;
    }
    let cap = if opts.until_converged { plan.convergence_cap(opts.max_steps)? } else { plan.steps };
    let mut fit_opts = fit_options(opts, &plan, name);
    let validation = data.validation.as_ref();
    if opts.until_converged && validation.is_empty() {
        return Err(Error::Config(CONVERGENCE_NEEDS_VALIDATION.into()));
    }
    let converged = Cell::new(record.converged());
    let mut hook = |net: &mut Network, step: u64| -> Result<Option<String>> {
        let text = saves.at_step(net, step, plan.validates_at(step, cap), validation, &mut record)?;
        converged.set(record.converged());
        Ok(text)
    };
    // Past the first round, the other devices' networks start from the lead's last
    // checkpoint, which the hook wrote at the round's last step.
    let from_last = AtomicBool::new(opts.resume && saves.last.exists());
    let build = |ctx: &GpuContext| -> Result<Network> {
        let mut net = Network::new(ctx, spec.clone(), cfg.clone())?;
        if from_last.load(Ordering::Relaxed) {
            checkpoint::load(&mut net, &saves.last)?;
        }
        Ok(net)
    };
    let start = net.step_count();
    let fitted = train_rounds(&plan, cap, start, comm, &|| converged.get(), &mut |target| {
        fit_opts.steps = target;
        let report = fit(&mut net, data.training_set(), &fit_opts, group(comm, devices, &build), Some(&mut hook));
        from_last.store(true, Ordering::Relaxed);
        report
    })?;
    // Ranks other than 0 train their shards; rank 0 validates, saves and evaluates.
    if comm.is_some_and(|c| c.rank() > 0) {
        return Ok(None);
    }
    let steps = net.step_count();
    let evaluated_step = record.best().map_or(steps, |b| b.0);
    let (eval, benchmarks, final_train_accuracy) =
        evaluate_best(&mut net, data, opts, name, (&saves.best, saves.preprocessing.clone()), &record, evaluated_step)?;
    Ok(Some(VariantReport {
        name,
        lambda: cfg.center.lambda,
        head,
        eval,
        benchmarks,
        train_seconds: fitted.train_seconds,
        images_per_second: fitted.images_per_second,
        final_train_batch_accuracy: fitted.history.last().map_or(0.0, |(_, m)| m.accuracy),
        final_train_accuracy,
        best_validation_accuracy: record.best().map(|b| b.1),
        converged: record.converged(),
        steps,
        budget: plan.steps,
        evaluated_step,
        checkpoint: saves.best.clone(),
        gemm_tiles: net.graph().gemm_tiles_summary(),
    }))
}

/// Where a variant's checkpoints go and what they record: `best`, the model file validation
/// picks (with its preprocessing), and `last`, the latest state with the run's key and
/// validation record (what `--resume` continues from).
struct Checkpoints {
    best: PathBuf,
    last: PathBuf,
    key: String,
    preprocessing: String,
}

impl Checkpoints {
    /// The fit's hook at `step`: with `validates`, measure `validation` into `record` and
    /// save `best` when it improved (every time when there are no validation images); then
    /// save `last`. Returns what the progress bar shows.
    fn at_step(
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
}

/// What `--until-converged` without validation images is told.
const CONVERGENCE_NEEDS_VALIDATION: &str =
    "training until convergence watches validation accuracy: give a validation fraction above 0 (--validation)";

/// Loads the checkpoint validation chose (`best`, written with `preprocessing`) into
/// `net`, evaluates it on the held-out identities and the benchmarks, and records the
/// thresholds it found in the file. Returns the evaluation, the benchmarks' reports and
/// the training accuracy of a sample.
fn evaluate_best(
    net: &mut Network,
    data: &Data,
    opts: &FaceOptions,
    name: &str,
    (best, preprocessing): (&Path, String),
    record: &ValidationRecord,
    evaluated_step: u64,
) -> Result<(eval::EvalReport, Vec<BenchmarkReport>, f64)> {
    checkpoint::load(net, best)?;
    let (final_train_accuracy, _) = classify_sample(net, data.train_store(), TRAIN_ACCURACY_IMAGES, opts.seed)?;
    log::info!(
        "{name}: evaluating the checkpoint of step {evaluated_step} (training accuracy {final_train_accuracy:.3}{})",
        record.best().map_or(String::new(), |b| format!(", validation accuracy {:.3}", b.1))
    );
    let (eval, benchmarks) = evaluate_variant(net, data, opts, name)?;
    record_thresholds(net, best, preprocessing, &eval)?;
    Ok((eval, benchmarks, final_train_accuracy))
}

/// Rewrites the evaluated model file `best` with its preprocessing and the verification
/// thresholds its held-out pairs gave, so that `centerloss verify` can decide with them.
fn record_thresholds(net: &Network, best: &Path, preprocessing: String, eval: &eval::EvalReport) -> Result<()> {
    let points = serde_json::to_string(&eval.verification.operating_points)
        .map_err(|e| Error::Internal(format!("operating points: {e}")))?;
    checkpoint::save_with(
        net,
        best,
        &[(checkpoint::PREPROCESSING, preprocessing), (checkpoint::OPERATING_POINTS, points)],
    )
}

/// Writes `png`: the L2-normalised `embeddings` (rows of `dim`) of the first ten
/// identities in `labels`, projected on their two principal axes.
pub fn pca_plot(png: &std::path::Path, title: &str, embeddings: &[f32], dim: usize, labels: &[u32]) -> Result<()> {
    let keep: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] < 10).collect();
    let rows: Vec<f32> = keep.iter().flat_map(|&i| embeddings[i * dim..(i + 1) * dim].iter().copied()).collect();
    let normalized: Vec<f32> = eval::l2_normalized(&rows, dim).into_iter().map(|v| v as f32).collect();
    let ids: Vec<u32> = keep.iter().map(|&i| labels[i]).collect();
    plot::scatter_2d(png, title, &eval::pca_2d(&normalized, dim), &ids, None)
}

/// Loads the data, trains the variant(s), evaluates each on the held-out identities,
/// writes checkpoints (`{variant}-last.safetensors` every epoch, `{variant}.safetensors`
/// for the best by validation, the one evaluated), a ROC plot and PCA plots into
/// `opts.out`. With `opts.resume`, each variant continues from its last checkpoint.
pub fn run(ctx: &GpuContext, opts: &FaceOptions) -> Result<FaceReport> {
    run_on(ctx, opts, None)?.ok_or_else(|| Error::Internal("the lead member returned no report".into()))
}

/// [`run`] as one rank of a data-parallel job (an MPI job, say): every rank passes the
/// same options and loads the same data; each trains its rows of every batch
/// (`opts.batch` / ranks); rank 0 alone validates, writes checkpoints and plots and
/// evaluates, and returns the report (`None` on the other ranks). The figures equal a
/// one-device run's. Resuming needs `opts.out` on a file system every rank sees.
pub fn run_collective(ctx: &GpuContext, opts: &FaceOptions, comm: &dyn Collective) -> Result<Option<FaceReport>> {
    if opts.devices > 1 {
        return Err(Error::Config("use either ranks (a collective) or --devices, not both".into()));
    }
    run_on(ctx, opts, Some(comm))
}

/// Checks the options and the network they ask for (its sizes against the adapter, with
/// the built-in set's classes or, before a folder is read, one) before anything is read,
/// generated or written.
fn check(ctx: &GpuContext, opts: &FaceOptions, devices: usize) -> Result<()> {
    opts.validate()?;
    let classes = match &opts.source {
        FaceSource::BuiltIn(cfg) => cfg.train_identities,
        _ => 1,
    };
    opts.spec(classes).footprint(shard_batch(opts.batch, devices)?, &ctx.limits(), ctx.kernels())?;
    Ok(())
}

fn run_on(ctx: &GpuContext, opts: &FaceOptions, comm: Option<&dyn Collective>) -> Result<Option<FaceReport>> {
    let lead = comm.is_none_or(|c| c.rank() == 0);
    check(ctx, opts, comm.map_or(opts.devices.max(1), |c| c.size()))?;
    std::fs::create_dir_all(&opts.out).map_err(|source| Error::Io { path: opts.out.display().to_string(), source })?;
    if lead {
        let stale = checkpoint::remove_stale_temporaries(&opts.out)?;
        if stale > 0 {
            log::info!("removed {stale} temporary checkpoint files a killed run left in {}", opts.out.display());
        }
    }
    let data = load(opts, comm)?;
    if lead {
        log::info!("{}", data.description);
    }
    let (mut reports, mut diverged) = (Vec::new(), Vec::new());
    let losses = variants(opts);
    for &loss in &losses {
        match train_variant(ctx, opts, &data, loss, comm) {
            Ok(report) => reports.extend(report),
            // One variant that diverges does not cost the others their run; every rank sees
            // the same (global) loss, so every rank goes on alike.
            Err(e @ Error::Diverged { .. }) if losses.len() > 1 => {
                log::error!("{}: {e}; training the other variants", loss.name());
                diverged.push((loss.name(), e));
            }
            Err(e) => return Err(e),
        }
    }
    // Every variant diverged (the same on every rank): the run's error.
    if diverged.len() == losses.len() {
        if let Some((_, e)) = diverged.pop() {
            return Err(e);
        }
    }
    let variants = reports;
    if !lead {
        return Ok(None);
    }
    let diverged = diverged.into_iter().map(|(name, e)| (name, e.to_string())).collect();
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        variants.iter().map(|v| (v.name, v.eval.verification.roc.clone())).collect();
    let roc_plot = opts.out.join("roc.png");
    let lowest_far = variants.first().map(|v| v.eval.verification.lowest_far);
    plot::roc_curves(&roc_plot, "Verification on held-out identities", &curves, lowest_far)?;
    Ok(Some(FaceReport { data: data.description, adapter: ctx.adapter_summary(), variants, diverged, roc_plot }))
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

    #[test]
    fn variants_add_each_head_alone_with_compare_and_drop_center_at_lambda_0() {
        let names = |opts: &FaceOptions| variants(opts).iter().map(|l| l.name()).collect::<Vec<_>>().join(",");
        let opts = FaceOptions::default();
        assert_eq!(names(&opts), "center");
        assert_eq!(names(&FaceOptions { compare: true, ..opts.clone() }), "softmax,center");
        assert_eq!(names(&FaceOptions { lambda: 0.0, compare: true, ..opts.clone() }), "softmax");
        let all = FaceOptions { losses: Loss::ALL.to_vec(), compare: true, ..opts.clone() };
        assert_eq!(names(&all), "softmax,center,arcface,arcface+center,cosface,cosface+center");
        let arc = FaceOptions { losses: vec![Loss::ArcfaceCenter], compare: true, ..opts };
        assert_eq!(names(&arc), "arcface,arcface+center");
    }
}
