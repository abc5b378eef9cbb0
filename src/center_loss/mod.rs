//! Center loss (Wen, Zhang, Li, Qiao, ECCV 2016): the GPU module, its configuration and
//! the f64 CPU reference.

mod config;
pub mod cpu;
mod gpu;

pub use config::{check_finite, check_len, CenterLossConfig, Reduction, UpdateMode, MAX_CENTER_BINDINGS};
pub use gpu::{BatchBuffers, CenterLossBinding, GpuCenterLoss, GpuHealth, KernelTime, StepOutput};

#[cfg(test)]
pub(crate) use gpu::shader_plan;
