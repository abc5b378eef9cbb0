//! What a training run needs around [`crate::nn::fit`]: a schedule sized by the data
//! ([`Plan`]), a validation split of the training identities' images, the validation
//! record that picks the best checkpoint and says whether training converged, and the
//! group a run trains in.

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use crate::collective::Collective;
use crate::data::{Dataset, ImageStore, Shard};
use crate::nn::{member_images, FitReport, Group, Inference, MultiStep, Network};
use crate::GpuContext;
use crate::{Error, Result};

/// A default run takes at least this many steps ...
pub const MIN_STEPS: u64 = 600;
/// ... and at least this many passes over the training images.
pub const MIN_EPOCHS: u64 = 10;
/// Validation runs about this many times per run (at most once per epoch).
pub const VALIDATIONS: u64 = 20;
/// Training has converged when validation has not improved over this many evaluations.
pub const PATIENCE: usize = 3;
/// A run that trains on until it converges stops at this many times its budget at most,
/// unless told otherwise.
pub const CONVERGENCE_CAP: u64 = 2;

/// The schedule of one training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Optimisation steps.
    pub steps: u64,
    /// Steps per pass over the training images (full batches).
    pub per_epoch: u64,
    /// Base learning rate.
    pub lr: f32,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// Steps at which the rate drops tenfold.
    pub milestones: Vec<u64>,
    /// Validate (and keep the best checkpoint) every this many steps (whole epochs), and
    /// after the last.
    pub validate_every: u64,
    /// `true` when the budget came from the data's size, not from `--epochs` / `--steps`.
    pub sized_by_data: bool,
}

impl Plan {
    /// The schedule for `images` training images in batches of `batch`: `steps`, else
    /// `epochs` passes, else the data-sized default, max([`MIN_STEPS`], [`MIN_EPOCHS`]
    /// epochs). A warm-up over the first 5% of the steps, the rate divided by 10 at 60% and
    /// 85%, validation [`VALIDATIONS`] times (at most once per epoch).
    pub fn new(images: usize, batch: usize, lr: f32, epochs: Option<usize>, steps: Option<u64>) -> Result<Plan> {
        if batch == 0 || images < batch {
            return Err(Error::Data(format!("{images} training images are fewer than one batch of {batch}")));
        }
        let per_epoch = (images / batch) as u64;
        let (steps, sized_by_data) = match (steps, epochs) {
            (Some(s), _) => (s, false),
            (None, Some(e)) => (per_epoch * e as u64, false),
            (None, None) => (MIN_STEPS.max(MIN_EPOCHS * per_epoch), true),
        };
        if steps == 0 {
            return Err(Error::Config(
                "a budget of zero steps (--epochs 0 or --steps 0) trains nothing; ask for at least one step".into(),
            ));
        }
        let schedule = MultiStep::at_fractions(steps, &[0.6, 0.85], 0.1);
        Ok(Plan {
            steps,
            per_epoch,
            lr,
            warmup: steps / 20,
            milestones: schedule.milestones,
            validate_every: per_epoch * steps.div_ceil(VALIDATIONS).div_ceil(per_epoch),
            sized_by_data,
        })
    }

    /// The most steps a run that trains on past the budget until validation converges may
    /// take: `max_steps`, else [`CONVERGENCE_CAP`] times the budget. [`Error::Config`] when
    /// `max_steps` is below the budget.
    pub fn convergence_cap(&self, max_steps: Option<u64>) -> Result<u64> {
        match max_steps {
            Some(m) if m < self.steps => Err(Error::Config(format!(
                "--max-steps {m} is below the budget of {} steps; give at least the budget",
                self.steps
            ))),
            Some(m) => Ok(m),
            None => Ok(CONVERGENCE_CAP * self.steps),
        }
    }

    /// Whether step `step` validates: every [`Plan::validate_every`] steps, at the end of
    /// the budget and at `cap`, where training past the budget stops.
    pub fn validates_at(&self, step: u64, cap: u64) -> bool {
        step.is_multiple_of(self.validate_every) || step == self.steps || step == cap
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> MultiStep {
        MultiStep { milestones: self.milestones.clone(), gamma: 0.1, warmup: self.warmup }
    }

    /// One line a user reads before training starts.
    pub fn describe(&self) -> String {
        let drops: Vec<String> = self.milestones.iter().map(|m| m.to_string()).collect();
        format!(
            "{} steps = {:.1} epochs of {} steps{}; lr {} with a linear warm-up over {} steps, divided by 10 at steps {}; validation every {} steps",
            self.steps,
            self.steps as f64 / self.per_epoch as f64,
            self.per_epoch,
            if self.sized_by_data {
                format!(" (sized by the data: at least {MIN_STEPS} steps and {MIN_EPOCHS} epochs)")
            } else {
                String::new()
            },
            self.lr,
            self.warmup,
            drops.join(" and "),
            self.validate_every
        )
    }
}

/// Splits `data` into training and validation images of the same identities: `fraction`
/// of each identity's images (rounded; never its last image) go to validation, chosen with
/// `seed`. Identities with a single image stay in training. The pixels move, not copied.
pub fn validation_split<T: Copy + Default>(
    data: Dataset<T>,
    fraction: f64,
    seed: u64,
) -> Result<(Dataset<T>, Dataset<T>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::Config(format!("the validation fraction must be in [0, 1), not {fraction}")));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.num_classes()];
    for (i, &l) in data.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5641_4C49_4441_5445);
    let mut is_val = vec![false; data.len()];
    for mut members in by_class {
        members.shuffle(&mut rng);
        let k = ((members.len() as f64 * fraction).round() as usize).min(members.len().saturating_sub(1));
        for &i in &members[..k] {
            is_val[i] = true;
        }
    }
    Ok(data.partition(|i| !is_val[i]))
}

/// Closed-set accuracy and mean softmax loss of `net` on `data` (no augmentation).
pub fn classify(net: &Network, data: &Dataset) -> Result<(f64, f64)> {
    if data.is_empty() {
        return Ok((0.0, 0.0));
    }
    Ok(score_logits(&net.infer(&data.images)?.logits, &data.labels))
}

/// Images read from a store per chunk of [`infer_store`].
pub const READ_CHUNK: usize = 256;

/// [`Network::infer`] over every image of `store`, read [`READ_CHUNK`] at a time on all
/// cores: a set that does not fit in memory is embedded in bounded memory.
pub fn infer_store(net: &Network, store: &dyn ImageStore) -> Result<Inference> {
    infer_images(net, store, &(0..store.len()).collect::<Vec<_>>())
}

/// [`infer_store`] on the images of `store` at `indices`, in that order.
pub fn infer_images(net: &Network, store: &dyn ImageStore, indices: &[usize]) -> Result<Inference> {
    let mut out = Inference::default();
    for chunk in indices.chunks(READ_CHUNK) {
        let part = net.infer(&store.load_many(chunk, 0)?.images)?;
        out.embeddings.extend(part.embeddings);
        out.logits.extend(part.logits);
    }
    Ok(out)
}

/// Every label of `store`, in order.
pub fn store_labels(store: &dyn ImageStore) -> Vec<u32> {
    (0..store.len()).map(|i| store.label(i)).collect()
}

/// [`classify`] over a store, [`READ_CHUNK`] images at a time: neither the images nor the
/// logits of the whole set are ever held (a 20 000-image validation set of a 10 000-class
/// network has 800 MB of logits).
pub fn classify_store(net: &Network, store: &dyn ImageStore) -> Result<(f64, f64)> {
    classify_images(net, store, &(0..store.len()).collect::<Vec<_>>())
}

/// [`classify_store`] on all of `store` when it holds at most `max` images, else on a
/// sample of `max` drawn with `seed` (a pass over a large training set costs as much as an
/// epoch of it).
pub fn classify_sample(net: &Network, store: &dyn ImageStore, max: usize, seed: u64) -> Result<(f64, f64)> {
    if store.len() <= max {
        return classify_store(net, store);
    }
    let mut indices: Vec<usize> = (0..store.len()).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(seed));
    indices.truncate(max);
    indices.sort_unstable();
    classify_images(net, store, &indices)
}

/// Accuracy and mean softmax loss on the images of `store` at `indices`, chunk by chunk.
fn classify_images(net: &Network, store: &dyn ImageStore, indices: &[usize]) -> Result<(f64, f64)> {
    let (mut right, mut loss) = (0.0, 0.0);
    for chunk in indices.chunks(READ_CHUNK) {
        let labels: Vec<u32> = chunk.iter().map(|&i| store.label(i)).collect();
        let (accuracy, mean_loss) = score_logits(&infer_images(net, store, chunk)?.logits, &labels);
        right += accuracy * chunk.len() as f64;
        loss += mean_loss * chunk.len() as f64;
    }
    let n = indices.len().max(1) as f64;
    Ok((right / n, loss / n))
}

/// Accuracy and mean softmax cross-entropy (in f64) of `logits` (one row per label, any
/// model's) against `labels`; (0, 0) for none.
pub fn score_logits(logits: &[f32], labels: &[u32]) -> (f64, f64) {
    if labels.is_empty() {
        return (0.0, 0.0);
    }
    let k = logits.len() / labels.len();
    let (mut right, mut loss) = (0usize, 0.0f64);
    for (row, &y) in logits.chunks(k).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z)) as f64;
        let sum: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum();
        loss += max + sum.ln() - row[y as usize] as f64;
        // The first of equal maxima, as `InferOutput::predictions`.
        let best = row.iter().enumerate().fold(0, |b, (i, &z)| if z > row[b] { i } else { b });
        right += usize::from(best == y as usize);
    }
    (right as f64 / labels.len() as f64, loss / labels.len() as f64)
}

/// Whether evaluation `e` (step, accuracy, loss) is better than `b`: higher accuracy, or the
/// same accuracy and lower loss.
fn beats(e: (u64, f64, f64), b: (u64, f64, f64)) -> bool {
    e.1 > b.1 || (e.1 == b.1 && e.2 < b.2)
}

/// The validation evaluations of one run: which was best (accuracy, then lower loss) and
/// whether training converged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidationRecord {
    /// (step, accuracy, loss) of every evaluation, in order.
    pub evaluations: Vec<(u64, f64, f64)>,
}

impl ValidationRecord {
    /// Records an evaluation; returns `true` when it is the best so far.
    pub fn push(&mut self, step: u64, accuracy: f64, loss: f64) -> bool {
        let e = (step, accuracy, loss);
        let better = self.best().is_none_or(|b| beats(e, b));
        self.evaluations.push(e);
        better
    }

    /// The best evaluation: highest accuracy, then lowest loss, then earliest.
    pub fn best(&self) -> Option<(u64, f64, f64)> {
        self.evaluations
            .iter()
            .copied()
            .fold(None, |best, e| if best.is_none_or(|b| beats(e, b)) { Some(e) } else { best })
    }

    /// Validation accuracy did not improve over the last [`PATIENCE`] evaluations.
    pub fn converged(&self) -> bool {
        let n = self.evaluations.len();
        if n <= PATIENCE {
            return false;
        }
        let before = self.evaluations[..n - PATIENCE].iter().map(|e| e.1).fold(f64::NEG_INFINITY, f64::max);
        self.evaluations[n - PATIENCE..].iter().all(|e| e.1 <= before)
    }

    /// The record as text for a checkpoint's metadata (`step accuracy loss;...`, exact).
    pub fn encode(&self) -> String {
        let items: Vec<String> =
            self.evaluations.iter().map(|(s, a, l)| format!("{s} {:016x} {:016x}", a.to_bits(), l.to_bits())).collect();
        items.join(";")
    }

    /// Reads [`ValidationRecord::encode`]'s text back.
    pub fn decode(text: &str) -> Option<Self> {
        let mut evaluations = Vec::new();
        for item in text.split(';').filter(|s| !s.is_empty()) {
            let mut parts = item.split(' ');
            let step = parts.next()?.parse().ok()?;
            let a = f64::from_bits(u64::from_str_radix(parts.next()?, 16).ok()?);
            let l = f64::from_bits(u64::from_str_radix(parts.next()?, 16).ok()?);
            evaluations.push((step, a, l));
        }
        Some(Self { evaluations })
    }
}

/// Trains to the plan's budget, then on at the schedule's last rate while `converged` says
/// no, one validation at a time, until `cap`: `round(target)` trains (a [`crate::nn::fit`])
/// from `step` to step `target`. Every member of `comm` takes the decisions of rank 0,
/// which validates. The rounds' reports, merged.
pub fn train_rounds(
    plan: &Plan,
    cap: u64,
    mut step: u64,
    comm: Option<&dyn Collective>,
    converged: &dyn Fn() -> bool,
    round: &mut dyn FnMut(u64) -> Result<FitReport>,
) -> Result<FitReport> {
    let mut report = FitReport::default();
    let mut target = plan.steps;
    loop {
        if step < target {
            report.append(round(target)?);
            step = target;
        }
        if cap <= plan.steps {
            return Ok(report);
        }
        let mut go = vec![u8::from(!converged() && step < cap)];
        if let Some(comm) = comm {
            comm.broadcast(0, &mut go)?;
        }
        if go != [1] {
            return Ok(report);
        }
        target = ((step / plan.validate_every + 1) * plan.validate_every).min(cap);
        log::info!(
            "validation still improving at step {step}: training on at the last rate to step {target} (at most {cap})"
        );
    }
}

/// The rows of a global batch of `batch` each of `devices` members trains, or
/// [`Error::Config`] when it does not split evenly.
pub fn shard_batch(batch: usize, devices: usize) -> Result<usize> {
    let devices = devices.max(1);
    if batch.is_multiple_of(devices) {
        Ok(batch / devices)
    } else {
        Err(Error::Config(format!(
            "a batch of {batch} does not split over {devices} devices or ranks; use a multiple of {devices}"
        )))
    }
}

/// The positions in a training set of `images` images that rank `comm.rank()` uses, each
/// rank training its share of global batches of `batch` shuffled with `seed`
/// ([`member_images`]).
pub fn rank_images(images: usize, batch: usize, comm: &dyn Collective, seed: u64) -> Result<Vec<usize>> {
    member_images(images, shard_batch(batch, comm.size())?, comm.rank(), comm.size(), seed)
}

/// What a rank other than 0 of `comm` keeps of the training set `train` (global batch
/// `batch`, shuffled with `seed`): the images its rows of every batch ever use, as a
/// [`Shard`]; `train` is left empty (its shape kept), so the rank holds its share alone.
/// `None`, and `train` untouched, for rank 0 (which validates and evaluates) and outside
/// a collective.
pub fn rank_shard(
    train: &mut Dataset,
    batch: usize,
    comm: Option<&dyn Collective>,
    seed: u64,
) -> Result<Option<Shard>> {
    let Some(comm) = comm.filter(|c| c.rank() > 0) else { return Ok(None) };
    let shard = Shard::of(train, rank_images(train.len(), batch, comm, seed)?)?;
    *train = Dataset { shape: train.shape, ..Default::default() };
    Ok(Some(shard))
}

/// The group a run trains in: a rank of `comm`, member 0 of `devices` in this process
/// (whose other networks `build` makes), or alone.
pub fn group<'a>(
    comm: Option<&'a dyn Collective>,
    devices: usize,
    build: &'a (dyn Fn(&GpuContext) -> Result<Network> + Sync),
) -> Group<'a> {
    match comm {
        Some(comm) => Group::Member(comm),
        None if devices > 1 => Group::Devices { count: devices, build },
        None => Group::Solo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_default_budget_grows_with_the_data() {
        let small = Plan::new(300, 64, 0.05, None, None).unwrap();
        assert_eq!((small.steps, small.per_epoch), (MIN_STEPS, 4));
        assert!(small.sized_by_data);
        let large = Plan::new(300_000, 64, 0.05, None, None).unwrap();
        assert_eq!(large.steps, MIN_EPOCHS * 4687);
        assert_eq!(large.validate_every, 4687, "46 870 / 20 steps, rounded up to a whole epoch");
        assert_eq!(small.validate_every, 32, "600 / 20 rounded up to whole epochs of 4");
        assert_eq!(Plan::new(300, 64, 0.05, Some(40), None).unwrap().steps, 160);
        assert_eq!(Plan::new(300, 64, 0.05, Some(40), Some(7)).unwrap().steps, 7);
        assert!(matches!(Plan::new(300, 64, 0.05, Some(0), None), Err(Error::Config(_))));
        assert!(matches!(Plan::new(300, 64, 0.05, None, Some(0)), Err(Error::Config(_))));
        assert!(Plan::new(30, 64, 0.05, None, None).is_err());
        let s = small.schedule();
        assert_eq!((s.warmup, s.milestones.clone()), (30, vec![360, 510]));
    }

    #[test]
    fn validation_takes_a_share_of_each_identity_and_never_its_last_image() {
        let labels: Vec<u32> = [vec![0; 10], vec![1; 1], vec![2; 2], vec![3; 20]].concat();
        let data = Dataset { images: (0..labels.len()).map(|i| i as f32).collect(), labels, shape: [1, 1, 1] };
        let (train, val) = validation_split(data.clone(), 0.1, 1).unwrap();
        let count = |d: &Dataset, c: u32| d.labels.iter().filter(|&&l| l == c).count();
        assert_eq!([0, 1, 2, 3].map(|c| count(&val, c)), [1, 0, 0, 2]);
        assert_eq!(train.len() + val.len(), data.len());
        let mut all: Vec<f32> = train.images.iter().chain(&val.images).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, data.images, "a partition");
    }

    #[test]
    fn rounds_go_past_the_budget_one_validation_at_a_time_until_converged_or_the_cap() {
        let plan = Plan { steps: 10, validate_every: 4, ..Plan::new(640, 64, 0.05, None, Some(10)).unwrap() };
        let run = |start: u64, cap: u64, converged_at: u64| {
            let step = Cell::new(start);
            let mut targets = Vec::new();
            let report = train_rounds(&plan, cap, start, None, &|| step.get() >= converged_at, &mut |target| {
                targets.push(target);
                let steps = target - step.replace(target);
                Ok(FitReport { steps, train_seconds: steps as f64, images_per_second: 64.0, ..Default::default() })
            })
            .unwrap();
            assert_eq!(report.steps, step.get() - start);
            assert_eq!(report.images_per_second, if report.steps > 0 { 64.0 } else { 0.0 });
            targets
        };
        assert_eq!(run(0, 10, 0), [10], "no cap past the budget: one round");
        assert_eq!(run(0, 20, 0), [10], "converged at the budget");
        assert_eq!(run(0, 20, 16), [10, 12, 16], "on to each next validation");
        assert_eq!(run(0, 18, 99), [10, 12, 16, 18], "the cap ends it");
        assert_eq!(run(12, 20, 16), [16], "resumed past the budget");
        assert!(run(10, 20, 0).is_empty(), "resumed at a converged budget");
        assert_eq!(plan.convergence_cap(None).unwrap(), 20);
        assert!(matches!(plan.convergence_cap(Some(9)), Err(Error::Config(_))));
        assert!([4, 8, 10, 12, 18].iter().all(|&s| plan.validates_at(s, 18)) && !plan.validates_at(11, 18));
    }

    #[test]
    fn the_record_picks_the_best_and_sees_convergence() {
        let mut r = ValidationRecord::default();
        assert!(r.push(10, 0.5, 2.0));
        assert!(r.push(20, 0.8, 1.0));
        assert!(r.push(30, 0.8, 0.9), "same accuracy, lower loss");
        assert!(!r.push(40, 0.7, 0.5));
        assert!(!r.converged());
        assert!(!r.push(50, 0.8, 1.5));
        assert!(r.converged(), "no accuracy above step 20's 0.8 in the last three");
        assert!(r.push(60, 0.9, 1.2));
        assert!(!r.converged());
        assert_eq!(r.best(), Some((60, 0.9, 1.2)));
        assert_eq!(ValidationRecord::decode(&r.encode()), Some(r));
    }
}
