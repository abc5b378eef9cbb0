//! Evaluation of embeddings on identities never seen in training, with cosine similarity:
//! verification (10-fold accuracy, ROC AUC, TAR at FAR, EER), identification (rank-1) and
//! compactness (intra-class distance against distance between class means).
//!
//! A TAR at a false-accept rate is only reported when the impostor pairs resolve that rate:
//! at least [`MIN_EXPECTED_FALSE_ACCEPTS`] false accepts must be expected there
//! (impostors x FAR >= 10), otherwise it is `None` ([`tar_at_far`]). [`evaluate`] therefore
//! scores ROC, AUC, EER and TAR on every impostor pair (up to [`MAX_IMPOSTOR_PAIRS`], a
//! seeded sample beyond), and keeps the 10-fold accuracy on balanced pairs.

use std::collections::BTreeMap;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};

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
}

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

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// All genuine pairs and as many impostor pairs drawn with `seed` (distinct, unordered).
pub fn verification_pairs(labels: &[u32], seed: u64) -> Vec<Pair> {
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
    let genuine = pairs.len();
    let n = labels.len();
    let distinct_impostors = n * (n - 1) / 2 - genuine;
    let wanted = genuine.min(distinct_impostors);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < wanted {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        if labels[a] != labels[b] && seen.insert((a.min(b), a.max(b))) {
            pairs.push(Pair { a: a.min(b), b: a.max(b), genuine: false });
        }
    }
    pairs
}

/// Every genuine pair and every impostor pair (distinct, unordered), or a seeded sample of
/// `max_impostors` distinct impostor pairs when there are more.
pub fn all_pairs(labels: &[u32], max_impostors: usize, seed: u64) -> Vec<Pair> {
    let n = labels.len();
    let mut pairs = Vec::new();
    let mut impostors = 0usize;
    for a in 0..n {
        for b in a + 1..n {
            if labels[a] == labels[b] {
                pairs.push(Pair { a, b, genuine: true });
            } else {
                impostors += 1;
            }
        }
    }
    if impostors <= max_impostors {
        for a in 0..n {
            for b in a + 1..n {
                if labels[a] != labels[b] {
                    pairs.push(Pair { a, b, genuine: false });
                }
            }
        }
        return pairs;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::with_capacity(max_impostors);
    while seen.len() < max_impostors {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        if labels[a] != labels[b] && seen.insert((a.min(b), a.max(b))) {
            pairs.push(Pair { a: a.min(b), b: a.max(b), genuine: false });
        }
    }
    pairs
}

/// Cosine similarity of each pair.
pub fn pair_scores(embeddings: &[f32], dim: usize, pairs: &[Pair]) -> Vec<f64> {
    let e = l2_normalized(embeddings, dim);
    pairs.iter().map(|p| dot(&e[p.a * dim..(p.a + 1) * dim], &e[p.b * dim..(p.b + 1) * dim])).collect()
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
        if (far - frr).abs() < eer.0 {
            eer = ((far - frr).abs(), 0.5 * (far + frr));
        }
        roc.push((far, tar));
    }
    let (tar_at_far_1e2, tar_at_far_1e3) = (tar_at_far(&roc, n_imp, 1e-2), tar_at_far(&roc, n_imp, 1e-3));
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
    }
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
    let balanced = verification_pairs(labels, seed);
    let mut report = evaluate_pairs(embeddings, dim, labels, &balanced, seed);
    let all = all_pairs(labels, MAX_IMPOSTOR_PAIRS, seed);
    let genuine: Vec<bool> = all.iter().map(|p| p.genuine).collect();
    let v = &report.verification;
    report.verification = Verification {
        accuracy: v.accuracy,
        accuracy_std: v.accuracy_std,
        accuracy_pairs: v.accuracy_pairs,
        ..roc_metrics(&pair_scores(embeddings, dim, &all), &genuine)
    };
    report
}

/// [`evaluate`] on given pairs (an LFW-style `pairs.txt`, say).
pub fn evaluate_pairs(embeddings: &[f32], dim: usize, labels: &[u32], pairs: &[Pair], seed: u64) -> EvalReport {
    let scores = pair_scores(embeddings, dim, pairs);
    let genuine: Vec<bool> = pairs.iter().map(|p| p.genuine).collect();
    let normalized: Vec<f32> = l2_normalized(embeddings, dim).into_iter().map(|v| v as f32).collect();
    EvalReport {
        verification: verify(&scores, &genuine, 10, seed),
        rank1: rank1(embeddings, dim, labels),
        compactness: compactness(&normalized, dim, labels),
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
    }

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
