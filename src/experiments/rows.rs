//! Embedded rows named by file and identity, and the files that hold them: `E.npy` with
//! `E.csv` beside it (index, path, identity; file names byte for byte, quoted by the `csv`
//! crate, so any name reads back as written), or one `.safetensors`. Both files of a pair
//! are renamed into place together, once both are written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::data::npy;
use crate::files::{path_bytes, path_from_bytes, Staged};
use crate::{Error, Result};

/// The largest `E.csv` read back: 1 GiB.
const MAX_CSV_BYTES: u64 = 1 << 30;

/// The header of `E.csv`.
const HEADER: [&str; 3] = ["index", "path", "identity"];

/// Embedded rows with the file and identity of each.
pub(super) struct Rows {
    /// `paths.len()` rows of the embedding's size.
    pub(super) embeddings: Vec<f32>,
    pub(super) paths: Vec<PathBuf>,
    pub(super) identities: Vec<String>,
}

/// The files `--out E` names: (E.npy, E.csv), or None for a .safetensors output.
pub(super) fn npy_outputs(out: &Path) -> Option<(PathBuf, PathBuf)> {
    match out.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => None,
        Some("npy") | Some("csv") => Some((out.with_extension("npy"), out.with_extension("csv"))),
        _ => {
            let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Some((out.with_file_name(format!("{name}.npy")), out.with_file_name(format!("{name}.csv"))))
        }
    }
}

/// The files `--out E` writes.
pub(super) fn output_files(out: &Path) -> Vec<PathBuf> {
    match npy_outputs(out) {
        Some((npy, csv)) => vec![npy, csv],
        None => vec![out.to_path_buf()],
    }
}

fn csv_error(path: &Path) -> impl Fn(csv::Error) -> Error + '_ {
    move |e| Error::Data(format!("{}: {e}", path.display()))
}

/// CSV text of `records`, each a row of fields (bytes: file names as the system has them).
pub(super) fn csv_bytes<R, F>(header: &[&str], records: impl IntoIterator<Item = R>) -> Result<Vec<u8>>
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let internal = |e: csv::Error| Error::Internal(format!("CSV in memory: {e}"));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).map_err(internal)?;
    for record in records {
        writer.write_record(record).map_err(internal)?;
    }
    writer.into_inner().map_err(|e| Error::Internal(format!("CSV in memory: {e}")))
}

impl Rows {
    /// Writes the rows as `--out` names them: E.npy and E.csv (committed together), or
    /// one .safetensors whose metadata holds the paths (which must then be UTF-8 text).
    pub(super) fn write(&self, out: &Path, dim: usize, model: &Path) -> Result<Vec<PathBuf>> {
        let n = self.paths.len();
        let mut staged = Staged::new();
        match npy_outputs(out) {
            Some((npy_path, csv_path)) => {
                staged.write(&npy_path, &npy::encode(&self.embeddings, n, dim)?)?;
                let records = self.paths.iter().zip(&self.identities).enumerate().map(|(i, (path, identity))| {
                    [i.to_string().into_bytes().into(), path_bytes(path), identity.as_bytes().into()]
                });
                staged.write(&csv_path, &csv_bytes::<[std::borrow::Cow<'_, [u8]>; 3], _>(&HEADER, records)?)?;
            }
            None => {
                let paths = self
                    .paths
                    .iter()
                    .map(|p| {
                        p.to_str().map(str::to_string).ok_or_else(|| {
                            Error::Data(format!(
                                "{}: a file name that is not UTF-8 cannot go into a .safetensors file's metadata; \
                                 write E.npy and E.csv (an --out without .safetensors), which keep it byte for byte",
                                crate::files::name_text(p.as_os_str())
                            ))
                        })
                    })
                    .collect::<Result<Vec<String>>>()?;
                let bytes: Vec<u8> = bytemuck::cast_slice(&self.embeddings).to_vec();
                let view =
                    TensorView::new(Dtype::F32, vec![n, dim], &bytes).map_err(|e| Error::Internal(e.to_string()))?;
                let metadata = HashMap::from([
                    ("paths".to_string(), serde_json::to_string(&paths).expect("strings serialise")),
                    ("identities".to_string(), serde_json::to_string(&self.identities).expect("strings serialise")),
                    ("model".to_string(), model.display().to_string()),
                ]);
                let bytes = safetensors::serialize([("embeddings", view)], Some(metadata))
                    .map_err(|e| Error::Internal(e.to_string()))?;
                staged.write(out, &bytes)?;
            }
        }
        staged.commit()?;
        Ok(output_files(out))
    }

    /// The rows of an E.npy (`what` names it in messages: gallery, probe) of `dim`-value
    /// rows, named by the E.csv beside it where there is one (which must name every row,
    /// in order), else `E.npy#row`. A NaN or infinity is an error naming the row.
    pub(super) fn read_npy(input: &Path, what: &str, dim: usize) -> Result<Self> {
        let (embeddings, n, cols) = npy::read_matrix(input)?;
        if cols != dim {
            return Err(Error::Data(format!(
                "{what} {} holds {cols}-value rows but the model embeds {dim} values: embed the {what} with this \
                 model (centerloss embed)",
                input.display()
            )));
        }
        if let Some((row, column, value)) = npy::first_non_finite(&embeddings, dim) {
            return Err(Error::Data(format!(
                "{what} {}: row {row} holds {value} at column {column}; an embedding is finite (embed the {what} \
                 again)",
                input.display()
            )));
        }
        let csv = input.with_extension("csv");
        let (paths, identities) = if csv.exists() {
            read_names(&csv, n)?
        } else {
            (0..n).map(|i| (PathBuf::from(format!("{}#{i}", input.display())), String::new())).unzip()
        };
        Ok(Self { embeddings, paths, identities })
    }
}

/// The paths and identities of `n` rows that `csv` names (`index,path,identity`, index
/// 0..n in order).
fn read_names(csv: &Path, n: usize) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let bytes = crate::files::read(csv, MAX_CSV_BYTES, "CSV of row names")?;
    let bad = |why: String| Error::Data(format!("{}: {why}", csv.display()));
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(&bytes[..]);
    let header = reader.byte_headers().map_err(csv_error(csv))?;
    if header.iter().ne(HEADER.iter().map(|h| h.as_bytes())) {
        return Err(bad(format!("its header is not {}", HEADER.join(","))));
    }
    let (mut paths, mut identities) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, record) in reader.byte_records().enumerate() {
        let record = record.map_err(csv_error(csv))?;
        let row = i + 2;
        if record.len() != 3 {
            return Err(bad(format!("line {row}: {} fields, expected index,path,identity", record.len())));
        }
        if record[0] != *i.to_string().as_bytes() {
            return Err(bad(format!("line {row}: index {}, expected {i}", String::from_utf8_lossy(&record[0]))));
        }
        paths.push(path_from_bytes(&record[1]));
        identities.push(String::from_utf8_lossy(&record[2]).into_owned());
    }
    if paths.len() != n {
        return Err(bad(format!(
            "names {} rows but the .npy beside it holds {n}: write both with one centerloss embed",
            paths.len()
        )));
    }
    Ok((paths, identities))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_names_the_npy_and_csv_or_one_safetensors() {
        let (npy, csv) = npy_outputs(Path::new("out/emb")).unwrap();
        assert_eq!((npy, csv), (PathBuf::from("out/emb.npy"), PathBuf::from("out/emb.csv")));
        assert_eq!(npy_outputs(Path::new("e.npy")).unwrap().1, PathBuf::from("e.csv"));
        assert!(npy_outputs(Path::new("e.safetensors")).is_none());
    }

    #[test]
    fn names_with_commas_quotes_line_breaks_and_odd_bytes_read_back_exactly() {
        let dir = std::env::temp_dir().join(format!("centerloss-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut names = vec!["plain.png", "a,b.png", "say \"hi\".png", "two\nlines.png", "cr\r.png", ""]
            .into_iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>();
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            names.push(PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9.png")));
        }
        let n = names.len();
        let rows = Rows {
            embeddings: (0..2 * n).map(|v| v as f32).collect(),
            identities: (0..n).map(|i| format!("id,{i}\n")).collect(),
            paths: names.clone(),
        };
        let out = dir.join("emb");
        rows.write(&out, 2, Path::new("m.safetensors")).unwrap();
        let back = Rows::read_npy(&dir.join("emb.npy"), "gallery", 2).unwrap();
        assert_eq!((back.paths, back.identities, back.embeddings), (names, rows.identities.clone(), rows.embeddings));
        // A CSV that names fewer rows than the .npy holds is refused, not half used.
        std::fs::write(dir.join("emb.csv"), "index,path,identity\n0,a.png,x\n").unwrap();
        let err = Rows::read_npy(&dir.join("emb.npy"), "gallery", 2).err().unwrap().to_string();
        assert!(err.contains("names 1 rows but the .npy beside it holds"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_non_finite_value_is_named_by_file_row_and_value() {
        let dir = std::env::temp_dir().join(format!("centerloss-rows-nan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.npy");
        let mut values = vec![0.5f32; 12];
        values[7] = f32::INFINITY;
        std::fs::write(&path, npy::encode(&values, 3, 4).unwrap()).unwrap();
        let err = Rows::read_npy(&path, "gallery", 4).err().unwrap().to_string();
        assert!(err.contains("g.npy: row 1 holds inf at column 3"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
