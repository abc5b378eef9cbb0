//! The pipeline cache and the one dispatch type. A subsystem names its kernels by typed
//! handle ([`super::shaders::kernel`]) either as single-group kernels (an optional uniform at
//! binding 0, then storage buffers, the layout read from the WGSL) or, for kernels that
//! bind several groups, as [`GroupedKernel`]s over layouts made with [`layout_entries`].
//! [`KernelSet`] builds their shader modules and layouts once per device, makes pipelines
//! per set of pipeline constants and shares them, and turns bind groups into recorded
//! dispatches ([`Op`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::shaders::{Access, Alias, Binding, BindingKind, Kernel, KernelVariant};
use super::{profile_dispatches, GpuContext, KernelTime, Storage};
use crate::{Error, Result};

/// A kernel that binds several groups: its key in the set, its name in profiles, its
/// kernel composed with import aliases, the pipeline layout its groups follow and the
/// pipeline constants its one pipeline is specialised with.
#[derive(Clone, Debug)]
pub struct GroupedKernel<'a> {
    /// The key [`KernelSet::dispatch`] finds it by (also the pipeline's label).
    pub key: &'static str,
    /// The name its dispatches carry in profiles.
    pub name: &'static str,
    /// The kernel.
    pub kernel: &'static Kernel,
    /// The helper each import slot takes ([`super::shaders::compose`]).
    pub aliases: Vec<Alias>,
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

    /// The shader module of `kernel` composed with `aliases` ([`super::shaders::compose`]).
    pub fn shader_module(&self, label: &str, kernel: &Kernel, aliases: &[Alias]) -> Result<wgpu::ShaderModule> {
        let source = kernel.compose(aliases)?;
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
    variant: &'static KernelVariant,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    module: wgpu::ShaderModule,
}

/// A grouped kernel: the name its dispatches carry and its one pipeline, made at build.
struct Grouped {
    name: &'static str,
    pipeline: wgpu::ComputePipeline,
}

/// What a specialised pipeline is cached by: the kernel and its constants (values as bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    kernel: &'static str,
    constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    fn new(kernel: &'static str, constants: &[(&'static str, f64)]) -> Self {
        Self { kernel, constants: constants.iter().map(|(name, value)| (*name, value.to_bits())).collect() }
    }
}

/// The bind-group layout entries of `group` that every one of `variants` accepts: each
/// binding any of them declares, with the largest minimum size; a uniform binding gets a
/// dynamic offset when `dynamic`. An error when two variants declare one binding
/// differently (a uniform and a storage buffer, or read-only and read-write).
pub fn layout_entries(
    variants: &[&KernelVariant],
    group: u32,
    dynamic: bool,
) -> Result<Vec<wgpu::BindGroupLayoutEntry>> {
    let mut union: Vec<Binding> = Vec::new();
    for binding in variants.iter().flat_map(|v| v.bindings).filter(|b| b.group == group) {
        match union.iter_mut().find(|u| u.binding == binding.binding) {
            None => union.push(*binding),
            Some(seen) => {
                seen.kind = match (seen.kind, binding.kind) {
                    (BindingKind::Uniform { bytes: a }, BindingKind::Uniform { bytes: b }) => {
                        BindingKind::Uniform { bytes: a.max(b) }
                    }
                    (
                        BindingKind::Storage { access: a, min_bytes: x },
                        BindingKind::Storage { access: b, min_bytes: y },
                    ) if a == b => BindingKind::Storage { access: a, min_bytes: x.max(y) },
                    (a, b) => {
                        return Err(Error::Internal(format!(
                            "group {group} binding {} is {a:?} in one kernel and {b:?} in another",
                            binding.binding
                        )))
                    }
                }
            }
        }
    }
    union.sort_by_key(|b| b.binding);
    Ok(union
        .iter()
        .map(|b| match b.kind {
            BindingKind::Uniform { bytes } => super::uniform_entry(b.binding, bytes, dynamic),
            BindingKind::Storage { access, min_bytes } => {
                super::storage_entry(b.binding, access == Access::Read, min_bytes)
            }
        })
        .collect())
}

/// The shader modules and layouts of a list of kernels on one device, and their pipelines
/// (single-group kernels: one per set of pipeline constants, made on first use and then
/// shared; grouped kernels: one each, made with the set).
pub struct KernelSet {
    factory: PipelineFactory,
    compiled: HashMap<&'static str, Compiled>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    grouped: HashMap<&'static str, Grouped>,
}

impl KernelSet {
    /// The single-group `kernels` on `ctx`, each composed with the import `aliases` (e.g.
    /// the CPU family's helpers), their layouts read from the WGSL; built on first use and
    /// shared by every later caller with the same kernels and aliases on the same device.
    pub fn for_context(
        ctx: &GpuContext,
        kernels: &'static [&'static Kernel],
        aliases: &'static [Alias],
    ) -> Result<Arc<KernelSet>> {
        let names: Vec<&str> = kernels.iter().map(|k| k.name).collect();
        ctx.cached(&format!("kernels {names:?} with {aliases:?}"), || KernelSet::new(ctx, kernels, aliases))
    }

    fn new(ctx: &GpuContext, kernels: &[&'static Kernel], aliases: &[Alias]) -> Result<Self> {
        let factory = ctx.pipeline_factory();
        ctx.try_capture(|| {
            let mut compiled = HashMap::new();
            for kernel in kernels {
                let variant = kernel.variant(aliases)?;
                if let Some(other) = variant.bindings.iter().find(|b| b.group != 0) {
                    let group = other.group;
                    return Err(Error::Internal(format!(
                        "{} binds group {group}: not a single-group kernel",
                        kernel.name
                    )));
                }
                let layout = factory.bind_group_layout(kernel.name, &layout_entries(&[variant], 0, false)?);
                let pipeline_layout = factory.pipeline_layout(kernel.name, &[&layout]);
                let module = factory.shader_module(kernel.name, kernel, aliases)?;
                compiled.insert(kernel.name, Compiled { variant, layout, pipeline_layout, module });
            }
            Ok(Self { factory, compiled, pipelines: Mutex::new(HashMap::new()), grouped: HashMap::new() })
        })
    }

    /// The kernels of `kernels` on `ctx` (each module composed once per kernel and
    /// aliases), their pipelines made now, within one validation scope.
    pub fn grouped(ctx: &GpuContext, kernels: &[GroupedKernel<'_>]) -> Result<Self> {
        let factory = ctx.pipeline_factory();
        ctx.try_capture(|| {
            let mut modules: HashMap<(&str, Vec<Alias>), wgpu::ShaderModule> = HashMap::new();
            let mut grouped = HashMap::new();
            for kernel in kernels {
                let module_key = (kernel.kernel.name, kernel.aliases.clone());
                let module = match modules.get(&module_key) {
                    Some(module) => module.clone(),
                    None => {
                        let module = factory.shader_module(kernel.key, kernel.kernel, &kernel.aliases)?;
                        modules.insert(module_key, module.clone());
                        module
                    }
                };
                let pipeline = factory.compute_pipeline(kernel.key, kernel.layout, &module, &kernel.constants);
                grouped.insert(kernel.key, Grouped { name: kernel.name, pipeline });
            }
            Ok(Self { factory, compiled: HashMap::new(), pipelines: Mutex::new(HashMap::new()), grouped })
        })
    }

    fn compiled(&self, kernel: &Kernel) -> Result<&Compiled> {
        self.compiled
            .get(kernel.name)
            .ok_or_else(|| Error::Internal(format!("kernel {} is not in this kernel set", kernel.name)))
    }

    /// The pipeline of the single-group `kernel` specialised with `constants`.
    fn pipeline(&self, kernel: &'static Kernel, constants: &[(&'static str, f64)]) -> Result<wgpu::ComputePipeline> {
        let key = PipelineKey::new(kernel.name, constants);
        let mut cache = self.pipelines.lock().map_err(|_| Error::Internal("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let c = self.compiled(kernel)?;
        let p = self.factory.compute_pipeline(kernel.name, &c.pipeline_layout, &c.module, constants);
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
    /// a kernel that has one), `storage` (whole buffers or ranges) at the storage bindings
    /// in order.
    pub fn op(
        &self,
        kernel: &'static Kernel,
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
        kernel: &'static Kernel,
        constants: &[(&'static str, f64)],
        uniform: Option<&wgpu::Buffer>,
        storage: &[wgpu::BufferBinding<'_>],
        grid: (u32, u32, u32),
    ) -> Result<Op> {
        let compiled = self.compiled(kernel)?;
        let numbers = |uniform: bool| -> Vec<u32> {
            let bindings = compiled.variant.bindings.iter();
            bindings.filter(|b| matches!(b.kind, BindingKind::Uniform { .. }) == uniform).map(|b| b.binding).collect()
        };
        let (uniforms, storage_bindings) = (numbers(true), numbers(false));
        if uniforms.len() != usize::from(uniform.is_some()) || storage_bindings.len() != storage.len() {
            return Err(Error::Internal(format!(
                "{} binds {} uniform(s) and {} storage buffer(s); given {} and {}",
                kernel.name,
                uniforms.len(),
                storage_bindings.len(),
                usize::from(uniform.is_some()),
                storage.len()
            )));
        }
        let mut entries: Vec<_> = uniform.iter().zip(&uniforms).map(|(u, &b)| super::bind(b, u)).collect();
        entries.extend(
            storage.iter().zip(&storage_bindings).map(|(b, &binding)| wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            }),
        );
        let group = self.factory.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &compiled.layout,
            entries: &entries,
        });
        let groups = vec![BoundGroup { index: 0, group, offset: None }];
        Ok(Op { kernel: kernel.name, pipeline: self.pipeline(kernel, constants)?, groups, grid })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{helper, kernel};

    /// A layout shared by several kernels holds every binding any of them declares, at
    /// the largest minimum size; one binding declared two ways is an error.
    #[test]
    fn layout_entries_are_the_union_of_the_kernels_bindings() {
        let forward = kernel::CENTER_FORWARD.variant(&[helper::ACCUMULATE_ATOMIC]).unwrap();
        let vec4 = kernel::CENTER_FORWARD_VEC4.variant(&[helper::ACCUMULATE_ATOMIC]).unwrap();
        let reduce = kernel::LOSS_REDUCE.variant(&[]).unwrap();
        let batch = layout_entries(&[forward, vec4, reduce], 0, false).unwrap();
        let bindings: Vec<u32> = batch.iter().map(|e| e.binding).collect();
        assert_eq!(bindings, [0, 1, 2, 3, 4, 5]);
        let min_size = |e: &wgpu::BindGroupLayoutEntry| match e.ty {
            wgpu::BindingType::Buffer { min_binding_size, .. } => min_binding_size.map_or(0, |s| s.get()),
            _ => panic!("a buffer binding"),
        };
        assert_eq!(min_size(&batch[1]), 16, "features: vec4 words where one kernel reads them so");
        let scratch = layout_entries(&[forward], 2, false).unwrap();
        assert_eq!(scratch.len(), 2, "slots and accumulators");
        static READ: [Binding; 1] =
            [Binding { group: 0, binding: 1, kind: BindingKind::Storage { access: Access::Read, min_bytes: 4 } }];
        static WRITE: [Binding; 1] =
            [Binding { group: 0, binding: 1, kind: BindingKind::Storage { access: Access::Write, min_bytes: 4 } }];
        let variant = |bindings: &'static [Binding]| KernelVariant {
            aliases: &[],
            bindings,
            workgroup_size: None,
            overrides: &[],
            float_atomics: false,
        };
        let (read, write) = (variant(&READ), variant(&WRITE));
        assert!(layout_entries(&[&read, &write], 0, false).is_err());
    }
}
