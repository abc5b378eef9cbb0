//! The training batches of a seeded run, step by step: which image fills each row
//! ([`Sampler`]), copied and augmented as (seed, epoch, image) draws it ([`Augment`]). A
//! batch depends only on the seed and the step, never on how many members train or which
//! rows each holds; the trainer's `nn::fit` and a loop of another framework (the burn
//! example) read the same batches from it.
//!
//! A streamed set ([`TrainingSet::Streamed`]) is read ahead: a thread prepares the next
//! steps' batches, its workers reading and augmenting the rows, into a queue of a few
//! batches ([`Prefetch`]) while the GPU trains; each row is a function of (seed, epoch,
//! image) alone, so the batches are the same whatever the number of workers.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Augment, Dataset, ImageStore, Sampler, Shard};
use crate::{Error, Result};

/// The training images a member reads: the whole set, only its share of it, or a set
/// read from its source as batches need it.
#[derive(Clone, Copy)]
pub enum TrainingSet<'a> {
    /// The whole training set.
    All(&'a Dataset),
    /// The images of the whole set that this member's rows ever use (a data-parallel rank
    /// that need not load the others: [`Sampler::images_of`]).
    Shard(&'a Shard),
    /// The whole set, each image read when a batch needs it (a member reads only its
    /// rows' images), ahead of the step ([`Prefetch`]).
    Streamed(&'a Arc<dyn ImageStore>),
}

impl std::fmt::Debug for TrainingSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainingSet::All(d) => write!(f, "All({} images)", d.len()),
            TrainingSet::Shard(s) => write!(f, "Shard({} of {} images)", s.indices.len(), s.total),
            TrainingSet::Streamed(s) => write!(f, "Streamed({} images)", s.len()),
        }
    }
}

impl<'a> From<&'a Dataset> for TrainingSet<'a> {
    fn from(data: &'a Dataset) -> Self {
        TrainingSet::All(data)
    }
}

impl<'a> From<&'a Shard> for TrainingSet<'a> {
    fn from(shard: &'a Shard) -> Self {
        TrainingSet::Shard(shard)
    }
}

impl<'a> TrainingSet<'a> {
    /// Images in the whole training set.
    pub fn total(&self) -> usize {
        match self {
            TrainingSet::All(d) => d.len(),
            TrainingSet::Shard(s) => s.total,
            TrainingSet::Streamed(s) => s.len(),
        }
    }

    /// Per-image shape: channels, height, width.
    pub fn shape(&self) -> [usize; 3] {
        match self {
            TrainingSet::All(d) => d.shape,
            TrainingSet::Shard(s) => s.data.shape,
            TrainingSet::Streamed(s) => s.shape(),
        }
    }

    /// Image `index` of the whole set and its label, from memory (a streamed set is read
    /// through [`Batches`]).
    pub fn get(&self, index: usize) -> Result<(&'a [f32], u32)> {
        match self {
            TrainingSet::All(d) => Ok((d.image(index), d.labels[index])),
            TrainingSet::Shard(s) => s.get(index).ok_or_else(|| {
                Error::Data(format!(
                    "this member's shard lacks training image {index}; build it with member_images for the same batch, members and seed"
                ))
            }),
            TrainingSet::Streamed(_) => Err(Error::Internal("a streamed set is read through Batches".into())),
        }
    }
}

/// How a streamed set is read ahead of the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefetch {
    /// Threads reading and augmenting a batch's rows (0: as many as the machine has).
    pub workers: usize,
    /// Prepared batches held ready (at least 1): the memory streaming takes is about
    /// this many batches.
    pub batches: usize,
}

impl Prefetch {
    /// The most batches held ready ([`Batches::with_prefetch`] holds at most this many).
    pub const MAX_BATCHES: usize = 64;
}

impl Default for Prefetch {
    fn default() -> Self {
        Self { workers: 0, batches: 3 }
    }
}

/// One prepared batch, or the error that stopped the reading.
type Prepared = Result<(u64, Vec<f32>, Vec<u32>)>;

/// The thread reading a streamed set ahead: the batches of steps `next..`, in order.
struct ReadAhead {
    next: u64,
    receiver: Receiver<Prepared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver fails a send waiting for room; the thread then returns.
        drop(std::mem::replace(&mut self.receiver, sync_channel(1).1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Rows `rows` of every global batch of `batch` images of a training set, augmented.
pub struct Batches<'a> {
    set: TrainingSet<'a>,
    sampler: Sampler,
    rows: Range<usize>,
    augment: Augment,
    seed: u64,
    /// The epoch whose order is held, and each row's images in it.
    order: Option<(u64, Vec<Vec<usize>>)>,
    prefetch: Prefetch,
    ahead: Option<ReadAhead>,
}

impl<'a> Batches<'a> {
    /// Rows `rows` of global batches of `batch` images of `set`, shuffled and augmented
    /// with `seed`.
    pub fn new(set: TrainingSet<'a>, batch: usize, rows: Range<usize>, augment: Augment, seed: u64) -> Result<Self> {
        if rows.end > batch || rows.is_empty() {
            return Err(Error::Config(format!("rows {rows:?} are not a part of a batch of {batch}")));
        }
        let sampler = Sampler::new(set.total(), batch, seed)?;
        Ok(Self { set, sampler, rows, augment, seed, order: None, prefetch: Prefetch::default(), ahead: None })
    }

    /// How a streamed set is read ahead (other sets are read from memory at each step);
    /// the batches held ready are kept in 1..=[`Prefetch::MAX_BATCHES`].
    pub fn with_prefetch(mut self, prefetch: Prefetch) -> Self {
        self.prefetch = Prefetch { batches: prefetch.batches.clamp(1, Prefetch::MAX_BATCHES), ..prefetch };
        self
    }

    /// Steps per epoch.
    pub fn steps_per_epoch(&self) -> u64 {
        self.sampler.steps_per_epoch()
    }

    /// The epoch of `step`.
    pub fn epoch_of(&self, step: u64) -> u64 {
        step / self.steps_per_epoch()
    }

    /// Writes this member's rows of step `step`'s batch into `images` (rows x image
    /// values) and `labels` (rows).
    pub fn fill(&mut self, step: u64, images: &mut [f32], labels: &mut [u32]) -> Result<()> {
        let shape = self.set.shape();
        let pixels = shape.iter().product::<usize>();
        if images.len() != self.rows.len() * pixels || labels.len() != self.rows.len() {
            return Err(Error::Internal(format!(
                "a batch of {} rows fills {} values and {} labels, not {} and {}",
                self.rows.len(),
                self.rows.len() * pixels,
                self.rows.len(),
                images.len(),
                labels.len()
            )));
        }
        if let TrainingSet::Streamed(store) = self.set {
            return self.fill_ahead(store, step, images, labels);
        }
        let (epoch, t) = (self.epoch_of(step), (step % self.steps_per_epoch()) as usize);
        if self.order.as_ref().is_none_or(|(held, _)| *held != epoch) {
            self.order = Some((epoch, self.sampler.epoch(epoch, self.rows.clone())));
        }
        let order = &self.order.as_ref().expect("set above").1;
        for (row, pool) in order.iter().enumerate() {
            let (image, label) = self.set.get(pool[t])?;
            let target = &mut images[row * pixels..(row + 1) * pixels];
            target.copy_from_slice(image);
            self.augment.apply_image(target, shape, self.seed, epoch, pool[t]);
            labels[row] = label;
        }
        Ok(())
    }
}

impl Batches<'_> {
    /// [`Batches::fill`] from the read-ahead thread, started (or restarted) at `step`
    /// when the last batch it gave was not the one before it.
    fn fill_ahead(
        &mut self,
        store: &Arc<dyn ImageStore>,
        step: u64,
        images: &mut [f32],
        labels: &mut [u32],
    ) -> Result<()> {
        if self.ahead.as_ref().is_none_or(|a| a.next != step) {
            self.ahead = None;
            self.ahead = Some(self.read_ahead(Arc::clone(store), step));
        }
        let ahead = self.ahead.as_mut().expect("set above");
        let prepared = ahead.receiver.recv().map_err(|_| Error::Internal("the batch reader stopped".into()));
        match prepared.and_then(|p| p) {
            Ok((at, pixels, rows)) if at == step => {
                images.copy_from_slice(&pixels);
                labels.copy_from_slice(&rows);
                ahead.next = step + 1;
                Ok(())
            }
            Ok((at, ..)) => Err(Error::Internal(format!("the batch reader gave step {at} for step {step}"))),
            Err(e) => {
                self.ahead = None;
                Err(e)
            }
        }
    }

    /// Starts the thread that prepares the batches of steps `from..` into a queue of
    /// [`Prefetch::batches`], each batch's rows read and augmented by its workers.
    fn read_ahead(&self, store: Arc<dyn ImageStore>, from: u64) -> ReadAhead {
        let (sender, receiver) = sync_channel::<Prepared>(self.prefetch.batches - 1);
        let stop = Arc::new(AtomicBool::new(false));
        let (sampler, rows, augment, seed) = (self.sampler.clone(), self.rows.clone(), self.augment, self.seed);
        let workers = match self.prefetch.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let shape = store.shape();
            let per: usize = shape.iter().product();
            let mut order: Option<(u64, Vec<Vec<usize>>)> = None;
            for step in from.. {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let (epoch, t) = (step / sampler.steps_per_epoch(), (step % sampler.steps_per_epoch()) as usize);
                if order.as_ref().is_none_or(|(held, _)| *held != epoch) {
                    order = Some((epoch, sampler.epoch(epoch, rows.clone())));
                }
                let indices: Vec<usize> = order.as_ref().expect("set above").1.iter().map(|pool| pool[t]).collect();
                let prepared = store.load_many(&indices, workers).map(|mut batch| {
                    for (image, &index) in batch.images.chunks_mut(per).zip(&indices) {
                        augment.apply_image(image, shape, seed, epoch, index);
                    }
                    (step, batch.images, batch.labels)
                });
                let failed = prepared.is_err();
                if sender.send(prepared).is_err() || failed {
                    return;
                }
            }
        });
        ReadAhead { next: from, receiver, stop, thread: Some(thread) }
    }
}
