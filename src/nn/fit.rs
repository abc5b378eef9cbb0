//! The training loop shared by the examples: seeded epochs of full batches, augmentation,
//! a progress bar (epoch, step, softmax loss, center loss, accuracy, images/s).

use std::time::Instant;

use rand::{rngs::StdRng, SeedableRng};

use super::network::{Network, StepMetrics};
use crate::data::{epoch_batches, Augment, Dataset};
use crate::{Error, Result};

/// How [`fit`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Passes over the training set (counting those already done).
    pub epochs: usize,
    /// Epochs already done (a resumed run starts here; each epoch's shuffle and
    /// augmentation depend only on the seed and the epoch, so resuming is exact).
    pub start_epoch: usize,
    /// Augmentation of each batch.
    pub augment: Augment,
    /// Seed of the shuffles and augmentation.
    pub seed: u64,
    /// Read the step's scalars back every this many steps (and on the last step).
    pub report_every: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// A label for the progress bar.
    pub label: String,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            epochs: 1,
            start_epoch: 0,
            augment: Augment::default(),
            seed: 0,
            report_every: 10,
            progress: true,
            label: String::new(),
        }
    }
}

/// What a [`fit`] run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitReport {
    /// Steps taken.
    pub steps: u64,
    /// Wall-clock seconds of training (no evaluation).
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// The scalars read back, with their step numbers.
    pub history: Vec<(u64, StepMetrics)>,
}

/// Trains `net` on `data` for `opts.epochs` epochs of full batches.
pub fn fit(net: &mut Network, data: &Dataset, opts: &FitOptions) -> Result<FitReport> {
    let batch = net.train_config().batch;
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
    let per_epoch = data.len() / batch;
    let total = (per_epoch * opts.epochs.saturating_sub(opts.start_epoch)) as u64;
    let bar = Progress::new(total, opts.progress, &opts.label);
    let mut report = FitReport::default();
    let start = Instant::now();
    let mut images = vec![0.0f32; batch * data.image_len()];
    let mut labels = vec![0u32; batch];
    for epoch in opts.start_epoch..opts.epochs {
        let mut rng = StdRng::seed_from_u64(opts.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for (i, idx) in epoch_batches(data.len(), batch, &mut rng).into_iter().enumerate() {
            for (slot, &j) in idx.iter().enumerate() {
                images[slot * data.image_len()..(slot + 1) * data.image_len()].copy_from_slice(data.image(j));
                labels[slot] = data.labels[j];
            }
            opts.augment.apply(&mut images, data.shape, &mut rng);
            let last = epoch + 1 == opts.epochs && i + 1 == per_epoch;
            let read = last || (report.steps as usize).is_multiple_of(opts.report_every.max(1));
            if let Some(m) = net.train_step(&images, &labels, read)? {
                if !m.softmax_loss.is_finite() {
                    return Err(Error::Data(format!(
                        "training diverged at step {}: loss {}",
                        report.steps, m.softmax_loss
                    )));
                }
                report.history.push((net.step_count(), m));
                let rate = (report.steps + 1) as f64 * batch as f64 / start.elapsed().as_secs_f64();
                bar.message(format!(
                    "epoch {}/{} softmax {:.4} center {:.4} acc {:.3} {:.0} img/s",
                    epoch + 1,
                    opts.epochs,
                    m.softmax_loss,
                    m.center_loss,
                    m.accuracy,
                    rate
                ));
            }
            report.steps += 1;
            bar.inc(1);
        }
    }
    net.graph().context().wait_idle()?;
    report.train_seconds = start.elapsed().as_secs_f64();
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
