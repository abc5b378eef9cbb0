//! SGD with momentum and weight decay, and the multi-step learning-rate schedule.

use super::graph::{Graph, ParamKind};
use super::kernels::{ClipParams, SgdParams, SumSquaresParams};
use crate::gpu::shaders::kernel;
use crate::gpu::{self, Op, Storage};
use crate::{Error, Result};

/// SGD settings (Caffe's rule: v = momentum v + lr (s g + decay w); w -= v, where s is
/// gradient-norm clipping's factor, 1 without clipping).
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Base learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// Weight decay, times each parameter kind's multiplier.
    pub weight_decay: f32,
    /// Weight-decay multiplier of weights (default 1).
    pub decay_mult_weight: f32,
    /// Weight-decay multiplier of biases (default 0).
    pub decay_mult_bias: f32,
    /// Weight-decay multiplier of PReLU slopes (default 0, as in the paper).
    pub decay_mult_slope: f32,
    /// Learning-rate schedule.
    pub schedule: MultiStep,
    /// Gradient-norm clipping: when the L2 norm of all parameters' gradients together
    /// exceeds this, they are scaled to it (s = max / norm) before weight decay is added,
    /// as `torch.nn.utils.clip_grad_norm_` and Caffe's `clip_gradients` do. `None`: no
    /// clipping.
    pub clip_grad_norm: Option<f32>,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            decay_mult_weight: 1.0,
            decay_mult_bias: 0.0,
            decay_mult_slope: 0.0,
            schedule: MultiStep::default(),
            clip_grad_norm: None,
        }
    }
}

impl SgdConfig {
    /// Checks that the rate is finite and positive, and the clipping norm too when set.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config(format!("learning rate must be finite and > 0, got {}", self.lr)));
        }
        match self.clip_grad_norm {
            Some(c) if !(c.is_finite() && c > 0.0) => {
                Err(Error::Config(format!("the gradient-norm clip must be finite and > 0, got {c}")))
            }
            _ => Ok(()),
        }
    }

    /// The weight decay that applies to a parameter of `kind`.
    pub fn decay_for(&self, kind: ParamKind) -> f32 {
        self.weight_decay
            * match kind {
                ParamKind::Weight => self.decay_mult_weight,
                ParamKind::Bias => self.decay_mult_bias,
                ParamKind::Slope => self.decay_mult_slope,
            }
    }
}

/// The optimizer's dispatches on a graph's parameter arena: with clipping, each page's
/// gradient sum of squares and then the factor; then one SGD dispatch per page (one for a
/// network, which reserves its arena in one page).
pub(crate) struct Sgd {
    /// The dispatches, in order.
    pub(crate) ops: Vec<Op>,
    /// The uniform each SGD dispatch reads, in [`Graph::param_pages`] order.
    uniforms: Vec<wgpu::Buffer>,
}

impl Sgd {
    /// Builds the dispatches; the rates are written by [`Sgd::set_rate`].
    pub(crate) fn new(graph: &Graph, cfg: &SgdConfig) -> Result<Self> {
        let device = graph.context().device();
        let pages = graph.param_pages();
        // Clipping's factor: stays 1 without clipping.
        let clip = gpu::storage_init(device, "gradient clip", &[1.0f32]);
        let mut ops = Vec::new();
        if let Some(max_norm) = cfg.clip_grad_norm {
            let sums = gpu::buffer(device, "gradient sums of squares", 4 * pages.len().max(1) as u64, gpu::STORAGE_RW);
            for (slot, page) in pages.iter().enumerate() {
                let u =
                    graph.uniform(&SumSquaresParams { len: page.used as u32, slot: slot as u32, _pad0: 0, _pad1: 0 });
                let [_, grad, _] = page.in_use()?;
                ops.push(graph.op(&kernel::GRAD_SUM_SQUARES, &u, &[&grad, &sums], (1, 1, 1))?);
            }
            let u = graph.uniform(&ClipParams { count: pages.len() as u32, max_norm, _pad0: 0, _pad1: 0 });
            ops.push(graph.op(&kernel::CLIP_SCALE, &u, &[&sums, &clip], (1, 1, 1))?);
        }
        let mut uniforms = Vec::new();
        for page in pages {
            let u = graph.uniform(&sgd_params(page.used, 0.0, cfg));
            let kinds: Vec<u32> = page.chunk_kinds.iter().map(|&k| kind_slot(k)).collect();
            let kinds = gpu::storage_init(device, "parameter kinds", &kinds);
            let [value, grad, velocity] = page.in_use()?;
            let storage: [&dyn Storage; 5] = [&grad, &value, &velocity, &clip, &kinds];
            ops.push(graph.op(&kernel::SGD_MOMENTUM, &u, &storage, graph.grid1(page.used))?);
            uniforms.push(u);
        }
        Ok(Self { ops, uniforms })
    }

    /// Writes learning rate `lr` (with `cfg`'s momentum and weight decays) into every SGD
    /// dispatch's uniform.
    pub(crate) fn set_rate(&self, graph: &Graph, cfg: &SgdConfig, lr: f32) -> Result<()> {
        let ctx = graph.context();
        ctx.capture(|| {
            for (page, u) in graph.param_pages().iter().zip(&self.uniforms) {
                ctx.queue().write_buffer(u, 0, bytemuck::bytes_of(&sgd_params(page.used, lr, cfg)));
            }
        })
    }
}

/// The index of `kind`'s weight decay in [`SgdParams::decay`].
fn kind_slot(kind: ParamKind) -> u32 {
    match kind {
        ParamKind::Weight => 0,
        ParamKind::Bias => 1,
        ParamKind::Slope => 2,
    }
}

/// The uniform of an SGD dispatch over `len` values at rate `lr`.
fn sgd_params(len: usize, lr: f32, cfg: &SgdConfig) -> SgdParams {
    let mut decay = [0.0; 4];
    for kind in [ParamKind::Weight, ParamKind::Bias, ParamKind::Slope] {
        decay[kind_slot(kind) as usize] = cfg.decay_for(kind);
    }
    SgdParams { len: len as u32, lr, momentum: cfg.momentum, _pad: 0, decay }
}

/// A linear warm-up over the first `warmup` steps, then the rate times `gamma` at each
/// milestone (a step count).
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStep {
    /// Steps at which the rate drops, ascending.
    pub milestones: Vec<u64>,
    /// The factor applied at each milestone.
    pub gamma: f32,
    /// Step `s < warmup` runs at `base * (s + 1) / warmup` (0: no warm-up).
    pub warmup: u64,
}

impl Default for MultiStep {
    fn default() -> Self {
        Self { milestones: Vec::new(), gamma: 0.1, warmup: 0 }
    }
}

impl MultiStep {
    /// Drops by `gamma` at the given fractions of `total_steps` (e.g. 0.6 and 0.85).
    pub fn at_fractions(total_steps: u64, fractions: &[f64], gamma: f32) -> Self {
        Self { milestones: fractions.iter().map(|f| (total_steps as f64 * f) as u64).collect(), gamma, warmup: 0 }
    }

    /// The learning rate at `step` for a base rate `base`.
    pub fn lr_at(&self, base: f32, step: u64) -> f32 {
        let drops = self.milestones.iter().filter(|&&m| step >= m).count();
        let ramp = if step < self.warmup { (step + 1) as f32 / self.warmup as f32 } else { 1.0 };
        base * ramp * self.gamma.powi(drops as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_drops_at_milestones() {
        let s = MultiStep { milestones: vec![10, 20], gamma: 0.1, warmup: 0 };
        assert_eq!(s.lr_at(1.0, 0), 1.0);
        assert_eq!(s.lr_at(1.0, 9), 1.0);
        assert!((s.lr_at(1.0, 10) - 0.1).abs() < 1e-7);
        assert!((s.lr_at(1.0, 25) - 0.01).abs() < 1e-8);
    }

    #[test]
    fn warmup_ramps_linearly_to_the_base_rate() {
        let s = MultiStep { milestones: vec![10], gamma: 0.1, warmup: 4 };
        let lrs: Vec<f32> = (0..5).map(|t| s.lr_at(2.0, t)).collect();
        assert_eq!(lrs, [0.5, 1.0, 1.5, 2.0, 2.0]);
        assert!((s.lr_at(2.0, 10) - 0.2).abs() < 1e-7);
    }
}
