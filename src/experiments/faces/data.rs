//! The face job's data: the built-in set, a folder (or list) of images or a RecordIO pack,
//! split into training, validation and held-out identities, and on MPI ranks other than 0
//! only the training images that rank's rows use; the verification benchmarks of
//! `--eval-bin`.

use super::{FaceOptions, FaceSource};
use crate::collective::Collective;
use crate::data::bin::VerificationSet;
use crate::data::faces::FaceSetConfig;
use crate::data::folder::{numbered, ImageFolder};
use crate::data::{parse_pairs, Dataset, ImageSource, Pair, Preprocessing, Shard};
use crate::experiments::training::{rank_images, rank_shard, validation_split};
use crate::{Error, Result};

/// The job's images: training (or this rank's share of it), validation, held-out test.
pub(super) struct Data {
    pub(super) train: Dataset,
    /// Images and classes of the whole training set (`train` is emptied on MPI ranks
    /// other than 0, which hold only `own`).
    pub(super) train_images: usize,
    pub(super) classes: usize,
    pub(super) own: Option<Shard>,
    pub(super) validation: Dataset,
    pub(super) test: Dataset,
    pub(super) all: Option<(Dataset, Vec<Pair>)>,
    /// The verification benchmarks of `--eval-bin`, by name (on rank 0 only).
    pub(super) benchmarks: Vec<(String, VerificationSet)>,
    pub(super) description: String,
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
        log::warn!("skipped {} unreadable images, first {}: {why}", folder.skipped.len(), path.display());
    }
    let all = match &opts.pairs {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
            Some((folder.data.clone(), parse_pairs(&text, &numbered(&folder))?))
        }
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
    let mut names = held_out.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
    if held_out.len() > 6 {
        names.push_str(", ...");
    }
    Ok((train, test, all, format!("{description}; {} identities held out ({names})", held_out.len())))
}

/// Training set, held-out set, `--pairs` over all images, description.
type FolderSplit = (Dataset, Dataset, Option<(Dataset, Vec<Pair>)>, String);

/// Reads a folder's, list's or pack's images for a run: all of them outside a group and on
/// rank 0 of `comm`, which then sends every rank which images it could read; the other ranks take
/// that answer and decode nothing yet ([`ImageFolder::skeleton`]: the split is planned on
/// labels alone, and each rank decodes only its shard, [`decode_shard`]).
fn read_items(
    source: &ImageSource,
    shape: [usize; 3],
    empty: &str,
    comm: Option<&dyn Collective>,
) -> Result<ImageFolder> {
    let Some(comm) = comm.filter(|c| c.size() > 1) else {
        return ImageFolder::from_source(source, shape, empty);
    };
    // [1, readable bits...] or [0, error text]: the other ranks never wait on a failure.
    let mut message = Vec::new();
    let folder = if comm.rank() == 0 {
        let folder = ImageFolder::from_source(source, shape, empty);
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
    let preprocessing = Preprocessing::centre_square(shape)?;
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

pub(super) fn load(opts: &FaceOptions, comm: Option<&dyn Collective>) -> Result<Data> {
    let shape = [opts.channels, opts.resolution, opts.resolution];
    let mut items = None;
    let (train, test, all, mut description) = match &opts.source {
        FaceSource::BuiltIn(cfg) => {
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
        FaceSource::Folder { root, test_identities: fraction }
        | FaceSource::List { list: root, test_identities: fraction } => {
            let listed = match &opts.source {
                FaceSource::Folder { .. } => ImageSource::open(root)?,
                _ => ImageSource::Files(ImageFolder::list_file(root)?),
            };
            let folder = read_items(&listed, shape, &ImageFolder::no_images(root), comm)?;
            items = Some(listed);
            split_folder(folder, *fraction, opts)?
        }
    };
    let (train, validation) = validation_split(train, opts.validation_fraction, opts.seed)?;
    description += &format!(
        "; {} training images, {} validation images of the training identities, {} held-out images",
        train.len(),
        validation.len(),
        test.len()
    );
    let mut data = Data {
        train_images: train.len(),
        classes: train.num_classes(),
        own: None,
        train,
        validation,
        test,
        all,
        benchmarks: Vec::new(),
        description,
    };
    if let Some(comm) = comm.filter(|c| c.rank() > 0) {
        // Ranks other than 0 hold only the training images their rows use.
        data.own = match &items {
            Some(items) => Some(decode_shard(&data.train, items, shape, opts, comm)?),
            None => rank_shard(&mut data.train, opts.batch, Some(comm), opts.seed)?,
        };
        data.train = Dataset { shape, ..Default::default() };
        (data.validation, data.test, data.all) = (Dataset::default(), Dataset::default(), None);
    } else {
        data.benchmarks = VerificationSet::read_all(&opts.eval_bins)?;
    }
    Ok(data)
}
