//! The plain-Rust reference: the same semantics as the GPU module, computed in f64.
//! Usable without a GPU, and the specification every GPU test compares against.

use super::config::CenterLossConfig;
use crate::error::{check_finite, check_len};
use crate::Result;

/// Result of one CPU step, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuStepOutput {
    /// lambda/2 * sum_i ||x_i - c_{y_i}||^2 (/ B for the mean).
    pub loss: f64,
    /// d loss / d x, B*D values, row-major.
    pub grad: Vec<f64>,
}

/// Center loss on the CPU in f64 (Wen et al., ECCV 2016).
#[derive(Clone, Debug)]
pub struct CenterLossCpu {
    cfg: CenterLossConfig,
    centers: Vec<f64>,
}

impl CenterLossCpu {
    /// A module with all centers at zero.
    pub fn new(cfg: CenterLossConfig) -> Result<Self> {
        cfg.validate()?;
        let centers = vec![0.0; cfg.num_classes * cfg.feat_dim];
        Ok(Self { cfg, centers })
    }

    /// The configuration.
    pub fn config(&self) -> &CenterLossConfig {
        &self.cfg
    }

    /// Replaces the centers (K*D finite values).
    pub fn set_centers(&mut self, centers: &[f32]) -> Result<()> {
        check_len("centers", self.centers.len(), centers.len())?;
        check_finite("centers", centers)?;
        self.centers = centers.iter().map(|&c| c as f64).collect();
        Ok(())
    }

    /// The centers, K rows of D values.
    pub fn centers(&self) -> &[f64] {
        &self.centers
    }

    /// The centers rounded to f32.
    pub fn centers_f32(&self) -> Vec<f32> {
        self.centers.iter().map(|&c| c as f32).collect()
    }

    /// Loss and gradient for a batch, without touching the centers.
    pub fn forward(&self, features: &[f32], labels: &[u32]) -> Result<CpuStepOutput> {
        let batch = self.cfg.validate_batch(features, labels)?;
        let dim = self.cfg.feat_dim;
        let scale = self.cfg.grad_scale(batch);
        let mut grad = vec![0.0; batch * dim];
        let mut sum_sq = 0.0;
        for (i, &label) in labels.iter().enumerate() {
            let center = &self.centers[label as usize * dim..][..dim];
            for d in 0..dim {
                let diff = features[i * dim + d] as f64 - center[d];
                sum_sq += diff * diff;
                grad[i * dim + d] = scale * diff;
            }
        }
        Ok(CpuStepOutput { loss: 0.5 * scale * sum_sq, grad })
    }

    /// The loss alone.
    pub fn loss(&self, features: &[f32], labels: &[u32]) -> Result<f64> {
        self.forward(features, labels).map(|o| o.loss)
    }

    /// Loss and gradient, then the center update with the pre-step centers:
    /// c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j) for each class j in
    /// the batch; absent classes are untouched.
    pub fn step(&mut self, features: &[f32], labels: &[u32]) -> Result<CpuStepOutput> {
        let out = self.forward(features, labels)?;
        let dim = self.cfg.feat_dim;
        let mut sums: std::collections::BTreeMap<u32, (Vec<f64>, usize)> = Default::default();
        for (i, &label) in labels.iter().enumerate() {
            let center = &self.centers[label as usize * dim..][..dim];
            let (sum, n) = sums.entry(label).or_insert_with(|| (vec![0.0; dim], 0));
            for d in 0..dim {
                sum[d] += center[d] - features[i * dim + d] as f64;
            }
            *n += 1;
        }
        let alpha = self.cfg.alpha as f64;
        for (label, (sum, n)) in sums {
            let center = &mut self.centers[label as usize * dim..][..dim];
            for d in 0..dim {
                center[d] -= alpha * sum[d] / (1.0 + n as f64);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reduction;

    fn cfg(k: usize, d: usize) -> CenterLossConfig {
        CenterLossConfig { num_classes: k, feat_dim: d, alpha: 0.5, lambda: 2.0, ..Default::default() }
    }

    #[test]
    fn hand_computed_step() {
        let mut cl = CenterLossCpu::new(cfg(3, 2)).unwrap();
        cl.set_centers(&[0.0, 0.0, 1.0, 1.0, 5.0, 5.0]).unwrap();
        // Two samples of class 0, one of class 1, class 2 absent.
        let x = [1.0, 0.0, 3.0, 0.0, 1.0, 2.0];
        let out = cl.step(&x, &[0, 0, 1]).unwrap();
        // sum sq = 1 + 9 + 1 = 11; loss = 2/2 * 11 / 3.
        assert!((out.loss - 11.0 / 3.0).abs() < 1e-12);
        assert_eq!(out.grad, vec![2.0 / 3.0, 0.0, 2.0, 0.0, 0.0, 2.0 / 3.0]);
        // class 0: sum (c - x) = (-4, 0), n = 2: c += 0.5 * 4 / 3.
        let c = cl.centers();
        assert!((c[0] - 2.0 / 3.0).abs() < 1e-12 && c[1] == 0.0);
        // class 1: sum (c - x) = (0, -1), n = 1: c_y += 0.5 * 1 / 2.
        assert!((c[2] - 1.0).abs() < 1e-12 && (c[3] - 1.25).abs() < 1e-12);
        assert_eq!(&c[4..], &[5.0, 5.0]);
    }

    #[test]
    fn sum_reduction_drops_the_batch_mean() {
        let mut c = cfg(2, 1);
        c.reduction = Reduction::Sum;
        let cl = CenterLossCpu::new(c).unwrap();
        let out = cl.forward(&[1.0, 2.0], &[0, 1]).unwrap();
        assert_eq!(out.loss, 5.0);
        assert_eq!(out.grad, vec![2.0, 4.0]);
    }

    #[test]
    fn update_ignores_lambda() {
        let mut a = CenterLossCpu::new(cfg(2, 2)).unwrap();
        let mut b = CenterLossCpu::new(CenterLossConfig { lambda: 0.0, ..cfg(2, 2) }).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0];
        a.step(&x, &[1, 1]).unwrap();
        b.step(&x, &[1, 1]).unwrap();
        assert_eq!(a.centers(), b.centers());
    }
}
