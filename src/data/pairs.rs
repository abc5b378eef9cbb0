//! Verification pairs: which two samples to compare and whether they share an identity,
//! and the LFW `pairs.txt` format that lists them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{Error, Result};

/// A pair of samples to verify: same identity or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// First sample.
    pub a: usize,
    /// Second sample.
    pub b: usize,
    /// Whether both are the same identity.
    pub genuine: bool,
}

/// Parses an LFW-style `pairs.txt` (`name i j` genuine, `name1 i name2 j` impostor, images
/// numbered from 1 within each identity in name order; a first line of counts is skipped)
/// into pairs of indices of `images`, given for each image its identity name and its
/// 1-based number within the identity. A list without both genuine and impostor pairs is
/// an error: it cannot be evaluated.
pub fn parse_pairs(text: &str, images: &[(String, usize)]) -> Result<Vec<Pair>> {
    let index: BTreeMap<(&str, usize), usize> =
        images.iter().enumerate().map(|(i, (n, k))| ((n.as_str(), *k), i)).collect();
    let find = |name: &str, num: &str, line: usize| -> Result<usize> {
        let k: usize = num.parse().map_err(|_| Error::Data(format!("pairs line {line}: bad image number {num}")))?;
        index.get(&(name, k)).copied().ok_or_else(|| Error::Data(format!("pairs line {line}: no image {name} {k}")))
    };
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [name, i, j] => pairs.push(Pair { a: find(name, i, n + 1)?, b: find(name, j, n + 1)?, genuine: true }),
            [a, i, b, j] => pairs.push(Pair { a: find(a, i, n + 1)?, b: find(b, j, n + 1)?, genuine: false }),
            [] => {}
            _ if n == 0 => {}
            _ => return Err(Error::Data(format!("pairs line {}: expected 3 or 4 fields", n + 1))),
        }
    }
    let genuine = pairs.iter().filter(|p| p.genuine).count();
    if genuine == 0 || genuine == pairs.len() {
        return Err(Error::Data(format!(
            "the list gives {genuine} genuine and {} impostor pairs: verification needs both",
            pairs.len() - genuine
        )));
    }
    Ok(pairs)
}

/// The largest pairs list read: 256 MiB.
pub const MAX_PAIRS_BYTES: u64 = 256 << 20;

/// Reads the pairs file at `path` ([`parse_pairs`] over `images`); an error names the file.
pub fn read_pairs(path: &Path, images: &[(String, usize)]) -> Result<Vec<Pair>> {
    let text = crate::files::read_text(path, MAX_PAIRS_BYTES, "pairs list")?;
    parse_pairs(&text, images).map_err(|e| match e {
        Error::Data(why) => Error::Data(format!("{}: {why}", path.display())),
        other => other,
    })
}
