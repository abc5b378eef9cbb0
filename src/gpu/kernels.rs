//! The kernel registry and the one dispatch type. A subsystem describes its kernels either
//! as a table of single-group [`KernelSpec`]s (an optional uniform at binding 0, then
//! storage buffers) or, for kernels that bind several groups, as [`GroupedKernel`]s over
//! layouts it made with the [`PipelineFactory`]. [`KernelSet`] builds their shader modules
//! and layouts once per device, makes pipelines per set of pipeline constants and shares
//! them, and turns bind groups into recorded dispatches ([`Op`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{profile_dispatches, shaders, GpuContext, KernelTime, Storage};
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
    /// Bytes of the uniform at binding 0; `None` for a kernel whose shapes are all
    /// pipeline constants (binding 0 is then empty).
    pub uniform_bytes: Option<u64>,
    /// The storage bindings 1, 2, ... in order.
    pub storage: &'static [Access],
    /// Size of one element of the storage arrays (their minimum binding size).
    pub element_bytes: u64,
}

impl KernelSpec {
    /// A kernel over f32/u32 arrays.
    pub const fn new(name: &'static str, uniform_bytes: u64, storage: &'static [Access]) -> Self {
        Self { name, uniform_bytes: Some(uniform_bytes), storage, element_bytes: 4 }
    }

    /// A kernel over f32/u32 arrays with no uniform: its shapes are pipeline constants.
    pub const fn without_uniform(name: &'static str, storage: &'static [Access]) -> Self {
        Self { name, uniform_bytes: None, storage, element_bytes: 4 }
    }
}

/// A kernel that binds several groups: its key in the set, its name in profiles, its WGSL
/// file composed with import aliases, the pipeline layout its groups follow and the
/// pipeline constants its one pipeline is specialised with.
#[derive(Clone, Debug)]
pub struct GroupedKernel<'a> {
    /// The key [`KernelSet::dispatch`] finds it by (also the pipeline's label).
    pub key: &'static str,
    /// The name its dispatches carry in profiles.
    pub name: &'static str,
    /// The WGSL file stem.
    pub file: &'static str,
    /// Import aliases ([`shaders::compose`]).
    pub aliases: Vec<(&'static str, &'static str)>,
    /// The layout of its bind groups.
    pub layout: &'a wgpu::PipelineLayout,
    /// Pipeline-overridable constants.
    pub constants: Constants,
}

/// Pipeline-overridable constants of one specialised pipeline.
pub type Constants = Vec<(&'static str, f64)>;

/// A bind group an [`Op`] sets before its dispatch: its index, the group and its dynamic
/// offset, if its layout has one.
#[derive(Clone, Debug)]
pub struct BoundGroup {
    /// The group index (`@group(n)`).
    pub index: u32,
    /// The bind group.
    pub group: wgpu::BindGroup,
    /// The dynamic offset of its one dynamic binding.
    pub offset: Option<u32>,
}

impl BoundGroup {
    /// `group` at `index`, with no dynamic offset.
    pub fn new(index: u32, group: &wgpu::BindGroup) -> Self {
        Self { index, group: group.clone(), offset: None }
    }
}

/// One recorded dispatch: a pipeline, the bind groups it sets, its grid. Groups an op
/// does not set keep what an earlier op of the same pass bound.
#[derive(Clone, Debug)]
pub struct Op {
    /// The kernel's name (for profiles).
    pub kernel: &'static str,
    pipeline: wgpu::ComputePipeline,
    /// The groups set before the dispatch, in order.
    pub groups: Vec<BoundGroup>,
    /// Workgroups in x, y, z.
    pub grid: (u32, u32, u32),
}

impl Op {
    /// Records this dispatch into `cpass`.
    pub fn record(&self, cpass: &mut wgpu::ComputePass<'_>) {
        cpass.set_pipeline(&self.pipeline);
        for bound in &self.groups {
            cpass.set_bind_group(bound.index, &bound.group, bound.offset.as_slice());
        }
        cpass.dispatch_workgroups(self.grid.0, self.grid.1, self.grid.2);
    }
}

/// Records `ops` in order into `cpass`.
pub fn record_ops(cpass: &mut wgpu::ComputePass<'_>, ops: &[Op]) {
    for op in ops {
        op.record(cpass);
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

/// A single-group kernel: specialised per set of pipeline constants on first use.
struct Compiled {
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
}

/// A grouped kernel: the name its dispatches carry and its one pipeline, made at build.
struct Grouped {
    name: &'static str,
    pipeline: wgpu::ComputePipeline,
}

/// The shader modules and layouts of a table of kernels on one device, and their pipelines
/// (single-group kernels: one per set of pipeline constants, made on first use and then
/// shared; grouped kernels: one each, made with the set).
pub struct KernelSet {
    factory: PipelineFactory,
    compiled: HashMap<&'static str, Compiled>,
    pipelines: Mutex<HashMap<(&'static str, String), wgpu::ComputePipeline>>,
    grouped: HashMap<&'static str, Grouped>,
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
                let mut entries: Vec<_> =
                    spec.uniform_bytes.map(|bytes| super::uniform_entry(0, bytes, false)).into_iter().collect();
                for (i, access) in spec.storage.iter().enumerate() {
                    entries.push(super::storage_entry(i as u32 + 1, *access == Access::Read, spec.element_bytes));
                }
                let layout = factory.bind_group_layout(spec.name, &entries);
                let pipeline_layout = factory.pipeline_layout(spec.name, &[&layout]);
                let module = factory.shader_module(spec.name, spec.name, aliases)?;
                compiled.insert(spec.name, Compiled { layout, pipeline_layout, module });
            }
            Ok(Self { factory, compiled, pipelines: Mutex::new(HashMap::new()), grouped: HashMap::new() })
        })?
    }

    /// The kernels of `kernels` on `ctx` (each module composed once per file and aliases),
    /// their pipelines made now, within one validation scope.
    pub fn grouped(ctx: &GpuContext, kernels: &[GroupedKernel<'_>]) -> Result<Self> {
        let factory = ctx.pipeline_factory();
        ctx.capture(|| {
            let mut modules: HashMap<(&str, String), wgpu::ShaderModule> = HashMap::new();
            let mut grouped = HashMap::new();
            for kernel in kernels {
                let module_key = (kernel.file, format!("{:?}", kernel.aliases));
                let module = match modules.get(&module_key) {
                    Some(module) => module.clone(),
                    None => {
                        let module = factory.shader_module(kernel.key, kernel.file, &kernel.aliases)?;
                        modules.insert(module_key, module.clone());
                        module
                    }
                };
                let pipeline = factory.compute_pipeline(kernel.key, kernel.layout, &module, &kernel.constants);
                grouped.insert(kernel.key, Grouped { name: kernel.name, pipeline });
            }
            Ok(Self { factory, compiled: HashMap::new(), pipelines: Mutex::new(HashMap::new()), grouped })
        })?
    }

    fn compiled(&self, kernel: &str) -> Result<&Compiled> {
        self.compiled.get(kernel).ok_or_else(|| Error::Internal(format!("no kernel named {kernel} in this kernel set")))
    }

    /// The pipeline of the single-group `kernel` specialised with `constants`.
    fn pipeline(&self, kernel: &'static str, constants: &[(&'static str, f64)]) -> Result<wgpu::ComputePipeline> {
        let key = (kernel, format!("{constants:?}"));
        let mut cache = self.pipelines.lock().map_err(|_| Error::Internal("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let c = self.compiled(kernel)?;
        let p = self.factory.compute_pipeline(kernel, &c.pipeline_layout, &c.module, constants);
        cache.insert(key, p.clone());
        Ok(p)
    }

    /// A dispatch of the grouped kernel `key` that sets `groups` first.
    pub fn dispatch(&self, key: &'static str, groups: Vec<BoundGroup>, grid: (u32, u32, u32)) -> Result<Op> {
        let kernel = self
            .grouped
            .get(key)
            .ok_or_else(|| Error::Internal(format!("no grouped kernel named {key} in this kernel set")))?;
        Ok(Op { kernel: kernel.name, pipeline: kernel.pipeline.clone(), groups, grid })
    }

    /// A dispatch of `kernel` (specialised with `constants`): `uniform` at binding 0 (for
    /// a kernel that has one), `storage` (whole buffers or ranges) at 1, 2, ...
    pub fn op(
        &self,
        kernel: &'static str,
        constants: &[(&'static str, f64)],
        uniform: Option<&wgpu::Buffer>,
        storage: &[&dyn Storage],
        grid: (u32, u32, u32),
    ) -> Result<Op> {
        let bindings: Vec<wgpu::BufferBinding<'_>> = storage.iter().map(|b| b.binding()).collect();
        self.op_ranges(kernel, constants, uniform, &bindings, grid)
    }

    /// [`KernelSet::op`] with each storage binding a range of a buffer (a tensor inside
    /// another library's memory pool; offsets aligned to the device's
    /// `min_storage_buffer_offset_alignment`).
    pub fn op_ranges(
        &self,
        kernel: &'static str,
        constants: &[(&'static str, f64)],
        uniform: Option<&wgpu::Buffer>,
        storage: &[wgpu::BufferBinding<'_>],
        grid: (u32, u32, u32),
    ) -> Result<Op> {
        let layout = &self.compiled(kernel)?.layout;
        let mut entries: Vec<_> = uniform.map(|u| super::bind(0, u)).into_iter().collect();
        entries.extend(storage.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: wgpu::BindingResource::Buffer(b.clone()),
        }));
        let group = self.factory.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout,
            entries: &entries,
        });
        let groups = vec![BoundGroup { index: 0, group, offset: None }];
        Ok(Op { kernel, pipeline: self.pipeline(kernel, constants)?, groups, grid })
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
