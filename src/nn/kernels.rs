//! The trainer's compute pipelines: one per WGSL kernel, each with an explicit bind group
//! layout (a uniform at binding 0, then storage buffers), created once per device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::gpu::{self, shaders, GpuContext};
use crate::{Error, Result};

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    Write,
}

use Access::{Read as R, Write as W};

/// A kernel's interface: its uniform's size and its storage bindings 1..
pub(crate) struct KernelSpec {
    pub name: &'static str,
    pub uniform_bytes: u64,
    pub storage: &'static [Access],
    /// Size of one element of the storage arrays (their minimum binding size).
    pub element_bytes: u64,
}

const fn k(name: &'static str, uniform_bytes: u64, storage: &'static [Access]) -> KernelSpec {
    KernelSpec { name, uniform_bytes, storage, element_bytes: 4 }
}

/// Every trainer kernel in `shaders/`.
pub(crate) const KERNEL_TABLE: &[KernelSpec] = &[
    k("gemm", 32, &[R, R, R, W]),
    k("conv2d_forward", 16, &[R, R, R, W]),
    k("conv2d_backward_input", 16, &[R, R, W]),
    k("conv2d_backward_weight", 16, &[R, R, W]),
    k("sum_slices", 16, &[R, W]),
    k("channel_sum", 16, &[R, W]),
    k("prelu_forward", 16, &[R, R, W]),
    k("prelu_backward", 16, &[R, R, R, W]),
    k("prelu_slope_grad", 16, &[R, R, W]),
    k("add", 16, &[R, R, W]),
    k("maxpool_forward", 32, &[R, W, W]),
    k("maxpool_backward", 32, &[R, R, W]),
    k("softmax_cross_entropy", 16, &[R, R, W, W]),
    k("reduce_rows", 16, &[R, W]),
    k("l2norm_forward", 16, &[R, W, W]),
    k("l2norm_backward", 16, &[R, R, R, W]),
    k("sgd_momentum", 16, &[R, W, W]),
    KernelSpec { name: "bandwidth_copy", uniform_bytes: 16, storage: &[R, W], element_bytes: 16 },
];

/// One recorded dispatch: a pipeline, its bind group, its grid.
#[derive(Clone)]
pub(crate) struct Op {
    pub pipeline: wgpu::ComputePipeline,
    pub group: wgpu::BindGroup,
    pub grid: (u32, u32, u32),
}

/// Pipeline-overridable constants of one specialised pipeline.
pub(crate) type Constants = Vec<(&'static str, f64)>;

struct Compiled {
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
}

/// The shader modules and layouts of every trainer kernel, and their pipelines (one per
/// set of pipeline constants, made on first use and then shared).
pub(crate) struct Kernels {
    device: wgpu::Device,
    compiled: HashMap<&'static str, Compiled>,
    pipelines: Mutex<HashMap<(&'static str, String), wgpu::ComputePipeline>>,
}

impl Kernels {
    /// The kernels for `ctx`, built on first use and shared by every network on it.
    pub fn for_context(ctx: &GpuContext) -> Result<Arc<Kernels>> {
        ctx.cached("nn kernels", || Kernels::new(ctx))
    }

    fn new(ctx: &GpuContext) -> Result<Self> {
        let device = ctx.device();
        ctx.capture(|| {
            let mut compiled = HashMap::new();
            for spec in KERNEL_TABLE {
                let mut entries = vec![gpu::uniform_entry(0, spec.uniform_bytes, false)];
                for (i, access) in spec.storage.iter().enumerate() {
                    entries.push(gpu::storage_entry(i as u32 + 1, *access == Access::Read, spec.element_bytes));
                }
                let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(spec.name),
                    entries: &entries,
                });
                let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(spec.name),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(spec.name),
                    source: wgpu::ShaderSource::Wgsl(shaders::compose(spec.name, &[])?.into()),
                });
                compiled.insert(spec.name, Compiled { layout, pipeline_layout, module });
            }
            Ok(Self { device: device.clone(), compiled, pipelines: Mutex::new(HashMap::new()) })
        })?
    }

    fn compiled(&self, kernel: &str) -> Result<&Compiled> {
        self.compiled.get(kernel).ok_or_else(|| Error::Config(format!("no kernel named {kernel}")))
    }

    /// The pipeline of `kernel` specialised with `constants`.
    pub fn pipeline(&self, kernel: &'static str, constants: &[(&'static str, f64)]) -> Result<wgpu::ComputePipeline> {
        let key = (kernel, format!("{constants:?}"));
        let mut cache = self.pipelines.lock().map_err(|_| Error::Gpu("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let c = self.compiled(kernel)?;
        let p = gpu::compute_pipeline(&self.device, kernel, &c.pipeline_layout, &c.module, constants);
        cache.insert(key, p.clone());
        Ok(p)
    }

    /// A dispatch of `kernel` (specialised with `constants`): `uniform` at binding 0,
    /// `storage` at 1, 2, ...
    pub fn op(
        &self,
        kernel: &'static str,
        constants: &[(&'static str, f64)],
        uniform: &wgpu::Buffer,
        storage: &[&wgpu::Buffer],
        grid: (u32, u32, u32),
    ) -> Result<Op> {
        let layout = &self.compiled(kernel)?.layout;
        let mut entries = vec![gpu::bind(0, uniform)];
        entries.extend(storage.iter().enumerate().map(|(i, b)| gpu::bind(i as u32 + 1, b)));
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout,
            entries: &entries,
        });
        Ok(Op { pipeline: self.pipeline(kernel, constants)?, group, grid })
    }

    /// Records `ops` in order into `cpass`.
    pub fn record(&self, cpass: &mut wgpu::ComputePass<'_>, ops: &[Op]) {
        for op in ops {
            cpass.set_pipeline(&op.pipeline);
            cpass.set_bind_group(0, &op.group, &[]);
            cpass.dispatch_workgroups(op.grid.0, op.grid.1, op.grid.2);
        }
    }
}
