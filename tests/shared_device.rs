//! Center loss on a device another program opened (`GpuContext::from_wgpu`): exact against
//! the f64 reference with wgpu's default limits and no optional features (so the
//! compare-exchange update), the host's errors still reach the host (its uncaptured-error
//! handler and its own error scopes), limits that fall short are named, and the device
//! can be handed on (`wgpu_handles`).

mod common;

use std::sync::{Arc, Mutex};

use centerloss::cpu::CenterLossCpu;
use centerloss::gpu::{required_limits, GpuContext};
use centerloss::{CenterLossConfig, Error, GpuCenterLoss, UpdateMode};
use common::{labels, rel_err, rng, uniform};

/// A host program's device: default limits, no optional features, its own error handler.
struct Host {
    instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    errors: Arc<Mutex<Vec<String>>>,
}

fn host(limits: wgpu::Limits) -> Option<Host> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = match pollster::block_on(instance.request_adapter(&Default::default())) {
        Ok(a) => a,
        Err(e) => {
            assert!(std::env::var("CENTERLOSS_REQUIRE_GPU").as_deref() != Ok("1"), "no adapter: {e}");
            println!("SKIP: no GPU adapter");
            return None;
        }
    };
    let descriptor = wgpu::DeviceDescriptor { required_limits: limits, ..Default::default() };
    let (device, queue) = pollster::block_on(adapter.request_device(&descriptor)).unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| sink.lock().unwrap().push(e.to_string())));
    Some(Host { instance, adapter, device, queue, errors })
}

/// A mistake of the host's own: MAP_READ may only be combined with COPY_DST.
fn host_mistake(device: &wgpu::Device) {
    let _ = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host mistake"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
}

fn check_step(ctx: &GpuContext, update: UpdateMode, salt: u64) {
    let (k, d, b) = (37, 19, 53);
    let cfg = CenterLossConfig { num_classes: k, feat_dim: d, alpha: 0.5, lambda: 0.7, update, ..Default::default() };
    let mut gpu = GpuCenterLoss::new(ctx, cfg.clone()).unwrap();
    let mut cpu = CenterLossCpu::new(cfg).unwrap();
    let mut rng = rng(salt);
    let init = uniform(&mut rng, k * d, 1.0);
    gpu.set_centers(&init).unwrap();
    cpu.set_centers(&init).unwrap();
    for _ in 0..3 {
        let x = uniform(&mut rng, b * d, 2.0);
        let y = labels(&mut rng, b, k);
        let (g, c) = (gpu.step(&x, &y).unwrap(), cpu.step(&x, &y).unwrap());
        assert!((g.loss as f64 - c.loss).abs() / c.loss.abs() < 1e-5, "loss {} vs {}", g.loss, c.loss);
        assert!(rel_err(&g.grad, &c.grad) < 1e-5);
        assert!(rel_err(&gpu.centers().unwrap(), cpu.centers()) < 1e-5);
    }
}

#[test]
fn a_shared_device_runs_exactly_and_leaves_the_hosts_errors_to_the_host() {
    let Some(h) = host(required_limits()) else { return };
    let ctx = GpuContext::from_wgpu(h.instance.clone(), h.adapter.clone(), h.device.clone(), h.queue.clone()).unwrap();
    assert!(!ctx.has_float_atomics(), "the host enabled no optional feature");
    // A mistake of the host before our work goes to the host's handler, not into our step.
    host_mistake(&h.device);
    check_step(&ctx, UpdateMode::Atomic, 1);
    check_step(&ctx, UpdateMode::Deterministic, 2);
    assert_eq!(h.errors.lock().unwrap().len(), 1, "{:?}", h.errors.lock().unwrap());
    // The host's own error scope around our work catches the host's mistake, and only it.
    let scope = h.device.push_error_scope(wgpu::ErrorFilter::Validation);
    check_step(&ctx, UpdateMode::Atomic, 3);
    host_mistake(&h.device);
    let caught = pollster::block_on(scope.pop());
    assert!(caught.is_some_and(|e| e.to_string().contains("host mistake")), "the host's scope lost its error");
    assert_eq!(h.errors.lock().unwrap().len(), 1);
    // Our own errors stay ours: bad input is an Error, and nothing reaches the host.
    let cfg = CenterLossConfig { num_classes: 4, feat_dim: 3, ..Default::default() };
    let mut cl = GpuCenterLoss::new(&ctx, cfg).unwrap();
    assert!(cl.step(&[0.0; 6], &[0, 9]).is_err());
    assert_eq!(h.errors.lock().unwrap().len(), 1);

    // Handed on: a second context on the same device and queue.
    let handles = ctx.wgpu_handles();
    assert_eq!(handles.device, h.device);
    let again = GpuContext::from_wgpu(handles.instance, handles.adapter, handles.device, handles.queue).unwrap();
    check_step(&again, UpdateMode::Deterministic, 4);
}

#[test]
fn a_shared_device_with_too_small_limits_is_refused_by_name() {
    let small = wgpu::Limits { max_storage_buffers_per_shader_stage: 4, ..required_limits() };
    let Some(h) = host(small) else { return };
    match GpuContext::from_wgpu(h.instance, h.adapter, h.device, h.queue) {
        Err(Error::Device { reason, .. }) => {
            assert!(
                reason.contains("max_storage_buffers_per_shader_stage") && reason.contains("required_limits"),
                "{reason}"
            )
        }
        other => panic!("expected a limits error, got {other:?}"),
    }
}
