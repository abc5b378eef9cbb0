//! The verification benchmarks' standard protocol against arcface_torch's, as
//! `scripts/verification_reference.py` computes it with numpy (run here when numpy is
//! present; otherwise the figures it printed for this fixed input, recorded below), and
//! the flip-and-sum embedding of a `.bin`'s images.
#![cfg(feature = "images")]

use std::path::Path;
use std::process::Command;

use centerloss::data::bin::VerificationSet;
use centerloss::data::{npy, Preprocessing};
use centerloss::eval::benchmark::{evaluate_benchmark, flip_horizontally, pair_distances, standard_accuracy};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// 617 pairs (not a multiple of 10): genuine distances around 1.0, impostors around 1.25,
/// overlapping, stored as f32 so that Python reads the very values.
fn fixed_pairs() -> (Vec<f64>, Vec<bool>) {
    let mut rng = StdRng::seed_from_u64(617);
    let (genuine, impostor) = (Normal::new(1.0, 0.35).unwrap(), Normal::new(1.25, 0.35).unwrap());
    (0..617)
        .map(|_| {
            let same = rng.random_bool(0.5);
            let d: f64 = if same { genuine.sample(&mut rng) } else { impostor.sample(&mut rng) };
            (d.clamp(0.0, 4.0) as f32 as f64, same)
        })
        .unzip()
}

/// What scripts/verification_reference.py printed for [`fixed_pairs`] (numpy 2.4.6).
const REFERENCE_ACCURACY: f64 = 0.6434955050237969;
const REFERENCE_STD: f64 = 0.05182443826287743;
const REFERENCE_THRESHOLDS: [f64; 10] = [1.09, 1.05, 1.11, 1.13, 1.03, 1.09, 1.05, 1.09, 1.09, 1.09];

/// The reference's figures, from Python when numpy is there (`CENTERLOSS_PYTHON` names the
/// interpreter; `python3` by default).
fn python_reference(distances: &[f64], same: &[bool]) -> Option<(f64, f64, Vec<f64>)> {
    let python = std::env::var("CENTERLOSS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy = Command::new(&python).args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
    if !has_numpy {
        return None;
    }
    let rows: Vec<f32> = distances.iter().zip(same).flat_map(|(&d, &s)| [d as f32, f32::from(u8::from(s))]).collect();
    let file = std::env::temp_dir().join(format!("centerloss-protocol-{}.npy", std::process::id()));
    std::fs::write(&file, npy::encode(&rows, distances.len(), 2).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verification_reference.py");
    let out = Command::new(&python).arg(script).arg(&file).output().unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("reference: {json}");
    let thresholds = json["thresholds"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    Some((json["accuracy"].as_f64().unwrap(), json["std"].as_f64().unwrap(), thresholds))
}

#[test]
fn the_standard_protocol_is_arcface_torchs() {
    let (distances, same) = fixed_pairs();
    let (accuracy, std, thresholds) = standard_accuracy(&distances, &same);
    let (ref_accuracy, ref_std, ref_thresholds) = python_reference(&distances, &same).unwrap_or((
        REFERENCE_ACCURACY,
        REFERENCE_STD,
        REFERENCE_THRESHOLDS.to_vec(),
    ));
    assert!((accuracy - ref_accuracy).abs() < 1e-12, "accuracy {accuracy} against {ref_accuracy}");
    assert!((std - ref_std).abs() < 1e-12, "std {std} against {ref_std}");
    assert_eq!(thresholds.len(), 10);
    for (t, r) in thresholds.iter().zip(&ref_thresholds) {
        assert!((t - r).abs() < 1e-12, "thresholds {thresholds:?} against {ref_thresholds:?}");
    }
    // Not a figure that cannot fail: the separation is real but imperfect.
    assert!(accuracy > 0.55 && accuracy < 0.9, "{accuracy}");
}

#[test]
fn a_benchmarks_rows_are_each_image_plus_its_flip() {
    // Four 2x3 grey PNGs; an "embedding" that sees which way round the image is.
    let images: Vec<Vec<u8>> = (0..4u8)
        .map(|k| {
            let mut png = Vec::new();
            let pixels: Vec<u8> = (0..6).map(|i| 40 * i + 10 * k).collect();
            image::write_buffer_with_format(
                &mut std::io::Cursor::new(&mut png),
                &pixels,
                3,
                2,
                image::ColorType::L8,
                image::ImageFormat::Png,
            )
            .unwrap();
            png
        })
        .collect();
    let set = VerificationSet { images, same: vec![true, false] };
    // A 2x2 input: the centre square of a 3-wide image, then no resize.
    let p = Preprocessing::centre_square([1, 2, 2]).unwrap();
    let embed_one = |px: &[f32]| [px[0] + 2.0 * px[1], px[2] - px[3] + 3.0];
    let mut embed = |pixels: &[f32]| Ok(pixels.chunks(4).flat_map(embed_one).collect::<Vec<f32>>());
    let report = evaluate_benchmark("tiny", &set, &p, 2, &mut embed).unwrap();
    let mut summed = Vec::new();
    for bytes in &set.images {
        let image = p.decode(bytes).unwrap();
        let mut flipped = image.clone();
        flip_horizontally(&mut flipped, [1, 2, 2]);
        let (a, b) = (embed_one(&image), embed_one(&flipped));
        summed.extend([a[0] + b[0], a[1] + b[1]]);
    }
    let expected = standard_accuracy(&pair_distances(&summed, 2), &set.same);
    assert_eq!((report.accuracy, report.accuracy_std, report.thresholds), expected);
    assert_eq!(report.verification.pairs, (1, 1));
    // An image that does not decode names the benchmark and the image.
    let broken = VerificationSet { images: vec![set.images[0].clone(), vec![1, 2, 3]], same: vec![true] };
    let err = evaluate_benchmark("tiny", &broken, &p, 2, &mut embed).unwrap_err().to_string();
    assert!(err.contains("tiny") && err.contains("image 1"), "{err}");
}
