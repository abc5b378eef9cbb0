//! The face job's data: the built-in set, a folder (or list) of images or a RecordIO pack,
//! split into training, validation and held-out identities, and on MPI ranks other than 0
//! only the training images that rank's rows use; the verification benchmarks of
//! `--eval-bin`. A folder, list or pack whose decoded images would take more than
//! `FaceOptions::in_memory_max` bytes is streamed: only the images' headers are read up
//! front, and every part is read from disk as training and evaluation need it.

use std::sync::Arc;

use super::{FaceOptions, FaceSource};
use crate::collective::Collective;
use crate::data::bin::VerificationSet;
use crate::data::faces::FaceSetConfig;
use crate::data::folder::{numbered, ImageFolder};
use crate::data::{
    no_images, read_pairs, Dataset, ImageSource, ImageStore, Pair, Preprocessing, Shard, StreamedSet, TrainingSet,
};
use crate::experiments::training::{rank_images, rank_shard, validation_split};
use crate::{Error, Result};

/// The training set as this process holds it.
pub(super) enum Training {
    /// Whole, in memory.
    InMemory(Dataset),
    /// Whole, each image read from disk when a batch needs it.
    Streamed(Arc<dyn ImageStore>),
    /// On an MPI rank other than 0: the images its rows use.
    Shard(Shard),
}

/// The job's images: training (or this rank's share of it), validation, held-out test.
pub(super) struct Data {
    pub(super) training: Training,
    /// Images and classes of the whole training set.
    pub(super) train_images: usize,
    pub(super) classes: usize,
    pub(super) validation: Arc<dyn ImageStore>,
    pub(super) test: Arc<dyn ImageStore>,
    pub(super) all: Option<(Arc<dyn ImageStore>, Vec<Pair>)>,
    /// The verification benchmarks of `--eval-bin`, by name (on rank 0 only).
    pub(super) benchmarks: Vec<(String, VerificationSet)>,
    pub(super) description: String,
}

impl Data {
    /// What this process trains on: the streamed set, its shard, or the set in memory.
    pub(super) fn training_set(&self) -> TrainingSet<'_> {
        match &self.training {
            Training::InMemory(all) => TrainingSet::All(all),
            Training::Streamed(streamed) => TrainingSet::Streamed(streamed),
            Training::Shard(own) => TrainingSet::Shard(own),
        }
    }

    /// The training set this process holds: the whole set on rank 0, streamed or in memory.
    pub(super) fn train_store(&self) -> &dyn ImageStore {
        match &self.training {
            Training::InMemory(all) => all,
            Training::Streamed(streamed) => streamed.as_ref(),
            Training::Shard(own) => &own.data,
        }
    }
}

/// Identities with a single image (they train, but give no genuine pair).
fn single_image_identities(labels: &[u32]) -> usize {
    let mut counts = std::collections::BTreeMap::new();
    for &l in labels {
        *counts.entry(l).or_insert(0usize) += 1;
    }
    counts.values().filter(|&&c| c == 1).count()
}

/// A loaded folder's training and held-out identities, its `--pairs` (over all its images)
/// and a description.
fn split_folder<T: Copy + Default>(
    folder: ImageFolder<T>,
    fraction: f64,
    opts: &FaceOptions,
) -> Result<FolderSplit<T>> {
    if let Some((path, why)) = folder.skipped.first() {
        let (n, first) = (folder.skipped.len(), path.display());
        if opts.strict {
            return Err(Error::Data(format!("{n} images do not decode, first {first}: {why} (--strict)")));
        }
        log::warn!("skipped {n} unreadable images, first {first}: {why} (--strict makes this an error)");
    }
    let all = match &opts.pairs {
        Some(p) => Some((folder.data.clone(), read_pairs(p, &numbered(&folder))?)),
        None => None,
    };
    let description = format!(
        "{} images of {} identities ({} with a single image; {} unreadable, skipped)",
        folder.data.len(),
        folder.identities.len(),
        single_image_identities(&folder.data.labels),
        folder.skipped.len(),
    );
    let (train, test, held_out) = folder.into_split_identities(fraction, opts.seed)?;
    check_held_out(&test.labels)?;
    let mut names = held_out.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if held_out.len() > 6 {
        names.push_str(", ...");
    }
    Ok((train, test, all, format!("{description}; {} identities held out ({names})", held_out.len())))
}

/// [`Error::Data`] unless the held-out images give both kinds of verification pair: two
/// identities or more, and one with two images or more.
fn check_held_out(labels: &[u32]) -> Result<()> {
    let mut counts = std::collections::BTreeMap::new();
    for &l in labels {
        *counts.entry(l).or_insert(0usize) += 1;
    }
    let identities = counts.len();
    let genuine = counts.values().any(|&c| c >= 2);
    if identities < 2 || !genuine {
        return Err(Error::Data(format!(
            "the {identities} held-out identities ({} images) give no {} pair to evaluate on: hold out more \
             identities (--test-identities) or give more images per identity",
            labels.len(),
            if identities < 2 { "impostor" } else { "genuine" }
        )));
    }
    Ok(())
}

/// Training set, held-out set, `--pairs` over all images, description: decoded images, or
/// with `T = u32` their positions in the source.
type FolderSplit<T = f32> = (Dataset<T>, Dataset<T>, Option<(Dataset<T>, Vec<Pair>)>, String);

/// A listed set as a run reads it: decoded, or its skeleton ([`ImageFolder::skeleton`]).
enum Listed {
    Decoded(ImageFolder),
    Skeleton(ImageFolder<u32>),
}

/// The skeleton ([`ImageFolder::skeleton`]) of the images of `source` whose headers read;
/// none is [`Error::Data`] with `empty`.
fn probe(source: &ImageSource, empty: &str) -> Result<ImageFolder<u32>> {
    let probed = source.probe_all();
    let readable: Vec<bool> = probed.iter().map(Result::is_ok).collect();
    let mut folder = ImageFolder::skeleton(source, &readable);
    for (reason, (_, why)) in probed.iter().filter_map(|p| p.as_ref().err()).zip(folder.skipped.iter_mut()) {
        *why = reason.clone();
    }
    if folder.data.is_empty() {
        return Err(Error::Data(empty.to_string()));
    }
    Ok(folder)
}

/// Reads a folder's, list's or pack's images for a run (decoded, or with `stream` only
/// probed into a skeleton): outside a group and on rank 0 of `comm`, which then sends
/// every rank which images it could read; the other ranks take that answer and read
/// nothing yet ([`ImageFolder::skeleton`]: the split is planned on labels alone, and each
/// rank decodes only its shard, [`decode_shard`], or streams its rows).
fn read_items(
    source: &ImageSource,
    shape: [usize; 3],
    empty: &str,
    stream: bool,
    comm: Option<&dyn Collective>,
) -> Result<Listed> {
    let local = || -> Result<Listed> {
        Ok(if stream {
            Listed::Skeleton(probe(source, empty)?)
        } else {
            Listed::Decoded(ImageFolder::from_source(source, shape, empty)?)
        })
    };
    let Some(comm) = comm.filter(|c| c.size() > 1) else {
        return local();
    };
    // [1, readable bits...] or [0, error text]: the other ranks never wait on a failure.
    let mut message = Vec::new();
    let folder = if comm.rank() == 0 {
        let folder = local();
        let readable = |listed: &Listed| match listed {
            Listed::Decoded(f) => f.readable(source),
            Listed::Skeleton(f) => f.readable(source),
        };
        message = match &folder {
            Ok(f) => std::iter::once(1).chain(readable(f).into_iter().map(u8::from)).collect(),
            Err(e) => [&[0u8][..], e.to_string().as_bytes()].concat(),
        };
        Some(folder)
    } else {
        None
    };
    comm.broadcast(0, &mut message)?;
    match (folder, message.split_first()) {
        (Some(folder), _) => folder,
        (None, Some((1, readable))) => {
            let readable: Vec<bool> = readable.iter().map(|&b| b == 1).collect();
            Ok(Listed::Skeleton(ImageFolder::skeleton(source, &readable)))
        }
        (None, other) => {
            let why = other.map_or(String::new(), |(_, text)| String::from_utf8_lossy(text).into_owned());
            Err(Error::Rank { rank: 0, source: Box::new(Error::Data(why)) })
        }
    }
}

/// Decodes the training images a rank other than 0 needs, from the skeleton training set
/// `train` ([`ImageFolder::skeleton`], split like the decoded set) and the set's `source`:
/// those [`rank_images`] names for its rows.
fn decode_shard(
    train: &Dataset<u32>,
    source: &ImageSource,
    shape: [usize; 3],
    opts: &FaceOptions,
    comm: &dyn Collective,
) -> Result<Shard> {
    let indices = rank_images(train.len(), opts.batch, comm, opts.seed)?;
    let preprocessing = Preprocessing::centre(shape)?;
    let mut data = Dataset { shape, ..Default::default() };
    for &i in &indices {
        let position = train.images[i] as usize;
        let pixels = source.load(position, &preprocessing).map_err(|why| {
            let name = source.name(position);
            Error::Data(format!("{} decoded on rank 0 but not on rank {}: {why}", name.display(), comm.rank()))
        })?;
        data.images.extend(pixels);
        data.labels.push(train.labels[i]);
    }
    Ok(Shard { total: train.len(), indices, data })
}

/// The built-in set at the job's resolution and colour: training and held-out identities
/// and a description.
fn built_in(cfg: &FaceSetConfig, opts: &FaceOptions) -> FolderSplit {
    let cfg = FaceSetConfig { resolution: opts.resolution, rgb: opts.channels == 3, ..cfg.clone() };
    let (train, test) = cfg.split();
    let description = format!(
        "built-in faces: {} training identities, {} held-out identities, {} images each, {}x{} {}",
        cfg.train_identities,
        cfg.test_identities,
        cfg.images_per_identity,
        cfg.resolution,
        cfg.resolution,
        if cfg.rgb { "RGB" } else { "grey" }
    );
    (train, test, None, description)
}

/// Whether a set of `images` images of `shape` is streamed rather than decoded up front.
fn streams(images: usize, shape: [usize; 3], opts: &FaceOptions) -> bool {
    (images * shape.iter().product::<usize>() * 4) as u64 > opts.in_memory_max
}

/// Training, validation and held-out images (and `--pairs`' images) after the validation
/// split, and the description with their counts.
type Parts<T> = (Dataset<T>, Dataset<T>, Dataset<T>, Option<(Dataset<T>, Vec<Pair>)>, String);

/// Splits validation images off `split`'s training images and completes its description.
fn with_validation<T: Copy + Default>(split: FolderSplit<T>, opts: &FaceOptions) -> Result<Parts<T>> {
    let (train, test, all, mut description) = split;
    let (train, validation) = validation_split(train, opts.validation_fraction, opts.seed)?;
    description += &format!(
        "; {} training images, {} validation images of the training identities, {} held-out images",
        train.len(),
        validation.len(),
        test.len()
    );
    Ok((train, validation, test, all, description))
}

/// The job's data from decoded images: all of it on rank 0 (or alone), the training images
/// its rows use on the other ranks of `comm`.
fn decoded(split: FolderSplit, opts: &FaceOptions, comm: Option<&dyn Collective>) -> Result<Data> {
    let shape = opts.input();
    let (train, validation, test, all, description) = with_validation(split, opts)?;
    let mut data = Data {
        train_images: train.len(),
        classes: train.num_classes(),
        training: Training::InMemory(train),
        validation: Arc::new(validation),
        test: Arc::new(test),
        all: all.map(|(images, pairs)| (Arc::new(images) as Arc<dyn ImageStore>, pairs)),
        benchmarks: Vec::new(),
        description,
    };
    if let (Some(comm), Training::InMemory(train)) = (comm.filter(|c| c.rank() > 0), &mut data.training) {
        // Ranks other than 0 hold only the training images their rows use.
        let own = rank_shard(train, opts.batch, Some(comm), opts.seed)?;
        data.training = Training::Shard(own.ok_or_else(|| Error::Internal("no shard on a rank other than 0".into()))?);
        let nothing: Arc<dyn ImageStore> = Arc::new(Dataset { shape, ..Default::default() });
        (data.validation, data.test, data.all) = (Arc::clone(&nothing), nothing, None);
    }
    Ok(data)
}

/// The job's data from a skeleton split of `source`: streamed from it (evaluation parts on
/// rank 0 alone), or on a rank other than 0 of `comm` the training images its rows use,
/// decoded now.
fn from_skeleton(
    split: FolderSplit<u32>,
    source: &Arc<ImageSource>,
    stream: bool,
    opts: &FaceOptions,
    comm: Option<&dyn Collective>,
) -> Result<Data> {
    let shape = opts.input();
    let (train, validation, test, all, description) = with_validation(split, opts)?;
    let streamed = |part: &Dataset<u32>| -> Result<Arc<dyn ImageStore>> {
        Ok(Arc::new(StreamedSet::from_skeleton(Arc::clone(source), Preprocessing::centre(shape)?, part)))
    };
    let rank = comm.map_or(0, |c| c.rank());
    let training = match comm.filter(|_| !stream && rank > 0) {
        Some(comm) => Training::Shard(decode_shard(&train, source, shape, opts, comm)?),
        None if stream => Training::Streamed(streamed(&train)?),
        None => return Err(Error::Internal("a set is read as a skeleton only to stream it or on other ranks".into())),
    };
    let nothing: Arc<dyn ImageStore> = Arc::new(Dataset { shape, ..Default::default() });
    let mut data = Data {
        train_images: train.len(),
        classes: train.num_classes(),
        training,
        validation: Arc::clone(&nothing),
        test: nothing,
        all: None,
        benchmarks: Vec::new(),
        description,
    };
    if stream && rank == 0 {
        (data.validation, data.test) = (streamed(&validation)?, streamed(&test)?);
        data.all = all.map(|(part, pairs)| Ok::<_, Error>((streamed(&part)?, pairs))).transpose()?;
    }
    Ok(data)
}

pub(super) fn load(opts: &FaceOptions, comm: Option<&dyn Collective>) -> Result<Data> {
    let shape = opts.input();
    let mut data = match &opts.source {
        FaceSource::BuiltIn(_) if opts.width.is_some_and(|w| w != opts.resolution) => {
            return Err(Error::Config(
                "the built-in faces are square: --width applies to a folder, list or pack".into(),
            ));
        }
        FaceSource::BuiltIn(cfg) => decoded(built_in(cfg, opts), opts, comm)?,
        FaceSource::Folder { root, test_identities: fraction }
        | FaceSource::List { list: root, test_identities: fraction } => {
            let listed = Arc::new(ImageSource::open(root)?);
            let stream = streams(listed.len(), shape, opts);
            let how = if stream { "; streamed from disk" } else { "; decoded into memory" };
            match read_items(&listed, shape, &no_images(root), stream, comm)? {
                Listed::Decoded(folder) => {
                    let (train, test, all, description) = split_folder(folder, *fraction, opts)?;
                    decoded((train, test, all, description + how), opts, comm)?
                }
                Listed::Skeleton(folder) => {
                    let (train, test, all, description) = split_folder(folder, *fraction, opts)?;
                    from_skeleton((train, test, all, description + how), &listed, stream, opts, comm)?
                }
            }
        }
    };
    if comm.is_none_or(|c| c.rank() == 0) {
        data.benchmarks = VerificationSet::read_all(&opts.eval_bins)?;
    }
    Ok(data)
}
