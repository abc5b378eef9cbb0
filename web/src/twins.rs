//! A few LeNet++ steps whose results the repository keeps (`web/tests/lenet_steps.json`):
//! the native run writes and checks them (`tests/web_twins.rs` at the crate's root), the
//! browser's run is held against them (`web/tests/browser.rs`). The same code runs both.

use centerloss::nn::{Head, Network, NetworkSpec, SgdConfig, TrainConfig, ARCFACE_MARGIN};
use centerloss::{CenterLossConfig, GpuContext, Result, UpdateMode};
use serde::{Deserialize, Serialize};

/// Images per step.
pub const BATCH: usize = 8;
/// The largest relative difference allowed between two runs (kernel families, drivers,
/// browsers): each sums in its own order and rounds exp and log its own way, and a few
/// steps of training carry the differences into the weights (measured: 1e-3 between
/// lavapipe and Chromium's SwiftShader; a wrong kernel is off by the whole value).
pub const TOLERANCE: f64 = 1e-2;
/// Steps trained.
pub const STEPS: usize = 4;

/// The runs kept: LeNet++ as the paper has it (a linear softmax head) and with an ArcFace
/// head (s = 16, m = 0.5), both with the center loss.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Twins {
    /// The linear head's run.
    pub softmax: Twin,
    /// The ArcFace head's run.
    pub arcface: Twin,
}

/// Both runs of [`Twins`] on `ctx`.
pub async fn lenet_runs(ctx: &GpuContext) -> Result<Twins> {
    Ok(Twins {
        softmax: lenet_steps(ctx, Head::linear()).await?,
        arcface: lenet_steps(ctx, Head::arcface(16.0, ARCFACE_MARGIN)).await?,
    })
}

/// What the steps produced: each step's softmax loss, batch accuracy and center loss, then
/// the centers and the batch's embeddings after the last step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Twin {
    /// The adapter that ran them.
    pub adapter: String,
    /// `[softmax loss, accuracy, center loss]` of each step.
    pub metrics: Vec<[f32; 3]>,
    /// The 10 x 2 centers after the last step.
    pub centers: Vec<f32>,
    /// The batch's 2-D embeddings after the last step.
    pub embeddings: Vec<f32>,
}

/// The fixed batch: image n has label n % 10 and shows its class's stripes (a frequency and
/// phase per class) plus a little noise hashed from (image, pixel).
pub fn batch() -> (Vec<f32>, Vec<u32>) {
    let pixels = 28 * 28;
    let images = (0..BATCH * pixels)
        .map(|v| {
            let (n, i) = (v / pixels, v % pixels);
            let (class, row, col) = ((n % 10) as f32, (i / 28) as f32, (i % 28) as f32);
            let stripes = (0.2 * (class + 1.0) * (row + 0.5 * class * col) / 4.0).sin();
            let noise = ((n * 7919 + i * 104_729) % 1000) as f32 / 5000.0 - 0.1;
            0.9 * stripes + noise
        })
        .collect();
    (images, (0..BATCH as u32).map(|n| n % 10).collect())
}

/// Trains LeNet++ with `head` (λ = 0.1, α = 0.5, the deterministic center update, seed 7)
/// for [`STEPS`] steps on [`batch`], reading every step's scalars back.
pub async fn lenet_steps(ctx: &GpuContext, head: Head) -> Result<Twin> {
    let cfg = TrainConfig {
        batch: BATCH,
        sgd: SgdConfig { lr: 0.1, clip_grad_norm: Some(1.0), ..Default::default() },
        center: CenterLossConfig { lambda: 0.1, alpha: 0.5, update: UpdateMode::Deterministic, ..Default::default() },
        seed: 7,
        ..Default::default()
    };
    let spec = NetworkSpec { head, ..NetworkSpec::lenet_plus_plus() };
    let mut net = Network::new(ctx, spec, cfg)?;
    let (images, labels) = batch();
    let mut metrics = Vec::new();
    for _ in 0..STEPS {
        let m = net.train_step_async(&images, &labels).await?;
        metrics.push([m.softmax_loss, m.accuracy, m.center_loss]);
    }
    let centers = match net.center_loss() {
        Some(cl) => cl.centers_async().await?,
        None => Vec::new(),
    };
    let embeddings = net.infer_async(&images).await?.embeddings;
    Ok(Twin { adapter: ctx.adapter_summary(), metrics, centers, embeddings })
}

/// ‖a − b‖ / ‖b‖ (‖a − b‖ when b is zero), `b` in f32 or an f64 reference.
pub fn rel_err<T: Copy + Into<f64>>(a: &[f32], b: &[T]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y.into()).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|&y| y.into().powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// Where `runs` differ from `expected` by more than `tolerance` (relative), one line each.
pub fn differences(runs: &Twins, expected: &Twins, tolerance: f64) -> Vec<String> {
    let softmax =
        run_differences(&runs.softmax, &expected.softmax, tolerance).into_iter().map(|d| format!("softmax head: {d}"));
    let arcface =
        run_differences(&runs.arcface, &expected.arcface, tolerance).into_iter().map(|d| format!("ArcFace head: {d}"));
    softmax.chain(arcface).collect()
}

fn run_differences(run: &Twin, expected: &Twin, tolerance: f64) -> Vec<String> {
    let mut out = Vec::new();
    if run.metrics.len() != expected.metrics.len() {
        out.push(format!("{} steps, expected {}", run.metrics.len(), expected.metrics.len()));
    }
    // The batch accuracy is left out: at initialisation logits nearly tie, and a tie broken
    // the other way moves it by a whole sample.
    for (step, (a, b)) in run.metrics.iter().zip(&expected.metrics).enumerate() {
        let softmax = rel_err(&a[..1], &b[..1]);
        let center = rel_err(&a[2..], &b[2..]);
        if softmax > tolerance || center > 10.0 * tolerance {
            out.push(format!(
                "step {step}: metrics {a:?}, expected {b:?} (softmax {softmax:.1e}, center {center:.1e})"
            ));
        }
    }
    for (what, a, b) in
        [("centers", &run.centers, &expected.centers), ("embeddings", &run.embeddings, &expected.embeddings)]
    {
        let err = rel_err(a, b);
        if a.len() != b.len() || err > tolerance {
            out.push(format!("{what}: relative error {err:.1e} ({} values, expected {})", a.len(), b.len()));
        }
    }
    out
}
