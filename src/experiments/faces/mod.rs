//! The main job: a face-embedding network trained with softmax + center loss (and, to
//! compare, softmax alone, or ArcFace / CosFace heads with and without center loss),
//! evaluated on identities never seen in training.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

mod checkpoints;
mod data;
mod options;
mod report;

use checkpoints::{resume, run_key, Checkpoints};
use data::{load, Data};
pub use options::*;
pub use report::{FaceReport, VariantReport};

use super::training::{classify_sample, infer_store, store_labels, train_rounds, Plan, ValidationRecord};
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
        evaluate_best(&mut net, data, opts, name, &saves, &record, evaluated_step)?;
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

/// What `--until-converged` without validation images is told.
const CONVERGENCE_NEEDS_VALIDATION: &str =
    "training until convergence watches validation accuracy: give a validation fraction above 0 (--validation)";

/// Loads the checkpoint validation chose (`saves.best`) into `net`, evaluates it on the
/// held-out identities and the benchmarks, and records the thresholds it found in the file.
/// Returns the evaluation, the benchmarks' reports and the training accuracy of a sample.
fn evaluate_best(
    net: &mut Network,
    data: &Data,
    opts: &FaceOptions,
    name: &str,
    saves: &Checkpoints,
    record: &ValidationRecord,
    evaluated_step: u64,
) -> Result<(eval::EvalReport, Vec<BenchmarkReport>, f64)> {
    checkpoint::load(net, &saves.best)?;
    let (final_train_accuracy, _) = classify_sample(net, data.train_store(), TRAIN_ACCURACY_IMAGES, opts.seed)?;
    log::info!(
        "{name}: evaluating the checkpoint of step {evaluated_step} (training accuracy {final_train_accuracy:.3}{})",
        record.best().map_or(String::new(), |b| format!(", validation accuracy {:.3}", b.1))
    );
    let (eval, benchmarks) = evaluate_variant(net, data, opts, name)?;
    saves.record_thresholds(net, &eval)?;
    Ok((eval, benchmarks, final_train_accuracy))
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
