//! The verification benchmarks' standard protocol (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW as
//! insightface's `.bin` files; arcface_torch `eval/verification.py`): each image's
//! embedding is summed with its horizontal flip's and L2-normalised; a pair's distance is
//! the squared Euclidean distance of its two rows; the pairs are cut into 10 contiguous
//! folds (sklearn's `KFold` without shuffling), and for each fold the threshold among 0,
//! 0.01, ..., 3.99 with the best accuracy on the other nine ("same" when distance <
//! threshold; the first best) is scored on it; the result is the folds' mean accuracy and
//! standard deviation. The crate's own figures (AUC, EER, TAR at the FARs the pairs
//! resolve) come from the same embeddings' cosine scores, 1 − distance / 2.

use super::{roc_metrics, Verification};

/// Folds of the standard protocol.
pub const FOLDS: usize = 10;
/// Candidate thresholds of the standard protocol: 0, 0.01, ..., 3.99.
pub const THRESHOLDS: usize = 400;

/// One benchmark's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchmarkReport {
    /// The benchmark's name (its file's stem: `lfw`, `cfp_fp`, ...).
    pub name: String,
    /// Mean accuracy over the folds (the figure papers report).
    pub accuracy: f64,
    /// Standard deviation of the fold accuracies.
    pub accuracy_std: f64,
    /// The threshold each fold was scored at (squared distance).
    pub thresholds: Vec<f64>,
    /// The crate's figures on the cosine scores of the same pairs (AUC, EER, TAR at FAR).
    pub verification: Verification,
}

impl BenchmarkReport {
    /// The head of a markdown table of benchmark rows, `lead` naming the first column.
    pub fn markdown_header(lead: &str) -> String {
        format!(
            "| {lead} | benchmark | accuracy (10 folds, image + flip) | ROC AUC | EER | TAR@FAR=1e-3 | TAR@FAR=1e-2 | pairs |\n|---|---|---|---|---|---|---|---|\n"
        )
    }

    /// This benchmark's row of that table, `lead` in the first column.
    pub fn markdown_row(&self, lead: &str) -> String {
        let e = &self.verification;
        let tar = |t: Option<f64>| t.map_or("n/a".to_string(), |t| format!("{t:.3}"));
        format!(
            "| {lead} | {} | {:.2}% ± {:.2} | {:.4} | {:.3} | {} | {} | {} + {} |\n",
            self.name,
            100.0 * self.accuracy,
            100.0 * self.accuracy_std,
            e.roc_auc,
            e.eer,
            tar(e.tar_at_far_1e3),
            tar(e.tar_at_far_1e2),
            e.pairs.0,
            e.pairs.1
        )
    }
}

/// Squared Euclidean distances of the L2-normalised rows 2i and 2i + 1 of `embeddings`
/// (rows of `dim`), one per pair.
pub fn pair_distances(embeddings: &[f32], dim: usize) -> Vec<f64> {
    let rows = super::l2_normalized(embeddings, dim);
    rows.chunks_exact(2 * dim)
        .map(|pair| pair[..dim].iter().zip(&pair[dim..]).map(|(a, b)| (a - b) * (a - b)).sum())
        .collect()
}

/// The folds of `n` pairs as sklearn's `KFold(folds)` cuts them: contiguous, the first
/// `n % folds` one pair longer.
fn fold_ranges(n: usize, folds: usize) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    (0..folds)
        .map(|f| {
            let len = n / folds + usize::from(f < n % folds);
            start += len;
            start - len..start
        })
        .collect()
}

/// Accuracy of "same when distance < threshold" over the pairs `take` keeps.
fn accuracy(distances: &[f64], same: &[bool], threshold: f64, take: impl Fn(usize) -> bool) -> f64 {
    let (mut right, mut total) = (0usize, 0usize);
    for i in (0..distances.len()).filter(|&i| take(i)) {
        right += usize::from((distances[i] < threshold) == same[i]);
        total += 1;
    }
    right as f64 / total.max(1) as f64
}

/// The standard protocol on pair `distances` and their `same` flags: the mean and standard
/// deviation of the fold accuracies, and each fold's threshold. Fewer pairs than folds
/// use one fold per pair.
pub fn standard_accuracy(distances: &[f64], same: &[bool]) -> (f64, f64, Vec<f64>) {
    let n = distances.len().min(same.len());
    let folds = fold_ranges(n, FOLDS.min(n.max(1)));
    let candidates: Vec<f64> = (0..THRESHOLDS).map(|i| i as f64 * 0.01).collect();
    let mut accuracies = Vec::with_capacity(folds.len());
    let mut thresholds = Vec::with_capacity(folds.len());
    for fold in &folds {
        let outside = |i: usize| !fold.contains(&i);
        let mut best = (f64::NEG_INFINITY, 0.0);
        for &t in &candidates {
            let a = accuracy(distances, same, t, outside);
            if a > best.0 {
                best = (a, t);
            }
        }
        thresholds.push(best.1);
        accuracies.push(accuracy(distances, same, best.1, |i| fold.contains(&i)));
    }
    let mean = accuracies.iter().sum::<f64>() / accuracies.len().max(1) as f64;
    let var = accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accuracies.len().max(1) as f64;
    (mean, var.sqrt(), thresholds)
}

/// Both sets of figures from the embeddings of a benchmark's 2n images (each already the
/// sum of the image's and its flip's embedding; rows of `dim`) and its n `same` flags.
pub fn benchmark_report(name: &str, embeddings: &[f32], dim: usize, same: &[bool]) -> BenchmarkReport {
    let distances = pair_distances(embeddings, dim);
    let (accuracy, accuracy_std, thresholds) = standard_accuracy(&distances, same);
    let scores: Vec<f64> = distances.iter().map(|d| 1.0 - d / 2.0).collect();
    BenchmarkReport {
        name: name.to_string(),
        accuracy,
        accuracy_std,
        thresholds,
        verification: roc_metrics(&scores, same),
    }
}

/// Flips an NCHW image of `shape` left to right, in place.
pub fn flip_horizontally(image: &mut [f32], shape: [usize; 3]) {
    let w = shape[2];
    for row in image.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Embeds a benchmark's images and their flips with `embed` (raw embeddings of a batch of
/// preprocessed images, rows of `dim`), in batches, and scores it: image i's row is the
/// sum of its two embeddings. An image that does not decode is an error naming it: a
/// benchmark is scored on all its pairs or not at all.
#[cfg(feature = "images")]
pub fn evaluate_benchmark(
    name: &str,
    set: &crate::data::bin::VerificationSet,
    preprocessing: &crate::data::Preprocessing,
    dim: usize,
    embed: &mut dyn FnMut(&[f32]) -> crate::Result<Vec<f32>>,
) -> crate::Result<BenchmarkReport> {
    const BATCH: usize = 64;
    let shape = preprocessing.input;
    let per = preprocessing.input_len();
    let mut summed = Vec::with_capacity(set.images.len() * dim);
    for (b, chunk) in set.images.chunks(BATCH).enumerate() {
        let mut pixels = Vec::with_capacity(2 * chunk.len() * per);
        for (i, bytes) in chunk.iter().enumerate() {
            let image = preprocessing.decode(bytes).map_err(|why| {
                crate::Error::Data(format!("{name}: image {} of the benchmark does not decode: {why}", b * BATCH + i))
            })?;
            let mut flipped = image.clone();
            flip_horizontally(&mut flipped, shape);
            pixels.extend(image);
            pixels.extend(flipped);
        }
        let rows = embed(&pixels)?;
        summed
            .extend(rows.chunks_exact(2 * dim).flat_map(|two| two[..dim].iter().zip(&two[dim..]).map(|(a, b)| a + b)));
    }
    Ok(benchmark_report(name, &summed, dim, &set.same))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_sklearns() {
        let lens: Vec<usize> = fold_ranges(23, 10).iter().map(|r| r.len()).collect();
        assert_eq!(lens, [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(fold_ranges(23, 10)[3], 9..11);
    }

    #[test]
    fn separable_pairs_score_one_and_flip_reverses_rows() {
        let same: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        let d: Vec<f64> = same.iter().map(|&s| if s { 0.5 } else { 1.5 }).collect();
        let (acc, std, thresholds) = standard_accuracy(&d, &same);
        assert_eq!((acc, std), (1.0, 0.0));
        // The first threshold above 0.5 that keeps 1.5 out: 0.51.
        assert!(thresholds.iter().all(|&t| (t - 0.51).abs() < 1e-12));
        let mut image = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        flip_horizontally(&mut image, [1, 2, 3]);
        assert_eq!(image, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
    }
}
