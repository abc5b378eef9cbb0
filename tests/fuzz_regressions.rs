//! Every input the fuzzers keep, replayed through the fuzz targets' bodies
//! (`centerloss::fuzz`) on stable Rust: `fuzz/seeds/<target>/` holds the valid files the
//! fuzzers start from, `fuzz/regressions/<target>/` each crash a fuzzer found, minimised.
//! None may panic. `cargo test --release --test fuzz_regressions -- --ignored` writes the
//! seeds again.

use std::path::{Path, PathBuf};

use centerloss::data::bin::VerificationSet;
use centerloss::data::npy;
use centerloss::data::recordio::{Record, RecordHeader, RecordWriter, MAGIC};
use centerloss::nn::NetworkSpec;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, in name order.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn every_kept_input_reads_without_a_panic() {
    for (target, read) in centerloss::fuzz::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} holds no seeds");
        for (path, bytes) in seeds.iter().chain(&inputs("regressions", target)) {
            eprintln!("{target}: {}", path.display());
            read(bytes);
        }
    }
}

/// The seeds: valid files of each format (the fuzzers mutate them), by target.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let set = VerificationSet {
        images: vec![vec![1, 2, 3], vec![0; 300], b"abc".to_vec(), vec![255, 0]],
        same: vec![true, false],
    };
    // pickle.dumps(([b'\x01\xff', b'ab'], [True]), protocol=2) and protocol=4, from Python 3.
    let p2 = b"\x80\x02]q\x00(c_codecs\nencode\nq\x01X\x03\x00\x00\x00\x01\xc3\xbfq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05h\x01X\x02\x00\x00\x00abq\x06h\x03\x86q\x07Rq\x08e]q\t\x88a\x86q\n.";
    let p4 = b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00]\x94(C\x02\x01\xff\x94C\x02ab\x94e]\x94\x88a\x86\x94.";

    let mut records = RecordWriter::new(Vec::new());
    let mut index = String::new();
    let m = MAGIC.to_le_bytes();
    for (key, payload) in
        [vec![1u8, 2, 3], [&[9u8, 9, 9, 9][..], &m[..], &[5u8, 6][..]].concat(), vec![]].iter().enumerate()
    {
        let header = RecordHeader { flag: 0, label: key as f32, id: key as u64, id2: 0 };
        let record =
            Record { header, labels: if key == 2 { vec![4.0, 9.0] } else { vec![] }, payload: payload.clone() };
        let offset = records.write(&record.pack()).unwrap();
        index += &format!("{key}\t{offset}\n");
    }
    let rec = records.into_inner();
    let mut idx = index.into_bytes();
    idx.resize(rec.len().max(idx.len()), b'\n');
    let mut recordio = rec.clone();
    recordio.resize(idx.len(), 0);
    recordio.extend(&idx);

    let idx1 = vec![0u8, 0, 8, 1, 0, 0, 0, 2, 7, 9];
    let idx3 =
        [&[0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3][..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]].concat();

    let specs = [("lenet", NetworkSpec::lenet_plus_plus()), ("face", NetworkSpec::face_resnet(1, 32, 16, 4))];
    let spec_json: Vec<(&str, Vec<u8>)> = specs.iter().map(|(n, s)| (*n, serde_json::to_vec(s).unwrap())).collect();

    let face = NetworkSpec::face_resnet(1, 32, 16, 4);
    let preprocessing = centerloss::data::Preprocessing::centre_square(face.input).unwrap();
    let weights = [0u8; 16];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &weights).unwrap();
    let metadata = std::collections::HashMap::from([
        ("format".to_string(), "centerloss-checkpoint-v1".to_string()),
        ("network".to_string(), serde_json::to_string(&face).unwrap()),
        ("preprocessing".to_string(), preprocessing.to_json()),
        ("operating_points".to_string(), "[]".to_string()),
    ]);
    let model = safetensors::serialize([("param/trunk.0.conv.weight", view)], Some(metadata)).unwrap();

    let mut out = vec![
        ("bin", "python2-protocol2.bin", set.to_pickle()),
        ("bin", "python3-protocol2.bin", p2.to_vec()),
        ("bin", "python3-protocol4.bin", p4.to_vec()),
        ("npy", "3x4.npy", npy::encode(&(0..12).map(|v| v as f32 * 0.5).collect::<Vec<_>>(), 3, 4).unwrap()),
        ("idx", "labels-idx1", idx1),
        ("idx", "images-idx3", idx3),
        ("recordio", "rec-then-idx", recordio),
        ("model", "face.safetensors", model),
    ];
    out.extend(
        spec_json.into_iter().map(|(n, json)| ("spec", if n == "lenet" { "lenet.json" } else { "face.json" }, json)),
    );
    out
}

#[test]
#[ignore = "writes fuzz/seeds"]
fn write_seeds() {
    for (target, name, bytes) in seeds() {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
