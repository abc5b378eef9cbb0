//! A listed face set decoded ([`ImageFolder::from_source`]: every image of an
//! [`ImageSource`], the one listing of folders, lists and packs), or only its labels and
//! positions ([`ImageFolder::skeleton`], for streaming); its split into training and
//! held-out identities; and a set written back as an image folder. Unreadable or truncated
//! images are reported with their path and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use super::{Dataset, ImageSource, Preprocessing};
use crate::{Error, Result};

/// A decoded face set (an image folder, a list or a pack, as listed by [`ImageSource`]),
/// or as `ImageFolder<u32>` its skeleton ([`ImageFolder::skeleton`]).
#[derive(Clone, Debug, Default)]
pub struct ImageFolder<T = f32> {
    /// All readable images (or their positions in the source), labelled by identity index.
    pub data: Dataset<T>,
    /// Identity names, by label.
    pub identities: Vec<String>,
    /// The file of each image.
    pub paths: Vec<PathBuf>,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl<T: Copy + Default> ImageFolder<T> {
    /// Which images of `source` this folder read (true) or skipped as unreadable.
    pub fn readable(&self, source: &ImageSource) -> Vec<bool> {
        let skipped: std::collections::HashSet<&PathBuf> = self.skipped.iter().map(|(p, _)| p).collect();
        (0..source.len()).map(|i| !skipped.contains(&source.name(i))).collect()
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

    /// Holds out `fraction` of the identities (chosen with `seed`, at least one) for
    /// evaluation. Returns (train, test), each relabelled from 0, and the test identities'
    /// names.
    pub fn into_split_identities(self, fraction: f64, seed: u64) -> Result<(Dataset<T>, Dataset<T>, Vec<String>)> {
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

impl ImageFolder<u32> {
    /// The folder `source` makes where `readable` says which could be read, without pixels:
    /// labels and identities as [`ImageFolder::from_source`] gives them, and as each image's
    /// one value (shape [1, 1, 1]) its position in `source`. Splits move these positions as
    /// they move pixels, so a split planned on the skeleton says which files each part
    /// needs; decode only those.
    pub fn skeleton(source: &ImageSource, readable: &[bool]) -> Self {
        let data = Dataset { shape: [1, 1, 1], images: Vec::new(), labels: Vec::new() };
        let mut out = ImageFolder { data, identities: Vec::new(), paths: Vec::new(), skipped: Vec::new() };
        let mut ids: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..source.len() {
            if !readable.get(i).copied().unwrap_or(false) {
                out.skipped.push((source.name(i), "unreadable where the folder was decoded".into()));
                continue;
            }
            out.push_identity(&mut ids, source.identity(i));
            out.data.images.push(i as u32);
            out.paths.push(source.name(i));
        }
        out
    }
}

impl ImageFolder {
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
}

/// Writes `data` as an image folder `root/<identity>/<n>.png` (8-bit grey or RGB, from the
/// [-1, 1] scale [`Preprocessing::centre`] reads back), the identity named by
/// `name(label)`. Returns the number of images written. Useful to try the folder workflow
/// on a generated set.
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
pub fn numbered<T>(folder: &ImageFolder<T>) -> Vec<(String, usize)> {
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
