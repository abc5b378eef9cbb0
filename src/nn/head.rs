//! The classifier head on top of the embedding: a plain linear layer (softmax
//! cross-entropy), or a normalised head with the combined margin of SphereFace, ArcFace and
//! CosFace, s · (cos(m1·θ_y + m2) − m3) for the true class and s · cos θ_j for the others.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// ArcFace's additive angular margin m2 (Deng et al. 2019; arcface_torch's default).
pub const ARCFACE_MARGIN: f32 = 0.5;
/// CosFace's additive cosine margin m3 (Wang et al. 2018; arcface_torch's default).
pub const COSFACE_MARGIN: f32 = 0.35;
/// The scale s of a normalised head by default (arcface_torch's).
pub const MARGIN_SCALE: f32 = 64.0;
/// The derivative's 1 / sin θ is taken at sin θ of at least this (θ ≥ 0.057°), so that a
/// true class at angle 0 gets a bounded gradient under an angular margin (with m1 = 1 it
/// divides only the m2 term, so heads without m2 keep a slope of exactly 1).
pub const MIN_SIN_THETA: f64 = 1e-3;

/// How the embedding becomes logits.
///
/// `normalized: false` is the plain linear classifier (with the bias
/// [`NetworkSpec::classifier_bias`](super::NetworkSpec::classifier_bias) says).
/// `normalized: true` L2-normalises the embedding and every class's weight row (no bias),
/// so the GEMM gives cos θ_j; the true class's logit is s · f(cos θ_y) with
/// f = cos(m1·θ + m2) − m3 while m1·θ + m2 ≤ π and, beyond, arcface_torch's fallback
/// cos θ − m3 − m2·sin m2; the others are s · cos θ_j. cos θ is clamped to [−1, 1] first
/// (its gradient is 0 outside), and the gradient flows through θ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// L2-normalise the embedding and the class weights: logits are scaled cosines.
    pub normalized: bool,
    /// s, the logits' scale (1 for a linear head).
    pub scale: f32,
    /// m1, SphereFace's multiplicative angular margin (1: none).
    pub m1: f32,
    /// m2, ArcFace's additive angular margin in radians (0: none).
    pub m2: f32,
    /// m3, CosFace's additive cosine margin (0: none).
    pub m3: f32,
}

impl Default for Head {
    fn default() -> Self {
        Self::linear()
    }
}

impl Head {
    /// The plain linear classifier.
    pub const fn linear() -> Self {
        Self { normalized: false, scale: 1.0, m1: 1.0, m2: 0.0, m3: 0.0 }
    }

    /// Normalised softmax (NormFace): s · cos θ, no margin.
    pub const fn normalized(scale: f32) -> Self {
        Self { normalized: true, scale, m1: 1.0, m2: 0.0, m3: 0.0 }
    }

    /// ArcFace: s · cos(θ_y + m) for the true class.
    pub const fn arcface(scale: f32, margin: f32) -> Self {
        Self { m2: margin, ..Self::normalized(scale) }
    }

    /// CosFace: s · (cos θ_y − m) for the true class.
    pub const fn cosface(scale: f32, margin: f32) -> Self {
        Self { m3: margin, ..Self::normalized(scale) }
    }

    /// The factor inference applies to the classifier's outputs: s under a normalised head
    /// (whose GEMM gives cos θ), 1 otherwise.
    pub fn logit_scale(&self) -> f32 {
        if self.normalized {
            self.scale
        } else {
            1.0
        }
    }

    /// Whether the logits carry a margin (m1 ≠ 1, m2 ≠ 0 or m3 ≠ 0).
    pub fn has_margin(&self) -> bool {
        self.m1 != 1.0 || self.m2 != 0.0 || self.m3 != 0.0
    }

    /// [`Error::Config`] for a head that cannot train: a scale or margin on an
    /// unnormalised head, s ≤ 0, m1 < 1, m2 outside [0, π/2), m3 outside [0, 1).
    pub fn validate(&self) -> Result<()> {
        if !self.normalized {
            if self.scale != 1.0 || self.has_margin() {
                return Err(Error::Config(format!(
                    "a margin head without normalisation (scale {}, margins m1 {} m2 {} m3 {}): margins and scale act on cosines, set normalized = true",
                    self.scale, self.m1, self.m2, self.m3
                )));
            }
            return Ok(());
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::Config(format!("the head's scale s must be finite and > 0, got {}", self.scale)));
        }
        if !(self.m1.is_finite() && self.m1 >= 1.0) {
            return Err(Error::Config(format!("the angular factor m1 must be finite and >= 1, got {}", self.m1)));
        }
        if !(self.m2 >= 0.0 && (self.m2 as f64) < std::f64::consts::FRAC_PI_2) {
            return Err(Error::Config(format!("the angular margin m2 must be in [0, pi/2), got {}", self.m2)));
        }
        if !(self.m3 >= 0.0 && self.m3 < 1.0) {
            return Err(Error::Config(format!("the cosine margin m3 must be in [0, 1), got {}", self.m3)));
        }
        Ok(())
    }

    /// The true class's margin cosine f(c) and its derivative df/dc for a cosine `c`, in
    /// f64: the specification `margin_cross_entropy.wgsl` follows.
    pub fn target(&self, c: f64) -> (f64, f64) {
        let consts = MarginConstants::of(self);
        let inside = (-1.0..=1.0).contains(&c);
        let clamp_slope = if inside { 1.0 } else { 0.0 };
        let c = c.clamp(-1.0, 1.0);
        if c <= consts.threshold {
            return (c - consts.fallback - self.m3 as f64, clamp_slope);
        }
        let sin_theta = ((1.0 - c) * (1.0 + c)).sqrt();
        let inv_sin = 1.0 / sin_theta.max(MIN_SIN_THETA);
        let (m1, m2, m3) = (self.m1 as f64, self.m2 as f64, self.m3 as f64);
        if m1 == 1.0 {
            // cos(θ + m2) expanded: no trigonometry of θ, and a slope of exactly 1 without m2.
            let f = c * m2.cos() - sin_theta * m2.sin() - m3;
            return (f, (m2.cos() + c * m2.sin() * inv_sin) * clamp_slope);
        }
        let angle = m1 * sin_theta.atan2(c) + m2;
        (angle.cos() - m3, m1 * angle.sin() * inv_sin * clamp_slope)
    }

    /// The pipeline constants of `shaders/nn/margin_cross_entropy.wgsl` for this head.
    pub fn kernel_constants(&self) -> Vec<(&'static str, f64)> {
        let c = MarginConstants::of(self);
        let m2 = self.m2 as f64;
        vec![
            ("SCALE", self.scale as f64),
            ("M1", self.m1 as f64),
            ("M2", m2),
            ("M3", self.m3 as f64),
            ("COS_M2", m2.cos()),
            ("SIN_M2", m2.sin()),
            ("THRESHOLD", c.threshold),
            ("FALLBACK", c.fallback),
            ("MIN_SIN", MIN_SIN_THETA),
        ]
    }

    /// A short description: "linear", "normalised (s 64)", "margin (s 64, m2 0.5)".
    pub fn describe(&self) -> String {
        match (self.normalized, self.has_margin()) {
            (false, _) => "linear".into(),
            (true, false) => format!("normalised ({})", self.parameters()),
            (true, true) => format!("margin ({})", self.parameters()),
        }
    }

    /// The scale and the margins that are not the identity: "s 64, m2 0.5".
    pub fn parameters(&self) -> String {
        let margins = [("m1", self.m1, 1.0), ("m2", self.m2, 0.0), ("m3", self.m3, 0.0)];
        std::iter::once(format!("s {}", self.scale))
            .chain(margins.iter().filter(|(_, v, none)| v != none).map(|(n, v, _)| format!("{n} {v}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The values `margin_cross_entropy.wgsl` takes as pipeline constants, from a head.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MarginConstants {
    /// cos((π − m2) / m1): at or below it, m1·θ + m2 ≥ π and the fallback applies.
    pub threshold: f64,
    /// m2 · sin m2, the fallback's extra margin.
    pub fallback: f64,
}

impl MarginConstants {
    fn of(head: &Head) -> Self {
        let (m1, m2) = (head.m1 as f64, head.m2 as f64);
        Self { threshold: ((std::f64::consts::PI - m2) / m1).cos(), fallback: m2 * m2.sin() }
    }
}

/// Where the center loss applies on a normalised head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "experiments", derive(clap::ValueEnum))]
pub enum CenterFeatures {
    /// The embedding as the trunk gives it, before the head normalises it (the paper's).
    #[default]
    Raw,
    /// The L2-normalised embedding the head's cosines use (a normalised head only).
    Normalized,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_heads_are_config_errors() {
        let bad = [
            Head { scale: 64.0, ..Head::linear() },
            Head { m2: 0.5, ..Head::linear() },
            Head::arcface(0.0, 0.5),
            Head::arcface(-1.0, 0.5),
            Head::arcface(f32::NAN, 0.5),
            Head::arcface(64.0, std::f32::consts::FRAC_PI_2),
            Head::arcface(64.0, -0.1),
            Head::cosface(64.0, 1.0),
            Head { m1: 0.5, ..Head::normalized(30.0) },
        ];
        for head in bad {
            assert!(matches!(head.validate(), Err(Error::Config(_))), "{head:?}");
        }
        for head in [Head::linear(), Head::normalized(16.0), Head::arcface(64.0, 0.5), Head::cosface(64.0, 0.35)] {
            head.validate().unwrap();
        }
    }

    /// f is cos(θ + m) for ArcFace inside the threshold, the fallback beyond, and its
    /// derivative matches central differences away from the threshold.
    #[test]
    fn the_target_logit_follows_the_combined_margin() {
        let arc = Head::arcface(64.0, 0.5);
        let theta: f64 = 1.0;
        let (f, _) = arc.target(theta.cos());
        assert!((f - (theta + 0.5f32 as f64).cos()).abs() < 1e-12);
        let beyond: f64 = 3.0; // θ + m > π
        let (f, slope) = arc.target(beyond.cos());
        assert!((f - (beyond.cos() - 0.5 * 0.5f64.sin())).abs() < 1e-12 && slope == 1.0);
        let cos = Head::cosface(64.0, 0.35);
        assert!((cos.target(0.3).0 - (0.3 - 0.35f32 as f64)).abs() < 1e-12);
        for head in [arc, cos, Head { m1: 2.0, ..Head::normalized(8.0) }] {
            for c in [-0.9, -0.2, 0.1, 0.7, 0.999] {
                let h = 1e-6;
                let numeric = (head.target(c + h).0 - head.target(c - h).0) / (2.0 * h);
                let (_, analytic) = head.target(c);
                assert!((numeric - analytic).abs() < 1e-5 * analytic.abs().max(1.0), "{head:?} at {c}");
            }
        }
        // Outside [-1, 1] the clamp passes no gradient.
        assert_eq!(arc.target(1.0 + 1e-7).1, 0.0);
    }
}
