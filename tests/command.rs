//! The `centerloss` command as a user runs it: a tiny face job prints its table and writes
//! its report and checkpoints; its model embeds, verifies, searches and exports; bad input
//! exits non-zero with one sentence that names the problem, not Rust's debug form of the
//! error, and writes nothing.
#![cfg(feature = "experiments")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn out_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("centerloss-command-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn centerloss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_centerloss")).args(args).env("RUST_LOG", "warn").output().unwrap()
}

#[test]
fn faces_trains_reports_and_writes_its_files() {
    if common::gpu().is_none() {
        return;
    }
    let out = out_dir("faces");
    let json = out.join("report.json");
    #[rustfmt::skip]
    let args = [
        "faces", "--identities", "6", "--eval-identities", "4", "--images-per-identity", "6",
        "--resolution", "32", "--steps", "4", "--batch", "8", "--embed-dim", "16", "--compare",
    ];
    let run =
        centerloss(&[&args[..], &["--out", out.to_str().unwrap(), "--report-json", json.to_str().unwrap()]].concat());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "exit {:?}: {}", run.status, String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("| softmax (lambda 0) |") && stdout.contains("| center (lambda 0.01) |"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for variant in ["softmax", "center"] {
        assert!(report[variant]["verification_accuracy"].as_f64().is_some(), "{report}");
    }
    for file in ["softmax.safetensors", "center.safetensors", "roc.png"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_input_is_one_sentence_and_a_failing_exit() {
    let missing = out_dir("missing").join("no-such-folder");
    let run = centerloss(&["faces", "--data", missing.to_str().unwrap(), "--steps", "1"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: ") && last.contains("no-such-folder"), "{stderr}");
    assert!(!stderr.contains("Data(") && !stderr.contains("Io {"), "debug form: {stderr}");
    // An option out of its range is refused as clap refuses a value: exit 2, the option named.
    let run = centerloss(&["faces", "--steps", "0"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: invalid value '0' for '--steps <STEPS>'"), "{stderr}");
}

/// A tiny trained model and the built-in set it was trained on, written as a folder.
fn tiny_model(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let out = out_dir(tag);
    #[rustfmt::skip]
    let set = ["--identities", "6", "--eval-identities", "4", "--images-per-identity", "6", "--resolution", "32"];
    let train = ["faces", "--steps", "6", "--batch", "8", "--embed-dim", "16", "--out", out.to_str().unwrap()];
    let run = centerloss(&[&train[..], &set[..]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let folder = out.join("folder");
    let run = centerloss(&[&["faces", "--write-folder", folder.to_str().unwrap()][..], &set[..]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    (out.join("center.safetensors"), folder, out)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("{label:?} not in {text}")) + label.len();
    let digits: String =
        text[at..].trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {label:?} in {text}"))
}

#[test]
fn a_trained_model_embeds_verifies_and_searches() {
    if common::gpu().is_none() {
        return;
    }
    let (model, folder, out) = tiny_model("use");
    let (model_arg, folder_arg) = (model.to_str().unwrap(), folder.to_str().unwrap());
    // embed: an .npy numpy reads ([60, 16] float32, 64-byte aligned header) and its CSV.
    let emb = out.join("emb");
    let run = centerloss(&["embed", "--model", model_arg, folder_arg, "--out", emb.to_str().unwrap(), "--quiet"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let npy = std::fs::read(out.join("emb.npy")).unwrap();
    assert!(npy.starts_with(b"\x93NUMPY\x01\x00"));
    let header = text(&npy[10..10 + u16::from_le_bytes([npy[8], npy[9]]) as usize]);
    assert!(header.contains("'descr': '<f4'") && header.contains("'shape': (60, 16)"), "{header}");
    let (rows, n, dim) = centerloss::data::npy::read_matrix(&out.join("emb.npy")).unwrap();
    assert_eq!((n, dim), (60, 16));
    for row in rows.chunks(dim) {
        assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5, "rows are unit length");
    }
    let csv = std::fs::read_to_string(out.join("emb.csv")).unwrap();
    assert_eq!(csv.lines().count(), 61);
    assert!(csv.starts_with("index,path,identity\n0,") && csv.contains("001.png,id00000\n"), "{csv}");
    // The same embeddings as one safetensors file.
    let st_path = out.join("emb.safetensors");
    let run = centerloss(&["embed", "--model", model_arg, folder_arg, "--out", st_path.to_str().unwrap(), "--quiet"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let st_bytes = std::fs::read(&st_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let tensor = st.tensor("embeddings").unwrap();
    assert_eq!(tensor.shape(), [60, 16]);
    assert_eq!(tensor.data(), bytemuck::cast_slice::<f32, u8>(&rows));

    // verify: the score is the rows' dot product, and the verdict follows the threshold.
    let (a, b) = (folder.join("id00007/001.png"), folder.join("id00007/002.png"));
    let run = centerloss(&["verify", "--model", model_arg, a.to_str().unwrap(), b.to_str().unwrap()]);
    let said = text(&run.stdout);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let score = number_after(&said, "cosine similarity");
    let threshold = number_after(&said, "threshold");
    let (ia, ib) = (7 * 6, 7 * 6 + 1);
    let dot: f32 = (0..dim).map(|d| rows[ia * dim + d] * rows[ib * dim + d]).sum();
    assert!((score - dot as f64).abs() < 1e-3, "{said}: rows give {dot}");
    assert!(said.contains("equal-error point") && said.contains("impostor pairs"), "{said}");
    let verdict = if score >= threshold { "same person" } else { "different people" };
    assert!(said.trim_end().ends_with(verdict), "{said}");
    let run = centerloss(&["verify", "--model", model_arg, "--threshold=-1", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(text(&run.stdout).trim_end().ends_with("same person"));
    // A FAR the evaluation's 216 impostor pairs do not resolve is refused.
    let run = centerloss(&["verify", "--model", model_arg, "--far", "1e-3", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(!run.status.success() && text(&run.stderr).contains("no threshold at FAR 1e-3"), "{}", text(&run.stderr));
    // A pairs list: the table and the decisions at the threshold.
    let pairs = out.join("pairs.txt");
    std::fs::write(&pairs, "4\nid00006 1 2\nid00008 3 4\nid00006 1 id00007 2\nid00008 1 id00009 5\n").unwrap();
    let run = centerloss(&["verify", "--model", model_arg, "--pairs", pairs.to_str().unwrap(), "--data", folder_arg]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("| 2 / 2 |") && text(&run.stdout).contains("of 4 pairs decided right"));

    // search: the first image of each identity as gallery, the others as probes, gives
    // the rank-1 that eval::rank1 computes on the same embeddings.
    let (gallery, probes) = (out.join("gallery"), out.join("probes"));
    for i in 0..10 {
        let id = format!("id{i:05}");
        for (dir, range) in [(&gallery, 1..=1), (&probes, 2..=6)] {
            std::fs::create_dir_all(dir.join(&id)).unwrap();
            for k in range {
                let name = format!("{k:03}.png");
                std::fs::copy(folder.join(&id).join(&name), dir.join(&id).join(&name)).unwrap();
            }
        }
    }
    let hits = out.join("hits.csv");
    #[rustfmt::skip]
    let run = centerloss(&["search", "--model", model_arg, "--gallery", gallery.to_str().unwrap(), "--probe",
        probes.to_str().unwrap(), "--top-k", "3", "--out", hits.to_str().unwrap(), "--quiet"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let found = std::fs::read_to_string(&hits).unwrap();
    assert_eq!(found.lines().count(), 1 + 50 * 3);
    assert!(found.starts_with("probe,rank,gallery_path,identity,score\n"));
    let labels: Vec<u32> = (0..60).map(|i| i / 6).collect();
    let rank1 = centerloss::eval::rank1(&rows, dim, &labels);
    assert!(
        (number_after(&text(&run.stderr), "rank-1:") - 100.0 * rank1).abs() < 0.006,
        "{} vs {rank1}",
        text(&run.stderr)
    );
    // The gallery as the .npy embed wrote: its CSV names the rows; a probe never finds itself.
    #[rustfmt::skip]
    let run = centerloss(&["search", "--model", model_arg, "--gallery", out.join("emb.npy").to_str().unwrap(),
        "--probe", a.to_str().unwrap(), "--top-k", "2"]);
    let listed = text(&run.stdout);
    assert!(run.status.success() && listed.lines().count() == 3, "{listed}{}", text(&run.stderr));
    for line in listed.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        assert!(fields[0] == a.to_str().unwrap() && fields[2] != fields[0], "{listed}");
    }

    // export: an ONNX file that tract loads and runs with any batch, [batch, 16] out.
    let onnx = out.join("face.onnx");
    let run = centerloss(&["export", "--model", model_arg, "--onnx", onnx.to_str().unwrap()]);
    assert!(run.status.success() && text(&run.stdout).contains("output `embedding`: float32 [batch, 16]"));
    use tract_onnx::prelude::*;
    let plan = tract_onnx::onnx()
        .model_for_path(&onnx)
        .unwrap()
        .with_input_fact(0, f32::fact([3, 1, 32, 32]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let zeros: Tensor = tract_ndarray::Array4::<f32>::zeros((3, 1, 32, 32)).into();
    assert_eq!(plan.run(tvec!(zeros.into())).unwrap()[0].shape(), [3, 16]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_model_input_is_one_sentence_and_writes_nothing() {
    if common::gpu().is_none() {
        return;
    }
    let (model, folder, out) = tiny_model("bad-use");
    let (model_arg, folder_arg) = (model.to_str().unwrap(), folder.to_str().unwrap());
    let fails = |args: &[&str], names: &str| {
        let run = centerloss(args);
        let stderr = text(&run.stderr);
        let last = stderr.lines().last().unwrap_or("");
        assert!(!run.status.success() && last.starts_with("error: ") && last.contains(names), "{args:?}: {stderr}");
    };
    let emb = out.join("emb");
    let emb_arg = emb.to_str().unwrap();
    // The model: missing, not a checkpoint, a checkpoint without its preprocessing.
    fails(&["embed", "--model", "/no/model.safetensors", folder_arg, "--out", emb_arg], "/no/model.safetensors");
    let junk = out.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    fails(&["embed", "--model", junk.to_str().unwrap(), folder_arg, "--out", emb_arg], "junk.safetensors");
    let ctx = common::gpu().unwrap();
    let spec = centerloss::nn::NetworkSpec::face_resnet(1, 32, 16, 6);
    let net = centerloss::nn::Network::new(&ctx, spec, Default::default()).unwrap();
    let bare = out.join("bare.safetensors");
    centerloss::checkpoint::save(&net, &bare).unwrap();
    fails(&["embed", "--model", bare.to_str().unwrap(), folder_arg, "--out", emb_arg], "records no preprocessing");
    // Images: a folder with none, a file that does not decode.
    let empty = out.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&["embed", "--model", model_arg, empty.to_str().unwrap(), "--out", emb_arg], "holds no readable images");
    let broken = out.join("broken.png");
    std::fs::write(&broken, b"\x89PNG but no more").unwrap();
    let good = folder.join("id00000/001.png");
    fails(&["verify", "--model", model_arg, broken.to_str().unwrap(), good.to_str().unwrap()], "broken.png");
    assert!(!emb.with_extension("npy").exists() && !out.join("emb.npy").exists(), "nothing written");
    // Search: k of 0 or above the gallery, a gallery of another dimension.
    let one = out.join("one");
    std::fs::create_dir_all(one.join("x")).unwrap();
    std::fs::copy(&good, one.join("x/001.png")).unwrap();
    let hits = out.join("hits.csv");
    #[rustfmt::skip]
    fails(&["search", "--model", model_arg, "--gallery", one.to_str().unwrap(), "--probe", good.to_str().unwrap(),
        "--top-k", "2", "--out", hits.to_str().unwrap()], "--top-k 2 asks for more hits than the gallery");
    let other = out.join("other.npy");
    std::fs::write(&other, centerloss::data::npy::encode(&[0.5; 24], 3, 8).unwrap()).unwrap();
    #[rustfmt::skip]
    fails(&["search", "--model", model_arg, "--gallery", other.to_str().unwrap(), "--probe", good.to_str().unwrap(),
        "--out", hits.to_str().unwrap()], "other.npy holds 8-value rows");
    assert!(!hits.exists(), "nothing written");
    // Export into a folder that does not exist.
    fails(&["export", "--model", model_arg, "--onnx", "/no/such/dir/face.onnx"], "/no/such/dir/face.onnx");

    // A benchmark whose pickle nests 200 000 levels: an error, not a stack overflow.
    let deep = out.join("deep.bin");
    std::fs::write(&deep, [&b"\x80\x02)"[..], &vec![0x85u8; 200_000], b"."].concat()).unwrap();
    fails(&["verify", "--model", model_arg, "--bin", deep.to_str().unwrap()], "nest deeper than 32 levels");
    // A model file whose network asks for a billion channels: refused by name before any allocation.
    let hostile = out.join("hostile.safetensors");
    let mut spec = centerloss::nn::NetworkSpec::face_resnet(1, 32, 16, 6);
    spec.trunk[0] = centerloss::nn::LayerSpec::conv(1_000_000_000, 5, 2, 2);
    let bytes = std::fs::read(&model).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    meta.insert("network".into(), serde_json::to_string(&spec).unwrap());
    let weights = [0u8; 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &weights).unwrap();
    std::fs::write(&hostile, safetensors::serialize([("step", view)], Some(meta)).unwrap()).unwrap();
    let onnx = out.join("hostile.onnx");
    fails(&["export", "--model", hostile.to_str().unwrap(), "--onnx", onnx.to_str().unwrap()], "layer trunk.0");
    // A JPEG cut in half gets no verdict; as a probe it gets no hits; in a folder it is skipped
    // and counted, or with --strict stops embed.
    let img = image::open(&good).unwrap();
    let mut jpeg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let half = out.join("one/x/half.jpg");
    std::fs::write(&half, &jpeg[..jpeg.len() / 2]).unwrap();
    fails(&["verify", "--model", model_arg, half.to_str().unwrap(), good.to_str().unwrap()], "a truncated JPEG");
    #[rustfmt::skip]
    fails(&["search", "--model", model_arg, "--gallery", folder_arg, "--probe", one.to_str().unwrap()], "a truncated JPEG");
    let emb_one = out.join("one-emb");
    let run = centerloss(&["embed", "--model", model_arg, one.to_str().unwrap(), "--out", emb_one.to_str().unwrap()]);
    assert!(run.status.success() && text(&run.stderr).contains("skipped 1 of 2 images"), "{}", text(&run.stderr));
    assert_eq!(centerloss::data::npy::read_matrix(&emb_one.with_extension("npy")).unwrap().1, 1);
    let strict = out.join("strict-emb");
    #[rustfmt::skip]
    fails(&["embed", "--model", model_arg, one.to_str().unwrap(), "--out", strict.to_str().unwrap(), "--strict"],
        "a truncated JPEG");
    assert!(!strict.with_extension("npy").exists() && !strict.with_extension("csv").exists());
    // A pairs list with no pair is an error, not a table of zeros.
    let empty_pairs = out.join("pairs.txt");
    std::fs::write(&empty_pairs, "0\n").unwrap();
    #[rustfmt::skip]
    fails(&["verify", "--model", model_arg, "--pairs", empty_pairs.to_str().unwrap(), "--data", folder_arg],
        "verification needs both");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn file_names_with_line_breaks_survive_embed_and_search() {
    if common::gpu().is_none() {
        return;
    }
    let (model, folder, out) = tiny_model("names");
    let odd = out.join("odd");
    let id = odd.join("id, \"quoted\"");
    std::fs::create_dir_all(&id).unwrap();
    let names = ["two\nlines.png", "comma,name.png", "plain.png"];
    for (k, name) in names.iter().enumerate() {
        std::fs::copy(folder.join(format!("id00003/{:03}.png", k + 1)), id.join(name)).unwrap();
    }
    let emb = out.join("odd-emb");
    let run = centerloss(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        odd.to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    // The first image as the probe, the .npy as the gallery: it never finds itself, and
    // the rows found are named as embed named them.
    let probe = id.join(names[0]);
    let hits = out.join("hits.csv");
    #[rustfmt::skip]
    let run = centerloss(&["search", "--model", model.to_str().unwrap(), "--gallery", emb.with_extension("npy").to_str().unwrap(),
        "--probe", probe.to_str().unwrap(), "--top-k", "2", "--out", hits.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let found = std::fs::read(&hits).unwrap();
    let mut reader = csv::Reader::from_reader(&found[..]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(&row[0], probe.to_str().unwrap());
        assert!(&row[2] != probe.to_str().unwrap() && names[1..].iter().any(|n| row[2].ends_with(n)), "{row:?}");
        assert_eq!(&row[3], "id, \"quoted\"");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// The report's figures without its timings and data description.
fn figures(report: &serde_json::Value) -> serde_json::Value {
    let mut report = report.clone();
    let map = report.as_object_mut().unwrap();
    map.remove("data");
    for variant in map.values_mut().filter_map(|v| v.as_object_mut()) {
        variant.remove("train_seconds");
        variant.remove("images_per_second");
    }
    report
}

#[test]
fn a_pack_trains_as_its_folder_streamed_or_not_and_benchmarks_are_scored() {
    if common::gpu().is_none() {
        return;
    }
    let out = out_dir("pack");
    #[rustfmt::skip]
    let set = ["--identities", "6", "--eval-identities", "4", "--images-per-identity", "6", "--resolution", "32"];
    let (folder, pack, bin) = (out.join("folder"), out.join("pack"), out.join("heldout.bin"));
    #[rustfmt::skip]
    let write = ["faces", "--write-folder", folder.to_str().unwrap(), "--write-rec", pack.to_str().unwrap(),
        "--write-bin", bin.to_str().unwrap()];
    let run = centerloss(&[&write[..], &set[..]].concat());
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(pack.join("train.rec").exists() && pack.join("train.idx").exists() && bin.exists());
    let (mut reports, mut table, run_out) = (Vec::new(), String::new(), out.join("run"));
    // In memory from the folder and from the pack, then streamed from the pack.
    for (data, memory_mib) in [(&folder, "1024"), (&pack, "1024"), (&pack, "0")] {
        let json = out.join("report.json");
        #[rustfmt::skip]
        let train = ["faces", "--data", data.to_str().unwrap(), "--eval-bin", bin.to_str().unwrap(), "--steps", "4",
            "--batch", "8", "--embed-dim", "16", "--resolution", "32", "--out", run_out.to_str().unwrap(),
            "--report-json", json.to_str().unwrap(), "--in-memory-max", memory_mib];
        let run = centerloss(&train);
        assert!(run.status.success(), "{}", text(&run.stderr));
        let stdout = text(&run.stdout);
        let how = if memory_mib == "0" { "streamed from disk" } else { "decoded into memory" };
        assert!(stdout.contains(how), "{stdout}");
        assert!(stdout.contains("| center | heldout | "), "{stdout}");
        table = stdout;
        reports.push(serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&json).unwrap()).unwrap());
    }
    let heldout = &reports[0]["center"]["benchmarks"]["heldout"];
    let accuracy = heldout["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy) && heldout["fold_thresholds"].as_array().unwrap().len() == 10, "{heldout}");
    assert!(heldout["genuine_pairs"].as_u64().unwrap() > 0 && heldout["impostor_pairs"].as_u64().unwrap() > 0);
    assert_eq!(figures(&reports[0]), figures(&reports[1]), "a pack trains and scores as its folder, bit for bit");
    assert_eq!(figures(&reports[1]), figures(&reports[2]), "streamed, the pack trains and scores as in memory");
    // `embed` reads a pack: one row per record, named by key, identities the labels.
    let emb = out.join("pack-emb");
    let run = centerloss(&[
        "embed",
        "--model",
        run_out.join("center.safetensors").to_str().unwrap(),
        pack.to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let csv = std::fs::read_to_string(emb.with_extension("csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 60, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains("train.rec#1,0"), "{csv}");
    // `verify --bin` scores the saved model as the job scored it.
    let model = run_out.join("center.safetensors");
    let run = centerloss(&["verify", "--model", model.to_str().unwrap(), "--bin", bin.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let row = table.lines().find(|l| l.starts_with("| center | heldout |")).unwrap();
    assert!(text(&run.stdout).contains(row), "{}\nagainst the job's row\n{row}", text(&run.stdout));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn out_of_range_options_are_refused_by_name_before_anything_runs() {
    let model = out_dir("ranges").join("none.safetensors");
    let m = model.to_str().unwrap();
    #[rustfmt::skip]
    let cases: &[(&[&str], &str)] = &[
        (&["faces", "--resolution", "0"], "--resolution"),
        (&["faces", "--resolution", "100000"], "--resolution"),
        (&["faces", "--images-per-identity", "0"], "--images-per-identity"),
        (&["faces", "--difficulty", "NaN"], "--difficulty"),
        (&["faces", "--difficulty=-1"], "--difficulty"),
        (&["faces", "--embed-dim", "1000000000"], "--embed-dim"),
        (&["faces", "--prefetch-batches", "1000000000"], "--prefetch-batches"),
        (&["faces", "--test-identities", "0"], "--test-identities"),
        (&["faces", "--test-identities", "NaN"], "--test-identities"),
        (&["faces", "--test-identities=-1"], "--test-identities"),
        (&["faces", "--eval-identities", "0"], "--eval-identities"),
        (&["faces", "--devices", "0"], "--devices"),
        (&["faces", "--in-memory-max", "17592186044416"], "--in-memory-max"),
        (&["faces", "--lr", "inf"], "--lr"),
        (&["faces", "--lambda", "NaN"], "--lambda"),
        (&["faces", "--alpha", "0"], "--alpha"),
        (&["faces", "--validation", "1"], "--validation"),
        (&["faces", "--batch", "0"], "--batch"),
        (&["mnist", "--lambdas", "0,NaN"], "--lambdas"),
        (&["verify", "--model", m, "--threshold", "NaN", "a.png", "b.png"], "--threshold"),
        (&["verify", "--model", m, "--far", "0", "a.png", "b.png"], "--far"),
        (&["search", "--model", m, "--gallery", "g", "--probe", "p", "--top-k", "0"], "--top-k"),
        (&["search", "--model", m, "--gallery", "g", "--probe", "p", "--top-k", "65"], "--top-k"),
    ];
    for (args, flag) in cases {
        let run = centerloss(args);
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("'{flag} <")) || stderr.contains(&format!("'{flag}")), "{args:?}: {stderr}");
    }
}

#[test]
fn outputs_never_replace_inputs_and_are_checked_before_any_work() {
    let out = out_dir("outputs");
    std::fs::create_dir_all(&out).unwrap();
    let model = out.join("m.safetensors");
    std::fs::write(&model, b"the user's model").unwrap();
    let gallery = out.join("g.npy");
    std::fs::write(&gallery, centerloss::data::npy::encode(&[0.5; 8], 2, 4).unwrap()).unwrap();
    let afile = out.join("afile");
    std::fs::write(&afile, b"a file").unwrap();
    let (m, g) = (model.to_str().unwrap(), gallery.to_str().unwrap());
    let same_model = out.join(".").join("m.safetensors");
    let (inside_file, report_inside_file) = (out.join("afile/emb"), out.join("afile/r.json"));
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["export", "--model", m, "--onnx", m], "an input of this command"),
        (vec!["export", "--model", m, "--onnx", same_model.to_str().unwrap()], "an input of this command"),
        (vec!["embed", "--model", m, g, "--out", m], "an input of this command"),
        (vec!["embed", "--model", m, g, "--out", g], "an input of this command"),
        (vec!["search", "--model", m, "--gallery", g, "--probe", g, "--out", g], "an input of this command"),
        (vec!["embed", "--model", m, g, "--out", inside_file.to_str().unwrap()], "afile is a file, not a folder"),
        (vec!["faces", "--report-json", report_inside_file.to_str().unwrap()], "afile is a file, not a folder"),
    ];
    for (args, why) in &cases {
        let run = centerloss(args);
        let stderr = text(&run.stderr);
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            run.status.code() == Some(1) && last.starts_with("error: ") && last.contains(why),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read(&model).unwrap(), b"the user's model");
    assert_eq!(centerloss::data::npy::read_matrix(&gallery).unwrap().1, 2);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_killed_pack_write_leaves_the_old_pack_readable() {
    let out = out_dir("killed-pack");
    let pack = out.join("pack");
    #[rustfmt::skip]
    let small = ["faces", "--write-rec", pack.to_str().unwrap(), "--identities", "4", "--eval-identities", "2",
        "--images-per-identity", "3", "--resolution", "16"];
    let run = centerloss(&small);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let images = |pack: &Path| centerloss::data::recordio::RecordPack::open(pack).map(|p| p.len());
    assert_eq!(images(&pack).unwrap(), 18);
    // A large set written over it (98 GiB of images, written 64 identities at a time, so
    // not refused for its size), killed part way.
    #[rustfmt::skip]
    let large = ["faces", "--write-rec", pack.to_str().unwrap(), "--identities", "300000", "--images-per-identity", "20"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_centerloss")).args(large).spawn().unwrap();
    let temporary =
        || std::fs::read_dir(&pack).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"));
    let start = std::time::Instant::now();
    while !temporary() && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(images(&pack).unwrap(), 18, "the old pack reads whole");
    // The next write removes the killed one's temporaries and replaces the pack.
    let mut fewer = small;
    fewer[8] = "2";
    let run = centerloss(&fewer);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(images(&pack).unwrap(), 12);
    assert!(!temporary());
    std::fs::remove_dir_all(&out).ok();
}
