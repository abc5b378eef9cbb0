//! MXNet RecordIO packs, the format insightface ships face sets in (faces_webface_112x112,
//! faces_emore / MS1M-V2, Glint360K): `train.rec` holds the records, `train.idx` their byte
//! offsets by key (`key<TAB>offset` lines).
//!
//! A record on disk: u32 magic `0xced7230a`, u32 `cflag << 29 | length`, `length` bytes,
//! zero padding to a multiple of 4 (all little-endian). MXNet's writer (dmlc-core
//! `RecordIOWriter`) cuts a record at every 4-byte-aligned copy of the magic inside it and
//! drops that copy: parts carry cflag 1 (first), 2 (middle), 3 (last), and a record in one
//! part cflag 0; the reader puts the magic back between parts. A record's bytes start with
//! MXNet's `IRHeader` (u32 flag, f32 label, u64 id, u64 id2); when flag > 0, flag f32
//! labels follow it (`recordio.pack` with an array label). The rest is the encoded image.
//!
//! How insightface lays its face packs out in records: [`RecordPack`] and [`PackWriter`]
//! (`recordio/pack.rs`).
//!
//! Reading never trusts a length: a part must fit in the file before anything is
//! allocated for it, and a record is at most [`MAX_RECORD_BYTES`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Error, Result};

mod pack;
pub use pack::{write_pack, PackWriter, RecordPack, MAX_LABEL};

/// The word that starts every record part.
pub const MAGIC: u32 = 0xced7_230a;
/// The largest record this reader accepts (a face image is a few kilobytes; the format's
/// own limit is 2^29 bytes per part).
pub const MAX_RECORD_BYTES: usize = 64 << 20;
/// Bytes of MXNet's `IRHeader`: u32 flag, f32 label, u64 id, u64 id2.
pub const HEADER_BYTES: usize = 24;
const LENGTH_MASK: u32 = (1 << 29) - 1;

/// MXNet's `IRHeader`, the head of every record's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RecordHeader {
    /// 0: `label` is the label; n > 0: n f32 labels follow the header and `label` is 0.
    pub flag: u32,
    /// The label when `flag` is 0.
    pub label: f32,
    /// The record's id (insightface: its key).
    pub id: u64,
    /// A second id (unused by insightface's image records).
    pub id2: u64,
}

/// One record's contents: its header, its label array (when the header's flag > 0) and
/// the payload (an encoded image).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// The `IRHeader`.
    pub header: RecordHeader,
    /// The labels that follow the header (`header.flag` of them).
    pub labels: Vec<f32>,
    /// What follows the header and labels: an encoded image.
    pub payload: Vec<u8>,
}

impl Record {
    /// The record's label: the header's, or the first of its label array.
    pub fn label(&self) -> f32 {
        if self.header.flag > 0 {
            self.labels.first().copied().unwrap_or(f32::NAN)
        } else {
            self.header.label
        }
    }

    /// Splits a record's bytes into header, labels and payload (MXNet's `recordio.unpack`).
    pub fn unpack(bytes: &[u8]) -> std::result::Result<Record, String> {
        let header = parse_header(bytes)?;
        let labels_end = (header.flag as usize).checked_mul(4).and_then(|n| n.checked_add(HEADER_BYTES));
        let labels_end = labels_end.filter(|&end| end <= bytes.len());
        let Some(labels_end) = labels_end else {
            return Err(format!(
                "a record of {} bytes cannot hold {} labels after its header",
                bytes.len(),
                header.flag
            ));
        };
        let labels = bytes[HEADER_BYTES..labels_end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Ok(Record { header, labels, payload: bytes[labels_end..].to_vec() })
    }

    /// The record's bytes (MXNet's `recordio.pack`): the header's flag is the number of
    /// labels when there are any.
    pub fn pack(&self) -> Vec<u8> {
        let flag = if self.labels.is_empty() { self.header.flag } else { self.labels.len() as u32 };
        let mut out = Vec::with_capacity(HEADER_BYTES + 4 * self.labels.len() + self.payload.len());
        out.extend(flag.to_le_bytes());
        out.extend(self.header.label.to_le_bytes());
        out.extend(self.header.id.to_le_bytes());
        out.extend(self.header.id2.to_le_bytes());
        out.extend(self.labels.iter().flat_map(|l| l.to_le_bytes()));
        out.extend(&self.payload);
        out
    }
}

fn parse_header(bytes: &[u8]) -> std::result::Result<RecordHeader, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("a record of {} bytes is shorter than its {HEADER_BYTES}-byte header", bytes.len()));
    }
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    Ok(RecordHeader { flag: u32_at(0), label: f32::from_bits(u32_at(4)), id: u64_at(8), id2: u64_at(16) })
}

/// Writes records as MXNet's writer does: magic-split parts, zero padding.
pub struct RecordWriter<W: Write> {
    out: W,
    position: u64,
}

impl<W: Write> RecordWriter<W> {
    /// A writer at the start of `out`.
    pub fn new(out: W) -> Self {
        Self { out, position: 0 }
    }

    /// Appends one record's bytes; returns the offset it starts at (what `.idx` lists).
    pub fn write(&mut self, record: &[u8]) -> std::io::Result<u64> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(std::io::Error::other(format!(
                "a record of {} bytes is over {MAX_RECORD_BYTES}",
                record.len()
            )));
        }
        let start = self.position;
        let magic = MAGIC.to_le_bytes();
        let mut from = 0;
        for i in (0..record.len() / 4 * 4).step_by(4) {
            if record[i..i + 4] == magic {
                self.part(if from == 0 { 1 } else { 2 }, &record[from..i])?;
                from = i + 4;
            }
        }
        self.part(if from == 0 { 0 } else { 3 }, &record[from..])?;
        let padding = (4 - record.len() % 4) % 4;
        self.out.write_all(&[0; 3][..padding])?;
        self.position += padding as u64;
        Ok(start)
    }

    fn part(&mut self, cflag: u32, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(&MAGIC.to_le_bytes())?;
        self.out.write_all(&(cflag << 29 | bytes.len() as u32).to_le_bytes())?;
        self.out.write_all(bytes)?;
        self.position += 8 + bytes.len() as u64;
        Ok(())
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads the record that starts at `offset` of a stream of `len` bytes: its bytes with the
/// magic put back between parts, and the offset of the next record.
pub fn read_record<R: Read + Seek>(
    input: &mut R,
    len: u64,
    offset: u64,
) -> std::result::Result<(Vec<u8>, u64), String> {
    input.seek(SeekFrom::Start(offset)).map_err(|e| format!("offset {offset}: {e}"))?;
    let mut record = Vec::new();
    let mut at = offset;
    loop {
        let mut head = [0u8; 8];
        if len.saturating_sub(at) < 8 {
            return Err(format!("offset {at}: the file ends inside a record header"));
        }
        input.read_exact(&mut head).map_err(|e| format!("offset {at}: {e}"))?;
        let word = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        if word != MAGIC {
            return Err(format!("offset {at}: no record starts here (magic {word:#010x}, expected {MAGIC:#010x})"));
        }
        let lrec = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let (cflag, part) = (lrec >> 29, (lrec & LENGTH_MASK) as usize);
        let padded = part.div_ceil(4) * 4;
        if (len - at - 8) < padded as u64 {
            return Err(format!(
                "offset {at}: a record part of {part} bytes runs past the end of the file ({len} bytes)"
            ));
        }
        if record.len() + part > MAX_RECORD_BYTES {
            return Err(format!("offset {offset}: a record of over {MAX_RECORD_BYTES} bytes"));
        }
        let start = record.len();
        record.resize(start + padded, 0);
        input.read_exact(&mut record[start..]).map_err(|e| format!("offset {at}: {e}"))?;
        record.truncate(start + part);
        at += 8 + padded as u64;
        match (cflag, start == 0) {
            (0, true) | (3, false) => return Ok((record, at)),
            (1, true) | (2, false) => record.extend(MAGIC.to_le_bytes()),
            _ => return Err(format!("offset {at}: record part flag {cflag} out of order")),
        }
    }
}

/// A `.rec` file opened for reading records by offset, from any thread.
pub struct RecordFile {
    path: PathBuf,
    file: Mutex<File>,
    len: u64,
}

impl RecordFile {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = crate::files::open(path)?;
        let len = file.metadata().map_err(|source| Error::Io { path: path.display().to_string(), source })?.len();
        Ok(Self { path: path.to_path_buf(), file: Mutex::new(file), len })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of the record at `offset` and the next record's offset; a broken record is
    /// [`Error::Data`] naming the file and offset.
    pub fn read_at(&self, offset: u64) -> Result<(Vec<u8>, u64)> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        read_record(&mut *file, self.len, offset).map_err(|why| Error::Data(format!("{}: {why}", self.path.display())))
    }

    /// The label of the record at `offset`, reading only its first 36 bytes when its first
    /// part holds the header and a first label (the whole record otherwise).
    pub fn label_at(&self, offset: u64) -> Result<f32> {
        let mut head = [0u8; 8 + HEADER_BYTES + 4];
        let read = self.len.saturating_sub(offset) >= head.len() as u64 && {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut head)).is_ok()
        };
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        if read && word(0) == MAGIC && (word(4) & LENGTH_MASK) as usize >= HEADER_BYTES + 4 {
            let header = parse_header(&head[8..]).map_err(|why| self.error_at(offset, why))?;
            return Ok(if header.flag > 0 { f32::from_bits(word(8 + HEADER_BYTES)) } else { header.label });
        }
        let (bytes, _) = self.read_at(offset)?;
        Ok(Record::unpack(&bytes).map_err(|why| self.error_at(offset, why))?.label())
    }

    fn error_at(&self, offset: u64, why: String) -> Error {
        Error::Data(format!("{}: offset {offset}: {why}", self.path.display()))
    }
}

/// The largest `.idx` read: 1 GiB (MS1M-V2's 5.8 million records take 90 MB).
pub const MAX_INDEX_BYTES: u64 = 1 << 30;

/// Reads a `.idx` file: `key<TAB>offset` lines, in file order. Every offset must lie
/// inside a `.rec` of `rec_len` bytes.
pub fn read_index(path: &Path, rec_len: u64) -> Result<Vec<(u64, u64)>> {
    let text = crate::files::read_text(path, MAX_INDEX_BYTES, "RecordIO index")?;
    parse_index(&text, rec_len).map_err(|why| Error::Data(format!("{}:{why}", path.display())))
}

/// The `(key, offset)` lines of a `.idx` file's text; an error names the line (`N: why`).
pub fn parse_index(text: &str, rec_len: u64) -> std::result::Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{}: {why}: `{}`", n + 1, line.chars().take(80).collect::<String>());
        let mut fields = line.split_whitespace();
        let (Some(key), Some(offset), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad("expected `key<TAB>offset`"));
        };
        let key: u64 = key.parse().map_err(|_| bad("the key is not a whole number"))?;
        let offset: u64 = offset.parse().map_err(|_| bad("the offset is not a whole number"))?;
        if offset.saturating_add(8) > rec_len {
            return Err(bad(&format!("the offset points past the end of the .rec ({rec_len} bytes)")));
        }
        out.push((key, offset));
    }
    Ok(out)
}

/// The text of a `.idx` file for `(key, offset)` pairs.
fn index_text(entries: &[(u64, u64)]) -> String {
    entries.iter().map(|(k, o)| format!("{k}\t{o}\n")).collect()
}

/// Writes a `.idx` file for `(key, offset)` pairs.
pub fn write_index(path: &Path, entries: &[(u64, u64)]) -> Result<()> {
    crate::files::write_atomic(path, index_text(entries).as_bytes())
}

/// The offsets of every record of a `.rec`, found by walking it (for a pack without its
/// `.idx`), keyed by position.
pub fn scan(rec: &RecordFile) -> Result<Vec<(u64, u64)>> {
    let mut file = crate::files::open(rec.path())?;
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < rec.len() {
        let (_, next) = read_record(&mut file, rec.len(), offset)
            .map_err(|why| Error::Data(format!("{}: {why}", rec.path().display())))?;
        out.push((out.len() as u64, offset));
        offset = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn round_trip(record: &[u8]) -> Vec<u8> {
        let mut writer = RecordWriter::new(Vec::new());
        writer.write(record).unwrap();
        let bytes = writer.into_inner();
        assert_eq!(bytes.len() % 4, 0);
        let (back, next) = read_record(&mut Cursor::new(&bytes), bytes.len() as u64, 0).unwrap();
        assert_eq!(next, bytes.len() as u64);
        back
    }

    #[test]
    fn records_with_the_magic_inside_come_back_whole() {
        let m = MAGIC.to_le_bytes();
        for record in [
            vec![],
            vec![1, 2, 3],
            m.to_vec(),
            [&m[..], &m[..]].concat(),
            [&[9u8, 9, 9, 9][..], &m[..], &[5u8, 6][..]].concat(),
            [&[1u8, 2][..], &m[..], &m[..], &[7u8][..]].concat(), // unaligned: no split
            [&m[..], &[0u8; 8][..], &m[..]].concat(),
        ] {
            assert_eq!(round_trip(&record), record);
        }
    }

    #[test]
    fn a_split_record_has_mxnets_parts() {
        let m = MAGIC.to_le_bytes();
        let record = [&[1u8, 2, 3, 4][..], &m[..], &[5u8, 6][..]].concat();
        let mut writer = RecordWriter::new(Vec::new());
        writer.write(&record).unwrap();
        let bytes = writer.into_inner();
        // part 1: cflag 1, 4 bytes; part 2: cflag 3, 2 bytes, 2 bytes of padding.
        let lrec = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(lrec(4), 1 << 29 | 4);
        assert_eq!(lrec(16), 3 << 29 | 2);
        assert_eq!(bytes.len(), 8 + 4 + 8 + 4);
    }

    #[test]
    fn header_and_labels_round_trip() {
        let r =
            Record { header: RecordHeader { flag: 0, label: 7.0, id: 3, id2: 0 }, labels: vec![], payload: vec![1, 2] };
        assert_eq!(Record::unpack(&r.pack()).unwrap(), r);
        assert_eq!(Record::unpack(&r.pack()).unwrap().label(), 7.0);
        let r =
            Record { header: RecordHeader { flag: 2, ..Default::default() }, labels: vec![4.0, 9.0], payload: vec![] };
        assert_eq!(Record::unpack(&r.pack()).unwrap().label(), 4.0);
        assert!(Record::unpack(&[0; 10]).is_err());
        let mut lying = r.pack();
        lying[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Record::unpack(&lying).is_err());
    }
}
