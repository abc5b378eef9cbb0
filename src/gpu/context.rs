//! The GPU context: instance, adapter, device and queue, chosen once and shared.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::tune::{Tiling, Tuner};
use crate::{Error, Result};

/// A GPU device ready for compute, with the adapter's own limits and the optional
/// features this crate uses (float atomics, timestamp queries) requested when present.
///
/// Cheap to clone: clones share one device. Every operation of this crate runs inside
/// error scopes (validation, out-of-memory, internal) pushed and popped on the calling
/// thread around its own work, and returns wgpu's errors as [`Error::Gpu`].
///
/// A device this crate opened ([`GpuContext::new`]) also gets an uncaptured-error handler
/// that logs and keeps errors (wgpu's default panics). A device it was given
/// ([`GpuContext::from_wgpu`]) gets nothing installed: the host keeps its own handler and
/// its own error scopes, and sees every error of its own work.
#[derive(Clone)]
pub struct GpuContext {
    pub(super) inner: Arc<Inner>,
    kernels: KernelFamily,
    tiling: Tiling,
}

/// Which kernel variants the center loss and the trainer build: the GPU-shaped ones
/// (workgroup-memory tiles, coalesced threads) or the CPU-driver ones (fewer, wider
/// per-lane accesses, no barriers in hot loops), for Mesa's lavapipe and other software
/// Vulkan drivers. Both compute the same sums in a fixed order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelChoice {
    /// CPU variants on a CPU adapter (`wgpu::DeviceType::Cpu`), GPU variants elsewhere.
    #[default]
    Auto,
    /// The CPU-driver variants on any adapter.
    Cpu,
    /// The GPU variants on any adapter.
    Gpu,
}

impl KernelChoice {
    /// The choice named by `CENTERLOSS_KERNELS` (`auto`, `cpu` or `gpu`); `Auto` when unset.
    pub fn from_env() -> Result<Self> {
        let names = [("auto", Self::Auto), ("cpu", Self::Cpu), ("gpu", Self::Gpu)];
        env_choice("CENTERLOSS_KERNELS", &names, Self::Auto, "auto, cpu or gpu")
    }
}

/// The value `var` names among `names` (case and surrounding space ignored); `default` when
/// it is unset or empty, an [`Error::Config`] saying to `use` one of them otherwise.
pub(crate) fn env_choice<T: Copy>(var: &str, names: &[(&str, T)], default: T, hint: &str) -> Result<T> {
    let Ok(value) = std::env::var(var) else { return Ok(default) };
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(default),
        other => names
            .iter()
            .find(|(name, _)| *name == other)
            .map(|&(_, choice)| choice)
            .ok_or_else(|| Error::Config(format!("{var}={other:?}: use {hint}"))),
    }
}

/// The kernel variants a context resolved [`KernelChoice`] to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    /// Written for GPUs.
    Gpu,
    /// Written for CPU drivers.
    Cpu,
}

/// The wgpu handles behind a context, for another library to build on the same device
/// (burn's and cubecl's `WgpuSetup` hold the same four).
#[derive(Clone, Debug)]
pub struct WgpuHandles {
    /// The instance the adapter came from.
    pub instance: wgpu::Instance,
    /// The adapter.
    pub adapter: wgpu::Adapter,
    /// The device.
    pub device: wgpu::Device,
    /// The device's queue.
    pub queue: wgpu::Queue,
}

/// The limits this crate's kernels need of a device it is given: wgpu's defaults for
/// compute (256 invocations per workgroup, 16 KiB of workgroup memory, 8 storage buffers
/// per stage, 128 MiB bindings, 65 535 workgroups per dimension).
pub fn required_limits() -> wgpu::Limits {
    wgpu::Limits::default()
}

/// A per-device cache entry: an `Arc` of the cached object, shared across threads where
/// wgpu's objects are (on the web they are not).
#[cfg(not(target_arch = "wasm32"))]
type Cached = Box<dyn Any + Send + Sync>;
#[cfg(target_arch = "wasm32")]
type Cached = Box<dyn Any>;

pub(super) struct Inner {
    instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    pub(super) device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(super) uncaptured: Arc<Mutex<Vec<String>>>,
    /// On the web, the error scopes popped but not yet resolved (checked by the next
    /// asynchronous wait, [`GpuContext::check_errors_async`]).
    #[cfg(target_arch = "wasm32")]
    pub(super) pending_scopes: Mutex<Vec<super::wait::ScopeCheck>>,
    cache: Mutex<HashMap<String, Cached>>,
    pipelines_compiled: Arc<AtomicU64>,
    tuner: Mutex<Option<Arc<Tuner>>>,
}

impl Inner {
    fn new(handles: WgpuHandles, info: wgpu::AdapterInfo, uncaptured: Arc<Mutex<Vec<String>>>) -> Self {
        let WgpuHandles { instance, adapter, device, queue } = handles;
        let (cache, pipelines_compiled) = (Mutex::new(HashMap::new()), Arc::new(AtomicU64::new(0)));
        let tuner = Mutex::new(None);
        Self {
            instance,
            adapter,
            device,
            queue,
            info,
            uncaptured,
            #[cfg(target_arch = "wasm32")]
            pending_scopes: Mutex::new(Vec::new()),
            cache,
            pipelines_compiled,
            tuner,
        }
    }
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.adapter_summary())
    }
}

impl GpuContext {
    /// Opens the best adapter, blocking until the device is ready.
    ///
    /// Honours `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`), `WGPU_ADAPTER_NAME`
    /// (a case-insensitive substring of the adapter's name), `WGPU_POWER_PREF` and
    /// `CENTERLOSS_KERNELS` ([`KernelChoice::from_env`]).
    pub fn new() -> Result<Self> {
        super::block_on("GpuContext::new", Self::new_async())
    }

    /// The asynchronous form of [`GpuContext::new`].
    pub async fn new_async() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = select_adapter(&instance).await?;
        Self::open(instance, adapter).await
    }

    /// A device for member `index` of a data-parallel group: the adapters found (GPUs
    /// only, when there are any besides CPU drivers) taken round-robin, or the one
    /// `WGPU_ADAPTER_NAME` names for every member. Logs a warning when members share an
    /// adapter (correct, but they split its throughput). Under MPI pass the local rank
    /// ([`Mpi::local_rank`](crate::collective)).
    pub fn for_member(index: usize, members: usize) -> Result<Self> {
        super::block_on("GpuContext::for_member", async {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
            if std::env::var_os("WGPU_ADAPTER_NAME").is_some() {
                if members > 1 {
                    log::warn!("WGPU_ADAPTER_NAME is set: all {members} members share one adapter");
                }
                let adapter = select_adapter(&instance).await?;
                return Self::open(instance, adapter).await;
            }
            let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
            let mut adapters = instance.enumerate_adapters(backends).await;
            if adapters.iter().any(|a| a.get_info().device_type != wgpu::DeviceType::Cpu) {
                adapters.retain(|a| a.get_info().device_type != wgpu::DeviceType::Cpu);
            }
            if adapters.is_empty() {
                return Err(Error::NoAdapter(format!("no adapter found (backends: {backends:?})")));
            }
            if members > adapters.len() {
                log::warn!(
                    "{members} members over {} adapter(s): several share one (correct, but they split its throughput)",
                    adapters.len()
                );
            }
            let count = adapters.len();
            let adapter = adapters.swap_remove(index % count);
            Self::open(instance, adapter).await
        })
    }

    /// Opens a device on `adapter` with the features and limits the kernels use.
    async fn open(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Self> {
        let choice = KernelChoice::from_env()?;
        let info = adapter.get_info();
        // Every stable feature the adapter has (the kernels use float atomics and timestamps
        // where present): a library that shares the device, such as cubecl under burn,
        // decides what to use from the adapter's features (64-bit integers, subgroups, ...),
        // so the device must have them enabled, as cubecl's own devices do. Experimental
        // features and mappable primary buffers stay off.
        let excluded = wgpu::Features::MAPPABLE_PRIMARY_BUFFERS | wgpu::Features::all_experimental_mask();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("centerloss"),
            required_features: adapter.features().difference(excluded),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = adapter
            .request_device(&descriptor)
            .await
            .map_err(|e| Error::Device { adapter: info.name.clone(), reason: one_line(&e) })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let text = one_line(&e);
            log::error!("uncaptured wgpu error: {text}");
            if let Ok(mut v) = sink.lock() {
                v.push(text);
            }
        }));
        log::info!("centerloss GPU context: {}", summary(&info, device.features()));
        let inner = Inner::new(WgpuHandles { instance, adapter, device, queue }, info, uncaptured);
        Ok(Self { kernels: KernelFamily::Gpu, inner: Arc::new(inner), tiling: Tiling::from_env()? }
            .with_kernels(choice))
    }

    /// Wraps a device another program opened (a burn or cubecl `WgpuSetup`, a renderer's
    /// device), sharing its queue. Checks the limits the kernels need ([`required_limits`]),
    /// naming each one that falls short. Optional features are used where enabled: without
    /// `SHADER_FLOAT32_ATOMIC` the center update uses compare-exchange loops, without
    /// `TIMESTAMP_QUERY` and `TIMESTAMP_QUERY_INSIDE_ENCODERS` there is no profiling. Nothing
    /// is installed on the device (no uncaptured-error handler): see [`GpuContext`].
    /// Honours `CENTERLOSS_KERNELS`.
    pub fn from_wgpu(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Result<Self> {
        let choice = KernelChoice::from_env()?;
        let info = adapter.get_info();
        let mut short = Vec::new();
        required_limits().check_limits_with_fail_fn(&device.limits(), false, |name, need, have| {
            short.push(format!("{name}: the device has {have}, the kernels need {need}"))
        });
        if !short.is_empty() {
            return Err(Error::Device {
                adapter: info.name.clone(),
                reason: format!(
                    "the shared device's limits are too small ({}); create it with centerloss::gpu::required_limits() or higher",
                    short.join("; ")
                ),
            });
        }
        log::info!("centerloss GPU context on a shared device: {}", summary(&info, device.features()));
        // No uncaptured-error handler: the errors logged in `uncaptured` stay empty here.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let inner = Inner::new(WgpuHandles { instance, adapter, device, queue }, info, uncaptured);
        Ok(Self { kernels: KernelFamily::Gpu, inner: Arc::new(inner), tiling: Tiling::from_env()? }
            .with_kernels(choice))
    }

    /// The instance, adapter, device and queue, for another library to share this device.
    pub fn wgpu_handles(&self) -> WgpuHandles {
        WgpuHandles {
            instance: self.inner.instance.clone(),
            adapter: self.inner.adapter.clone(),
            device: self.inner.device.clone(),
            queue: self.inner.queue.clone(),
        }
    }

    /// One line: adapter name, backend, device type, driver, float atomics, timestamps,
    /// kernel variants.
    pub fn adapter_summary(&self) -> String {
        format!("{}, kernels: {:?}", summary(&self.inner.info, self.features()), self.kernels)
    }

    /// The same device with the kernel variants `choice` resolves to on this adapter
    /// (the device, queue and caches are shared; each variant has its own pipelines).
    pub fn with_kernels(&self, choice: KernelChoice) -> Self {
        let kernels = match choice {
            KernelChoice::Cpu => KernelFamily::Cpu,
            KernelChoice::Gpu => KernelFamily::Gpu,
            KernelChoice::Auto if self.inner.info.device_type == wgpu::DeviceType::Cpu => KernelFamily::Cpu,
            KernelChoice::Auto => KernelFamily::Gpu,
        };
        Self { inner: self.inner.clone(), kernels, tiling: self.tiling }
    }

    /// The kernel variants the subsystems build on this context.
    pub fn kernels(&self) -> KernelFamily {
        self.kernels
    }

    /// The same device with kernels' tile configurations chosen as `tiling` says (the
    /// device, queue, caches and tuner are shared). `CENTERLOSS_TUNE` sets the default.
    pub fn with_tiling(&self, tiling: Tiling) -> Self {
        Self { tiling, ..self.clone() }
    }

    /// How tile configurations are chosen here: [`Tiling::Auto`] resolved on this adapter
    /// (to `Tune` on a GPU with timestamps, to `Fixed` on a CPU driver or without them), and
    /// `Tune` to `Fixed` where there are no timestamps to measure with.
    pub fn tiling(&self) -> Tiling {
        match self.tiling {
            Tiling::Auto if self.inner.info.device_type != wgpu::DeviceType::Cpu && self.has_timestamps() => {
                Tiling::Tune
            }
            Tiling::Tune if self.has_timestamps() => Tiling::Tune,
            Tiling::Auto | Tiling::Tune => Tiling::Fixed,
            other => other,
        }
    }

    /// The device's tuner: the tile configurations measured on this adapter, driver and
    /// crate version, in memory and in the cache file ([`Tuner::default_path`], or the one
    /// [`GpuContext::set_tuning_cache`] named).
    pub fn tuner(&self) -> Result<Arc<Tuner>> {
        let mut tuner = self.inner.tuner.lock().map_err(|_| Error::Internal("tuner poisoned".into()))?;
        Ok(tuner.get_or_insert_with(|| Arc::new(Tuner::new(self.tuner_key(), Tuner::default_path()))).clone())
    }

    /// Makes the device's tuner read and write `path` (`None`: memory only), starting from
    /// the choices that file holds for this adapter.
    pub fn set_tuning_cache(&self, path: Option<std::path::PathBuf>) -> Result<()> {
        let mut tuner = self.inner.tuner.lock().map_err(|_| Error::Internal("tuner poisoned".into()))?;
        *tuner = Some(Arc::new(Tuner::new(self.tuner_key(), path)));
        Ok(())
    }

    /// What the tuner files this device's choices under: adapter, backend, driver, crate
    /// version.
    fn tuner_key(&self) -> String {
        let info = &self.inner.info;
        format!(
            "{} | {:?} | {} {} | centerloss {}",
            info.name,
            info.backend,
            info.driver,
            info.driver_info,
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.inner.adapter
    }

    /// Name, backend, device type and driver of the adapter.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> wgpu::Limits {
        self.inner.device.limits()
    }

    /// The features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.inner.device.features()
    }

    /// Whether the device has native `atomic<f32>` (`SHADER_FLOAT32_ATOMIC`).
    pub fn has_float_atomics(&self) -> bool {
        self.features().contains(wgpu::Features::SHADER_FLOAT32_ATOMIC)
    }

    /// Whether GPU timestamp queries can time command encoders.
    pub fn has_timestamps(&self) -> bool {
        self.features().contains(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    }

    /// A per-device object built once by `make` and shared by later callers (pipelines),
    /// under `key` (which names everything the object depends on, the kernel family too).
    pub(crate) fn cached<T: wgpu::WasmNotSendSync + 'static>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        let mut cache = self.inner.cache.lock().map_err(|_| Error::Internal("pipeline cache poisoned".into()))?;
        if let Some(hit) = cache.get(key) {
            return hit
                .downcast_ref::<Arc<T>>()
                .cloned()
                .ok_or_else(|| Error::Internal(format!("cache entry {key} has another type")));
        }
        let value = Arc::new(make()?);
        cache.insert(key.to_owned(), Box::new(value.clone()));
        Ok(value)
    }

    /// Builds the device's layouts, shader modules and pipelines, counting the pipelines.
    pub fn pipeline_factory(&self) -> super::PipelineFactory {
        super::PipelineFactory::new(self.inner.device.clone(), self.inner.pipelines_compiled.clone())
    }

    /// How many compute pipelines the crate has compiled on this device (shared by every
    /// clone of the context). Pipelines are cached per device: a second module or network
    /// with a configuration seen before compiles none.
    pub fn pipelines_compiled(&self) -> u64 {
        self.inner.pipelines_compiled.load(Ordering::Relaxed)
    }
}

/// An error and every cause on one line, joined with ": ": wgpu's own text puts
/// "Validation Error" alone on its first line and what was wrong (the limit, the buffer)
/// on the lines below it, which a command's one-line message would lose.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(error) = next {
        for line in error.to_string().lines().map(str::trim) {
            if !line.is_empty() && line != "Caused by:" && !parts.iter().any(|p| p == line) {
                parts.push(line.to_string());
            }
        }
        next = error.source();
    }
    parts.join(": ")
}

fn summary(info: &wgpu::AdapterInfo, features: wgpu::Features) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    format!(
        "{} ({:?}, {:?}, driver: {} {}), float atomics: {}, timestamps: {}",
        info.name,
        info.backend,
        info.device_type,
        info.driver,
        info.driver_info,
        yes_no(features.contains(wgpu::Features::SHADER_FLOAT32_ATOMIC)),
        yes_no(features.contains(wgpu::Features::TIMESTAMP_QUERY)),
    )
}

async fn select_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted = wanted.to_lowercase();
        let adapters = instance.enumerate_adapters(backends).await;
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&wanted)).ok_or_else(|| {
            Error::NoAdapter(format!("WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters found: {names:?}"))
        });
    }
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter(format!("{e} (backends: {backends:?})")))
}
