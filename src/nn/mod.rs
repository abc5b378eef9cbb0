//! The bundled WGSL CNN trainer: layers with forward and backward kernels, SGD with
//! momentum, softmax cross-entropy (or a margin head: ArcFace, CosFace) plus center loss
//! in one GPU step, and the presets LeNet++ (the paper's MNIST network) and the face
//! networks.

mod arena;
mod data_parallel;
mod fit;
mod footprint;
mod graph;
mod head;
mod inference;
mod kernels;
mod layers;
mod network;
mod ops;
mod optimizer;
mod prelu;
mod profile;
pub mod reference;
mod spec;
mod tiles;
mod warm_up;

pub use arena::ParamPage;
pub use fit::{fit, member_images, FitOptions, FitReport, Group, Hook};
pub use footprint::{Footprint, MAX_FLOPS_PER_IMAGE, MAX_NETWORK_BYTES};
pub use graph::{Graph, Param, ParamKind, Tensor};
pub use head::{CenterFeatures, Head, ARCFACE_MARGIN, COSFACE_MARGIN, MARGIN_SCALE, MIN_SIN_THETA};
pub use inference::{Inference, InferenceNetwork};
pub use kernels::{CPU_KERNEL_ALIASES, KERNELS};
pub use network::{Network, StepMetrics, TrainConfig};
pub use optimizer::{MultiStep, SgdConfig};
pub use spec::{LayerSpec, NetworkSpec, Shape, WeightInit};
pub use tiles::{GemmCore, GemmTiles};
