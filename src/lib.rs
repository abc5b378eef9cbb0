//! # centerloss
//!
//! Center Loss (Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for Deep
//! Face Recognition", ECCV 2016) on any GPU through wgpu, with every kernel hand-written
//! in WGSL, and an f64 CPU reference with the same semantics.
//!
//! For features x (B rows of D), labels y (< K) and centers C (K rows of D):
//! - loss = lambda/2 * sum_i ||x_i - c_{y_i}||^2 / B  ([`Reduction::Mean`]; `Sum` drops /B)
//! - grad_i = lambda (x_i - c_{y_i}) / B
//! - for each class j in the batch, with the pre-step centers:
//!   c_j <- c_j - alpha * sum_{y_i = j} (c_j - x_i) / (1 + n_j); absent classes untouched.
//!
//! ```no_run
//! use centerloss::{GpuContext, GpuCenterLoss, CenterLossConfig, Reduction, UpdateMode};
//! # fn main() -> Result<(), centerloss::Error> {
//! let ctx = GpuContext::new()?;
//! println!("{}", ctx.adapter_summary());
//! let cfg = CenterLossConfig { num_classes: 10, feat_dim: 2, alpha: 0.5, lambda: 0.01,
//!                              reduction: Reduction::Mean, update: UpdateMode::Atomic,
//!                              ..Default::default() };
//! let mut cl = GpuCenterLoss::new(&ctx, cfg)?;
//! let out = cl.step(&[0.5, -1.0, 2.0, 0.25], &[3, 7])?;
//! println!("loss {} grad {:?}", out.loss, out.grad);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod bench;
#[cfg(feature = "burn")]
pub mod burn;
pub mod center_loss;
pub mod checkpoint;
pub mod collective;
pub mod data;
mod error;
pub mod eval;
#[cfg(feature = "experiments")]
pub mod experiments;
pub mod files;
#[doc(hidden)]
pub mod fuzz;
pub mod gpu;
pub mod model;
pub mod nn;
pub mod onnx;
#[cfg(feature = "plot")]
pub mod plot;
pub mod search;
mod threads;

pub use center_loss::cpu;
pub use center_loss::{
    BatchBuffers, BatchOffsets, CenterLossBinding, CenterLossConfig, GpuCenterLoss, GpuHealth, PendingStep, Reduction,
    StepOutput, UpdateMode, DEFAULT_ALPHA, DEFAULT_LAMBDA,
};
pub use error::{Error, Result};
pub use gpu::GpuContext;
