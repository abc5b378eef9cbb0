//! Streaming: a set read image by image as batches need it ([`TrainingSet::Streamed`],
//! read ahead by worker threads) gives the very batches, and trains the very network, of
//! the same set in memory, whatever the number of workers and prepared batches, and when
//! a run resumes mid-epoch.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use centerloss::data::{Augment, Batches, Dataset, ImageStore, Prefetch, TrainingSet};
use centerloss::nn::{fit, FitOptions, Group, Network, NetworkSpec, TrainConfig};
use centerloss::Error;
use common::{gpu, labels, rng, uniform};

/// A set in memory read through [`ImageStore`] one image at a time, counting the reads;
/// image `broken` (if any) fails to read.
struct Counted {
    data: Dataset,
    reads: AtomicUsize,
    broken: Option<usize>,
}

impl ImageStore for Counted {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn shape(&self) -> [usize; 3] {
        self.data.shape
    }
    fn label(&self, i: usize) -> u32 {
        self.data.labels[i]
    }
    fn load_into(&self, i: usize, out: &mut [f32]) -> centerloss::Result<()> {
        if Some(i) == self.broken {
            return Err(Error::Data(format!("image {i} does not decode")));
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        out.copy_from_slice(self.data.image(i));
        Ok(())
    }
}

fn set(n: usize, classes: usize) -> Dataset {
    let mut r = rng(5);
    Dataset { shape: [1, 32, 32], images: uniform(&mut r, n * 32 * 32, 1.0), labels: labels(&mut r, n, classes) }
}

fn store(data: &Dataset, broken: Option<usize>) -> Arc<dyn ImageStore> {
    Arc::new(Counted { data: data.clone(), reads: AtomicUsize::new(0), broken })
}

#[test]
fn streamed_batches_are_the_batches_in_memory() {
    let data = set(37, 5);
    let augment = Augment { flip: true, crop_pad: 2 };
    let per = 32 * 32;
    let mut memory = Batches::new(TrainingSet::All(&data), 8, 2..6, augment, 9).unwrap();
    let streamed_store = store(&data, None);
    for prefetch in [Prefetch { workers: 1, batches: 1 }, Prefetch { workers: 3, batches: 4 }] {
        let mut streamed =
            Batches::new(TrainingSet::Streamed(&streamed_store), 8, 2..6, augment, 9).unwrap().with_prefetch(prefetch);
        // In order across epochs (4 steps each), then jumps back and forward.
        for step in (0..10).chain([3, 4, 17, 2]) {
            let (mut a, mut b) = (vec![0.0; 4 * per], vec![0.0; 4 * per]);
            let (mut la, mut lb) = (vec![0; 4], vec![0; 4]);
            memory.fill(step, &mut a, &mut la).unwrap();
            streamed.fill(step, &mut b, &mut lb).unwrap();
            assert_eq!((a, la), (b, lb), "{prefetch:?}: step {step}");
        }
    }
    // A broken image is an error naming it, not a hang or a panic.
    let broken = store(&data, Some(data.len() - 1));
    let mut streamed = Batches::new(TrainingSet::Streamed(&broken), 8, 0..8, augment, 9).unwrap();
    let err = (0..20)
        .find_map(|step| streamed.fill(step, &mut vec![0.0; 8 * per], &mut [0; 8]).err())
        .expect("the broken image is in some batch");
    assert!(err.to_string().contains("image 36 does not decode"), "{err}");
}

/// The face network after 11 steps on `data` (after `first` steps in a fit of their own,
/// when given: a run resumed mid-epoch).
fn trained(ctx: &centerloss::GpuContext, data: TrainingSet<'_>, first: Option<u64>, prefetch: Prefetch) -> Network {
    let cfg = TrainConfig { batch: 8, seed: 3, ..Default::default() };
    let mut net = Network::new(ctx, NetworkSpec::face_resnet(1, 32, 16, 5), cfg).unwrap();
    let augment = Augment { flip: true, crop_pad: 2 };
    for steps in first.into_iter().chain([11]) {
        let opts = FitOptions { steps, augment, seed: 3, progress: false, prefetch, ..Default::default() };
        fit(&mut net, data, &opts, Group::Solo, None).unwrap();
    }
    net
}

#[test]
fn a_streamed_set_trains_the_network_the_set_in_memory_trains() {
    let Some(ctx) = gpu() else { return };
    let data = set(30, 5);
    let reference = trained(&ctx, TrainingSet::All(&data), None, Prefetch::default());
    let weights = reference.param_values().unwrap();
    let centers = reference.center_loss().unwrap().centers().unwrap();
    for prefetch in [Prefetch { workers: 1, batches: 1 }, Prefetch { workers: 4, batches: 3 }] {
        let streamed_store = store(&data, None);
        let net = trained(&ctx, TrainingSet::Streamed(&streamed_store), None, prefetch);
        assert_eq!(net.param_values().unwrap(), weights, "{prefetch:?}");
        assert_eq!(net.center_loss().unwrap().centers().unwrap(), centers, "{prefetch:?}");
    }
    // Four steps first (mid-epoch: 3 steps per epoch), then the rest from step 4.
    let streamed_store = store(&data, None);
    let resumed = trained(&ctx, TrainingSet::Streamed(&streamed_store), Some(4), Prefetch::default());
    assert_eq!(resumed.param_values().unwrap(), weights, "resumed at step 4");
}
