//! The input room: what a path a user names is ([`InputKind::of`], the one place that
//! decides), and its listing ([`ImageSource`]): image files (a folder of identity folders,
//! a list of `path label` lines, one image) or the image records of a RecordIO pack, each
//! with an identity name and a name for reports, nothing decoded yet. Decoding is a separate
//! step on a listing ([`ImageSource::load`], [`super::folder::ImageFolder::from_source`]).

use std::path::{Path, PathBuf};

use super::recordio::RecordPack;
use super::Preprocessing;
use crate::{Error, Result};

/// The largest list file read (`path label` lines): 1 GiB.
pub const MAX_LIST_BYTES: u64 = 1 << 30;

const EXTENSIONS: [&str; 6] = ["pgm", "png", "jpg", "jpeg", "ppm", "pnm"];

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    Ok(entries)
}

/// What a path holds, as [`InputKind::of`] decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A RecordIO pack: a folder holding `train.rec`, or a `.rec` file.
    Pack,
    /// A folder: identity folders `ROOT/<identity>/<image>` (and images directly inside).
    Folder,
    /// One image file (PGM, PPM, PNG, JPEG).
    Image,
    /// An `.npy` of rows (preprocessed inputs, or embeddings).
    Npy,
    /// Any other file: a list of `path label` lines.
    List,
}

impl InputKind {
    /// What `path` holds; a path that does not exist is [`Error::Data`] saying what to give.
    pub fn of(path: &Path) -> Result<Self> {
        Ok(if RecordPack::is_pack(path) {
            Self::Pack
        } else if path.is_dir() {
            Self::Folder
        } else if !path.exists() {
            return Err(Error::Data(format!(
                "{} does not exist: give a folder of identity folders, a folder of images, a list of `path label` \
                 lines, a RecordIO pack or an image",
                path.display()
            )));
        } else if path.extension().is_some_and(|e| e == "npy") {
            Self::Npy
        } else if is_image(path) {
            Self::Image
        } else {
            Self::List
        })
    }
}

/// Where a face set's images are, with their identities.
pub enum ImageSource {
    /// Image files, as (file, identity name).
    Files(Vec<(PathBuf, String)>),
    /// The image records of a pack; an image's identity is its label, written as a number.
    Pack(RecordPack),
}

/// The error text of a folder or list with no readable image.
pub(crate) fn no_images(source: &Path) -> String {
    format!("{} holds no readable images (ROOT/<identity>/<image>, or a list of `path label` lines)", source.display())
}

impl ImageSource {
    /// A training set's images: a pack, a folder of identity folders (images directly in
    /// the folder have no identity and are left out) or a list of `path label` lines. An
    /// image or an `.npy` is [`Error::Data`] (training needs identities), and so is a
    /// folder or list that names no image.
    pub fn open(path: &Path) -> Result<Self> {
        Self::list(path, false)
    }

    /// The images a user names to a trained model: [`ImageSource::open`]'s, with the
    /// images directly inside a folder (identity "") and a single image (identity: its
    /// folder's name). An `.npy` is [`Error::Data`] (its rows are not images); no image
    /// at all is too.
    pub fn open_any(path: &Path) -> Result<Self> {
        Self::list(path, true)
    }

    /// [`ImageSource::open`], or with `any` [`ImageSource::open_any`].
    fn list(path: &Path, any: bool) -> Result<Self> {
        let items = match InputKind::of(path)? {
            InputKind::Pack => return Ok(Self::Pack(RecordPack::open(path)?)),
            InputKind::Folder => list_folder(path, any)?,
            InputKind::List => list_file(path)?,
            InputKind::Image if any => {
                let folder = path.parent().and_then(|p| p.file_name()).map(crate::files::name_text);
                vec![(path.to_path_buf(), folder.unwrap_or_default())]
            }
            InputKind::Npy if any => {
                return Err(Error::Data(format!("{} is an .npy of rows, not images", path.display())));
            }
            kind => {
                return Err(Error::Data(format!(
                    "{} is {}: train on a folder of identity folders, a list of `path label` lines or a RecordIO pack",
                    path.display(),
                    if kind == InputKind::Image { "one image" } else { "an .npy of rows" }
                )))
            }
        };
        if items.is_empty() {
            return Err(Error::Data(no_images(path)));
        }
        Ok(Self::Files(items))
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

/// The images of `root/<identity>/<image>`, identities in name order, as (file, identity
/// name), without decoding any; with `loose`, the images directly inside `root` too
/// (identity "").
fn list_folder(root: &Path, loose: bool) -> Result<Vec<(PathBuf, String)>> {
    let mut items = Vec::new();
    for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let name = dir.file_name().map(crate::files::name_text).unwrap_or_default();
        for file in sorted_entries(&dir)?.into_iter().filter(|p| p.is_file() && is_image(p)) {
            items.push((file, name.clone()));
        }
    }
    if loose {
        let files = sorted_entries(root)?.into_iter().filter(|p| p.is_file() && is_image(p));
        items.extend(files.map(|p| (p, String::new())));
    }
    Ok(items)
}

/// The images of a list file of `path label` lines (paths relative to the list's folder;
/// the label is any identity name or number; at most [`MAX_LIST_BYTES`]), without decoding
/// any.
fn list_file(list: &Path) -> Result<Vec<(PathBuf, String)>> {
    let text = crate::files::read_text(list, MAX_LIST_BYTES, "list of images")?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, label) = line
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| Error::Data(format!("{}:{}: expected `path label`", list.display(), n + 1)))?;
        items.push((base.join(path.trim()), label.to_string()));
    }
    Ok(items)
}
