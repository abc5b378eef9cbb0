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

/// Finds `stem` or `stem.gz` in `dir` (any entry of that name: one that is not a regular
/// file is refused when read).
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))].into_iter().find(|p| p.exists())
}

/// The most values an IDX file may declare: 1 Gi (MNIST's training images are 47 Mi).
pub const MAX_IDX_VALUES: usize = 1 << 30;

/// The length of an IDX header that starts with `magic` (its first 4 bytes).
fn header_len(magic: &[u8], what: &str) -> Result<usize> {
    let bad = |why: &str| Error::Data(format!("{what}: {why}"));
    if magic.len() < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(bad("not an IDX file (bad magic number)"));
    }
    if magic[2] != 0x08 {
        return Err(bad("IDX element type is not unsigned byte"));
    }
    Ok(4 + 4 * magic[3] as usize)
}

/// The dimensions a whole IDX header declares and their product, at most [`MAX_IDX_VALUES`].
fn dimensions(header: &[u8], what: &str) -> Result<(Vec<usize>, usize)> {
    let dims: Vec<usize> =
        header[4..].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let count = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= MAX_IDX_VALUES);
    let count = count
        .ok_or_else(|| Error::Data(format!("{what}: dimensions {dims:?} declare more than {MAX_IDX_VALUES} values")))?;
    Ok((dims, count))
}

/// Reads an IDX file, gunzipping it when its name ends in `.gz`: the header first, then
/// exactly the values it declares (an inflate that runs past them is stopped there).
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let what = path.display().to_string();
    let io = |source| Error::Io { path: what.clone(), source };
    let file = std::io::BufReader::new(crate::files::open(path)?);
    let mut input: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let truncated = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Data(format!("{what}: truncated header")),
        _ => io(e),
    };
    let mut header = vec![0u8; 4];
    input.read_exact(&mut header).map_err(truncated)?;
    header.resize(header_len(&header, &what)?, 0);
    input.read_exact(&mut header[4..]).map_err(truncated)?;
    let (dims, count) = dimensions(&header, &what)?;
    let mut data = Vec::new();
    input.take(count as u64 + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() != count {
        let found = if data.len() > count { "more".to_string() } else { data.len().to_string() };
        return Err(Error::Data(format!("{what}: expected {count} values for dimensions {dims:?}, found {found}")));
    }
    Ok((dims, data))
}

/// Parses IDX bytes of unsigned bytes: returns the dimensions and the data.
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let header = header_len(bytes, what)?;
    if bytes.len() < header {
        return Err(Error::Data(format!("{what}: truncated header")));
    }
    let (dims, count) = dimensions(&bytes[..header], what)?;
    if bytes.len() - header != count {
        return Err(Error::Data(format!(
            "{what}: expected {count} values for dimensions {dims:?}, found {}",
            bytes.len() - header
        )));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Reads an images file and its labels file into a dataset.
pub fn read_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    pair(read_idx(images)?, read_idx(labels)?, &images.display().to_string())
}

/// An images file and its labels file, as IDX bytes (not gzipped), into a dataset; `what`
/// names them in errors.
pub fn parse_pair(images: &[u8], labels: &[u8], what: &str) -> Result<Dataset> {
    pair(parse_idx(images, what)?, parse_idx(labels, what)?, what)
}

/// The dataset of parsed IDX images and labels, pixels scaled to [-1, 1).
fn pair((dims, pixels): (Vec<usize>, Vec<u8>), (ldims, labels): (Vec<usize>, Vec<u8>), what: &str) -> Result<Dataset> {
    if dims.len() != 3 || ldims.len() != 1 || dims[0] != ldims[0] || dims[1] == 0 || dims[2] == 0 {
        return Err(Error::Data(format!("{what}: images {dims:?} and labels {ldims:?} do not match")));
    }
    Ok(Dataset {
        shape: [1, dims[1], dims[2]],
        images: pixels.iter().map(|&p| (p as f32 - 127.5) / 128.0).collect(),
        labels: labels.iter().map(|&l| l as u32).collect(),
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
        // 2^16 x 2^16 x 2^16 x 2^16 wraps a usize to 0; with no data it once passed.
        let wraps = [&[0u8, 0, 8, 4][..], &[0, 1, 0, 0].repeat(4)].concat();
        let e = parse_idx(&wraps, "x").unwrap_err().to_string();
        assert!(e.contains("declare more than"), "{e}");
    }

    #[test]
    fn a_gzip_stream_is_read_only_as_far_as_its_header_declares() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("centerloss-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A valid header for 10 x 28 x 28 values, then 64 MiB of zeros: an inflate bomb.
        let header = [&[0u8, 0, 8, 3][..], &10u32.to_be_bytes(), &28u32.to_be_bytes(), &28u32.to_be_bytes()].concat();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&header).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let path = dir.join("bomb-idx3-ubyte.gz");
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let e = read_idx(&path).unwrap_err().to_string();
        assert!(e.contains("expected 7840 values for dimensions [10, 28, 28], found more"), "{e}");
        // /dev/zero's zeros are no IDX magic, and a device is refused before it is read.
        #[cfg(unix)]
        assert!(read_idx(Path::new("/dev/zero")).unwrap_err().to_string().contains("a device, not a regular file"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
