//! MNIST in IDX format, gzipped or raw (`train-images-idx3-ubyte[.gz]`, ...).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::{Error, Result};

/// MNIST's train and test sets. When only the t10k files exist, the first 8 000 images
/// train and the last 2 000 test.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// Training images (1 x 28 x 28, scaled to [-1, 1)).
    pub train: Dataset,
    /// Test images.
    pub test: Dataset,
    /// Whether `train` came from the train files (false: split from t10k).
    pub full_train_set: bool,
}

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))].into_iter().find(|p| p.is_file())
}

/// Reads a whole IDX file, gunzipping it when its name ends in `.gz`.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses IDX bytes of unsigned bytes: returns the dimensions and the data.
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |why: &str| Error::Data(format!("{what}: {why}"));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(bad("IDX element type is not unsigned byte"));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated header"));
    }
    let dims: Vec<usize> = (0..ndim).map(|i| be_u32(bytes, 4 + 4 * i) as usize).collect();
    let count: usize = dims.iter().product();
    if bytes.len() != header + count {
        return Err(bad(&format!("expected {count} values for dimensions {dims:?}, found {}", bytes.len() - header)));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an images file and its labels file into a dataset.
pub fn read_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let (dims, pixels) = parse_idx(&read_file(images)?, &images.display().to_string())?;
    let (ldims, labels_raw) = parse_idx(&read_file(labels)?, &labels.display().to_string())?;
    if dims.len() != 3 || ldims.len() != 1 || dims[0] != ldims[0] {
        return Err(Error::Data(format!("{}: images {dims:?} and labels {ldims:?} do not match", images.display())));
    }
    Ok(Dataset {
        shape: [1, dims[1], dims[2]],
        images: pixels.iter().map(|&p| (p as f32 - 127.5) / 128.0).collect(),
        labels: labels_raw.iter().map(|&l| l as u32).collect(),
    })
}

impl Mnist {
    /// Loads MNIST from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let need = |stem: &str| {
            find(dir, stem).ok_or_else(|| {
                Error::Data(format!("{} has no {stem}[.gz]: put the MNIST IDX files there", dir.display()))
            })
        };
        let test = read_pair(&need("t10k-images-idx3-ubyte")?, &need("t10k-labels-idx1-ubyte")?)?;
        match (find(dir, "train-images-idx3-ubyte"), find(dir, "train-labels-idx1-ubyte")) {
            (Some(i), Some(l)) => Ok(Self { train: read_pair(&i, &l)?, test, full_train_set: true }),
            _ => {
                let cut = test.len().min(8000);
                let train = test.select(&(0..cut).collect::<Vec<_>>());
                let test = test.select(&(cut..test.len()).collect::<Vec<_>>());
                Ok(Self { train, test, full_train_set: false })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_header_errors_are_clear() {
        assert!(parse_idx(&[0, 0, 8, 1, 0, 0, 0, 2, 7, 9], "x").is_ok());
        let e = parse_idx(&[0, 0, 8, 1, 0, 0, 0, 3, 7, 9], "x").unwrap_err().to_string();
        assert!(e.contains("expected 3 values"), "{e}");
        assert!(parse_idx(&[1, 2, 3], "x").is_err());
    }
}
