//! Evaluation of embeddings on identities never seen in training, with cosine similarity:
//! verification (10-fold accuracy, ROC AUC, TAR at FAR, EER), identification (rank-1) and
//! compactness (intra-class distance against distance between class means).

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
    /// True-accept rate at a false-accept rate of at most 1e-2.
    pub tar_at_far_1e2: f64,
    /// True-accept rate at a false-accept rate of at most 1e-3.
    pub tar_at_far_1e3: f64,
    /// Equal error rate.
    pub eer: f64,
    /// ROC points (false-accept rate, true-accept rate), by rising FAR.
    pub roc: Vec<(f64, f64)>,
    /// Number of genuine and impostor pairs.
    pub pairs: (usize, usize),
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
    let n = scores.len();
    let n_gen = genuine.iter().filter(|&&g| g).count();
    let n_imp = n - n_gen;
    if n_gen == 0 || n_imp == 0 {
        return Verification { pairs: (n_gen, n_imp), ..Default::default() };
    }
    // k-fold accuracy.
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
    // The EER where the curves cross is also reachable before any acceptance (FAR 0, FRR 1).
    let tar_at =
        |target: f64| roc.iter().filter(|(far, _)| *far <= target + 1e-12).map(|&(_, t)| t).fold(0.0, f64::max);
    let (tar_at_far_1e2, tar_at_far_1e3) = (tar_at(1e-2), tar_at(1e-3));
    // Thin the curve for plotting.
    let step = (roc.len() / 1000).max(1);
    let last = *roc.last().expect("non-empty");
    let mut roc: Vec<(f64, f64)> = roc.into_iter().step_by(step).collect();
    if roc.last() != Some(&last) {
        roc.push(last);
    }
    Verification {
        accuracy,
        accuracy_std,
        roc_auc: auc,
        tar_at_far_1e2,
        tar_at_far_1e3,
        eer: eer.1,
        roc,
        pairs: (n_gen, n_imp),
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

/// Verification on all genuine pairs and as many seeded impostor pairs, rank-1, and the
/// compactness of the L2-normalised embeddings.
pub fn evaluate(embeddings: &[f32], dim: usize, labels: &[u32], seed: u64) -> EvalReport {
    let pairs = verification_pairs(labels, seed);
    evaluate_pairs(embeddings, dim, labels, &pairs, seed)
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
        assert_eq!(v.tar_at_far_1e3, 1.0);
    }

    #[test]
    fn identical_scores_give_chance() {
        let scores = [0.5; 8];
        let genuine = [true, false, true, false, true, false, true, false];
        let v = verify(&scores, &genuine, 4, 0);
        assert_eq!(v.roc_auc, 0.5);
        assert_eq!(v.eer, 0.5);
        assert_eq!(v.tar_at_far_1e2, 0.0);
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
        // FAR 0 allows only scores above 0.7: one genuine of three.
        assert!((v.tar_at_far_1e3 - 1.0 / 3.0).abs() < 1e-12);
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
}
