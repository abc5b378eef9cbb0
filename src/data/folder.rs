//! Real face data: an image folder `ROOT/<identity>/<image>` (the layout of LFW,
//! CASIA-WebFace and the AT&T/ORL faces; PGM, PNG or JPEG, grey or colour), or a list file
//! of `path label` lines. Images are centre-cropped to a square and resized to the network
//! input. Unreadable or truncated images are reported with their path and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use super::{Dataset, ImageSource, Preprocessing};
use crate::{Error, Result};

/// A loaded image folder.
#[derive(Clone, Debug, Default)]
pub struct ImageFolder {
    /// All readable images, labelled by identity index.
    pub data: Dataset,
    /// Identity names, by label.
    pub identities: Vec<String>,
    /// The file of each image.
    pub paths: Vec<PathBuf>,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

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

/// Decodes `path`, centre-crops it to the shape's aspect (a square for a square shape) and
/// resizes it to `shape` (grey or RGB), scaled to [-1, 1]: [`Preprocessing::centre`], the
/// recipe a checkpoint records.
pub fn load_image(path: &Path, shape: [usize; 3]) -> std::result::Result<Vec<f32>, String> {
    Preprocessing::centre(shape).map_err(|e| e.to_string())?.load(path)
}

impl ImageFolder {
    /// Reads `root/<identity>/<image>`; identities in name order, labelled from 0.
    /// An identity folder without readable images is skipped; no images at all is an error.
    pub fn load(root: &Path, shape: [usize; 3]) -> Result<Self> {
        Self::from_items(Self::list(root)?, shape, &Self::no_images(root))
    }

    /// The images `load` would read, in its order, as (file, identity name), without
    /// decoding any.
    pub fn list(root: &Path) -> Result<Vec<(PathBuf, String)>> {
        if !root.is_dir() {
            return Err(Error::Data(format!(
                "{} is not a folder of identity folders (nor a RecordIO pack: a folder holding train.rec)",
                root.display()
            )));
        }
        let mut items = Vec::new();
        for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let name = dir.file_name().map(crate::files::name_text).unwrap_or_default();
            for file in sorted_entries(&dir)?.into_iter().filter(|p| p.is_file() && is_image(p)) {
                items.push((file, name.clone()));
            }
        }
        Ok(items)
    }

    /// The images of any source a user names, as (file, identity name): a folder of
    /// identity folders (as [`ImageFolder::list`]) with any images directly inside it
    /// (identity ""), a list file (as [`ImageFolder::list_file`]), or one image file
    /// (identity: its folder's name). Nothing is decoded; no image is [`Error::Data`].
    pub fn list_any(input: &Path) -> Result<Vec<(PathBuf, String)>> {
        let items = if input.is_dir() {
            let mut items = Self::list(input)?;
            let loose = sorted_entries(input)?.into_iter().filter(|p| p.is_file() && is_image(p));
            items.extend(loose.map(|p| (p, String::new())));
            items
        } else if input.exists() && is_image(input) {
            let folder = input.parent().and_then(|p| p.file_name()).map(crate::files::name_text);
            vec![(input.to_path_buf(), folder.unwrap_or_default())]
        } else if input.exists() {
            Self::list_file(input)?
        } else {
            return Err(Error::Data(format!(
                "{} does not exist: give a folder of identity folders, a folder of images, a list of `path label` lines or an image",
                input.display()
            )));
        };
        if items.is_empty() {
            return Err(Error::Data(Self::no_images(input)));
        }
        Ok(items)
    }

    /// The error text of a folder or list with no readable image.
    pub fn no_images(source: &Path) -> String {
        format!(
            "{} holds no readable images (ROOT/<identity>/<image>, or a list of `path label` lines)",
            source.display()
        )
    }

    /// Reads a list file of `path label` lines (paths relative to the list's folder; the
    /// label is any identity name or number; at most [`MAX_LIST_BYTES`]).
    pub fn load_list(list: &Path, shape: [usize; 3]) -> Result<Self> {
        Self::from_items(Self::list_file(list)?, shape, &Self::no_images(list))
    }

    /// The images `load_list` would read, as (file, identity name), without decoding any.
    pub fn list_file(list: &Path) -> Result<Vec<(PathBuf, String)>> {
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

    /// Which images of `source` this folder read (true) or skipped as unreadable.
    pub fn readable(&self, source: &ImageSource) -> Vec<bool> {
        let skipped: std::collections::HashSet<&PathBuf> = self.skipped.iter().map(|(p, _)| p).collect();
        (0..source.len()).map(|i| !skipped.contains(&source.name(i))).collect()
    }

    /// The folder `source` makes where `readable` says which could be read, without pixels:
    /// labels and identities as [`ImageFolder::load`] gives them, and as each image's one
    /// value (shape [1, 1, 1]) its position in `source` (the bits of a `u32`, read back with
    /// [`ImageFolder::item_of`]). Splits move these values as they move pixels, so a split
    /// planned on the skeleton says which files each part needs; decode only those.
    pub fn skeleton(source: &ImageSource, readable: &[bool]) -> Self {
        let mut out = ImageFolder { data: Dataset { shape: [1, 1, 1], ..Default::default() }, ..Default::default() };
        let mut ids: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..source.len() {
            if !readable.get(i).copied().unwrap_or(false) {
                out.skipped.push((source.name(i), "unreadable where the folder was decoded".into()));
                continue;
            }
            out.push_identity(&mut ids, source.identity(i));
            out.data.images.push(f32::from_bits(i as u32));
            out.paths.push(source.name(i));
        }
        out
    }

    /// Labels image after image by identity name, in order of first appearance.
    fn push_identity(&mut self, ids: &mut BTreeMap<String, u32>, name: String) {
        let next = ids.len() as u32;
        let label = *ids.entry(name.clone()).or_insert(next);
        if label == next {
            self.identities.push(name);
        }
        self.data.labels.push(label);
    }

    /// The position in its source of image `index` of a [`ImageFolder::skeleton`]'s set.
    pub fn item_of(skeleton: &Dataset, index: usize) -> usize {
        skeleton.images[index].to_bits() as usize
    }

    /// Decodes `items` (from [`ImageFolder::list`] or [`ImageFolder::list_file`]) to
    /// `shape`, skipping unreadable files; none readable is [`Error::Data`] with `empty`.
    pub fn from_items(items: Vec<(PathBuf, String)>, shape: [usize; 3], empty: &str) -> Result<Self> {
        Self::from_source(&ImageSource::Files(items), shape, empty)
    }

    /// Decodes every image of `source` to `shape`, skipping unreadable ones; none readable
    /// is [`Error::Data`] with `empty`. Identities are labelled from 0 in order of first
    /// appearance.
    pub fn from_source(source: &ImageSource, shape: [usize; 3], empty: &str) -> Result<Self> {
        let preprocessing = Preprocessing::centre(shape)?;
        let mut out = ImageFolder { data: Dataset { shape, ..Default::default() }, ..Default::default() };
        // Room for every image up front: a large folder is never copied while it grows.
        out.data.images.reserve_exact(source.len() * shape.iter().product::<usize>());
        out.data.labels.reserve_exact(source.len());
        let mut ids: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..source.len() {
            match source.load(i, &preprocessing) {
                Ok(pixels) => {
                    out.push_identity(&mut ids, source.identity(i));
                    out.data.images.extend(pixels);
                    out.paths.push(source.name(i));
                }
                Err(why) => {
                    log::warn!("skipping {}: {why}", source.name(i).display());
                    out.skipped.push((source.name(i), why));
                }
            }
        }
        if out.data.is_empty() {
            return Err(Error::Data(empty.to_string()));
        }
        Ok(out)
    }

    /// Holds out `fraction` of the identities (chosen with `seed`, at least one) for
    /// evaluation. Returns (train, test), each relabelled from 0, and the test identities'
    /// names.
    pub fn split_identities(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset, Vec<String>)> {
        Self { data: self.data.clone(), identities: self.identities.clone(), ..Default::default() }
            .into_split_identities(fraction, seed)
    }

    /// [`ImageFolder::split_identities`], moving the pixels instead of copying them.
    pub fn into_split_identities(self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset, Vec<String>)> {
        let n = self.identities.len();
        if n < 2 {
            return Err(Error::Data(format!("{n} identity: need at least 2 to hold some out")));
        }
        let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut is_test = vec![false; n];
        for &l in &order[..held] {
            is_test[l as usize] = true;
        }
        let mut names: Vec<String> = order[..held].iter().map(|&l| self.identities[l as usize].clone()).collect();
        names.sort();
        let labels = self.data.labels.clone();
        let (mut train, mut test) = self.data.partition(|i| !is_test[labels[i] as usize]);
        for d in [&mut train, &mut test] {
            let mut map = BTreeMap::new();
            for l in d.labels.iter_mut() {
                let next = map.len() as u32;
                *l = *map.entry(*l).or_insert(next);
            }
        }
        Ok((train, test, names))
    }
}

/// Writes `data` as an image folder `root/<identity>/<n>.png` (8-bit grey or RGB, from the
/// [-1, 1] scale [`load_image`] reads back), the identity named by `name(label)`. Returns
/// the number of images written. Useful to try the folder workflow on a generated set.
pub fn write_folder(data: &Dataset, root: &Path, name: impl Fn(u32) -> String) -> Result<usize> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for i in 0..data.len() {
        let label = data.labels[i];
        let dir = root.join(name(label));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let n = counts.entry(label).or_insert(0);
        *n += 1;
        let path = dir.join(format!("{n:03}.png"));
        crate::files::write_atomic(&path, &encode_png(data, i)?)?;
    }
    Ok(data.len())
}

/// Image `i` of `data` as an 8-bit grey or RGB PNG, from the [-1, 1] scale
/// [`Preprocessing`] reads back (what [`write_folder`] writes, and the records and
/// benchmark images the command's `--write-rec` and `--write-bin` write).
pub fn encode_png(data: &Dataset, i: usize) -> Result<Vec<u8>> {
    let [c, h, w] = data.shape;
    let px = data.image(i);
    let byte = |v: f32| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
    let bytes: Vec<u8> = (0..h * w).flat_map(|p| (0..c).map(move |ch| byte(px[ch * h * w + p]))).collect();
    let color = if c == 3 { image::ExtendedColorType::Rgb8 } else { image::ExtendedColorType::L8 };
    let mut png = Vec::new();
    image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut png), &bytes, w as u32, h as u32, color)
        .map_err(|e| Error::Data(format!("could not encode image {i} as PNG: {e}")))?;
    Ok(png)
}

/// For each image of a folder, its identity name and 1-based number within the identity.
pub fn numbered(folder: &ImageFolder) -> Vec<(String, usize)> {
    numbered_names(folder.data.labels.iter().map(|&l| folder.identities[l as usize].as_str()))
}

/// Each image's identity name with its 1-based number within that identity, in order:
/// what an LFW-style pairs list names images by ([`super::parse_pairs`]).
pub fn numbered_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    names
        .into_iter()
        .map(|name| {
            let k = seen.entry(name).or_insert(0);
            *k += 1;
            (name.to_string(), *k)
        })
        .collect()
}
