//! Evaluation of embeddings on identities never seen in training, with cosine similarity:
//! verification (10-fold accuracy, ROC AUC, TAR at FAR, EER), identification (rank-1) and
//! compactness (intra-class distance against distance between class means); and the
//! verification benchmarks' standard protocol ([`benchmark`]).
//!
//! A TAR at a false-accept rate is only reported when the impostor pairs resolve that rate:
//! at least [`MIN_EXPECTED_FALSE_ACCEPTS`] false accepts must be expected there
//! (impostors x FAR >= 10), otherwise it is `None` ([`tar_at_far`]). [`evaluate`] therefore
//! scores ROC, AUC, EER and TAR on every impostor pair (up to [`MAX_IMPOSTOR_PAIRS`], a
//! seeded sample beyond), and keeps the 10-fold accuracy on balanced pairs.

use std::collections::BTreeMap;

pub mod benchmark;
mod verification;

use verification::normalized_scores;
pub use verification::{
    all_pairs, fold_accuracy, lowest_resolved_far, pair_scores, roc_metrics, tar_at_far, verification_pairs, verify,
    OperatingPoint, Verification, MAX_IMPOSTOR_PAIRS, MIN_EXPECTED_FALSE_ACCEPTS, OPERATING_FARS,
};

use crate::data::Pair;

/// Mean intra-class distance against mean distance between class means.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Compactness {
    /// Mean Euclidean distance of a sample to its class mean.
    pub intra: f64,
    /// Mean Euclidean distance between two class means.
    pub inter: f64,
    /// intra / inter: smaller is more discriminative.
    pub ratio: f64,
}

/// Everything [`evaluate`] measures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalReport {
    /// Verification on genuine and impostor pairs.
    pub verification: Verification,
    /// Rank-1 identification accuracy (first image of each identity as gallery).
    pub rank1: f64,
    /// Compactness of the (L2-normalised) embeddings.
    pub compactness: Compactness,
}

/// Rows of `dim` values scaled to unit length (zero rows stay zero).
pub fn l2_normalized(embeddings: &[f32], dim: usize) -> Vec<f64> {
    embeddings
        .chunks(dim)
        .flat_map(|row| {
            let n = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            row.iter().map(move |&v| if n > 0.0 { v as f64 / n } else { 0.0 })
        })
        .collect()
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rank-1 identification: the first sample of each identity is its gallery entry, the
/// others probe; a probe is right when its most cosine-similar gallery entry shares its
/// identity. Identities with one sample only enlarge the gallery.
pub fn rank1(embeddings: &[f32], dim: usize, labels: &[u32]) -> f64 {
    let e = l2_normalized(embeddings, dim);
    let mut gallery: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        gallery.entry(l).or_insert(i);
    }
    let gallery: Vec<(u32, usize)> = gallery.into_iter().collect();
    let probes: Vec<usize> = (0..labels.len()).filter(|&i| gallery.iter().all(|&(_, g)| g != i)).collect();
    if probes.is_empty() {
        return 0.0;
    }
    let correct = probes
        .iter()
        .filter(|&&p| {
            let row = &e[p * dim..(p + 1) * dim];
            let best = gallery
                .iter()
                .map(|&(l, g)| (dot(row, &e[g * dim..(g + 1) * dim]), l))
                .fold((f64::NEG_INFINITY, u32::MAX), |best, c| if c.0 > best.0 { c } else { best });
            best.1 == labels[p]
        })
        .count();
    correct as f64 / probes.len() as f64
}

/// Class means of rows of `dim` values.
pub fn class_means(embeddings: &[f32], dim: usize, labels: &[u32]) -> BTreeMap<u32, Vec<f64>> {
    let mut sums: BTreeMap<u32, (Vec<f64>, usize)> = BTreeMap::new();
    for (row, &l) in embeddings.chunks(dim).zip(labels) {
        let (s, n) = sums.entry(l).or_insert_with(|| (vec![0.0; dim], 0));
        s.iter_mut().zip(row).for_each(|(a, &b)| *a += b as f64);
        *n += 1;
    }
    sums.into_iter().map(|(l, (s, n))| (l, s.into_iter().map(|v| v / n as f64).collect())).collect()
}

/// Mean distance of samples to their class mean, mean distance between class means.
pub fn compactness(embeddings: &[f32], dim: usize, labels: &[u32]) -> Compactness {
    let means = class_means(embeddings, dim, labels);
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let intra = embeddings
        .chunks(dim)
        .zip(labels)
        .map(|(row, l)| {
            let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            dist(&row, &means[l])
        })
        .sum::<f64>()
        / labels.len().max(1) as f64;
    let m: Vec<&Vec<f64>> = means.values().collect();
    let mut inter = 0.0;
    let mut count = 0;
    for i in 0..m.len() {
        for j in i + 1..m.len() {
            inter += dist(m[i], m[j]);
            count += 1;
        }
    }
    let inter = if count > 0 { inter / count as f64 } else { 0.0 };
    Compactness { intra, inter, ratio: if inter > 0.0 { intra / inter } else { f64::INFINITY } }
}

/// Projects rows of `dim` values on their two leading principal components (power
/// iteration on the covariance, deflated once).
pub fn pca_2d(embeddings: &[f32], dim: usize) -> Vec<[f32; 2]> {
    let n = embeddings.len() / dim.max(1);
    if n == 0 {
        return Vec::new();
    }
    let mean: Vec<f64> =
        (0..dim).map(|d| embeddings.iter().skip(d).step_by(dim).map(|&v| v as f64).sum::<f64>() / n as f64).collect();
    let centered: Vec<f64> = embeddings.iter().enumerate().map(|(i, &v)| v as f64 - mean[i % dim]).collect();
    let cov_times = |v: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; dim];
        for row in centered.chunks(dim) {
            let p = dot(row, v);
            out.iter_mut().zip(row).for_each(|(o, &r)| *o += p * r);
        }
        out
    };
    let mut axes: Vec<Vec<f64>> = Vec::new();
    for a in 0..2 {
        let mut v: Vec<f64> = (0..dim).map(|d| if d % 2 == a { 1.0 } else { 0.5 }).collect();
        for _ in 0..100 {
            let mut w = cov_times(&v);
            for prev in &axes {
                let p = dot(&w, prev);
                w.iter_mut().zip(prev).for_each(|(x, &q)| *x -= p * q);
            }
            let norm = dot(&w, &w).sqrt();
            if norm == 0.0 {
                break;
            }
            v = w.into_iter().map(|x| x / norm).collect();
        }
        axes.push(v);
    }
    centered.chunks(dim).map(|row| [dot(row, &axes[0]) as f32, dot(row, &axes[1]) as f32]).collect()
}

/// Verification, rank-1, and the compactness of the L2-normalised embeddings. ROC, AUC,
/// EER and TAR use every genuine and every impostor pair ([`all_pairs`], at most
/// [`MAX_IMPOSTOR_PAIRS`] impostors); the 10-fold accuracy uses all genuine pairs and as
/// many seeded impostor pairs ([`verification_pairs`]).
pub fn evaluate(embeddings: &[f32], dim: usize, labels: &[u32], seed: u64) -> EvalReport {
    let normalized = l2_normalized(embeddings, dim);
    let genuine = |pairs: &[Pair]| pairs.iter().map(|p| p.genuine).collect::<Vec<bool>>();
    let balanced = verification_pairs(labels, seed);
    let (accuracy, accuracy_std) =
        fold_accuracy(&normalized_scores(&normalized, dim, &balanced), &genuine(&balanced), 10, seed);
    let all = all_pairs(labels, MAX_IMPOSTOR_PAIRS, seed);
    let roc = roc_metrics(&normalized_scores(&normalized, dim, &all), &genuine(&all));
    let n_gen = balanced.iter().filter(|p| p.genuine).count();
    let verification = Verification { accuracy, accuracy_std, accuracy_pairs: (n_gen, balanced.len() - n_gen), ..roc };
    identify(verification, embeddings, &normalized, dim, labels)
}

/// [`evaluate`] on given pairs (an LFW-style `pairs.txt`, say).
pub fn evaluate_pairs(embeddings: &[f32], dim: usize, labels: &[u32], pairs: &[Pair], seed: u64) -> EvalReport {
    let normalized = l2_normalized(embeddings, dim);
    let genuine: Vec<bool> = pairs.iter().map(|p| p.genuine).collect();
    let verification = verify(&normalized_scores(&normalized, dim, pairs), &genuine, 10, seed);
    identify(verification, embeddings, &normalized, dim, labels)
}

/// `verification` with rank-1 and the compactness of the normalised embeddings.
fn identify(
    verification: Verification,
    embeddings: &[f32],
    normalized: &[f64],
    dim: usize,
    labels: &[u32],
) -> EvalReport {
    let normalized: Vec<f32> = normalized.iter().map(|&v| v as f32).collect();
    EvalReport {
        verification,
        rank1: rank1(embeddings, dim, labels),
        compactness: compactness(&normalized, dim, labels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn pairs_rank1_and_compactness() {
        let labels = [0, 0, 1, 1, 2];
        let pairs = verification_pairs(&labels, 3);
        assert_eq!(pairs.iter().filter(|p| p.genuine).count(), 2);
        assert_eq!(pairs.iter().filter(|p| !p.genuine).count(), 2);
        assert!(pairs.iter().all(|p| p.genuine == (labels[p.a] == labels[p.b])));
        // Class 0 along x, class 1 along y, class 2 along -x.
        let emb = [1.0, 0.0, 2.0, 0.1, 0.0, 1.0, 0.1, 3.0, -1.0, 0.0];
        assert_eq!(rank1(&emb, 2, &labels), 1.0);
        let c = compactness(&[0.0, 0.0, 2.0, 0.0, 10.0, 0.0, 10.0, 2.0], 2, &[0, 0, 1, 1]);
        assert_eq!((c.intra, c.inter), (1.0, 82.0f64.sqrt()));
        let same = evaluate(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2, &[0, 0, 1, 1], 0);
        assert_eq!(same.verification.roc_auc, 0.5);
    }

    #[test]
    fn evaluate_scores_every_impostor_and_folds_on_balanced_pairs() {
        let labels: Vec<u32> = (0..100).map(|i| i / 10).collect();
        // Each identity near its own axis of a 10-d space, with a little spread.
        let mut rng = StdRng::seed_from_u64(2);
        let emb: Vec<f32> = labels
            .iter()
            .flat_map(|&l| (0..10).map(move |d| if d == l as usize { 1.0 } else { 0.0 }).collect::<Vec<f32>>())
            .map(|v| v + rng.random_range(-0.3..0.3))
            .collect();
        let r = evaluate(&emb, 10, &labels, 3);
        let v = &r.verification;
        assert_eq!(v.pairs, (450, 4_500));
        assert_eq!(v.accuracy_pairs, (450, 450));
        assert_eq!(v.lowest_far, 10.0 / 4_500.0);
        assert!(v.tar_at_far_1e2.is_some());
        assert_eq!(v.tar_at_far_1e3, None, "4 500 impostors expect 4.5 false accepts at 1e-3");
        assert!(v.accuracy > 0.9 && v.roc_auc > 0.95, "{v:?}");
    }
}
