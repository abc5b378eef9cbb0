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
use crate::collective::{Collective, ThreadGroup};
use crate::data::{Augment, Batches, Prefetch, Sampler, TrainingSet};
use crate::gpu::GpuContext;
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
    /// Call [`fit`]'s hook every this many steps (and after the last step); 0: only after
    /// the last.
    pub hook_every: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// A label for the progress bar.
    pub label: String,
    /// How a streamed training set is read ahead of the GPU.
    pub prefetch: Prefetch,
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
            prefetch: Prefetch::default(),
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
    /// Wall-clock seconds of training (no evaluation, no warm-up).
    pub train_seconds: f64,
    /// Seconds of [`Network::warm_up`] before training: the kernels' first compile and run
    /// (0 when the network had run a step already).
    pub warm_up_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// The scalars read back, with their step numbers.
    pub history: Vec<(u64, StepMetrics)>,
}

impl FitReport {
    /// Adds the report of a [`fit`] that continued this one: steps, times and history add
    /// up, the rate is over both.
    pub fn append(&mut self, later: FitReport) {
        let images = self.images_per_second * self.train_seconds + later.images_per_second * later.train_seconds;
        self.steps += later.steps;
        self.train_seconds += later.train_seconds;
        self.warm_up_seconds += later.warm_up_seconds;
        self.images_per_second = images / self.train_seconds.max(1e-9);
        self.history.extend(later.history);
    }
}

/// Who trains together in a [`fit`].
#[derive(Clone, Copy)]
pub enum Group<'a> {
    /// The network alone on its device.
    Solo,
    /// One member of a data-parallel group (an MPI rank, a [`ThreadGroup`] member). Every
    /// member passes the same data and options and a network with the same batch b; the
    /// global batch is N * b, drawn and augmented exactly as a solo fit with batch N * b
    /// draws it, and member r trains its rows r*b..(r+1)*b
    /// ([`Network::train_step_collective`]). The run equals that solo run and the
    /// members' networks stay bit-identical.
    Member(&'a dyn Collective),
    /// Member 0 of `count` members in this process: `build` makes the other members'
    /// networks, each on its own device ([`GpuContext::for_member`]), and they train on
    /// the same data on threads of their own.
    Devices {
        /// Members, this one included.
        count: usize,
        /// Makes a member's network on its device.
        build: &'a (dyn Fn(&GpuContext) -> Result<Network> + Sync),
    },
}

impl Group<'_> {
    fn rank(&self) -> usize {
        match self {
            Group::Member(comm) => comm.rank(),
            _ => 0,
        }
    }
}

/// What [`fit`] calls every [`FitOptions::hook_every`] steps and after the last, on rank
/// 0 only, with the network and the steps taken (validation, checkpoints): the text it
/// returns joins the progress line. Its time is not counted as training time.
pub type Hook<'h> = &'h mut dyn FnMut(&mut Network, u64) -> Result<Option<String>>;

/// Trains `net` on `data` (the whole training set, or this member's [`crate::data::Shard`])
/// until it has taken `opts.steps` steps, alone or in `group`, calling `hook` on rank 0.
pub fn fit<'a>(
    net: &mut Network,
    data: impl Into<TrainingSet<'a>>,
    opts: &FitOptions,
    group: Group<'_>,
    hook: Option<Hook<'_>>,
) -> Result<FitReport> {
    let data = data.into();
    let mut no_hook = |_: &mut Network, _: u64| Ok(None);
    let hook = match hook {
        Some(hook) if group.rank() == 0 => hook,
        _ => &mut no_hook,
    };
    match group {
        Group::Solo => train(net, data, opts, None, hook),
        Group::Member(comm) => train(net, data, opts, Some(comm), hook),
        Group::Devices { count, build } => {
            if let TrainingSet::Shard(_) = data {
                return Err(Error::Config(
                    "members on the devices of one process train on the whole set, not a shard".into(),
                ));
            }
            let helper = |member: ThreadGroup| -> Result<()> {
                let mut net = build(&GpuContext::for_member(member.rank(), count)?)?;
                train(&mut net, data, opts, Some(&member), &mut |_, _| Ok(None)).map(|_| ())
            };
            data_parallel(count, &mut |member| train(net, data, opts, Some(&member), &mut *hook), &helper)
        }
    }
}

/// The positions in a training set of `images` images of those that member `rank` of
/// `members`, each training `shard` rows of every batch, ever uses (ascending): what its
/// [`crate::data::Shard`] must hold.
pub fn member_images(images: usize, shard: usize, rank: usize, members: usize, seed: u64) -> Result<Vec<usize>> {
    let sampler = Sampler::new(images, shard * members, seed)?;
    Ok(sampler.images_of(rank * shard..(rank + 1) * shard))
}

/// Runs `lead` as member 0 of an in-process group of `devices` on this thread and `helper`
/// as members 1.. on their own threads; a member's own error wins over the
/// [`Error::Collective`] the others see when it leaves.
fn data_parallel<T>(
    devices: usize,
    lead: &mut dyn FnMut(ThreadGroup) -> Result<T>,
    helper: &(dyn Fn(ThreadGroup) -> Result<()> + Sync),
) -> Result<T> {
    let mut members = ThreadGroup::new(devices).into_iter();
    let first = members.next().ok_or_else(|| Error::Config("no devices".into()))?;
    std::thread::scope(|s| {
        let helpers: Vec<_> = members.map(|m| s.spawn(move || helper(m))).collect();
        // `lead` consumes member 0: it leaves the group when `lead` returns, so helpers
        // blocked in a collective see the failure instead of waiting forever.
        let lead_result = lead(first);
        let mut helper_error = None;
        for h in helpers {
            match h.join() {
                Ok(Err(e)) if !matches!(e, Error::Collective(_)) => helper_error = helper_error.or(Some(e)),
                Err(_) => helper_error = helper_error.or(Some(Error::Collective("a device's thread panicked".into()))),
                _ => {}
            }
        }
        match (lead_result, helper_error) {
            (Err(Error::Collective(_)), Some(e)) | (Ok(_), Some(e)) => Err(e),
            (result, _) => result,
        }
    })
}

/// Checks that `data` can train `net` in global batches of `batch` for `steps` steps.
fn check_fit(net: &Network, data: TrainingSet<'_>, batch: usize, steps: u64) -> Result<()> {
    if data.total() < batch {
        return Err(Error::Data(format!("{} training images are fewer than one batch of {batch}", data.total())));
    }
    if data.shape().iter().product::<usize>() != net.input_len() {
        return Err(Error::Data(format!(
            "images of {:?} do not fit the network's input {:?}",
            data.shape(),
            net.spec().input
        )));
    }
    if steps == 0 {
        return Err(Error::Config("a training budget of zero steps trains nothing; ask for at least one".into()));
    }
    Ok(())
}

/// The training loop of one member.
fn train(
    net: &mut Network,
    data: TrainingSet<'_>,
    opts: &FitOptions,
    comm: Option<&dyn Collective>,
    hook: Hook<'_>,
) -> Result<FitReport> {
    let (rank, members) = comm.map_or((0, 1), |c| (c.rank(), c.size()));
    let shard = net.train_config().batch;
    let batch = shard * members;
    check_fit(net, data, batch, opts.steps)?;
    let mut batches = Batches::new(data, batch, rank * shard..(rank + 1) * shard, opts.augment, opts.seed)?
        .with_prefetch(opts.prefetch);
    let epochs = opts.steps.div_ceil(batches.steps_per_epoch());
    let bar = Progress::new(opts.steps, opts.progress && rank == 0, &opts.label);
    bar.inc(net.step_count().min(opts.steps));
    let mut report = FitReport { warm_up_seconds: net.warm_up()?, ..Default::default() };
    let (mut hooked, mut hook_seconds) = (String::new(), 0.0);
    let start = Instant::now();
    let mut images = vec![0.0f32; shard * net.input_len()];
    let mut labels = vec![0u32; shard];
    let mut step = net.step_count();
    while step < opts.steps {
        batches.fill(step, &mut images, &mut labels)?;
        let last = step + 1 == opts.steps;
        let read = last || (report.steps as usize).is_multiple_of(opts.report_every.max(1));
        let metrics = match comm {
            Some(comm) => net.train_step_collective(&images, &labels, comm, read)?,
            None => net.train_step(&images, &labels, read)?,
        };
        if let Some(m) = metrics {
            check_finite_loss(step, &m)?;
            report.history.push((net.step_count(), m));
            let rate = (report.steps + 1) as f64 * batch as f64 / (start.elapsed().as_secs_f64() - hook_seconds);
            let epoch = batches.epoch_of(step) + 1;
            bar.message(format!(
                "epoch {epoch}/{epochs} softmax {:.4} center {:.4} acc {:.3}{hooked} {rate:.0} img/s",
                m.softmax_loss, m.center_loss, m.accuracy,
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
    net.graph().context().wait_idle()?;
    report.train_seconds = start.elapsed().as_secs_f64() - hook_seconds;
    report.images_per_second = report.steps as f64 * batch as f64 / report.train_seconds.max(1e-9);
    bar.finish();
    Ok(report)
}

/// [`Error::Diverged`] when step `step`'s softmax loss is not finite.
fn check_finite_loss(step: u64, m: &StepMetrics) -> Result<()> {
    if m.softmax_loss.is_finite() {
        return Ok(());
    }
    Err(Error::Diverged { step, loss: m.softmax_loss })
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
