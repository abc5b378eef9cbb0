//! Verification benchmarks as insightface ships them (`lfw.bin`, `cfp_fp.bin`,
//! `agedb_30.bin`, `calfw.bin`, `cplfw.bin`): a Python pickle of `(images, same)`, a list
//! of 2n encoded images (JPEG or PNG; pair i is images 2i and 2i + 1) and a list of n
//! booleans, true where the pair shows one person.
//!
//! The published files were written by Python 2 under pickle protocol 2 (images as `str`,
//! opcodes `SHORT_BINSTRING` / `BINSTRING`); files re-saved by Python 3 under protocol 2
//! carry each image as a call `_codecs.encode(text, 'latin1')`, and under protocol 3 or
//! later as `bytes`. The reader (`bin/pickle.rs`) interprets only the opcodes those writers
//! use, calls nothing, and trusts no length.

use std::path::Path;
use std::rc::Rc;

use crate::{Error, Result};

mod pickle;
use pickle::Value;

/// The largest `.bin` read: 2 GiB (the published benchmarks take 60 to 300 MB).
pub const MAX_BIN_BYTES: u64 = 2 << 30;

/// A verification benchmark: 2n encoded images and n same/different flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerificationSet {
    /// The encoded images; pair i is images 2i and 2i + 1.
    pub images: Vec<Vec<u8>>,
    /// Whether pair i shows one person.
    pub same: Vec<bool>,
}

impl VerificationSet {
    /// Reads a `.bin` file (at most [`MAX_BIN_BYTES`]).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = crate::files::read(path, MAX_BIN_BYTES, "verification benchmark")?;
        Self::parse(&bytes).map_err(|why| Error::Data(format!("{}: {why}", path.display())))
    }

    /// The benchmarks `paths` name: `.bin` files, and every `.bin` in a folder (in name
    /// order), each once and named by its file's stem.
    pub fn read_all(paths: &[std::path::PathBuf]) -> Result<Vec<(String, Self)>> {
        let mut files = Vec::new();
        for path in paths {
            if path.is_dir() {
                let io = |source| Error::Io { path: path.display().to_string(), source };
                let mut bins: Vec<std::path::PathBuf> = std::fs::read_dir(path)
                    .map_err(io)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "bin"))
                    .collect();
                if bins.is_empty() {
                    return Err(Error::Data(format!("{} holds no .bin verification benchmarks", path.display())));
                }
                bins.sort();
                files.extend(bins);
            } else {
                files.push(path.clone());
            }
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|f| seen.insert(f.clone()));
        files
            .into_iter()
            .map(|file| {
                let name = file.file_stem().map_or("benchmark".into(), |s| s.to_string_lossy().into_owned());
                Ok((name, VerificationSet::read(&file)?))
            })
            .collect()
    }

    /// Reads a `.bin` file's bytes.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let value = pickle::unpickle(bytes)?;
        let mut outer = match value {
            Value::Tuple(v) | Value::List(v) if v.values.len() == 2 => v,
            other => return Err(format!("expected a pair (images, same), found {}", other.kind())),
        };
        let [images, same]: [Value; 2] =
            std::mem::take(&mut outer.values).try_into().map_err(|_| "expected a pair".to_string())?;
        let images = match images {
            Value::List(mut items) => std::mem::take(&mut items.values)
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bytes(b) => Ok(Rc::unwrap_or_clone(b)),
                    other => Err(format!("image {i} is {}, not bytes", other.kind())),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            other => return Err(format!("expected a list of images, found {}", other.kind())),
        };
        let same = match same {
            Value::List(mut items) => std::mem::take(&mut items.values)
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bool(b) => Ok(b),
                    Value::Int(n @ (0 | 1)) => Ok(n == 1),
                    other => Err(format!("flag {i} is {}, not a boolean", other.kind())),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            other => return Err(format!("expected a list of same/different flags, found {}", other.kind())),
        };
        if images.len() != 2 * same.len() || same.is_empty() {
            return Err(format!(
                "{} images for {} pairs: a benchmark has two images per pair",
                images.len(),
                same.len()
            ));
        }
        Ok(Self { images, same })
    }

    /// The pickle Python 2 writes with `pickle.dump((images, same), f, protocol=2)`, the
    /// form of the published files.
    pub fn to_pickle(&self) -> Vec<u8> {
        let mut out = vec![0x80, 2, b']', b'('];
        for image in &self.images {
            match u8::try_from(image.len()) {
                Ok(n) => out.extend([b'U', n]),
                Err(_) => {
                    out.push(b'T');
                    out.extend((image.len() as u32).to_le_bytes());
                }
            }
            out.extend(image);
        }
        out.extend([b'e', b']', b'(']);
        out.extend(self.same.iter().map(|&s| if s { 0x88 } else { 0x89 }));
        out.extend([b'e', 0x86, b'.']);
        out
    }

    /// Writes [`VerificationSet::to_pickle`] to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::checkpoint::write_atomic(path, &self.to_pickle())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> VerificationSet {
        VerificationSet {
            images: vec![vec![1, 2, 3], vec![0; 300], b"abc".to_vec(), vec![255, 0]],
            same: vec![true, false],
        }
    }

    #[test]
    fn python_2_protocol_2_round_trips() {
        let s = set();
        assert_eq!(VerificationSet::parse(&s.to_pickle()).unwrap(), s);
    }

    #[test]
    fn python_3_forms_are_read() {
        // pickle.dumps(([b'\x01\xff', b'ab'], [True]), protocol=2) from Python 3.
        let p2 = b"\x80\x02]q\x00(c_codecs\nencode\nq\x01X\x03\x00\x00\x00\x01\xc3\xbfq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05h\x01X\x02\x00\x00\x00abq\x06h\x03\x86q\x07Rq\x08e]q\t\x88a\x86q\n.";
        let s = VerificationSet::parse(p2).unwrap();
        assert_eq!(s.images, vec![vec![1, 255], b"ab".to_vec()]);
        assert_eq!(s.same, vec![true]);
        // pickle.dumps(([b'\x01\xff', b'ab'], [True]), protocol=4) from Python 3.
        let p4 = b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00]\x94(C\x02\x01\xff\x94C\x02ab\x94e]\x94\x88a\x86\x94.";
        assert_eq!(VerificationSet::parse(p4).unwrap(), s);
    }

    #[test]
    fn other_globals_and_calls_are_refused() {
        let os_system = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let err = VerificationSet::parse(os_system).unwrap_err();
        assert!(err.contains("os.system"), "{err}");
        let builtins_eval = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        assert!(VerificationSet::parse(builtins_eval).unwrap_err().contains("builtins.eval"));
        let lying_length = b"\x80\x02]q\x00(T\xff\xff\xff\x7f";
        assert!(VerificationSet::parse(lying_length).unwrap_err().contains("past the end"));
    }
}
