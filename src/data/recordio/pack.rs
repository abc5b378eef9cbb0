//! insightface's face packs in RecordIO: record 0 is a header record with flag > 0 whose
//! first label is one past the last image's key; the images are keys 1 up to it, and the
//! records after them give each identity's key range. A pack without such a header is all
//! images.
//!
//! A `train.lst` beside the pack (im2rec's list: `key<TAB>label<TAB>path`) names the file
//! each record was packed from, for reports; labels always come from the records.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{index_text, read_index, scan, Record, RecordFile, RecordHeader, RecordWriter};
use crate::files::Staged;
use crate::{Error, Result};

/// Labels are identity numbers below 2^24: every one of them is an exact f32 (the
/// record header's type), so two identities never read as one.
pub const MAX_LABEL: f32 = 16_777_216.0;

/// The largest `train.lst` read: 1 GiB.
const MAX_LIST_BYTES: u64 = 1 << 30;

/// A face pack: its `.rec`, and each image record's offset and label, in key order.
pub struct RecordPack {
    /// The records.
    pub rec: RecordFile,
    /// (key, offset) of each image record.
    pub images: Vec<(u64, u64)>,
    /// Each image's label (the record header's), as a whole number.
    pub labels: Vec<i64>,
    /// The file each key was packed from, where the pack has im2rec's list beside it
    /// (`train.lst`: `key<TAB>label(s)<TAB>path` lines).
    pub sources: std::collections::HashMap<u64, String>,
}

/// Reads im2rec's `.lst` (`key<TAB>label(s)<TAB>path`), if there is one: each key's path.
/// A line that does not parse is skipped, and a list that cannot be read is logged and
/// left out (the list only names records; the `.rec` is the truth).
fn read_list(path: &Path) -> std::collections::HashMap<u64, String> {
    if !path.exists() {
        return Default::default();
    }
    let text = crate::files::read_text(path, MAX_LIST_BYTES, "RecordIO list").unwrap_or_else(|e| {
        log::warn!("leaving out the pack's list of source files: {e}");
        String::new()
    });
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim_end().split('\t').collect();
            let key = fields.first()?.trim().parse().ok()?;
            (fields.len() >= 3).then(|| (key, fields[fields.len() - 1].to_string()))
        })
        .collect()
}

impl RecordPack {
    /// Whether `dir` holds a pack (`train.rec`), or `dir` is a `.rec` file itself.
    pub fn is_pack(path: &Path) -> bool {
        Self::rec_path(path).is_some_and(|p| p.is_file())
    }

    fn rec_path(path: &Path) -> Option<PathBuf> {
        if path.is_dir() {
            Some(path.join("train.rec"))
        } else if path.extension().is_some_and(|e| e == "rec") {
            Some(path.to_path_buf())
        } else {
            None
        }
    }

    /// Opens a pack: `DIR` holding `train.rec` (with `train.idx`; without it the `.rec` is
    /// walked once), or a `.rec` file beside its `.idx`. Reads each image record's header
    /// for its label; decodes nothing.
    pub fn open(path: &Path) -> Result<Self> {
        let rec_path = Self::rec_path(path)
            .filter(|p| p.is_file())
            .ok_or_else(|| Error::Data(format!("{} holds no train.rec (a RecordIO pack)", path.display())))?;
        let rec = RecordFile::open(&rec_path)?;
        let idx_path = rec_path.with_extension("idx");
        let mut index = if idx_path.is_file() { read_index(&idx_path, rec.len())? } else { scan(&rec)? };
        index.sort_unstable();
        if index.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Error::Data(format!("{}: a key is listed twice", idx_path.display())));
        }
        let images = match index.iter().find(|(k, _)| *k == 0) {
            Some(&(_, offset)) => {
                let (bytes, _) = rec.read_at(offset)?;
                let first = Record::unpack(&bytes).map_err(|why| rec.error_at(offset, why))?;
                if first.header.flag > 0 && !first.labels.is_empty() {
                    let end = first.labels[0];
                    if !(end >= 1.0 && end.fract() == 0.0) {
                        return Err(Error::Data(format!(
                            "{}: header record 0 gives {end} as the end of the image keys",
                            rec.path().display()
                        )));
                    }
                    index.into_iter().filter(|(k, _)| (1..end as u64).contains(k)).collect()
                } else {
                    index
                }
            }
            None => index,
        };
        let mut labels = Vec::with_capacity(images.len());
        for &(key, offset) in &images {
            let label = rec.label_at(offset)?;
            if !(label.is_finite() && label.fract() == 0.0 && (0.0..MAX_LABEL).contains(&label)) {
                return Err(Error::Data(format!(
                    "{}: record {key} at offset {offset} has label {label}, not an identity number \
                     (a whole number from 0 to {})",
                    rec.path().display(),
                    MAX_LABEL - 1.0
                )));
            }
            labels.push(label as i64);
        }
        if images.is_empty() {
            return Err(Error::Data(format!("{} holds no image records", rec.path().display())));
        }
        let sources = read_list(&rec_path.with_extension("lst"));
        Ok(Self { rec, images, labels, sources })
    }

    /// Number of image records.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether the pack has no image records.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The encoded image of image record `i`.
    pub fn payload(&self, i: usize) -> Result<Vec<u8>> {
        let (key, offset) = self.images[i];
        let (bytes, _) = self.rec.read_at(offset)?;
        let record = Record::unpack(&bytes).map_err(|why| self.rec.error_at(offset, format!("record {key}: {why}")))?;
        Ok(record.payload)
    }

    /// How a report names image record `i`: `train.rec#key`, followed by the file it was
    /// packed from where `train.lst` names it (`train.rec#key:path`).
    pub fn name(&self, i: usize) -> PathBuf {
        let key = self.images[i].0;
        match self.sources.get(&key) {
            Some(source) => PathBuf::from(format!("{}#{key}:{source}", self.rec.path().display())),
            None => PathBuf::from(format!("{}#{key}", self.rec.path().display())),
        }
    }
}

/// Writes a pack as insightface lays one out, image by image (nothing held but the index):
/// `dir/train.rec` and `dir/train.idx`, images as keys 1..=n with their label in the
/// header, then one record per identity with its key range as labels, and key 0 the header
/// record (flag 2, labels [first identity record's key, one past the last]), written last
/// and listed first. Both files are written beside their places and renamed into them by
/// [`PackWriter::finish`], so a pack already in `dir` reads as it was until then, and at
/// every moment of the renames reads whole (the old `.idx` goes first: a `.rec` without
/// its `.idx` is walked).
pub struct PackWriter {
    dir: PathBuf,
    records: RecordWriter<std::io::BufWriter<File>>,
    staged: Staged,
    index: Vec<(u64, u64)>,
    /// (label, first key, one past the last key) of each identity, in order.
    ranges: Vec<(u32, u64, u64)>,
}

impl PackWriter {
    /// Creates `dir` (if needed) and a temporary `train.rec` in it (removing those a killed
    /// writer left there).
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        crate::checkpoint::remove_stale_temporaries(dir)?;
        let mut staged = Staged::new();
        let rec = dir.join("train.rec");
        let tmp = staged.path_for(&rec);
        let file = File::create(&tmp).map_err(|source| Error::Io { path: rec.display().to_string(), source })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            records: RecordWriter::new(std::io::BufWriter::new(file)),
            staged,
            index: Vec::new(),
            ranges: Vec::new(),
        })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: self.dir.join("train.rec").display().to_string(), source }
    }

    /// Appends an encoded image of identity `label`; an identity's images come together.
    pub fn push(&mut self, label: u32, encoded: &[u8]) -> Result<()> {
        if label as f32 >= MAX_LABEL {
            return Err(Error::Data(format!(
                "label {label} is not below {MAX_LABEL}, the labels a pack holds exactly"
            )));
        }
        let key = self.index.len() as u64 + 1;
        match self.ranges.last_mut() {
            Some((l, _, end)) if *l == label => *end = key + 1,
            _ => self.ranges.push((label, key, key + 1)),
        }
        let header = RecordHeader { flag: 0, label: label as f32, id: key, id2: 0 };
        let record = Record { header, labels: Vec::new(), payload: encoded.to_vec() };
        let offset = self.records.write(&record.pack()).map_err(self.io())?;
        self.index.push((key, offset));
        Ok(())
    }

    /// Writes the identity and header records and the index, then renames both files
    /// into place; returns the images written.
    pub fn finish(mut self) -> Result<usize> {
        let images = self.index.len();
        let first_identity = images as u64 + 1;
        for (n, &(_, from, to)) in self.ranges.clone().iter().enumerate() {
            let record = Record { labels: vec![from as f32, to as f32], ..Default::default() };
            let offset = self.records.write(&record.pack()).map_err(self.io())?;
            self.index.push((first_identity + n as u64, offset));
        }
        let end = first_identity + self.ranges.len() as u64;
        let header = Record { labels: vec![first_identity as f32, end as f32], ..Default::default() };
        let offset = self.records.write(&header.pack()).map_err(self.io())?;
        self.index.insert(0, (0, offset));
        let Self { dir, records, mut staged, index, .. } = self;
        let rec = dir.join("train.rec");
        let file = records.into_inner().into_inner().map_err(|e| e.into_error());
        file.and_then(|f| f.sync_all()).map_err(|source| Error::Io { path: rec.display().to_string(), source })?;
        let idx = dir.join("train.idx");
        staged.write(&idx, index_text(&index).as_bytes())?;
        match std::fs::remove_file(&idx) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io { path: idx.display().to_string(), source: e })
            }
            _ => {}
        }
        staged.commit()?;
        Ok(images)
    }
}

/// Writes a pack of `images` ((label, encoded image), an identity's images together) with
/// a [`PackWriter`].
pub fn write_pack(dir: &Path, images: &[(u32, Vec<u8>)]) -> Result<()> {
    let mut writer = PackWriter::create(dir)?;
    for (label, encoded) in images {
        writer.push(*label, encoded)?;
    }
    writer.finish().map(|_| ())
}
