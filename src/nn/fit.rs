//! The training loop shared by the examples: a step budget over seeded epochs of full
//! batches, augmentation, a progress bar (epoch, step, softmax loss, center loss,
//! accuracy, images/s, and whatever the periodic hook reports, e.g. validation accuracy).
//!
//! Batches come from [`Sampler`] and each image's augmentation from (seed, epoch, image):
//! both depend only on the seed and the step, never on how many members train or which
//! rows each holds, so a run resumed from a checkpoint at any step (mid-epoch too), on any
//! number of devices or ranks, continues exactly where an uninterrupted run would be.

use std::time::Instant;

use super::network::{Network, StepMetrics};
use crate::collective::Collective;
use crate::data::{Augment, Dataset, Sampler, Shard};
use crate::{Error, Result};

/// How [`fit`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Total optimisation steps, counting those the network has already taken: a network
    /// restored from a checkpoint at step `s` trains steps `s..steps`.
    pub steps: u64,
    /// Augmentation of each batch.
    pub augment: Augment,
    /// Seed of the shuffles and augmentation.
    pub seed: u64,
    /// Read the step's scalars back every this many steps (and on the last step).
    pub report_every: usize,
    /// Call the hook of [`fit_with`] every this many steps (and after the last step);
    /// 0: only after the last.
    pub hook_every: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// A label for the progress bar.
    pub label: String,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            steps: 1,
            augment: Augment::default(),
            seed: 0,
            report_every: 10,
            hook_every: 0,
            progress: true,
            label: String::new(),
        }
    }
}

impl FitOptions {
    /// The step budget of `epochs` passes over `images` images in batches of `batch`.
    pub fn epochs_to_steps(epochs: usize, images: usize, batch: usize) -> u64 {
        (images / batch.max(1) * epochs) as u64
    }
}

/// What a [`fit`] run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitReport {
    /// Steps taken in this call.
    pub steps: u64,
    /// Wall-clock seconds of training (no evaluation).
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// The scalars read back, with their step numbers.
    pub history: Vec<(u64, StepMetrics)>,
}

/// Trains `net` on `data` until it has taken `opts.steps` steps.
pub fn fit(net: &mut Network, data: &Dataset, opts: &FitOptions) -> Result<FitReport> {
    fit_with(net, data, opts, &mut |_, _| Ok(None))
}

/// [`fit`], calling `hook(net, step)` every `opts.hook_every` steps and after the last
/// (validation, checkpoints); the text it returns joins the progress line. Its time is
/// not counted as training time.
pub fn fit_with(
    net: &mut Network,
    data: &Dataset,
    opts: &FitOptions,
    hook: &mut dyn FnMut(&mut Network, u64) -> Result<Option<String>>,
) -> Result<FitReport> {
    train(net, Images::All(data), opts, None, hook)
}

/// [`fit_with`] as one member of a data-parallel group: every member passes the same
/// data and options and a network with the same batch b; the global batch is N * b,
/// drawn and augmented exactly as [`fit`] with batch N * b draws it, and member r trains
/// on its rows r*b..(r+1)*b ([`Network::train_step_collective`]). The run equals that
/// single-device run, and the members' networks stay bit-identical. Only rank 0 shows
/// progress; the hook runs on every member (let rank 0 alone write files).
pub fn fit_collective(
    net: &mut Network,
    data: &Dataset,
    opts: &FitOptions,
    comm: &dyn Collective,
    hook: &mut dyn FnMut(&mut Network, u64) -> Result<Option<String>>,
) -> Result<FitReport> {
    train(net, Images::All(data), opts, Some(comm), hook)
}

/// [`fit_collective`] for a member that holds only its share of the training set: the
/// images of [`member_images`] (a [`Shard`] of them), so that an MPI rank need not load
/// the others. The run is the same as with the whole set.
pub fn fit_shard(
    net: &mut Network,
    shard: &Shard,
    opts: &FitOptions,
    comm: &dyn Collective,
    hook: &mut dyn FnMut(&mut Network, u64) -> Result<Option<String>>,
) -> Result<FitReport> {
    train(net, Images::Shard(shard), opts, Some(comm), hook)
}

/// The positions in a training set of `images` images of those that member `rank` of
/// `members`, each training `shard` rows of every batch, ever uses (ascending): what its
/// [`Shard`] must hold.
pub fn member_images(images: usize, shard: usize, rank: usize, members: usize, seed: u64) -> Result<Vec<usize>> {
    let sampler = Sampler::new(images, shard * members, seed)?;
    Ok(sampler.images_of(rank * shard..(rank + 1) * shard))
}

/// The training images a member reads: the whole set or its shard.
#[derive(Clone, Copy)]
enum Images<'a> {
    All(&'a Dataset),
    Shard(&'a Shard),
}

impl<'a> Images<'a> {
    fn total(&self) -> usize {
        match self {
            Images::All(d) => d.len(),
            Images::Shard(s) => s.total,
        }
    }

    fn set(&self) -> &'a Dataset {
        match self {
            Images::All(d) => d,
            Images::Shard(s) => &s.data,
        }
    }

    fn get(&self, index: usize) -> Result<(&'a [f32], u32)> {
        match self {
            Images::All(d) => Ok((d.image(index), d.labels[index])),
            Images::Shard(s) => s.get(index).ok_or_else(|| {
                Error::Data(format!(
                    "this member's shard lacks training image {index}; build it with member_images for the same batch, members and seed"
                ))
            }),
        }
    }
}

fn train(
    net: &mut Network,
    images_of: Images,
    opts: &FitOptions,
    comm: Option<&dyn Collective>,
    hook: &mut dyn FnMut(&mut Network, u64) -> Result<Option<String>>,
) -> Result<FitReport> {
    let (rank, members) = comm.map_or((0, 1), |c| (c.rank(), c.size()));
    let shard = net.train_config().batch;
    let batch = shard * members;
    let data = images_of.set();
    if images_of.total() < batch {
        return Err(Error::Data(format!("{} training images are fewer than one batch of {batch}", images_of.total())));
    }
    if data.image_len() != net.input_len() {
        return Err(Error::Data(format!(
            "images of {:?} do not fit the network's input {:?}",
            data.shape,
            net.spec().input
        )));
    }
    if opts.steps == 0 {
        return Err(Error::Config("a training budget of zero steps trains nothing; ask for at least one".into()));
    }
    let sampler = Sampler::new(images_of.total(), batch, opts.seed)?;
    let slots = rank * shard..(rank + 1) * shard;
    let per_epoch = sampler.steps_per_epoch();
    let epochs = opts.steps.div_ceil(per_epoch);
    let first = net.step_count();
    let bar = Progress::new(opts.steps, opts.progress && rank == 0, &opts.label);
    bar.inc(first.min(opts.steps));
    let mut report = FitReport::default();
    let mut hooked = String::new();
    let mut hook_seconds = 0.0;
    let start = Instant::now();
    let pixels = data.image_len();
    let mut images = vec![0.0f32; shard * pixels];
    let mut labels = vec![0u32; shard];
    let mut step = first;
    while step < opts.steps {
        let epoch = step / per_epoch;
        // Each slot's images this epoch; this member builds its own rows alone.
        let order = sampler.epoch(epoch, slots.clone());
        for t in (step % per_epoch) as usize..per_epoch as usize {
            if step >= opts.steps {
                break;
            }
            for (row, pool) in order.iter().enumerate() {
                let (image, label) = images_of.get(pool[t])?;
                let target = &mut images[row * pixels..(row + 1) * pixels];
                target.copy_from_slice(image);
                opts.augment.apply_image(target, data.shape, opts.seed, epoch, pool[t]);
                labels[row] = label;
            }
            let last = step + 1 == opts.steps;
            let read = last || (report.steps as usize).is_multiple_of(opts.report_every.max(1));
            let metrics = match comm {
                Some(comm) => net.train_step_collective(&images, &labels, comm, read)?,
                None => net.train_step(&images, &labels, read)?,
            };
            if let Some(m) = metrics {
                if !m.softmax_loss.is_finite() {
                    return Err(Error::Data(format!(
                        "training diverged at step {step}: loss {} (lower the learning rate, clip the gradients \
                         (--clip-grad-norm, SgdConfig::clip_grad_norm), or try another seed)",
                        m.softmax_loss
                    )));
                }
                report.history.push((net.step_count(), m));
                let rate = (report.steps + 1) as f64 * batch as f64 / (start.elapsed().as_secs_f64() - hook_seconds);
                bar.message(format!(
                    "epoch {}/{epochs} softmax {:.4} center {:.4} acc {:.3}{hooked} {:.0} img/s",
                    epoch + 1,
                    m.softmax_loss,
                    m.center_loss,
                    m.accuracy,
                    rate
                ));
            }
            step += 1;
            report.steps += 1;
            bar.inc(1);
            if last || (opts.hook_every > 0 && step.is_multiple_of(opts.hook_every)) {
                // The steps submitted so far count as training, not as the hook's time.
                net.graph().context().wait_idle()?;
                let t = Instant::now();
                if let Some(text) = hook(net, step)? {
                    hooked = format!(" {text}");
                }
                hook_seconds += t.elapsed().as_secs_f64();
            }
        }
    }
    net.graph().context().wait_idle()?;
    report.train_seconds = start.elapsed().as_secs_f64() - hook_seconds;
    report.images_per_second = report.steps as f64 * batch as f64 / report.train_seconds.max(1e-9);
    bar.finish();
    Ok(report)
}

/// The progress bar of [`fit`] (indicatif, with the `progress` feature).
#[cfg(feature = "progress")]
struct Progress(indicatif::ProgressBar);

#[cfg(feature = "progress")]
impl Progress {
    fn new(total: u64, show: bool, label: &str) -> Self {
        let bar = if show { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::hidden() };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Self(bar)
    }

    fn message(&self, message: String) {
        self.0.set_message(message);
    }

    fn inc(&self, steps: u64) {
        self.0.inc(steps);
    }

    fn finish(&self) {
        self.0.finish();
    }
}

/// Without the `progress` feature, [`fit`] reports through `log` instead of a bar.
#[cfg(not(feature = "progress"))]
struct Progress {
    show: bool,
    label: String,
}

#[cfg(not(feature = "progress"))]
impl Progress {
    fn new(_total: u64, show: bool, label: &str) -> Self {
        Self { show, label: label.to_string() }
    }

    fn message(&self, message: String) {
        if self.show {
            log::info!("{} {message}", self.label);
        }
    }

    fn inc(&self, _steps: u64) {}

    fn finish(&self) {}
}
