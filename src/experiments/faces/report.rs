//! What the face job reports: per-variant results, the markdown table and the JSON.

use std::path::PathBuf;

use crate::eval::benchmark::BenchmarkReport;
use crate::eval::EvalReport;
use crate::nn::Head;

/// One trained variant's results.
#[derive(Clone, Debug)]
pub struct VariantReport {
    /// Its [`Loss`](super::Loss)'s name: `softmax`, `center`, `arcface+center`...
    pub name: &'static str,
    /// Its center-loss weight.
    pub lambda: f32,
    /// Its classifier head.
    pub head: Head,
    /// Held-out evaluation.
    pub eval: EvalReport,
    /// Scores on the verification benchmarks (`--eval-bin`), in the order given.
    pub benchmarks: Vec<BenchmarkReport>,
    /// Training seconds.
    pub train_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Accuracy on the last training batch read back.
    pub final_train_batch_accuracy: f32,
    /// Accuracy on the training split (no augmentation) at the evaluated checkpoint: all of
    /// it, or a seeded sample of [`super::TRAIN_ACCURACY_IMAGES`] images of a larger one.
    pub final_train_accuracy: f64,
    /// Validation accuracy of the evaluated checkpoint (`None` without validation images).
    pub best_validation_accuracy: Option<f64>,
    /// Validation accuracy stopped improving before training stopped.
    pub converged: bool,
    /// Steps trained: the budget, or more when training went on until it converged.
    pub steps: u64,
    /// The step budget of the plan.
    pub budget: u64,
    /// The step of the evaluated checkpoint.
    pub evaluated_step: u64,
    /// The evaluated checkpoint (the best by validation).
    pub checkpoint: PathBuf,
    /// How the GEMM dispatches were tiled ([`crate::nn::Graph::gemm_tiles_summary`]).
    pub gemm_tiles: String,
}

impl VariantReport {
    /// Its row's label: `center (lambda 0.01)`, `arcface (s 16, m2 0.5; lambda 0)`.
    pub fn label(&self) -> String {
        if self.head.normalized {
            format!("{} ({}; lambda {})", self.name, self.head.parameters(), self.lambda)
        } else {
            format!("{} (lambda {})", self.name, self.lambda)
        }
    }
}

/// The whole run's results.
#[derive(Clone, Debug)]
pub struct FaceReport {
    /// What data was used.
    pub data: String,
    /// Adapter summary.
    pub adapter: String,
    /// One entry per variant, in the order trained ([`super::variants`]), but those that
    /// diverged.
    pub variants: Vec<VariantReport>,
    /// The variants whose training diverged, with the error (the others trained on).
    pub diverged: Vec<(&'static str, String)>,
    /// The ROC plot.
    pub roc_plot: PathBuf,
}

impl FaceReport {
    /// `{"softmax": {...}, "center": {...}, ...}` with the metrics of each variant.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for v in &self.variants {
            let ver = &v.eval.verification;
            map.insert(
                v.name.to_string(),
                serde_json::json!({
                    "lambda": crate::experiments::json_f32(v.lambda),
                    "head": v.head.describe(),
                    "verification_accuracy": ver.accuracy,
                    "verification_accuracy_std": ver.accuracy_std,
                    "roc_auc": ver.roc_auc,
                    "tar_at_far_1e-3": ver.tar_at_far_1e3,
                    "tar_at_far_1e-2": ver.tar_at_far_1e2,
                    "lowest_resolved_far": ver.lowest_far,
                    "accuracy_genuine_pairs": ver.accuracy_pairs.0,
                    "accuracy_impostor_pairs": ver.accuracy_pairs.1,
                    "eer": ver.eer,
                    "rank1": v.eval.rank1,
                    "intra_inter_ratio": v.eval.compactness.ratio,
                    "intra_class_distance": v.eval.compactness.intra,
                    "inter_center_distance": v.eval.compactness.inter,
                    "genuine_pairs": ver.pairs.0,
                    "impostor_pairs": ver.pairs.1,
                    "train_seconds": v.train_seconds,
                    "images_per_second": v.images_per_second,
                    "final_train_batch_accuracy": v.final_train_batch_accuracy,
                    "final_train_accuracy": v.final_train_accuracy,
                    "best_validation_accuracy": v.best_validation_accuracy,
                    "converged": v.converged,
                    "steps": v.steps,
                    "budget_steps": v.budget,
                    "gemm_tiles": v.gemm_tiles,
                    "evaluated_step": v.evaluated_step,
                    "benchmarks": benchmarks_json(&v.benchmarks),
                }),
            );
        }
        if !self.diverged.is_empty() {
            let diverged = self.diverged.iter().map(|(name, e)| (name.to_string(), e.clone().into()));
            map.insert("diverged".into(), serde_json::Value::Object(diverged.collect()));
        }
        map.insert("data".into(), self.data.clone().into());
        map.insert("adapter".into(), self.adapter.clone().into());
        serde_json::Value::Object(map)
    }

    /// With `--eval-bin`: a markdown table with one row per variant and benchmark, the
    /// standard protocol's accuracy beside the crate's own figures (empty otherwise).
    pub fn benchmark_table(&self) -> String {
        if self.variants.iter().all(|v| v.benchmarks.is_empty()) {
            return String::new();
        }
        let mut s = format!("\n{}", BenchmarkReport::markdown_header("variant"));
        for v in &self.variants {
            for b in &v.benchmarks {
                s += &b.markdown_row(v.name);
            }
        }
        s
    }

    /// A markdown table of the variants (and of their benchmark scores, with `--eval-bin`),
    /// and a line saying what the pairs resolve.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| variant | verification acc | ROC AUC | TAR@FAR=1e-3 | TAR@FAR=1e-2 | EER | rank-1 | intra/inter | train acc | val acc | converged | train s | img/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let tar = |t: Option<f64>| t.map_or("n/a".to_string(), |t| format!("{t:.3}"));
        for v in &self.variants {
            let e = &v.eval.verification;
            s += &format!(
                "| {} | {:.2}% ± {:.2} | {:.4} | {} | {} | {:.3} | {:.2}% | {:.3} | {:.3} | {} | {} at step {} of {} | {:.0} | {:.1} |\n",
                v.label(),
                100.0 * e.accuracy,
                100.0 * e.accuracy_std,
                e.roc_auc,
                tar(e.tar_at_far_1e3),
                tar(e.tar_at_far_1e2),
                e.eer,
                100.0 * v.eval.rank1,
                v.eval.compactness.ratio,
                v.final_train_accuracy,
                v.best_validation_accuracy.map_or("-".to_string(), |a| format!("{a:.3}")),
                if v.converged { "yes" } else { "no" },
                v.evaluated_step,
                v.steps,
                v.train_seconds,
                v.images_per_second
            );
        }
        s += &self.benchmark_table();
        if let Some(v) = self.variants.first() {
            let e = &v.eval.verification;
            s += &format!(
                "\nROC, AUC, EER and TAR on {} genuine and {} impostor pairs (lowest FAR they resolve: {:.1e}; \
                 a TAR needs 10 expected false accepts, else n/a); accuracy: 10 folds of {} genuine and {} impostor pairs.\n",
                e.pairs.0, e.pairs.1, e.lowest_far, e.accuracy_pairs.0, e.accuracy_pairs.1
            );
            s += &format!("GEMM tiles ({}): {}.\n", self.adapter, v.gemm_tiles);
        }
        for (name, e) in &self.diverged {
            s += &format!("{name}: not in the table, {e}.\n");
        }
        s
    }
}

/// `{"lfw": {...}, ...}`: each benchmark's standard and own figures.
fn benchmarks_json(benchmarks: &[BenchmarkReport]) -> serde_json::Value {
    let entries = benchmarks.iter().map(|b| {
        let v = &b.verification;
        let figures = serde_json::json!({
            "accuracy": b.accuracy,
            "accuracy_std": b.accuracy_std,
            "fold_thresholds": b.thresholds,
            "roc_auc": v.roc_auc,
            "eer": v.eer,
            "tar_at_far_1e-3": v.tar_at_far_1e3,
            "tar_at_far_1e-2": v.tar_at_far_1e2,
            "genuine_pairs": v.pairs.0,
            "impostor_pairs": v.pairs.1,
        });
        (b.name.clone(), figures)
    });
    serde_json::Value::Object(entries.collect())
}
