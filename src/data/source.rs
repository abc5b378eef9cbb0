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

    /// Decodes image `i` with `preprocessing`; the reason when it cannot.
    pub fn load(&self, i: usize, preprocessing: &Preprocessing) -> std::result::Result<Vec<f32>, String> {
        match self {
            Self::Files(items) => preprocessing.load(&items[i].0),
            Self::Pack(pack) => preprocessing.decode(&pack.payload(i).map_err(|e| e.to_string())?),
        }
    }
}
