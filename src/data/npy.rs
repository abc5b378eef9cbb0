//! NumPy `.npy` files of float32 matrices ([N, D], C order): what `centerloss embed` writes
//! and `centerloss search` reads back as a gallery (`numpy.load` reads them as they are).

use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The bytes of an `.npy` file (version 1.0) holding `values` as a float32 [rows, cols] matrix.
pub fn encode(values: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>> {
    if values.len() != rows * cols {
        return Err(Error::Shape { what: "npy matrix", expected: rows * cols, actual: values.len() });
    }
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic, version, length, header and its newline end on a multiple of 64 bytes.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(unpadded + 64 + 4 * values.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Ok(bytes)
}

/// Reads a float32 [rows, cols] matrix (little-endian, C order) from an `.npy` file;
/// anything else is [`Error::Data`] naming the file and what it holds.
pub fn read_matrix(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    decode(&bytes).map_err(|why| Error::Data(format!("{}: {why}", path.display())))
}

fn decode(bytes: &[u8]) -> std::result::Result<(Vec<f32>, usize, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start + len).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    if !field("descr").is_some_and(|d| d.starts_with("'<f4'")) {
        return Err("expected float32 values (descr '<f4'); save with array.astype(numpy.float32)".into());
    }
    if !field("fortran_order").is_some_and(|f| f.starts_with("False")) {
        return Err("expected C order (fortran_order False)".into());
    }
    let shape = field("shape").and_then(|s| s.strip_prefix('(')).and_then(|s| s.split_once(')')).ok_or("no shape")?.0;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| "bad shape"))
        .collect::<std::result::Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("expected a 2-D matrix [N, D], found shape ({shape})"));
    };
    let data = &bytes[start + len..];
    if data.len() != 4 * rows * cols {
        return Err(format!("holds {} bytes of data for a ({rows}, {cols}) float32 matrix", data.len()));
    }
    let values = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((values, rows, cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_aligns_the_header() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        let bytes = encode(&values, 3, 4).unwrap();
        assert_eq!((bytes.len() - 48) % 64, 0, "data starts on a 64-byte boundary");
        assert_eq!(decode(&bytes).unwrap(), (values, 3, 4));
        assert!(encode(&[1.0], 2, 1).is_err());
        assert!(decode(b"not numpy").unwrap_err().contains("not a NumPy"));
        let mut f8 = bytes.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        assert!(decode(&f8).unwrap_err().contains("float32"));
        assert!(decode(&bytes[..bytes.len() - 4]).unwrap_err().contains("bytes of data"));
    }
}
