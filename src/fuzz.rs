//! One entry per reader of untrusted bytes, for the fuzz targets in `fuzz/` (cargo-fuzz)
//! and for `tests/fuzz_regressions.rs`, which replays every input the fuzzers kept. Each
//! reads `data` as a user's file would be read and returns; an error is the expected
//! answer to bad bytes, and a panic, an abort or an allocation out of proportion to the
//! input is a finding.
#![doc(hidden)]

use std::io::Cursor;
use std::path::Path;

use crate::data::{bin::VerificationSet, npy, recordio};
use crate::gpu::KernelFamily;
use crate::model::{ModelDescription, EMBED_BATCH};
use crate::nn::NetworkSpec;

/// A fuzz target's body: reads `data`, returns whatever the reader said.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and the folders of
/// `fuzz/regressions/` name them.
pub const TARGETS: [(&str, Target); 6] =
    [("recordio", recordio_bytes), ("bin", bin), ("npy", npy_bytes), ("idx", idx), ("model", model), ("spec", spec)];

/// A storage-binding limit of 128 MiB, lavapipe's and wgpu's default.
fn limits() -> wgpu::Limits {
    wgpu::Limits::default()
}

/// A RecordIO `.rec` (the first half of `data`) walked record by record, each record
/// unpacked, and a `.idx` (the second half) parsed against it.
pub fn recordio_bytes(data: &[u8]) {
    let (rec, idx) = data.split_at(data.len() / 2);
    let len = rec.len() as u64;
    let mut input = Cursor::new(rec);
    let mut offset = 0;
    while offset < len {
        match recordio::read_record(&mut input, len, offset) {
            Ok((bytes, next)) => {
                let _ = recordio::Record::unpack(&bytes).map(|r| r.label());
                assert!(next > offset, "the walk moves forward");
                offset = next;
            }
            Err(_) => break,
        }
    }
    if let Ok(text) = std::str::from_utf8(idx) {
        let _ = recordio::parse_index(text, len);
    }
}

/// A verification benchmark's pickle.
pub fn bin(data: &[u8]) {
    let _ = VerificationSet::parse(data);
}

/// An `.npy` matrix.
pub fn npy_bytes(data: &[u8]) {
    let _ = npy::decode(data);
}

/// An IDX file of unsigned bytes (MNIST).
pub fn idx(data: &[u8]) {
    #[cfg(feature = "mnist")]
    let _ = crate::data::mnist::parse_idx(data, "fuzz");
    #[cfg(not(feature = "mnist"))]
    let _ = data;
}

/// A model file (safetensors): its description, and the network it describes sized
/// against the adapter's limits as [`crate::model::Model::open`] sizes it.
pub fn model(data: &[u8]) {
    if let Ok(description) = ModelDescription::parse(data, Path::new("fuzz.safetensors")) {
        let _ = description.spec.footprint(EMBED_BATCH, &limits(), KernelFamily::Gpu);
    }
}

/// A network description in JSON (what a model file's `network` entry holds): parsed,
/// sized, and its shapes and parameters counted.
pub fn spec(data: &[u8]) {
    let Ok(spec) = serde_json::from_slice::<NetworkSpec>(data) else { return };
    for family in [KernelFamily::Cpu, KernelFamily::Gpu] {
        if spec.footprint(64, &limits(), family).is_ok() {
            let _ = spec.arena_values();
            spec.trunk.iter().fold(spec.input, |x, layer| layer.output_shape(x));
        }
    }
}
