//! A listed face set, nothing decoded yet: image files (a folder of identity folders or a
//! list of `path label` lines) or the image records of a RecordIO pack. Each image has an
//! identity name and a name for reports; [`ImageSource::load`] decodes one with a
//! [`Preprocessing`].

use std::path::{Path, PathBuf};

use super::folder::ImageFolder;
use super::recordio::RecordPack;
use super::Preprocessing;
use crate::Result;

/// Where a face set's images are, with their identities.
pub enum ImageSource {
    /// Image files, as (file, identity name).
    Files(Vec<(PathBuf, String)>),
    /// The image records of a pack; an image's identity is its label, written as a number.
    Pack(RecordPack),
}

impl ImageSource {
    /// The images of `path`: a pack (a folder holding `train.rec`, or a `.rec` file) or a
    /// folder of identity folders ([`ImageFolder::list`]).
    pub fn open(path: &Path) -> Result<Self> {
        if RecordPack::is_pack(path) {
            Ok(Self::Pack(RecordPack::open(path)?))
        } else {
            Ok(Self::Files(ImageFolder::list(path)?))
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Self::Files(items) => items.len(),
            Self::Pack(pack) => pack.len(),
        }
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i`'s identity name.
    pub fn identity(&self, i: usize) -> String {
        match self {
            Self::Files(items) => items[i].1.clone(),
            Self::Pack(pack) => pack.labels[i].to_string(),
        }
    }

    /// How reports name image `i`: its file, or `train.rec#key`.
    pub fn name(&self, i: usize) -> PathBuf {
        match self {
            Self::Files(items) => items[i].0.clone(),
            Self::Pack(pack) => pack.name(i),
        }
    }

    /// Whether image `i` looks readable without decoding it: a file's header names a
    /// known format and a size (a pack's records were checked when it was opened).
    pub fn probe(&self, i: usize) -> std::result::Result<(), String> {
        match self {
            Self::Files(items) => image::ImageReader::new(std::io::BufReader::new(
                crate::files::open(&items[i].0).map_err(|e| crate::files::reason(&e))?,
            ))
            .with_guessed_format()
            .map_err(|e| e.to_string())?
            .into_dimensions()
            .map(|_| ())
            .map_err(|e| e.to_string()),
            Self::Pack(_) => Ok(()),
        }
    }

    /// [`ImageSource::probe`] of every image, on all cores.
    pub fn probe_all(&self) -> Vec<std::result::Result<(), String>> {
        self.map_parallel(0..self.len(), "the probe", |i| self.probe(i))
    }

    /// [`ImageSource::load`] of images `range`, on all cores, in order.
    pub fn load_range(
        &self,
        range: std::ops::Range<usize>,
        preprocessing: &Preprocessing,
    ) -> Vec<std::result::Result<Vec<f32>, String>> {
        self.map_parallel(range, "the image decoder", |i| self.load(i, preprocessing))
    }

    /// `f` of each image of `range`, in order, the range cut into one run per core; a run
    /// whose thread panicked is `what` panicked, image by image.
    fn map_parallel<T: Send>(
        &self,
        range: std::ops::Range<usize>,
        what: &str,
        f: impl Fn(usize) -> std::result::Result<T, String> + Sync,
    ) -> Vec<std::result::Result<T, String>> {
        let indices: Vec<usize> = range.collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = indices.len().div_ceil(threads).max(1);
        let f = &f;
        std::thread::scope(|scope| {
            let jobs: Vec<_> = indices
                .chunks(per)
                .map(|chunk| (chunk.len(), scope.spawn(move || chunk.iter().map(|&i| f(i)).collect::<Vec<_>>())))
                .collect();
            jobs.into_iter()
                .flat_map(|(n, job)| {
                    job.join().unwrap_or_else(|_| (0..n).map(|_| Err(format!("{what} panicked"))).collect())
                })
                .collect()
        })
    }

    /// Decodes image `i` with `preprocessing`; the reason when it cannot.
    pub fn load(&self, i: usize, preprocessing: &Preprocessing) -> std::result::Result<Vec<f32>, String> {
        match self {
            Self::Files(items) => preprocessing.load(&items[i].0),
            Self::Pack(pack) => preprocessing.decode(&pack.payload(i).map_err(|e| e.to_string())?),
        }
    }
}
