//! Short end-to-end runs of the two examples' pipelines (library functions the examples
//! wrap): the MNIST 2-D experiment on the repository's data/mnist, and the face job
//! on a small built-in set, with --compare and --resume.
#![cfg(feature = "experiments")]

mod common;

use std::path::{Path, PathBuf};

use centerloss::data::faces::FaceSetConfig;
use centerloss::experiments::faces::{self, FaceOptions, FaceSource, Loss};
use centerloss::experiments::mnist::{self, MnistOptions};
use centerloss::nn::CenterFeatures;
use centerloss::Error;
use common::{gpu, run_group};

fn out_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("centerloss-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// A face run small enough for a test: 6 built-in training identities and 4 held out, 8
/// images each at 32 x 32, 2 epochs of batch 16 (2 steps each), 16-dimensional embeddings,
/// writing into a fresh `out_dir(tag)`.
fn small_face_run(tag: &str) -> FaceOptions {
    let set = FaceSetConfig { train_identities: 6, test_identities: 4, images_per_identity: 8, ..Default::default() };
    FaceOptions {
        source: FaceSource::BuiltIn(set),
        resolution: 32,
        epochs: Some(2),
        batch: 16,
        embed_dim: 16,
        out: out_dir(tag),
        progress: false,
        ..Default::default()
    }
}

#[test]
fn mnist_2d_short_run() {
    let Some(ctx) = gpu() else { return };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let opts = MnistOptions {
        data,
        lambdas: vec![0.0, 0.1],
        epochs: 1,
        batch: 16,
        max_train: 32,
        max_test: 48,
        out: out_dir("mnist"),
        progress: false,
        ..Default::default()
    };
    let report = mnist::run(&ctx, &opts).unwrap();
    assert_eq!((report.train_images, report.test_images), (32, 48));
    let json = report.to_json(&opts);
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        for key in [
            "lambda",
            "test_accuracy",
            "intra_class_distance",
            "inter_center_distance",
            "intra_inter_ratio",
            "images_per_second",
        ] {
            assert!(run[key].is_number(), "{key} missing in {run}");
        }
        assert!((0.0..=1.0).contains(&run["test_accuracy"].as_f64().unwrap()));
    }
    for r in &report.runs {
        assert!(std::fs::metadata(&r.plot).unwrap().len() > 1000, "plot {} is empty", r.plot.display());
    }
    // The same run on two devices: the same figures (the step is exact to the global batch;
    // only summation order differs).
    let two = MnistOptions { devices: 2, lambdas: vec![0.1], out: out_dir("mnist-two-devices"), ..opts.clone() };
    let report2 = mnist::run(&ctx, &two).unwrap();
    let (a, b) = (&report.runs[1], &report2.runs[0]);
    assert_eq!(a.test_accuracy, b.test_accuracy);
    assert!((a.intra_inter_ratio - b.intra_inter_ratio).abs() < 1e-3 * a.intra_inter_ratio, "{a:?} vs {b:?}");
    std::fs::remove_dir_all(&opts.out).ok();
    std::fs::remove_dir_all(&two.out).ok();
}

#[test]
fn face_job_short_run_with_compare_and_resume() {
    let Some(ctx) = gpu() else { return };
    let opts = FaceOptions { compare: true, ..small_face_run("faces") };
    let report = faces::run(&ctx, &opts).unwrap();
    let json = report.to_json();
    for variant in ["softmax", "center"] {
        for key in [
            "verification_accuracy",
            "roc_auc",
            "eer",
            "rank1",
            "intra_inter_ratio",
            "train_seconds",
            "images_per_second",
            "final_train_batch_accuracy",
            "final_train_accuracy",
            "best_validation_accuracy",
            "lowest_resolved_far",
        ] {
            assert!(json[variant][key].is_number(), "{variant}.{key} missing in {json}");
        }
        // 4 identities of 8 images: 4 * 28 genuine pairs, all 384 impostor pairs for the
        // ROC, and as many impostors as genuine pairs for the fold accuracy. 384 impostor
        // pairs resolve neither FAR = 1e-3 nor 1e-2: both TARs are null, never a number.
        assert_eq!(json[variant]["genuine_pairs"], 112);
        assert_eq!(json[variant]["impostor_pairs"], 384);
        assert_eq!(json[variant]["accuracy_impostor_pairs"], 112);
        assert!(json[variant]["tar_at_far_1e-3"].is_null() && json[variant]["tar_at_far_1e-2"].is_null(), "{json}");
        assert!(json[variant]["converged"].is_boolean());
        // 6 identities x 8 images, one of each held out for validation: 42 images, 2 steps
        // per epoch.
        assert_eq!(json[variant]["steps"], 4);
        assert!(opts.out.join(format!("pca_{variant}.png")).exists());
        assert!(opts.out.join(format!("{variant}.safetensors")).exists());
        assert!(opts.out.join(format!("{variant}-last.safetensors")).exists());
    }
    assert!(std::fs::metadata(&report.roc_plot).unwrap().len() > 1000);
    let table = report.table();
    assert!(table.contains("| center (lambda 0.01)") && table.contains("| n/a | n/a |"), "{table}");

    // Resuming a finished run with the same options trains nothing and evaluates the same
    // checkpoints: the same figures.
    let resumed = FaceOptions { resume: true, ..opts.clone() };
    let again = faces::run(&ctx, &resumed).unwrap();
    for (a, b) in report.variants.iter().zip(&again.variants) {
        assert_eq!(a.eval, b.eval, "{}", a.name);
        assert_eq!(a.evaluated_step, b.evaluated_step);
    }
    // Resuming with options that change the run is refused, naming what changed.
    let changed = FaceOptions { lr: 0.01, ..resumed.clone() };
    match faces::run(&ctx, &changed) {
        Err(Error::Config(m)) => assert!(m.contains("resume") && m.contains("lr"), "{m}"),
        other => panic!("a changed run resumed: {:?}", other.map(|r| r.table())),
    }
    // A budget of zero steps is an error, not an untrained checkpoint.
    let zero = FaceOptions { epochs: Some(0), resume: false, ..opts.clone() };
    assert!(matches!(faces::run(&ctx, &zero), Err(Error::Config(_))));
    std::fs::remove_dir_all(&opts.out).ok();
}

#[test]
fn face_job_on_two_devices_matches_one_device() {
    let Some(ctx) = gpu() else { return };
    let one = small_face_run("faces-one-device");
    let two = FaceOptions { devices: 2, out: out_dir("faces-two-devices"), ..one.clone() };
    let (a, b) = (faces::run(&ctx, &one).unwrap(), faces::run(&ctx, &two).unwrap());
    let (a, b) = (&a.variants[0], &b.variants[0]);
    assert_eq!(a.evaluated_step, b.evaluated_step);
    assert!((a.final_train_accuracy - b.final_train_accuracy).abs() < 1e-6, "{a:?} vs {b:?}");
    let (x, y) = (a.eval.verification.roc_auc, b.eval.verification.roc_auc);
    assert!((x - y).abs() < 1e-3, "AUC {x} on one device, {y} on two");
    // An indivisible batch is refused before any training.
    let odd = FaceOptions { devices: 3, ..two.clone() };
    assert!(matches!(faces::run(&ctx, &odd), Err(Error::Config(m)) if m.contains("multiple of 3")));
    for o in [&one, &two] {
        std::fs::remove_dir_all(&o.out).ok();
    }
}

/// `until_converged` trains past a budget too short to converge (two validations) one
/// validation at a time until validation stops rising or the cap: resumed from a finished
/// run, and on two devices (whose other member restarts from the lead's checkpoint each
/// round), the same steps and figures as trained through in one go.
#[test]
fn training_until_converged_goes_past_the_budget_the_same_way_resumed_or_on_two_devices() {
    let Some(ctx) = gpu() else { return };
    let plain = small_face_run("faces-until-converged");
    let budget = faces::run(&ctx, &plain).unwrap();
    // 2 steps per epoch, validation every 2: two validations are too few to converge.
    assert_eq!((budget.variants[0].steps, budget.variants[0].converged), (4, false));
    let onward = FaceOptions { until_converged: true, max_steps: Some(12), ..plain.clone() };
    let resumed = faces::run(&ctx, &FaceOptions { resume: true, ..onward.clone() }).unwrap();
    let through =
        faces::run(&ctx, &FaceOptions { devices: 2, out: out_dir("faces-until-converged-two"), ..onward.clone() })
            .unwrap();
    let (a, b) = (&resumed.variants[0], &through.variants[0]);
    assert!(a.steps >= 8 && a.steps <= 12 && a.steps % 2 == 0, "{a:?}");
    assert!(a.converged || a.steps == 12, "stopped at {} unconverged", a.steps);
    assert_eq!((a.budget, a.steps, a.converged, a.evaluated_step), (4, b.steps, b.converged, b.evaluated_step));
    // The last checkpoints (weights, momenta, centers) agree tensor by tensor to the
    // rounding of a two-member step.
    let last = |o: &FaceOptions| tensors(&o.out.join(format!("{}-last.safetensors", a.name)));
    let two = FaceOptions { out: through.variants[0].checkpoint.parent().unwrap().to_path_buf(), ..plain.clone() };
    let (x, y) = (last(&plain), last(&two));
    assert_eq!(x.len(), y.len());
    for ((name, u), (_, v)) in x.iter().zip(&y) {
        let diff: f64 = u.iter().zip(v).map(|(&p, &q)| (p as f64 - q as f64).powi(2)).sum();
        let norm: f64 = v.iter().map(|&q| (q as f64).powi(2)).sum();
        assert!(diff.sqrt() <= 1e-4 * norm.sqrt().max(1e-6), "{name}: {} against {}", diff.sqrt(), norm.sqrt());
    }
    assert_eq!(resumed.to_json()[a.name]["budget_steps"], 4);
    // A cap below the budget, or no validation to watch, is refused before training.
    let low = FaceOptions { max_steps: Some(3), out: out_dir("faces-until-converged-bad"), ..onward.clone() };
    assert!(matches!(faces::run(&ctx, &low), Err(Error::Config(m)) if m.contains("--max-steps 3")));
    let blind = FaceOptions { validation_fraction: 0.0, max_steps: None, ..low.clone() };
    assert!(matches!(faces::run(&ctx, &blind), Err(Error::Config(m)) if m.contains("validation")));
    for o in [&plain.out, &two.out, &low.out] {
        std::fs::remove_dir_all(o).ok();
    }
}

/// The f32 tensors of a safetensors file, by name.
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(name, t)| (name, t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// A variant that diverges (center loss at lambda = 1e6) leaves the other variants their
/// rows and a line saying why it is missing; trained alone, it is the run's error.
#[test]
fn a_diverged_variant_leaves_the_others_their_rows() {
    let Some(ctx) = gpu() else { return };
    let opts = FaceOptions { compare: true, lambda: 1e6, ..small_face_run("faces-diverged") };
    let report = faces::run(&ctx, &opts).unwrap();
    let names: Vec<&str> = report.variants.iter().map(|v| v.name).collect();
    assert_eq!(names, ["softmax"]);
    assert_eq!(report.diverged.len(), 1);
    assert_eq!(report.diverged[0].0, "center");
    assert!(report.table().contains("center: not in the table, training diverged at step"), "{}", report.table());
    assert!(report.to_json()["diverged"]["center"].is_string());
    let alone = FaceOptions { compare: false, ..opts.clone() };
    assert!(matches!(faces::run(&ctx, &alone), Err(Error::Diverged { .. })));
    std::fs::remove_dir_all(&opts.out).ok();
}

/// A folder job as two ranks of a group (what `mpirun -n 2` runs): rank 0 decodes the
/// folder and tells rank 1 which files it read (one is broken); rank 1 decodes only the
/// images its rows use; the report equals the one-process run's.
#[test]
fn a_folder_job_on_two_ranks_matches_one_process() {
    let Some(ctx) = gpu() else { return };
    let root = out_dir("faces-folder-ranks-data");
    let set = FaceSetConfig {
        train_identities: 8,
        test_identities: 0,
        images_per_identity: 8,
        resolution: 32,
        ..Default::default()
    };
    centerloss::data::folder::write_folder(&set.generate(0, 8), &root, |l| format!("id{l:02}")).unwrap();
    std::fs::write(root.join("id03").join("broken.png"), b"not a png").unwrap();
    let one = FaceOptions {
        source: FaceSource::Folder { root: root.clone(), test_identities: 0.25 },
        resolution: 32,
        epochs: Some(2),
        batch: 16,
        embed_dim: 16,
        lambda: 0.05,
        out: out_dir("faces-folder-one"),
        progress: false,
        ..Default::default()
    };
    let single = faces::run(&ctx, &one).unwrap();
    let ranks = FaceOptions { out: out_dir("faces-folder-ranks"), ..one.clone() };
    let reports = run_group(2, |rank, member| {
        let ctx = if rank == 0 { ctx.clone() } else { centerloss::GpuContext::new().unwrap() };
        faces::run_collective(&ctx, &ranks, &member).unwrap()
    });
    assert!(reports[1].is_none(), "rank 1 reports nothing");
    let (a, b) = (&single.variants[0], &reports[0].as_ref().expect("rank 0 reports").variants[0]);
    assert_eq!(a.evaluated_step, b.evaluated_step);
    assert!((a.final_train_accuracy - b.final_train_accuracy).abs() < 1e-6, "{a:?} vs {b:?}");
    let (x, y) = (a.eval.verification.roc_auc, b.eval.verification.roc_auc);
    assert!((x - y).abs() < 1e-3, "AUC {x} in one process, {y} on two ranks");
    // A folder with nothing readable: both ranks fail with rank 0's reason, none waits.
    let empty = out_dir("faces-folder-empty");
    std::fs::create_dir_all(empty.join("nobody")).unwrap();
    let none =
        FaceOptions { source: FaceSource::Folder { root: empty.clone(), test_identities: 0.25 }, ..ranks.clone() };
    let errors = run_group(2, |_, member| faces::run_collective(&ctx, &none, &member).unwrap_err().to_string());
    assert!(errors.iter().all(|e| e.contains("no readable images")), "{errors:?}");
    for dir in [&root, &one.out, &ranks.out, &empty] {
        std::fs::remove_dir_all(dir).ok();
    }
}

/// ArcFace with center loss (on the normalised embedding) and CosFace alone, with the
/// ArcFace head alone beside them (`compare`): one row each, checkpoints a `Model` opens,
/// and a resume with another margin refused by name.
#[test]
fn face_job_trains_margin_heads_with_and_without_center_loss() {
    let Some(ctx) = gpu() else { return };
    let opts = FaceOptions {
        epochs: Some(1),
        losses: vec![Loss::ArcfaceCenter, Loss::Cosface],
        compare: true,
        margin_scale: 16.0,
        center_features: CenterFeatures::Normalized,
        ..small_face_run("faces-margin")
    };
    let report = faces::run(&ctx, &opts).unwrap();
    let names: Vec<&str> = report.variants.iter().map(|v| v.name).collect();
    assert_eq!(names, ["arcface", "arcface+center", "cosface"]);
    let json = report.to_json();
    assert_eq!(json["arcface+center"]["head"], "margin (s 16, m2 0.5)");
    assert_eq!(json["cosface"]["head"], "margin (s 16, m3 0.35)");
    assert_eq!(json["arcface"]["lambda"], 0.0);
    assert!(json["arcface+center"]["lambda"].as_f64().unwrap() > 0.0);
    let table = report.table();
    assert!(table.contains("| arcface+center (s 16, m2 0.5; lambda 0.01) |"), "{table}");
    for v in &report.variants {
        assert!(v.eval.verification.roc_auc.is_finite(), "{}", v.name);
        let model = centerloss::model::Model::open(&ctx, &v.checkpoint).unwrap();
        assert!(model.network().spec().head.normalized, "{}", v.name);
    }
    let other_margin = FaceOptions { resume: true, arcface_margin: 0.4, ..opts.clone() };
    let refused = faces::run(&ctx, &other_margin).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("head=margin (s 16, m2 0.4)"), "{refused}");
    std::fs::remove_dir_all(&opts.out).ok();
}
