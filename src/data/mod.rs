//! Data: MNIST IDX files, the built-in procedural face set, image folders, verification
//! pairs, and the batch plumbing shared by the examples (shuffling, augmentation).

pub mod faces;
#[cfg(feature = "images")]
pub mod folder;
#[cfg(feature = "mnist")]
pub mod mnist;
pub mod pairs;

pub use pairs::{parse_pairs, Pair};

use rand::{rngs::StdRng, seq::SliceRandom, Rng};

/// Images (`n * channels * height * width` values, NCHW, normalised) with their labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Per-image shape: channels, height, width.
    pub shape: [usize; 3],
    /// The pixels, image after image.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u32>,
}

impl Dataset {
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
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut out = Dataset { shape: self.shape, ..Default::default() };
        for &i in indices {
            out.images.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
        }
        out
    }

    /// Splits the set into the images where `first(i)` holds and the others, each in its
    /// original order, in place: the pixels move, and at most the second part is ever
    /// held twice (a 300 000-image set is not duplicated to split it).
    pub fn partition(mut self, first: impl Fn(usize) -> bool) -> (Dataset, Dataset) {
        let n = self.len();
        let len = self.image_len();
        let order: Vec<usize> = (0..n).filter(|&i| first(i)).chain((0..n).filter(|&i| !first(i))).collect();
        // Move image order[k] to slot k by following the permutation's cycles.
        let mut placed = vec![false; n];
        let mut held = vec![0.0f32; len];
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
        let head = Dataset { shape: self.shape, images: self.images, labels: labels[..cut].to_vec() };
        let tail = Dataset { shape: self.shape, images: rest_images, labels: labels[cut..].to_vec() };
        (head, tail)
    }

    /// Number of classes: one more than the largest label.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
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

    /// Advances `rng` exactly as augmenting `images` images would, without touching pixels
    /// (a run resumed mid-epoch replays the batches it already trained on this way).
    pub fn skip(&self, images: usize, rng: &mut StdRng) {
        for _ in 0..images {
            self.draw(rng);
        }
    }

    /// Augments `images` (a batch of `shape`) in place.
    pub fn apply(&self, images: &mut [f32], shape: [usize; 3], rng: &mut StdRng) {
        let [c, h, w] = shape;
        let plane = h * w;
        let mut scratch = vec![0.0f32; c * plane];
        for img in images.chunks_mut(c * plane) {
            let (flip, dy, dx) = self.draw(rng);
            if !flip && dy == 0 && dx == 0 {
                continue;
            }
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
            img.copy_from_slice(&scratch);
        }
    }
}

/// The index order of one epoch: a seeded shuffle, cut into full batches (the last
/// partial batch is dropped, as the trainer's batch size is fixed).
pub fn epoch_batches(n: usize, batch: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order.chunks_exact(batch.max(1)).map(|c| c.to_vec()).collect()
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
    fn skip_draws_what_apply_draws() {
        let aug = Augment { flip: true, crop_pad: 2 };
        let (mut a, mut b) = (StdRng::seed_from_u64(5), StdRng::seed_from_u64(5));
        aug.apply(&mut [0.5; 3 * 16], [1, 4, 4], &mut a);
        aug.skip(3, &mut b);
        assert_eq!(a.random::<u64>(), b.random::<u64>());
    }

    #[test]
    fn epochs_cover_full_batches_once() {
        let mut rng = StdRng::seed_from_u64(1);
        let b = epoch_batches(10, 3, &mut rng);
        assert_eq!(b.len(), 3);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 9);
    }
}
