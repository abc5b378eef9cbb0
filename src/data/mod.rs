//! Data: MNIST IDX files, the built-in procedural face set, image folders, RecordIO packs
//! and verification `.bin` benchmarks, the preprocessing that turns an image into a network
//! input, verification pairs, and the batch plumbing shared by the trainer and the examples
//! (the sampler, augmentation, shards).

mod batches;
pub mod bin;
pub mod faces;
#[cfg(feature = "images")]
pub mod folder;
#[cfg(feature = "mnist")]
pub mod mnist;
pub mod npy;
pub mod pairs;
mod preprocess;
pub mod recordio;
#[cfg(feature = "images")]
mod source;
#[cfg(feature = "images")]
mod stream;

pub use batches::{Batches, Prefetch, TrainingSet};
pub use pairs::{parse_pairs, read_pairs, Pair};
#[cfg(feature = "images")]
pub use preprocess::{check_whole, MAX_IMAGE_BYTES};
pub use preprocess::{Crop, Preprocessing, ResizeFilter, Scaling};
#[cfg(feature = "images")]
pub(crate) use source::no_images;
#[cfg(feature = "images")]
pub use source::{ImageSource, InputKind, MAX_LIST_BYTES};
#[cfg(feature = "images")]
pub use stream::StreamedSet;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

/// Images (`n * channels * height * width` values, NCHW, normalised) with their labels;
/// or, as `Dataset<u32>` of shape [1, 1, 1], each image's position in its source with its
/// label (a split planned before anything is decoded: [`folder::ImageFolder::skeleton`]).
/// The splits move the values with the labels whatever they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset<T = f32> {
    /// Per-image shape: channels, height, width.
    pub shape: [usize; 3],
    /// The pixels (or positions), image after image.
    pub images: Vec<T>,
    /// One label per image.
    pub labels: Vec<u32>,
}

impl<T: Copy + Default> Dataset<T> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image `i`'s pixels.
    pub fn image(&self, i: usize) -> &[T] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut out = Self { shape: self.shape, images: Vec::new(), labels: Vec::new() };
        for &i in indices {
            out.images.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
        }
        out
    }

    /// Splits the set into the images where `first(i)` holds and the others, each in its
    /// original order, in place: the pixels move, and at most the second part is ever
    /// held twice (a 300 000-image set is not duplicated to split it).
    pub fn partition(mut self, first: impl Fn(usize) -> bool) -> (Self, Self) {
        let n = self.len();
        let len = self.image_len();
        let order: Vec<usize> = (0..n).filter(|&i| first(i)).chain((0..n).filter(|&i| !first(i))).collect();
        // Move image order[k] to slot k by following the permutation's cycles.
        let mut placed = vec![false; n];
        let mut held = vec![T::default(); len];
        for start in 0..n {
            if placed[start] || order[start] == start {
                placed[start] = true;
                continue;
            }
            held.copy_from_slice(&self.images[start * len..(start + 1) * len]);
            let mut slot = start;
            loop {
                let from = order[slot];
                placed[slot] = true;
                if from == start {
                    self.images[slot * len..(slot + 1) * len].copy_from_slice(&held);
                    break;
                }
                self.images.copy_within(from * len..(from + 1) * len, slot * len);
                slot = from;
            }
        }
        let labels: Vec<u32> = order.iter().map(|&i| self.labels[i]).collect();
        let cut = order.iter().take_while(|&&i| first(i)).count();
        let rest_images = self.images.split_off(cut * len);
        self.images.shrink_to_fit();
        let head = Self { shape: self.shape, images: self.images, labels: labels[..cut].to_vec() };
        let tail = Self { shape: self.shape, images: rest_images, labels: labels[cut..].to_vec() };
        (head, tail)
    }

    /// Number of classes: one more than the largest label.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }
}

/// Labelled images read one at a time, each when a batch needs it: what streaming
/// training reads ([`TrainingSet::Streamed`]) and evaluation embeds in chunks. A file
/// source decodes on each read ([`StreamedSet`] with the `images` feature); a [`Dataset`]
/// copies from memory.
pub trait ImageStore: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Per-image shape: channels, height, width.
    fn shape(&self) -> [usize; 3];
    /// Image `i`'s label.
    fn label(&self, i: usize) -> u32;
    /// Writes image `i`'s values (`shape` product of them) into `out`.
    fn load_into(&self, i: usize, out: &mut [f32]) -> crate::Result<()>;
    /// The images at `indices` as a [`Dataset`], read on up to `workers` threads (0: as
    /// many as the machine has), in order.
    fn load_many(&self, indices: &[usize], workers: usize) -> crate::Result<Dataset> {
        let per: usize = self.shape().iter().product();
        let mut out = Dataset { shape: self.shape(), images: vec![0.0; indices.len() * per], labels: Vec::new() };
        out.labels = indices.iter().map(|&i| self.label(i)).collect();
        let workers = if workers == 0 { crate::threads::available() } else { workers };
        let per_worker = indices.len().div_ceil(workers.max(1)).max(1);
        let parts = out.images.chunks_mut(per_worker * per).zip(indices.chunks(per_worker)).collect();
        let read = crate::threads::run_parts(parts, |_, (pixels, chunk): (&mut [f32], &[usize])| {
            chunk.iter().zip(pixels.chunks_mut(per)).try_for_each(|(&i, px)| self.load_into(i, px))
        });
        read.into_iter().try_for_each(|part| {
            part.unwrap_or_else(|_| Err(crate::Error::Internal("an image reader panicked".into())))
        })?;
        Ok(out)
    }
}

impl ImageStore for Dataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn shape(&self) -> [usize; 3] {
        self.shape
    }

    fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    fn load_into(&self, i: usize, out: &mut [f32]) -> crate::Result<()> {
        out.copy_from_slice(self.image(i));
        Ok(())
    }
}

/// Random horizontal flip and random crop (zero padding, then a crop of the original
/// size), applied in place to a batch of images of `shape`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Flip each image left-right with probability 1/2.
    pub flip: bool,
    /// Pad by this many pixels and crop back at a random offset (0: no crop).
    pub crop_pad: usize,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment { flip: false, crop_pad: 0 };

    /// One image's draws: flip, and the crop's row and column offsets.
    fn draw(&self, rng: &mut StdRng) -> (bool, isize, isize) {
        let flip = self.flip && rng.random_bool(0.5);
        let p = self.crop_pad as i64;
        let (dy, dx) =
            if p > 0 { (rng.random_range(-p..=p) as isize, rng.random_range(-p..=p) as isize) } else { (0, 0) };
        (flip, dy, dx)
    }

    /// Augments `images` (a batch of `shape`) in place, drawing from `rng` image after image.
    pub fn apply(&self, images: &mut [f32], shape: [usize; 3], rng: &mut StdRng) {
        let len: usize = shape.iter().product();
        let mut scratch = Vec::new();
        for img in images.chunks_mut(len) {
            self.transform(img, shape, self.draw(rng), &mut scratch);
        }
    }

    /// Augments training image `index` (its position in the training set) in place, as
    /// epoch `epoch` of a run seeded `seed` draws it: the draw depends on those three
    /// numbers alone, so which member of a data-parallel group augments the image, and
    /// after how many others, does not change it.
    pub fn apply_image(&self, image: &mut [f32], shape: [usize; 3], seed: u64, epoch: u64, index: usize) {
        let mut rng = StdRng::seed_from_u64(mix(&[seed, 0x0041_5547_4D45_4E54, epoch, index as u64]));
        self.transform(image, shape, self.draw(&mut rng), &mut Vec::new());
    }

    /// Flips and shifts `img` as drawn, through `scratch` (sized here, on first use: an
    /// image left as it is allocates nothing).
    fn transform(
        &self,
        img: &mut [f32],
        shape: [usize; 3],
        (flip, dy, dx): (bool, isize, isize),
        scratch: &mut Vec<f32>,
    ) {
        if !flip && dy == 0 && dx == 0 {
            return;
        }
        let [c, h, w] = shape;
        let plane = h * w;
        scratch.resize(img.len(), 0.0);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x } as isize + dx;
                    let sy = y as isize + dy;
                    let inside = sy >= 0 && sx >= 0 && sy < h as isize && sx < w as isize;
                    scratch[ch * plane + y * w + x] =
                        if inside { img[ch * plane + sy as usize * w + sx as usize] } else { 0.0 };
                }
            }
        }
        img.copy_from_slice(scratch);
    }
}

/// A seed made of several numbers (SplitMix64 over each in turn).
fn mix(parts: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for &p in parts {
        h = h.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// Which training image fills each row ("slot") of every global batch, the same for any
/// number of data-parallel members: the training set is dealt once (seeded) into `batch`
/// pools of n / batch or n / batch + 1 images; in every epoch each slot walks its own pool
/// in a fresh seeded order, so a batch holds one image of every pool and an epoch
/// (n / batch steps) shows every image at most once. A member that trains slots
/// `a..b` needs only the images of those pools ([`Sampler::images_of`]): it can hold
/// (and decode) its share of the data alone.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampler {
    seed: u64,
    pools: Vec<Vec<usize>>,
    per_epoch: u64,
}

impl Sampler {
    /// The sampler of `n` training images in global batches of `batch`.
    pub fn new(n: usize, batch: usize, seed: u64) -> crate::Result<Self> {
        if batch == 0 || n < batch {
            return Err(crate::Error::Data(format!("{n} training images are fewer than one batch of {batch}")));
        }
        let mut dealt: Vec<usize> = (0..n).collect();
        dealt.shuffle(&mut StdRng::seed_from_u64(mix(&[seed, 0x0050_4F4F_4C53])));
        let mut pools = vec![Vec::with_capacity(n / batch + 1); batch];
        for (k, &i) in dealt.iter().enumerate() {
            pools[k % batch].push(i);
        }
        Ok(Self { seed, pools, per_epoch: (n / batch) as u64 })
    }

    /// Steps per epoch (n / batch, rounded down).
    pub fn steps_per_epoch(&self) -> u64 {
        self.per_epoch
    }

    /// The global batch size (slots).
    pub fn batch(&self) -> usize {
        self.pools.len()
    }

    /// For each slot of `slots`, the images it takes in `epoch`, step by step
    /// ([`Sampler::steps_per_epoch`] of them).
    pub fn epoch(&self, epoch: u64, slots: std::ops::Range<usize>) -> Vec<Vec<usize>> {
        slots
            .map(|s| {
                let mut order = self.pools[s].clone();
                order.shuffle(&mut StdRng::seed_from_u64(mix(&[self.seed, 0x534C_4F54, epoch, s as u64])));
                order.truncate(self.per_epoch as usize);
                order
            })
            .collect()
    }

    /// The images slots `slots` ever take, ascending: what a member training them needs.
    pub fn images_of(&self, slots: std::ops::Range<usize>) -> Vec<usize> {
        let mut all: Vec<usize> = self.pools[slots].concat();
        all.sort_unstable();
        all
    }
}

/// A member's part of a training set: the images at `indices` (ascending positions in the
/// whole set of `total` images) and their labels, as [`Sampler::images_of`] names them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shard {
    /// Images in the whole training set.
    pub total: usize,
    /// Positions in the whole set of the images held, ascending.
    pub indices: Vec<usize>,
    /// The images held, in the order of `indices`.
    pub data: Dataset,
}

impl Shard {
    /// The images of `data` at `indices` (ascending), the rest dropped.
    pub fn of(data: &Dataset, indices: Vec<usize>) -> crate::Result<Self> {
        if indices.windows(2).any(|w| w[0] >= w[1]) || indices.last().is_some_and(|&i| i >= data.len()) {
            return Err(crate::Error::Data(format!(
                "a shard's indices must ascend and stay below the set's {} images",
                data.len()
            )));
        }
        Ok(Self { total: data.len(), data: data.select(&indices), indices })
    }

    /// Image `index` of the whole set and its label, if this shard holds it.
    pub fn get(&self, index: usize) -> Option<(&[f32], u32)> {
        let k = self.indices.binary_search(&index).ok()?;
        Some((self.data.image(k), self.data.labels[k]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn flip_and_crop_move_pixels_as_asked() {
        let shape = [1, 2, 3];
        let mut img = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut rng = StdRng::seed_from_u64(0);
        // Flip only: every draw either leaves the image or mirrors it.
        let orig = img.clone();
        Augment { flip: true, crop_pad: 0 }.apply(&mut img, shape, &mut rng);
        assert!(img == orig || img == vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        // Crop: values come from the image or the zero padding, never elsewhere.
        let mut img = orig.clone();
        Augment { flip: false, crop_pad: 1 }.apply(&mut img, shape, &mut rng);
        assert!(img.iter().all(|v| *v == 0.0 || orig.contains(v)));
    }

    #[test]
    fn partition_moves_images_in_order() {
        let data =
            Dataset { shape: [1, 1, 2], images: (0..12).map(|v| v as f32).collect(), labels: vec![0, 1, 2, 3, 4, 5] };
        let keep = |i: usize| i % 3 == 1 || i == 5;
        let (a, b) = data.clone().partition(keep);
        assert_eq!(a, data.select(&[1, 4, 5]));
        assert_eq!(b, data.select(&[0, 2, 3]));
        let (all, none) = data.clone().partition(|_| true);
        assert_eq!((all, none.len()), (data.clone(), 0));
    }

    #[test]
    fn an_image_is_augmented_the_same_wherever_it_is() {
        let aug = Augment { flip: true, crop_pad: 2 };
        let img: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let draw = |seed, epoch, index| {
            let mut x = img.clone();
            aug.apply_image(&mut x, [1, 4, 4], seed, epoch, index);
            x
        };
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        let varied = (0..20).filter(|&i| draw(1, 2, i) != draw(1, 3, i)).count();
        assert!(varied > 5, "epochs draw anew: {varied} of 20 differ");
    }

    #[test]
    fn the_sampler_covers_every_pool_and_does_not_depend_on_the_split() {
        let (n, batch) = (103, 8);
        let s = Sampler::new(n, batch, 5).unwrap();
        assert_eq!(s.steps_per_epoch(), 12);
        let whole = s.epoch(3, 0..batch);
        assert_eq!(whole.len(), batch);
        let mut seen: Vec<usize> = whole.concat();
        assert_eq!(seen.len(), 12 * batch);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 12 * batch, "no image twice in an epoch");
        // Members of slots 0..3 and 3..8 see what the whole batch's slots see.
        assert_eq!([s.epoch(3, 0..3), s.epoch(3, 3..8)].concat(), whole);
        assert_ne!(s.epoch(4, 0..batch), whole, "a new epoch, a new order");
        let mine = s.images_of(3..8);
        assert!(whole[3..].iter().flatten().all(|i| mine.binary_search(i).is_ok()));
        let all = s.images_of(0..batch);
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        assert!(Sampler::new(7, 8, 1).is_err());
    }

    #[test]
    fn a_shard_finds_its_images() {
        let data =
            Dataset { shape: [1, 1, 2], images: (0..12).map(|v| v as f32).collect(), labels: vec![9, 8, 7, 6, 5, 4] };
        let shard = Shard::of(&data, vec![1, 4]).unwrap();
        assert_eq!(shard.get(4), Some((&[8.0f32, 9.0][..], 5)));
        assert_eq!(shard.get(2), None);
        assert!(Shard::of(&data, vec![4, 1]).is_err());
        assert!(Shard::of(&data, vec![6]).is_err());
    }
}
