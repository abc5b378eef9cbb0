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

/// The largest `.npy` read: 4 GiB (a gallery of a million 512-value rows takes 2 GiB).
pub const MAX_NPY_BYTES: u64 = 4 << 30;

/// The first value of a row-major matrix of `cols` columns that is NaN or infinite, as
/// (row, column, value): what an error about a matrix file names.
pub fn first_non_finite(values: &[f32], cols: usize) -> Option<(usize, usize, f32)> {
    values.iter().position(|v| !v.is_finite()).map(|at| (at / cols, at % cols, values[at]))
}

/// Reads a float32 [rows, cols] matrix (little-endian, C order) from an `.npy` file;
/// anything else is [`Error::Data`] naming the file and what it holds.
pub fn read_matrix(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = crate::files::read(path, MAX_NPY_BYTES, ".npy file")?;
    decode(&bytes).map_err(|why| Error::Data(format!("{}: {why}", path.display())))
}

/// A float32 [rows, cols] matrix from an `.npy` file's bytes. The header is read as numpy
/// reads it (a Python dict literal with exactly the keys `descr`, `fortran_order` and
/// `shape`); the data must be exactly what the shape holds.
pub fn decode(bytes: &[u8]) -> std::result::Result<(Vec<f32>, usize, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a NumPy .npy file".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(start..start.saturating_add(len)).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let Header { descr, fortran_order, shape } = Header::parse(header)?;
    if descr != "<f4" {
        return Err(format!("holds {descr} values, expected float32 ('<f4'): save with array.astype(numpy.float32)"));
    }
    if fortran_order {
        return Err("expected C order (fortran_order False): save with numpy.ascontiguousarray".into());
    }
    let [rows, cols] = shape[..] else {
        return Err(format!("expected a 2-D matrix [N, D], found shape {shape:?}"));
    };
    let data = &bytes[start + len..];
    let expected = rows.checked_mul(cols).and_then(|n| n.checked_mul(4));
    if expected != Some(data.len()) {
        return Err(format!("holds {} bytes of data for a ({rows}, {cols}) float32 matrix", data.len()));
    }
    let values = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((values, rows, cols))
}

/// An `.npy` header: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Reads the dict literal numpy writes (keys in any order, each once, a trailing comma
    /// allowed, padding spaces and a newline after it) and refuses what numpy refuses.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut p = Literal { rest: text };
        p.expect('{')?;
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        while !p.eat('}') {
            let key = p.string()?;
            p.expect(':')?;
            match key {
                "descr" if descr.is_none() => descr = Some(p.string()?.to_string()),
                "fortran_order" if fortran_order.is_none() => fortran_order = Some(p.boolean()?),
                "shape" if shape.is_none() => shape = Some(p.shape()?),
                "descr" | "fortran_order" | "shape" => return Err(format!("header names '{key}' twice")),
                other => {
                    return Err(format!("header has the key '{other}'; numpy writes descr, fortran_order and shape"))
                }
            }
            if !p.eat(',') {
                p.expect('}')?;
                break;
            }
        }
        if !p.rest.trim_start_matches([' ', '\n']).is_empty() {
            return Err("header has text after its dict".into());
        }
        match (descr, fortran_order, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(Self { descr, fortran_order, shape }),
            _ => Err("header lacks one of descr, fortran_order and shape".into()),
        }
    }
}

/// A cursor over the Python literal of an `.npy` header.
struct Literal<'a> {
    rest: &'a str,
}

impl<'a> Literal<'a> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    /// Consumes `c` (after spaces) when it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("header: expected '{c}' at `{}`", self.rest.chars().take(16).collect::<String>()))
        }
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> std::result::Result<&'a str, String> {
        self.skip_space();
        let quote =
            self.rest.chars().next().filter(|&q| q == '\'' || q == '"').ok_or("header: expected a quoted name")?;
        let body = &self.rest[1..];
        let end = body.find(quote).ok_or("header: an unterminated string")?;
        if body[..end].contains('\\') {
            return Err("header: a string with escapes".into());
        }
        self.rest = &body[end + 1..];
        Ok(&body[..end])
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        Err("header: fortran_order is not True or False".into())
    }

    /// A tuple of whole numbers: `()`, `(3,)`, `(3, 4)` (Python 2's `3L` accepted).
    fn shape(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(dims);
            }
            self.skip_space();
            let digits = self.rest.len() - self.rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let dim = self.rest[..digits].parse().map_err(|_| "header: a shape entry is not a whole number")?;
            self.rest = self.rest[digits..].strip_prefix('L').unwrap_or(&self.rest[digits..]);
            dims.push(dim);
            if !self.eat(',') {
                self.expect(')')?;
                if dims.len() == 1 {
                    return Err("header: a one-entry shape is written (n,)".into());
                }
                return Ok(dims);
            }
        }
    }
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

    /// An `.npy` with `header` (padded as numpy pads it) and `data`.
    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        let unpadded = MAGIC.len() + 4 + h.len() + 1;
        h.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        h.push('\n');
        [MAGIC, &[1, 0], &(h.len() as u16).to_le_bytes(), h.as_bytes(), data].concat()
    }

    #[test]
    fn headers_numpy_refuses_are_refused() {
        let eight = [0u8; 8];
        let ok = |h: &str| decode(&with_header(h, &eight)).map(|(_, r, c)| (r, c));
        assert_eq!(ok("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"), Ok((1, 2)));
        assert_eq!(ok("{'shape': (2L, 1L), 'fortran_order': False, 'descr': '<f4'}"), Ok((2, 1)));
        for (header, why) in [
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'extra': 1}", "the key 'extra'"),
            ("{'descr': '<f4', 'shape': (1, 2)}", "lacks one of"),
            ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)}", "twice"),
            ("{'xdescr': '<f4', 'fortran_order': False, 'shape': (1, 2)}", "the key 'xdescr'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "(n,)"),
            ("{'descr': '<f4', 'fortran_order': Nope, 'shape': (1, 2)}", "True or False"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)} junk", "after its dict"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, -2)}", "whole number"),
            ("['descr', '<f4']", "expected '{'"),
        ] {
            let err = ok(header).unwrap_err();
            assert!(err.contains(why), "{header}: {err}");
        }
    }

    #[test]
    fn a_shape_whose_size_overflows_is_refused_before_allocating() {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 128), }}", 1u64 << 57);
        let err = decode(&with_header(&header, &[])).unwrap_err();
        assert!(err.contains("holds 0 bytes of data for a (144115188075855872, 128)"), "{err}");
    }
}
