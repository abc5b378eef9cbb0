//! The training batches of a seeded run, step by step: which image fills each row
//! ([`Sampler`]), copied and augmented as (seed, epoch, image) draws it ([`Augment`]). A
//! batch depends only on the seed and the step, never on how many members train or which
//! rows each holds; the trainer's `nn::fit` and a loop of another framework (the burn
//! example) read the same batches from it.

use std::ops::Range;

use super::{Augment, Dataset, Sampler, Shard};
use crate::{Error, Result};

/// The training images a member reads: the whole set, or only its share of it.
#[derive(Clone, Copy, Debug)]
pub enum TrainingSet<'a> {
    /// The whole training set.
    All(&'a Dataset),
    /// The images of the whole set that this member's rows ever use (a data-parallel rank
    /// that need not load the others: [`Sampler::images_of`]).
    Shard(&'a Shard),
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
        }
    }

    /// The images held (for their shape).
    pub fn held(&self) -> &'a Dataset {
        match self {
            TrainingSet::All(d) => d,
            TrainingSet::Shard(s) => &s.data,
        }
    }

    /// Image `index` of the whole set and its label.
    pub fn get(&self, index: usize) -> Result<(&'a [f32], u32)> {
        match self {
            TrainingSet::All(d) => Ok((d.image(index), d.labels[index])),
            TrainingSet::Shard(s) => s.get(index).ok_or_else(|| {
                Error::Data(format!(
                    "this member's shard lacks training image {index}; build it with member_images for the same batch, members and seed"
                ))
            }),
        }
    }
}

/// Rows `rows` of every global batch of `batch` images of a training set, augmented.
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    set: TrainingSet<'a>,
    sampler: Sampler,
    rows: Range<usize>,
    augment: Augment,
    seed: u64,
    /// The epoch whose order is held, and each row's images in it.
    order: Option<(u64, Vec<Vec<usize>>)>,
}

impl<'a> Batches<'a> {
    /// Rows `rows` of global batches of `batch` images of `set`, shuffled and augmented
    /// with `seed`.
    pub fn new(set: TrainingSet<'a>, batch: usize, rows: Range<usize>, augment: Augment, seed: u64) -> Result<Self> {
        if rows.end > batch || rows.is_empty() {
            return Err(Error::Config(format!("rows {rows:?} are not a part of a batch of {batch}")));
        }
        let sampler = Sampler::new(set.total(), batch, seed)?;
        Ok(Self { set, sampler, rows, augment, seed, order: None })
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
        let shape = self.set.held().shape;
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
