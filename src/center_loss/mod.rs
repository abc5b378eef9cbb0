//! Center loss (Wen, Zhang, Li, Qiao, ECCV 2016): the GPU module, its configuration and
//! the f64 CPU reference.

mod config;
pub mod cpu;
mod gpu;

pub use config::{CenterLossConfig, Reduction, UpdateMode, DEFAULT_ALPHA, DEFAULT_LAMBDA, MAX_CENTER_BINDINGS};
pub use gpu::{
    shader_plan, BatchBuffers, BatchOffsets, CenterLossBinding, GpuCenterLoss, GpuHealth, PendingStep, ShaderSpec,
    StepOutput, GRAD_SCALE_KERNELS,
};
