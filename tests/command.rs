//! The `centerloss` command as a user runs it: a tiny face job prints its table and writes
//! its report and checkpoints; bad input exits non-zero with one sentence that names the
//! problem, not Rust's debug form of the error.
#![cfg(feature = "experiments")]

mod common;

use std::path::PathBuf;
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
    let run = centerloss(&["faces", "--steps", "0"]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).lines().last().unwrap_or("").starts_with("error: "));
}
