//! Checkpoints: model weights, optimizer momentum, centers and step count in one
//! safetensors file, written atomically (temporary file, fsync, rename) so that a crash
//! mid-write never destroys the previous checkpoint.
//!
//! Tensor names: `param/<name>` (f32, the parameter's values), `velocity/<name>` (f32,
//! SGD momentum), `centers` (f32, [K, D], only with center loss), `step` (u64, \[1\]).
//! Metadata: `format` = `centerloss-checkpoint-v1`, `spec` = the network description as
//! `Debug` text (what [`load`] compares), `network` = the same description as JSON (what
//! [`network_spec`] rebuilds a network from), `gemm_tiles` = the adapter and the tile
//! configuration each GEMM dispatch ran with (`Graph::gemm_tiles`; every configuration gives
//! the same bits, so loading ignores it), and any entries the caller adds ([`save_with`],
//! read back with [`metadata`]). A model that can be used on image files
//! ([`crate::model::Model`]) also carries [`PREPROCESSING`] and, once evaluated,
//! [`OPERATING_POINTS`].

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::check_finite;
use crate::files::TMP_MARK;
use crate::gpu::{read_buffers, Storage};
use crate::nn::{InferenceNetwork, Network, NetworkSpec};
use crate::{Error, Result};

const FORMAT: &str = "centerloss-checkpoint-v1";

/// Metadata entry: the [`crate::data::Preprocessing`] (JSON) that turns an image file into
/// the network's input.
pub const PREPROCESSING: &str = "preprocessing";

/// Metadata entry: the verification thresholds the evaluation found, a JSON list of
/// [`crate::eval::OperatingPoint`]s.
pub const OPERATING_POINTS: &str = "operating_points";

/// Metadata entry: the adapter and the GEMM tile configurations the network ran with.
pub const GEMM_TILES: &str = "gemm_tiles";

/// The largest checkpoint file read (16 GiB: the paper's network with the centers of
/// Glint360K's 360 000 identities takes about 1 GiB).
pub const MAX_CHECKPOINT_BYTES: u64 = 16 << 30;

/// The entries [`save_with`] writes itself.
const RESERVED: [&str; 4] = ["format", "spec", "network", GEMM_TILES];

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

fn ck_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.display().to_string(), reason: reason.into() }
}

/// Writes `net`'s full training state to `path` atomically.
pub fn save(net: &Network, path: &Path) -> Result<()> {
    save_with(net, path, &[])
}

/// [`save`] with extra metadata entries (a training run's own state, the preprocessing);
/// the names `format`, `spec`, `network` and `gemm_tiles` are the checkpoint's own.
pub fn save_with(net: &Network, path: &Path, extra: &[(&str, String)]) -> Result<()> {
    if let Some((name, _)) = extra.iter().find(|(n, _)| RESERVED.contains(n)) {
        return Err(ck_err(path, format!("metadata entry {name:?} is reserved")));
    }
    let ctx = net.graph().context();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let sources: Vec<(&dyn Storage, usize)> = net
        .graph()
        .params()
        .iter()
        .map(|p| Ok([(&p.value as &dyn Storage, p.len), (p.velocity()? as &dyn Storage, p.len)]))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let mut values = read_buffers(ctx, &sources)?.into_iter();
    for p in net.graph().params() {
        let (value, velocity) = (values.next().expect("one per source"), values.next().expect("one per source"));
        tensors.push((format!("param/{}", p.name), Dtype::F32, vec![p.len], bytemuck::cast_slice(&value).to_vec()));
        tensors.push((
            format!("velocity/{}", p.name),
            Dtype::F32,
            vec![p.len],
            bytemuck::cast_slice(&velocity).to_vec(),
        ));
    }
    if let Some(cl) = net.center_loss() {
        let c = cl.centers()?;
        let shape = vec![cl.config().num_classes, cl.config().feat_dim];
        tensors.push(("centers".into(), Dtype::F32, shape, bytemuck::cast_slice(&c).to_vec()));
    }
    tensors.push(("step".into(), Dtype::U64, vec![1], net.step_count().to_le_bytes().to_vec()));
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| ck_err(path, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let network = serde_json::to_string(net.spec()).map_err(|e| ck_err(path, e.to_string()))?;
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("spec".to_string(), format!("{:?}", net.spec())),
        ("network".to_string(), network),
        (GEMM_TILES.to_string(), format!("{}\n{}", ctx.adapter_summary(), net.graph().gemm_tiles().join("\n"))),
    ]);
    metadata.extend(extra.iter().map(|(n, v)| (n.to_string(), v.clone())));
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| ck_err(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

pub use crate::files::write_atomic;

/// The network description a checkpoint's metadata records (its `network` entry).
pub fn network_spec(meta: &HashMap<String, String>, path: &Path) -> Result<NetworkSpec> {
    let text = meta.get("network").ok_or_else(|| {
        ck_err(
            path,
            "it records no network description (a checkpoint of an older centerloss): retrain it with this version",
        )
    })?;
    serde_json::from_str(text).map_err(|e| ck_err(path, format!("its network description is unreadable: {e}")))
}

/// The metadata entries of the checkpoint at `path` (`format`, `spec` and those given to
/// [`save_with`]), checking that it is a checkpoint of this format.
pub fn metadata(path: &Path) -> Result<HashMap<String, String>> {
    read_checked(path).map(|(_, meta)| meta)
}

/// The file's bytes and metadata, after checking that it is a checkpoint of this format.
fn read_checked(path: &Path) -> Result<(Vec<u8>, HashMap<String, String>)> {
    let bytes = crate::files::read(path, MAX_CHECKPOINT_BYTES, "checkpoint")?;
    let meta = metadata_of(&bytes, path)?;
    Ok((bytes, meta))
}

/// The metadata entries of a checkpoint's bytes (`path` names it in errors), checking that
/// they are a safetensors file of this format.
pub fn metadata_of(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| ck_err(path, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(ck_err(path, format!("format is {:?}, expected {FORMAT:?}", meta.get("format"))));
    }
    Ok(meta)
}

/// Removes the temporary files a killed [`save`] left in `dir` (files named
/// `.<checkpoint>.tmp-<pid>`, or any output staged there), returning how many. Call it before writing checkpoints
/// there, never while another process writes to the same folder.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(TMP_MARK) {
            std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The `len` finite f32 values of tensor `name` of `st` (read from `path`).
fn tensor_values(st: &safetensors::SafeTensors<'_>, path: &Path, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = st.tensor(name).map_err(|_| ck_err(path, format!("missing tensor {name}")))?;
    if t.dtype() != Dtype::F32 || t.data().len() != 4 * len {
        return Err(ck_err(
            path,
            format!("tensor {name} is {:?} {:?}, expected F32 with {len} values", t.dtype(), t.shape()),
        ));
    }
    let values: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    check_finite("checkpoint tensor", &values).map_err(|_| ck_err(path, format!("tensor {name} holds NaN or inf")))?;
    Ok(values)
}

/// Writes the parameter values of the checkpoint `bytes` (read from `path`) into `net`,
/// which must be built from the description the checkpoint records: what using a trained
/// model needs (no momentum, center or step is read). Every tensor is checked before
/// anything is written.
pub fn load_values(net: &InferenceNetwork, bytes: &[u8], path: &Path) -> Result<()> {
    let meta = metadata_of(bytes, path)?;
    if meta.get("spec") != Some(&format!("{:?}", net.spec())) {
        return Err(ck_err(path, "it was written for a different network description"));
    }
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| ck_err(path, format!("corrupt: {e}")))?;
    let params = net.graph().params();
    let values = params
        .iter()
        .map(|p| tensor_values(&st, path, &format!("param/{}", p.name), p.len))
        .collect::<Result<Vec<_>>>()?;
    for (p, v) in params.iter().zip(&values) {
        net.graph().write(&p.value, v)?;
    }
    Ok(())
}

/// Restores `net`'s training state from `path`. Everything is checked (format, network
/// description, every tensor's name, type and size) before anything is written, so a
/// corrupt or mismatched file leaves the network as it was.
pub fn load(net: &mut Network, path: &Path) -> Result<()> {
    let (bytes, meta) = read_checked(path)?;
    let spec = format!("{:?}", net.spec());
    if meta.get("spec") != Some(&spec) {
        return Err(ck_err(path, "it was written for a different network description"));
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ck_err(path, format!("corrupt: {e}")))?;
    let f32s = |name: &str, len: usize| tensor_values(&st, path, name, len);
    let mut restored = Vec::new();
    for p in net.graph().params() {
        restored.push((f32s(&format!("param/{}", p.name), p.len)?, f32s(&format!("velocity/{}", p.name), p.len)?));
    }
    let centers = match net.center_loss() {
        Some(cl) => Some(f32s("centers", cl.config().num_classes * cl.config().feat_dim)?),
        None => None,
    };
    let step = st.tensor("step").map_err(|_| ck_err(path, "missing tensor step"))?;
    if step.dtype() != Dtype::U64 || step.data().len() != 8 {
        return Err(ck_err(path, "tensor step is not one u64"));
    }
    let step = u64::from_le_bytes(step.data().try_into().expect("8 bytes"));

    // All checked: write.
    for (p, (value, velocity)) in net.graph().params().iter().zip(&restored) {
        net.graph().write(&p.value, value)?;
        net.graph().write(p.velocity()?, velocity)?;
    }
    if let (Some(c), Some(cl)) = (centers, net.center_loss_mut()) {
        cl.set_centers(&c)?;
    }
    net.set_step_count(step)
}
