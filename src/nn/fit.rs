//! The training loop shared by the examples: a step budget over seeded epochs of full
//! batches, augmentation, a progress bar (epoch, step, softmax loss, center loss,
//! accuracy, images/s, and whatever the periodic hook reports, e.g. validation accuracy).
//!
//! The batch order and augmentation of step `s` depend only on the seed and `s`, so a run
//! resumed from a checkpoint at any step (mid-epoch too) continues exactly where an
//! uninterrupted run would be.

use std::time::Instant;

use rand::{rngs::StdRng, SeedableRng};

use super::network::{Network, StepMetrics};
use crate::collective::Collective;
use crate::data::{epoch_batches, Augment, Dataset};
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
    train(net, data, opts, None, hook)
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
    train(net, data, opts, Some(comm), hook)
}

fn train(
    net: &mut Network,
    data: &Dataset,
    opts: &FitOptions,
    comm: Option<&dyn Collective>,
    hook: &mut dyn FnMut(&mut Network, u64) -> Result<Option<String>>,
) -> Result<FitReport> {
    let (rank, members) = comm.map_or((0, 1), |c| (c.rank(), c.size()));
    let shard = net.train_config().batch;
    let batch = shard * members;
    if data.len() < batch {
        return Err(Error::Data(format!("{} training images are fewer than one batch of {batch}", data.len())));
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
    let per_epoch = (data.len() / batch) as u64;
    let epochs = opts.steps.div_ceil(per_epoch);
    let first = net.step_count();
    let bar = Progress::new(opts.steps, opts.progress && rank == 0, &opts.label);
    bar.inc(first.min(opts.steps));
    let mut report = FitReport::default();
    let mut hooked = String::new();
    let mut hook_seconds = 0.0;
    let start = Instant::now();
    let mut images = vec![0.0f32; batch * data.image_len()];
    let mut labels = vec![0u32; batch];
    let mut step = first;
    while step < opts.steps {
        let epoch = step / per_epoch;
        let mut rng = StdRng::seed_from_u64(opts.seed ^ (epoch + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let order = epoch_batches(data.len(), batch, &mut rng);
        // Batches of this epoch already trained (a resumed run): replay their draws.
        opts.augment.skip((step % per_epoch) as usize * batch, &mut rng);
        for idx in &order[(step % per_epoch) as usize..] {
            if step >= opts.steps {
                break;
            }
            for (slot, &j) in idx.iter().enumerate() {
                images[slot * data.image_len()..(slot + 1) * data.image_len()].copy_from_slice(data.image(j));
                labels[slot] = data.labels[j];
            }
            opts.augment.apply(&mut images, data.shape, &mut rng);
            let last = step + 1 == opts.steps;
            let read = last || (report.steps as usize).is_multiple_of(opts.report_every.max(1));
            let metrics = match comm {
                Some(comm) => {
                    let (pixels, rows) = (data.image_len(), rank * shard..(rank + 1) * shard);
                    let own = &images[rows.start * pixels..rows.end * pixels];
                    net.train_step_collective(own, &labels[rows], comm, read)?
                }
                None => net.train_step(&images, &labels, read)?,
            };
            if let Some(m) = metrics {
                if !m.softmax_loss.is_finite() {
                    return Err(Error::Data(format!("training diverged at step {step}: loss {}", m.softmax_loss)));
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
