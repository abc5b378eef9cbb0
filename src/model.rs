//! A trained model in use: a checkpoint that knows its network, how it reads an image
//! ([`Preprocessing`]) and the verification thresholds its evaluation found; it embeds
//! pixels or image files on the GPU, batch by batch, as L2-normalised rows.

use std::path::{Path, PathBuf};

use crate::checkpoint;
#[cfg(feature = "images")]
use crate::data::ImageSource;
use crate::data::Preprocessing;
use crate::eval::OperatingPoint;
use crate::nn::InferenceNetwork;
use crate::{Error, GpuContext, Result};

/// Images per GPU pass when embedding.
pub const EMBED_BATCH: usize = 64;

/// A network restored from a checkpoint for inference: its forward kernels and weights
/// alone ([`InferenceNetwork`]: no gradient, momentum, optimizer, classifier or centers).
pub struct Model {
    net: InferenceNetwork,
    preprocessing: Preprocessing,
    operating_points: Vec<OperatingPoint>,
    path: PathBuf,
}

/// Embeddings of image files: the rows of the files that decoded, and those that did not.
#[derive(Clone, Debug, Default)]
pub struct Embedded {
    /// `kept.len() * dim` values, L2-normalised rows.
    pub embeddings: Vec<f32>,
    /// For each row, the index of its image in the paths (or source) given.
    pub kept: Vec<usize>,
    /// Images that could not be decoded, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn ck_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), reason: reason.into() }
}

/// What a model file says of itself, read without a GPU: its network, how it reads an
/// image, the thresholds its evaluation found. [`Model::open`] builds the network from it
/// (its sizes are checked against the adapter first, [`crate::nn::NetworkSpec::footprint`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDescription {
    /// The network.
    pub spec: crate::nn::NetworkSpec,
    /// How it reads an image file.
    pub preprocessing: Preprocessing,
    /// The verification thresholds recorded at evaluation (empty if never evaluated).
    pub operating_points: Vec<OperatingPoint>,
}

impl ModelDescription {
    /// The description in a model file's bytes (`path` names the file in errors): a
    /// checkpoint that records its network and preprocessing, which agree on the input.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let meta = checkpoint::metadata_of(bytes, path)?;
        let spec = checkpoint::network_spec(&meta, path)?;
        let preprocessing = match meta.get(checkpoint::PREPROCESSING) {
            Some(text) => Preprocessing::from_json(text).map_err(|e| ck_err(path, e.to_string()))?,
            None => return Err(ck_err(
                path,
                "it records no preprocessing (how its images were read), so its embeddings of image files would be \
                     guesses: retrain it with `centerloss faces`, or add the entry with checkpoint::save_with",
            )),
        };
        if preprocessing.input != spec.input {
            return Err(ck_err(
                path,
                format!("its preprocessing makes {:?} inputs, its network takes {:?}", preprocessing.input, spec.input),
            ));
        }
        let operating_points = match meta.get(checkpoint::OPERATING_POINTS) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| ck_err(path, format!("its verification thresholds are unreadable: {e}")))?,
            None => Vec::new(),
        };
        Ok(Self { spec, preprocessing, operating_points })
    }
}

impl Model {
    /// Rebuilds the network of the checkpoint at `path` and loads its weights. The file
    /// must record its preprocessing (what `centerloss faces` writes); a checkpoint
    /// without it is refused with what to do.
    pub fn open(ctx: &GpuContext, path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(ck_err(
                path,
                "no such file: give the .safetensors a `centerloss faces` run wrote (--out DIR/center.safetensors)",
            ));
        }
        let bytes = crate::files::read(path, checkpoint::MAX_CHECKPOINT_BYTES, "checkpoint")?;
        let ModelDescription { spec, preprocessing, operating_points } = ModelDescription::parse(&bytes, path)?;
        let net = InferenceNetwork::new(ctx, spec, EMBED_BATCH, false)?;
        checkpoint::load_values(&net, &bytes, path)?;
        Ok(Self { net, preprocessing, operating_points, path: path.to_path_buf() })
    }

    /// The network (its spec, its parameters, [`InferenceNetwork::embed`]).
    pub fn network(&self) -> &InferenceNetwork {
        &self.net
    }

    /// How the model reads an image file.
    pub fn preprocessing(&self) -> &Preprocessing {
        &self.preprocessing
    }

    /// The checkpoint's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Values per embedding.
    pub fn dim(&self) -> usize {
        self.net.embed_dim()
    }

    /// The verification thresholds recorded at evaluation (empty for a model never
    /// evaluated): the equal-error point first, then the resolved FAR targets.
    pub fn operating_points(&self) -> &[OperatingPoint] {
        &self.operating_points
    }

    /// The recorded operating point for a false-accept rate of `far`, or the equal-error
    /// point for `None`; an error that lists what the file holds otherwise.
    pub fn operating_point(&self, far: Option<f64>) -> Result<OperatingPoint> {
        let matches = |p: &&OperatingPoint| match (far, p.target_far) {
            (None, None) => true,
            (Some(f), Some(t)) => (f - t).abs() <= 1e-9 * t,
            _ => false,
        };
        if let Some(p) = self.operating_points.iter().find(matches) {
            return Ok(*p);
        }
        let recorded: Vec<String> = self
            .operating_points
            .iter()
            .map(|p| p.target_far.map_or("the equal-error point".into(), |t| format!("FAR {t:e}")))
            .collect();
        let asked = far.map_or("the equal-error point".into(), |f| format!("FAR {f:e}"));
        Err(Error::Config(if recorded.is_empty() {
            format!(
                "{} records no verification thresholds (it was never evaluated): pass --threshold",
                self.path.display()
            )
        } else {
            format!(
                "{} records no threshold at {asked} (its evaluation pairs resolve {}): choose one of those or pass --threshold",
                self.path.display(),
                recorded.join(", ")
            )
        }))
    }

    /// L2-normalised embeddings of `images` (`n * input_len` values, NCHW, already
    /// preprocessed).
    pub fn embed_pixels(&self, images: &[f32]) -> Result<Vec<f32>> {
        let mut rows = self.net.embed(images)?;
        normalize_rows(&mut rows, self.dim());
        Ok(rows)
    }

    /// L2-normalised embeddings of image files, read with the recorded preprocessing:
    /// worker threads decode the next batch while the GPU embeds this one. Files that do
    /// not decode are reported in [`Embedded::skipped`] (and logged); `progress` is called
    /// with the number of files done after each batch.
    #[cfg(feature = "images")]
    pub fn embed_files(&self, paths: &[PathBuf], progress: &mut dyn FnMut(usize)) -> Result<Embedded> {
        let files = ImageSource::Files(paths.iter().map(|p| (p.clone(), String::new())).collect());
        self.embed_source(&files, progress)
    }

    /// [`Model::embed_files`] for any listed set: files, or the image records of a pack.
    #[cfg(feature = "images")]
    pub fn embed_source(&self, source: &ImageSource, progress: &mut dyn FnMut(usize)) -> Result<Embedded> {
        let per = self.preprocessing.input_len();
        let mut out = Embedded::default();
        std::thread::scope(|scope| -> Result<()> {
            let (send, receive) =
                std::sync::mpsc::sync_channel::<(usize, Vec<std::result::Result<Vec<f32>, String>>)>(2);
            let preprocessing = self.preprocessing;
            scope.spawn(move || {
                for start in (0..source.len()).step_by(EMBED_BATCH) {
                    let batch = start..(start + EMBED_BATCH).min(source.len());
                    if send.send((start, source.load_range(batch, &preprocessing))).is_err() {
                        return;
                    }
                }
            });
            for (start, decoded) in receive {
                let mut pixels = Vec::with_capacity(decoded.len() * per);
                for (i, item) in decoded.into_iter().enumerate() {
                    match item {
                        Ok(values) => {
                            pixels.extend(values);
                            out.kept.push(start + i);
                        }
                        Err(why) => {
                            log::warn!("skipping {}: {why}", source.name(start + i).display());
                            out.skipped.push((source.name(start + i), why));
                        }
                    }
                }
                if !pixels.is_empty() {
                    out.embeddings.extend(self.embed_pixels(&pixels)?);
                }
                progress((start + EMBED_BATCH).min(source.len()));
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Decodes `paths` with `p` on as many threads as the machine has, in order.
#[cfg(feature = "images")]
pub fn decode_files(p: &Preprocessing, paths: &[PathBuf]) -> Vec<std::result::Result<Vec<f32>, String>> {
    let files = ImageSource::Files(paths.iter().map(|path| (path.clone(), String::new())).collect());
    files.load_range(0..paths.len(), p)
}

/// Scales each row of `dim` values to unit length (zero rows stay zero).
pub fn normalize_rows(rows: &mut [f32], dim: usize) {
    for row in rows.chunks_mut(dim) {
        let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
    }
}
