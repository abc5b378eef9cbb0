//! The kernel registry: a subsystem describes its single-group kernels in a table of
//! [`KernelSpec`]s (a uniform at binding 0, then storage buffers); [`KernelSet`] builds
//! their shader modules and bind-group layouts once per device, makes pipelines per set of
//! pipeline constants on first use and shares them, and turns buffers into recorded
//! dispatches ([`Op`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{profile_dispatches, shaders, GpuContext, KernelTime};
use crate::{Error, Result};

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    Write,
}

/// A kernel's interface: its WGSL file, its uniform's size and its storage bindings 1..
#[derive(Clone, Copy, Debug)]
pub struct KernelSpec {
    /// The kernel's WGSL file stem.
    pub name: &'static str,
    /// Bytes of the uniform at binding 0.
    pub uniform_bytes: u64,
    /// The storage bindings 1, 2, ... in order.
    pub storage: &'static [Access],
    /// Size of one element of the storage arrays (their minimum binding size).
    pub element_bytes: u64,
}

impl KernelSpec {
    /// A kernel over f32/u32 arrays.
    pub const fn new(name: &'static str, uniform_bytes: u64, storage: &'static [Access]) -> Self {
        Self { name, uniform_bytes, storage, element_bytes: 4 }
    }
}

/// Pipeline-overridable constants of one specialised pipeline.
pub type Constants = Vec<(&'static str, f64)>;

/// One recorded dispatch: a pipeline, its bind group, its grid.
#[derive(Clone, Debug)]
pub struct Op {
    /// The kernel's WGSL file stem (for profiles).
    pub kernel: &'static str,
    /// The specialised pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Group 0: the uniform and the storage buffers.
    pub group: wgpu::BindGroup,
    /// Workgroups in x, y, z.
    pub grid: (u32, u32, u32),
}

/// Records `ops` in order into `cpass`.
pub fn record_ops(cpass: &mut wgpu::ComputePass<'_>, ops: &[Op]) {
    for op in ops {
        cpass.set_pipeline(&op.pipeline);
        cpass.set_bind_group(0, &op.group, &[]);
        cpass.dispatch_workgroups(op.grid.0, op.grid.1, op.grid.2);
    }
}

/// Makes the layouts, shader modules and compute pipelines of one device, and counts the
/// pipelines it compiles ([`GpuContext::pipelines_compiled`]). Every subsystem builds its
/// GPU objects through it, once per device: [`KernelSet`] for single-group kernels, the
/// center loss for its multi-group plans.
#[derive(Clone)]
pub struct PipelineFactory {
    device: wgpu::Device,
    compiled: Arc<AtomicU64>,
}

impl PipelineFactory {
    pub(super) fn new(device: wgpu::Device, compiled: Arc<AtomicU64>) -> Self {
        Self { device, compiled }
    }

    /// A bind-group layout of `entries`.
    pub fn bind_group_layout(&self, label: &str, entries: &[wgpu::BindGroupLayoutEntry]) -> wgpu::BindGroupLayout {
        self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
    }

    /// A pipeline layout whose groups 0, 1, ... are `groups`.
    pub fn pipeline_layout(&self, label: &str, groups: &[&wgpu::BindGroupLayout]) -> wgpu::PipelineLayout {
        let groups: Vec<Option<&wgpu::BindGroupLayout>> = groups.iter().map(|g| Some(*g)).collect();
        self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &groups,
            immediate_size: 0,
        })
    }

    /// The shader module of `kernel` composed with `aliases` ([`shaders::compose`]).
    pub fn shader_module(&self, label: &str, kernel: &str, aliases: &[(&str, &str)]) -> Result<wgpu::ShaderModule> {
        let source = shaders::compose(kernel, aliases)?;
        Ok(self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        }))
    }

    /// A compute pipeline for the `main` entry of `module`, with pipeline-overridable
    /// constants.
    pub fn compute_pipeline(
        &self,
        label: &str,
        layout: &wgpu::PipelineLayout,
        module: &wgpu::ShaderModule,
        constants: &[(&str, f64)],
    ) -> wgpu::ComputePipeline {
        self.compiled.fetch_add(1, Ordering::Relaxed);
        self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: Some(layout),
            module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        })
    }
}

struct Compiled {
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
}

/// The shader modules and layouts of a table of kernels on one device, and their pipelines
/// (one per set of pipeline constants, made on first use and then shared).
pub struct KernelSet {
    factory: PipelineFactory,
    compiled: HashMap<&'static str, Compiled>,
    pipelines: Mutex<HashMap<(&'static str, String), wgpu::ComputePipeline>>,
}

impl KernelSet {
    /// The kernels of `table` on `ctx`, each composed with the import `aliases` (e.g. the
    /// CPU-driver variant of a helper), built on first use under `key` and shared by every
    /// later caller on the same device.
    pub fn for_context(
        ctx: &GpuContext,
        key: &'static str,
        table: &'static [KernelSpec],
        aliases: &'static [(&'static str, &'static str)],
    ) -> Result<Arc<KernelSet>> {
        ctx.cached(key, || KernelSet::new(ctx, table, aliases))
    }

    fn new(ctx: &GpuContext, table: &[KernelSpec], aliases: &[(&str, &str)]) -> Result<Self> {
        let factory = ctx.pipeline_factory();
        ctx.capture(|| {
            let mut compiled = HashMap::new();
            for spec in table {
                let mut entries = vec![super::uniform_entry(0, spec.uniform_bytes, false)];
                for (i, access) in spec.storage.iter().enumerate() {
                    entries.push(super::storage_entry(i as u32 + 1, *access == Access::Read, spec.element_bytes));
                }
                let layout = factory.bind_group_layout(spec.name, &entries);
                let pipeline_layout = factory.pipeline_layout(spec.name, &[&layout]);
                let module = factory.shader_module(spec.name, spec.name, aliases)?;
                compiled.insert(spec.name, Compiled { layout, pipeline_layout, module });
            }
            Ok(Self { factory, compiled, pipelines: Mutex::new(HashMap::new()) })
        })?
    }

    fn compiled(&self, kernel: &str) -> Result<&Compiled> {
        self.compiled.get(kernel).ok_or_else(|| Error::Internal(format!("no kernel named {kernel} in this kernel set")))
    }

    /// The pipeline of `kernel` specialised with `constants`.
    pub fn pipeline(&self, kernel: &'static str, constants: &[(&'static str, f64)]) -> Result<wgpu::ComputePipeline> {
        let key = (kernel, format!("{constants:?}"));
        let mut cache = self.pipelines.lock().map_err(|_| Error::Gpu("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let c = self.compiled(kernel)?;
        let p = self.factory.compute_pipeline(kernel, &c.pipeline_layout, &c.module, constants);
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
        let whole: Vec<wgpu::BufferBinding<'_>> = storage.iter().map(|b| b.as_entire_buffer_binding()).collect();
        self.op_ranges(kernel, constants, uniform, &whole, grid)
    }

    /// [`KernelSet::op`] with each storage binding a range of a buffer (a tensor inside
    /// another library's memory pool; offsets aligned to the device's
    /// `min_storage_buffer_offset_alignment`).
    pub fn op_ranges(
        &self,
        kernel: &'static str,
        constants: &[(&'static str, f64)],
        uniform: &wgpu::Buffer,
        storage: &[wgpu::BufferBinding<'_>],
        grid: (u32, u32, u32),
    ) -> Result<Op> {
        let layout = &self.compiled(kernel)?.layout;
        let mut entries = vec![super::bind(0, uniform)];
        entries.extend(storage.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: wgpu::BindingResource::Buffer(b.clone()),
        }));
        let group = self.factory.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout,
            entries: &entries,
        });
        Ok(Op { kernel, pipeline: self.pipeline(kernel, constants)?, group, grid })
    }
}

/// GPU time of each kernel of `ops`, each dispatch timed in a compute pass of its own
/// ([`super::profile_dispatches`]). `None` when the device cannot time encoders.
pub fn profile_ops(ctx: &GpuContext, ops: &[&Op], samples: usize) -> Result<Option<Vec<KernelTime>>> {
    let kernels: Vec<&'static str> = ops.iter().map(|op| op.kernel).collect();
    profile_dispatches(ctx, &kernels, samples, |encoder, i| {
        record_ops(&mut encoder.begin_compute_pass(&Default::default()), std::slice::from_ref(ops[i]));
    })
}
