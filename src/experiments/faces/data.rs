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

/// The job's images: training (or this rank's share of it), validation, held-out test.
pub(super) struct Data {
    /// The training set in memory (empty when it is streamed, and on MPI ranks other than
    /// 0, which hold only `own`).
    pub(super) train: Dataset,
    /// The training set read from disk, when streamed.
    pub(super) streamed: Option<Arc<dyn ImageStore>>,
    /// Images and classes of the whole training set.
    pub(super) train_images: usize,
    pub(super) classes: usize,
    pub(super) own: Option<Shard>,
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
        match (&self.streamed, &self.own) {
            (Some(streamed), _) => TrainingSet::Streamed(streamed),
            (None, Some(own)) => TrainingSet::Shard(own),
            (None, None) => TrainingSet::All(&self.train),
        }
    }

    /// The whole training set, streamed or in memory (rank 0).
    pub(super) fn train_store(&self) -> &dyn ImageStore {
        match &self.streamed {
            Some(streamed) => streamed.as_ref(),
            None => &self.train,
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
fn split_folder(folder: ImageFolder, fraction: f64, opts: &FaceOptions) -> Result<FolderSplit> {
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

/// Training set, held-out set, `--pairs` over all images, description.
type FolderSplit = (Dataset, Dataset, Option<(Dataset, Vec<Pair>)>, String);

/// The skeleton ([`ImageFolder::skeleton`]) of the images of `source` whose headers read;
/// none is [`Error::Data`] with `empty`.
fn probe(source: &ImageSource, empty: &str) -> Result<ImageFolder> {
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
) -> Result<ImageFolder> {
    let local = || if stream { probe(source, empty) } else { ImageFolder::from_source(source, shape, empty) };
    let Some(comm) = comm.filter(|c| c.size() > 1) else {
        return local();
    };
    // [1, readable bits...] or [0, error text]: the other ranks never wait on a failure.
    let mut message = Vec::new();
    let folder = if comm.rank() == 0 {
        let folder = local();
        message = match &folder {
            Ok(f) => std::iter::once(1).chain(f.readable(source).into_iter().map(u8::from)).collect(),
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
            Ok(ImageFolder::skeleton(source, &readable))
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
    train: &Dataset,
    source: &ImageSource,
    shape: [usize; 3],
    opts: &FaceOptions,
    comm: &dyn Collective,
) -> Result<Shard> {
    let indices = rank_images(train.len(), opts.batch, comm, opts.seed)?;
    let preprocessing = Preprocessing::centre(shape)?;
    let mut data = Dataset { shape, ..Default::default() };
    for &i in &indices {
        let item = ImageFolder::item_of(train, i);
        let pixels = source.load(item, &preprocessing).map_err(|why| {
            let name = source.name(item);
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

/// A part of the set as the job reads it: in memory, or streamed from `source` (the part
/// is then a skeleton of source positions).
fn store(part: Dataset, source: Option<&Arc<ImageSource>>, shape: [usize; 3]) -> Result<Arc<dyn ImageStore>> {
    Ok(match source {
        Some(source) => Arc::new(StreamedSet::from_skeleton(Arc::clone(source), Preprocessing::centre(shape)?, &part)),
        None => Arc::new(part),
    })
}

pub(super) fn load(opts: &FaceOptions, comm: Option<&dyn Collective>) -> Result<Data> {
    let shape = opts.input();
    let (mut items, mut streamed_from) = (None, None);
    let (train, test, all, mut description) = match &opts.source {
        FaceSource::BuiltIn(_) if opts.width.is_some_and(|w| w != opts.resolution) => {
            return Err(Error::Config(
                "the built-in faces are square: --width applies to a folder, list or pack".into(),
            ));
        }
        FaceSource::BuiltIn(cfg) => built_in(cfg, opts),
        FaceSource::Folder { root, test_identities: fraction }
        | FaceSource::List { list: root, test_identities: fraction } => {
            let listed = ImageSource::open(root)?;
            let stream = streams(listed.len(), shape, opts);
            let folder = read_items(&listed, shape, &no_images(root), stream, comm)?;
            let listed = Arc::new(listed);
            if stream {
                streamed_from = Some(Arc::clone(&listed));
            }
            items = Some(listed);
            let (train, test, all, description) = split_folder(folder, *fraction, opts)?;
            let how = if stream { "streamed from disk" } else { "decoded into memory" };
            (train, test, all, format!("{description}; {how}"))
        }
    };
    let (train, validation) = validation_split(train, opts.validation_fraction, opts.seed)?;
    description += &format!(
        "; {} training images, {} validation images of the training identities, {} held-out images",
        train.len(),
        validation.len(),
        test.len()
    );
    let source = streamed_from.as_ref();
    let all = match all {
        Some((images, pairs)) => Some((store(images, source, shape)?, pairs)),
        None => None,
    };
    let mut data = Data {
        train_images: train.len(),
        classes: train.num_classes(),
        own: None,
        streamed: None,
        validation: store(validation, source, shape)?,
        test: store(test, source, shape)?,
        train,
        all,
        benchmarks: Vec::new(),
        description,
    };
    if source.is_some() {
        data.streamed = Some(store(std::mem::take(&mut data.train), source, shape)?);
    }
    if let Some(comm) = comm.filter(|c| c.rank() > 0) {
        // Ranks other than 0 hold (or stream) only the training images their rows use.
        if data.streamed.is_none() {
            data.own = match &items {
                Some(items) => Some(decode_shard(&data.train, items, shape, opts, comm)?),
                None => rank_shard(&mut data.train, opts.batch, Some(comm), opts.seed)?,
            };
        }
        data.train = Dataset { shape, ..Default::default() };
        let nothing: Arc<dyn ImageStore> = Arc::new(Dataset { shape, ..Default::default() });
        (data.validation, data.test, data.all) = (Arc::clone(&nothing), nothing, None);
    } else {
        data.benchmarks = VerificationSet::read_all(&opts.eval_bins)?;
    }
    Ok(data)
}
