//! Verification: genuine and impostor pairs, cosine scores, k-fold accuracy, ROC, AUC, EER
//! and the TARs the impostor pairs resolve.

use std::collections::BTreeMap;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{dot, l2_normalized};
use crate::data::Pair;

/// Verification results.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verification {
    /// Mean accuracy over folds, each fold's threshold chosen on the other folds.
    pub accuracy: f64,
    /// Standard deviation of the fold accuracies.
    pub accuracy_std: f64,
    /// Area under the ROC curve (ties count one half).
    pub roc_auc: f64,
    /// True-accept rate at a false-accept rate of at most 1e-2; `None` when the impostor
    /// pairs do not resolve that rate ([`tar_at_far`]).
    pub tar_at_far_1e2: Option<f64>,
    /// True-accept rate at a false-accept rate of at most 1e-3; `None` when unresolved.
    pub tar_at_far_1e3: Option<f64>,
    /// Equal error rate.
    pub eer: f64,
    /// ROC points (false-accept rate, true-accept rate), by rising FAR.
    pub roc: Vec<(f64, f64)>,
    /// Number of genuine and impostor pairs behind ROC, AUC, EER and TAR.
    pub pairs: (usize, usize),
    /// Number of genuine and impostor pairs behind the fold accuracy (balanced, unless
    /// the pairs were given).
    pub accuracy_pairs: (usize, usize),
    /// The lowest false-accept rate the impostor pairs resolve ([`lowest_resolved_far`]).
    pub lowest_far: f64,
    /// Decision thresholds on the cosine score: the equal-error point, then FAR 1e-2 and
    /// 1e-3 where the impostor pairs resolve them.
    pub operating_points: Vec<OperatingPoint>,
}

/// A threshold on the cosine score (accept: score >= threshold) and what it gave on the
/// pairs it was chosen on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// The false-accept rate asked for (at most); `None` for the equal-error point.
    pub target_far: Option<f64>,
    /// The threshold.
    pub threshold: f64,
    /// The false-accept rate measured at the threshold.
    pub far: f64,
    /// The true-accept rate measured at the threshold.
    pub tar: f64,
    /// Genuine and impostor pairs it was measured on.
    pub pairs: (usize, usize),
}

/// The false-accept rates [`roc_metrics`] gives operating points for (where resolved).
pub const OPERATING_FARS: [f64; 2] = [1e-2, 1e-3];

/// False accepts a FAR must expect among the impostor pairs before a TAR is reported there.
pub const MIN_EXPECTED_FALSE_ACCEPTS: f64 = 10.0;

/// At most this many impostor pairs are scored (a seeded sample beyond).
pub const MAX_IMPOSTOR_PAIRS: usize = 1_000_000;

/// The lowest false-accept rate `impostors` pairs resolve: [`MIN_EXPECTED_FALSE_ACCEPTS`]
/// expected false accepts (infinite without impostors).
pub fn lowest_resolved_far(impostors: usize) -> f64 {
    MIN_EXPECTED_FALSE_ACCEPTS / impostors as f64
}

/// The true-accept rate at a false-accept rate of at most `far` on a ROC curve of
/// (FAR, TAR) points scored on `impostors` impostor pairs, or `None` when those pairs
/// cannot resolve `far` (impostors x far < [`MIN_EXPECTED_FALSE_ACCEPTS`]): a TAR there
/// would rest on fewer than ten false accepts, a handful of scores presented as a rate.
pub fn tar_at_far(roc: &[(f64, f64)], impostors: usize, far: f64) -> Option<f64> {
    if (impostors as f64) * far < MIN_EXPECTED_FALSE_ACCEPTS * (1.0 - 1e-9) {
        return None;
    }
    Some(roc.iter().filter(|(f, _)| *f <= far + 1e-12).map(|&(_, t)| t).fold(0.0, f64::max))
}

/// Every genuine pair, identity by identity (distinct, unordered).
fn genuine_pairs(labels: &[u32]) -> Vec<Pair> {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut pairs = Vec::new();
    for members in by_class.values() {
        for (x, &a) in members.iter().enumerate() {
            for &b in &members[x + 1..] {
                pairs.push(Pair { a, b, genuine: true });
            }
        }
    }
    pairs
}

/// `count` distinct impostor pairs drawn with `seed` (`count` at most the impostor pairs
/// there are).
fn sampled_impostors(labels: &[u32], count: usize, seed: u64) -> Vec<Pair> {
    let n = labels.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut pairs = Vec::with_capacity(count);
    while seen.len() < count {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        if labels[a] != labels[b] && seen.insert((a.min(b), a.max(b))) {
            pairs.push(Pair { a: a.min(b), b: a.max(b), genuine: false });
        }
    }
    pairs
}

/// All genuine pairs and as many impostor pairs drawn with `seed` (distinct, unordered).
pub fn verification_pairs(labels: &[u32], seed: u64) -> Vec<Pair> {
    let mut pairs = genuine_pairs(labels);
    let n = labels.len();
    let impostors = n * n.saturating_sub(1) / 2 - pairs.len();
    pairs.extend(sampled_impostors(labels, pairs.len().min(impostors), seed));
    pairs
}

/// Every genuine pair and every impostor pair (distinct, unordered), or a seeded sample of
/// `max_impostors` distinct impostor pairs when there are more.
pub fn all_pairs(labels: &[u32], max_impostors: usize, seed: u64) -> Vec<Pair> {
    let mut pairs = genuine_pairs(labels);
    let n = labels.len();
    let impostors = n * n.saturating_sub(1) / 2 - pairs.len();
    if impostors > max_impostors {
        pairs.extend(sampled_impostors(labels, max_impostors, seed));
        return pairs;
    }
    for a in 0..n {
        pairs.extend((a + 1..n).filter(|&b| labels[a] != labels[b]).map(|b| Pair { a, b, genuine: false }));
    }
    pairs
}

/// Cosine similarity of each pair.
pub fn pair_scores(embeddings: &[f32], dim: usize, pairs: &[Pair]) -> Vec<f64> {
    normalized_scores(&l2_normalized(embeddings, dim), dim, pairs)
}

/// Dot products of each pair of already L2-normalised rows.
pub(super) fn normalized_scores(normalized: &[f64], dim: usize, pairs: &[Pair]) -> Vec<f64> {
    let row = |i: usize| &normalized[i * dim..(i + 1) * dim];
    pairs.iter().map(|p| dot(row(p.a), row(p.b))).collect()
}

/// Accuracy of "genuine when score > threshold".
fn accuracy_at(scores: &[f64], genuine: &[bool], idx: &[usize], t: f64) -> f64 {
    let ok = idx.iter().filter(|&&i| (scores[i] > t) == genuine[i]).count();
    ok as f64 / idx.len().max(1) as f64
}

/// The threshold (a midpoint between sorted scores) with the best accuracy on `idx`.
fn best_threshold(scores: &[f64], genuine: &[bool], idx: &[usize]) -> f64 {
    let mut s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
    s.sort_by(f64::total_cmp);
    s.dedup();
    let mut candidates = vec![s[0] - 1.0];
    candidates.extend(s.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    candidates.push(s[s.len() - 1] + 1.0);
    let mut best = (f64::NEG_INFINITY, 0.0);
    for t in candidates {
        let a = accuracy_at(scores, genuine, idx, t);
        if a > best.0 {
            best = (a, t);
        }
    }
    best.1
}

/// Verification metrics for scores of genuine (`true`) and impostor pairs; accuracy by
/// `folds`-fold cross-validation of the threshold (pairs dealt to folds with `seed`).
pub fn verify(scores: &[f64], genuine: &[bool], folds: usize, seed: u64) -> Verification {
    let (accuracy, accuracy_std) = fold_accuracy(scores, genuine, folds, seed);
    Verification { accuracy, accuracy_std, ..roc_metrics(scores, genuine) }
}

/// Mean and standard deviation of the accuracy over `folds` folds, each fold's threshold
/// chosen on the other folds (pairs dealt to folds with `seed`); zeros without both kinds.
pub fn fold_accuracy(scores: &[f64], genuine: &[bool], folds: usize, seed: u64) -> (f64, f64) {
    let n = scores.len();
    let n_gen = genuine.iter().filter(|&&g| g).count();
    if n_gen == 0 || n_gen == n {
        return (0.0, 0.0);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let folds = folds.clamp(2, n);
    let mut accs = Vec::new();
    for f in 0..folds {
        let test: Vec<usize> = order.iter().copied().skip(f).step_by(folds).collect();
        let train: Vec<usize> = order.iter().enumerate().filter(|(i, _)| i % folds != f).map(|(_, &v)| v).collect();
        let t = best_threshold(scores, genuine, &train);
        accs.push(accuracy_at(scores, genuine, &test, t));
    }
    let accuracy = accs.iter().sum::<f64>() / accs.len() as f64;
    let accuracy_std = (accs.iter().map(|a| (a - accuracy).powi(2)).sum::<f64>() / accs.len() as f64).sqrt();
    (accuracy, accuracy_std)
}

/// ROC curve, AUC, EER and the resolvable TARs of genuine (`true`) and impostor scores (no
/// fold accuracy: [`fold_accuracy`]). O(n log n), fit for a million pairs.
pub fn roc_metrics(scores: &[f64], genuine: &[bool]) -> Verification {
    let n = scores.len();
    let n_gen = genuine.iter().filter(|&&g| g).count();
    let n_imp = n - n_gen;
    let counts = (n_gen, n_imp);
    let lowest_far = lowest_resolved_far(n_imp);
    if n_gen == 0 || n_imp == 0 {
        return Verification { pairs: counts, accuracy_pairs: counts, lowest_far, ..Default::default() };
    }
    // ROC by descending score; ties move together.
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut roc = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut auc = 0.0;
    let mut eer = (f64::INFINITY, 1.0);
    // Before the first group every pair is rejected: a threshold just above the top score.
    let above_all = |s: f64| s + 1e-6 * s.abs().max(1.0);
    let reject_all =
        OperatingPoint { target_far: None, threshold: above_all(scores[idx[0]]), far: 0.0, tar: 0.0, pairs: counts };
    let mut eer_point = reject_all;
    let mut far_points: Vec<OperatingPoint> =
        OPERATING_FARS.iter().map(|&f| OperatingPoint { target_far: Some(f), ..reject_all }).collect();
    let mut i = 0;
    while i < n {
        let s = scores[idx[i]];
        let (tp0, fp0) = (tp, fp);
        while i < n && scores[idx[i]] == s {
            if genuine[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let (tar, far) = (tp as f64 / n_gen as f64, fp as f64 / n_imp as f64);
        // Trapezoid over this group of tied scores.
        auc += (fp - fp0) as f64 / n_imp as f64 * (tp0 + tp) as f64 / (2.0 * n_gen as f64);
        let frr = 1.0 - tar;
        let point = OperatingPoint { threshold: s, far, tar, ..reject_all };
        if (far - frr).abs() < eer.0 {
            eer = ((far - frr).abs(), 0.5 * (far + frr));
            eer_point = point;
        }
        for p in far_points.iter_mut().filter(|p| p.target_far.is_some_and(|t| far <= t + 1e-12)) {
            *p = OperatingPoint { target_far: p.target_far, ..point };
        }
        roc.push((far, tar));
    }
    let (tar_at_far_1e2, tar_at_far_1e3) = (tar_at_far(&roc, n_imp, 1e-2), tar_at_far(&roc, n_imp, 1e-3));
    let mut operating_points = vec![eer_point];
    operating_points
        .extend(far_points.into_iter().filter(|p| p.target_far.is_some_and(|f| tar_at_far(&roc, n_imp, f).is_some())));
    // Thin the curve for plotting.
    let step = (roc.len() / 1000).max(1);
    let last = *roc.last().expect("non-empty");
    let mut roc: Vec<(f64, f64)> = roc.into_iter().step_by(step).collect();
    if roc.last() != Some(&last) {
        roc.push(last);
    }
    Verification {
        accuracy: 0.0,
        accuracy_std: 0.0,
        roc_auc: auc,
        tar_at_far_1e2,
        tar_at_far_1e3,
        eer: eer.1,
        roc,
        pairs: counts,
        accuracy_pairs: counts,
        lowest_far,
        operating_points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_separable_scores() {
        let scores = [0.9, 0.8, 0.95, 0.1, 0.2, -0.3];
        let genuine = [true, true, true, false, false, false];
        let v = verify(&scores, &genuine, 3, 0);
        assert_eq!(v.accuracy, 1.0);
        assert_eq!(v.eer, 0.0);
        assert_eq!(v.roc_auc, 1.0);
        // Three impostor pairs resolve no FAR below 10/3.
        assert_eq!(v.tar_at_far_1e3, None);
        assert_eq!(v.lowest_far, 10.0 / 3.0);
    }

    #[test]
    fn identical_scores_give_chance() {
        let scores = [0.5; 8];
        let genuine = [true, false, true, false, true, false, true, false];
        let v = verify(&scores, &genuine, 4, 0);
        assert_eq!(v.roc_auc, 0.5);
        assert_eq!(v.eer, 0.5);
        assert_eq!(v.tar_at_far_1e2, None);
        // Every threshold accepts all or nothing: no fold can beat chance.
        assert!(v.accuracy <= 0.5 + 1e-12);
    }

    #[test]
    fn hand_computed_auc_tar_and_eer() {
        // Genuine 0.9, 0.6, 0.3; impostor 0.7, 0.2.
        let scores = [0.9, 0.6, 0.3, 0.7, 0.2];
        let genuine = [true, true, true, false, false];
        let v = verify(&scores, &genuine, 2, 0);
        // Pairs ranked: (0.9 g, 0.7 i), (0.6 g, 0.7 i) wrong, ... AUC = 4 of 6 orderings.
        assert!((v.roc_auc - 4.0 / 6.0).abs() < 1e-12);
        // FAR 0 allows only scores above 0.7: one genuine of three, but two impostor pairs
        // resolve no FAR of 1e-3.
        assert!((tar_at_far(&v.roc, 10_000, 1e-3).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(v.tar_at_far_1e3, None);
        // Threshold between 0.3 and 0.6: FAR 1/2, FRR 1/3; between 0.7 and 0.9: FAR 0, FRR 2/3.
        assert!((v.eer - 5.0 / 12.0).abs() < 1e-12, "{}", v.eer);
        // The equal-error point is that threshold's; two impostors resolve no FAR target.
        let eer = v.operating_points[0];
        assert_eq!((eer.target_far, eer.threshold, eer.far, eer.pairs), (None, 0.6, 0.5, (3, 2)));
        assert!((eer.tar - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(v.operating_points.len(), 1);
    }

    #[test]
    fn operating_points_accept_at_most_the_target_far() {
        // 2 000 impostors at k / 2000 resolve FAR 1e-2 (20 false accepts), not 1e-3.
        let mut scores: Vec<f64> = (0..2000).map(|k| k as f64 / 2000.0).collect();
        scores.extend([1.5; 50]);
        scores.extend([0.5; 50]);
        let genuine: Vec<bool> = (0..2100).map(|i| i >= 2000).collect();
        let v = roc_metrics(&scores, &genuine);
        assert_eq!(v.operating_points.len(), 2);
        let p = v.operating_points[1];
        assert_eq!(p.target_far, Some(1e-2));
        assert_eq!((p.threshold, p.far, p.tar), (1980.0 / 2000.0, 20.0 / 2000.0, 0.5));
        let accepted = scores.iter().zip(&genuine).filter(|(s, g)| !**g && **s >= p.threshold).count();
        assert_eq!(accepted, 20);
    }

    #[test]
    fn a_tar_needs_ten_expected_false_accepts() {
        let roc = [(0.0, 0.2), (0.0005, 0.4), (0.001, 0.5), (0.01, 0.9), (1.0, 1.0)];
        assert_eq!(tar_at_far(&roc, 9_999, 1e-3), None);
        assert_eq!(tar_at_far(&roc, 10_000, 1e-3), Some(0.5));
        assert_eq!(tar_at_far(&roc, 999, 1e-2), None);
        assert_eq!(tar_at_far(&roc, 1_000, 1e-2), Some(0.9));
        assert_eq!(lowest_resolved_far(10_000), 1e-3);
        assert_eq!(lowest_resolved_far(0), f64::INFINITY);
    }

    #[test]
    fn all_pairs_are_every_pair_or_a_seeded_sample() {
        // 10 identities x 10 images: 450 genuine, 4 500 impostor pairs.
        let labels: Vec<u32> = (0..100).map(|i| i / 10).collect();
        let pairs = all_pairs(&labels, MAX_IMPOSTOR_PAIRS, 1);
        let genuine = pairs.iter().filter(|p| p.genuine).count();
        assert_eq!((genuine, pairs.len() - genuine), (450, 4_500));
        assert!(pairs.iter().all(|p| p.a < p.b && p.genuine == (labels[p.a] == labels[p.b])));
        let sample = all_pairs(&labels, 1_000, 1);
        let mut impostors: Vec<(usize, usize)> = sample.iter().filter(|p| !p.genuine).map(|p| (p.a, p.b)).collect();
        assert_eq!(impostors.len(), 1_000);
        impostors.sort();
        impostors.dedup();
        assert_eq!(impostors.len(), 1_000, "distinct");
        assert_eq!(sample, all_pairs(&labels, 1_000, 1), "seeded");
    }
}
