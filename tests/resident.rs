//! The GPU-resident path: caller-owned buffers, steps encoded into the caller's encoder,
//! and the health counters that report what the GPU skipped.

mod common;

use centerloss::cpu::CenterLossCpu;
use centerloss::gpu::KernelChoice;
use centerloss::{
    BatchBuffers, BatchOffsets, CenterLossBinding, CenterLossConfig, Error, GpuCenterLoss, GpuContext, GpuHealth,
    UpdateMode,
};
use common::{gpu, kernel_variants, labels, rel_err, rng, uniform};
use rand::rngs::StdRng;
use wgpu::util::DeviceExt;

struct Caller {
    features: wgpu::Buffer,
    labels: wgpu::Buffer,
    grad: wgpu::Buffer,
    loss: wgpu::Buffer,
}

fn caller_buffers(ctx: &GpuContext, x: &[f32], y: &[u32]) -> Caller {
    let d = ctx.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let init = |label, contents: &[u8]| {
        d.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage })
    };
    Caller {
        features: init("x", bytemuck::cast_slice(x)),
        labels: init("y", bytemuck::cast_slice(y)),
        grad: init("grad", &vec![0u8; x.len() * 4]),
        loss: init("loss", &[0u8; 16]),
    }
}

fn read_f32(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Vec<f32> {
    centerloss::gpu::read_buffer(ctx, buffer, buffer.size() as usize / 4).unwrap()
}

fn bind<'a>(c: &'a Caller, batch: usize, accumulate_grad: bool) -> BatchBuffers<'a> {
    BatchBuffers {
        features: &c.features,
        labels: &c.labels,
        grad: &c.grad,
        loss: &c.loss,
        loss_offset: 8,
        batch,
        accumulate_grad,
    }
}

/// Encodes one step into a fresh command buffer and submits it.
fn submit_step(ctx: &GpuContext, cl: &GpuCenterLoss, binding: &CenterLossBinding) {
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    cl.encode_step(&mut enc, binding).unwrap();
    ctx.queue().submit([enc.finish()]);
}

fn cfg(update: UpdateMode) -> CenterLossConfig {
    CenterLossConfig { num_classes: 9, feat_dim: 6, alpha: 0.3, lambda: 0.5, update, ..Default::default() }
}

/// The GPU module and the f64 reference for `cfg(update)`, from the same random centers.
fn gpu_and_reference(ctx: &GpuContext, update: UpdateMode, d: usize, r: &mut StdRng) -> (GpuCenterLoss, CenterLossCpu) {
    let config = CenterLossConfig { feat_dim: d, ..cfg(update) };
    let init = uniform(r, config.num_classes * config.feat_dim, 1.0);
    let mut cl = GpuCenterLoss::new(ctx, config.clone()).unwrap();
    let mut cpu = CenterLossCpu::new(config).unwrap();
    cl.set_centers(&init).unwrap();
    cpu.set_centers(&init).unwrap();
    (cl, cpu)
}

#[test]
fn encoded_steps_match_the_cpu_reference() {
    let Some(ctx) = gpu() else { return };
    let (b, k) = (37, 9);
    // D = 8: the vec4 kernels (the fused walk in the CPU family); D = 6 the scalar ones.
    let cases = [UpdateMode::Atomic, UpdateMode::Deterministic].into_iter().flat_map(|u| [(u, 6), (u, 8)]);
    for (ctx, (update, d)) in kernel_variants(&ctx).into_iter().flat_map(|c| cases.clone().map(move |u| (c.clone(), u)))
    {
        let mut r = rng(10);
        let (cl, mut cpu) = gpu_and_reference(&ctx, update, d, &mut r);
        let x = uniform(&mut r, b * d, 1.0);
        let y = labels(&mut r, b, k);
        let caller = caller_buffers(&ctx, &x, &y);
        let binding = cl.bind(bind(&caller, b, false)).unwrap();
        assert_eq!(binding.batch(), b);
        // Three steps in one command buffer, no host round trip between them.
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        for _ in 0..3 {
            cl.encode_step(&mut enc, &binding).unwrap();
        }
        ctx.queue().submit([enc.finish()]);
        let mut last = None;
        for _ in 0..3 {
            last = Some(cpu.step(&x, &y).unwrap());
        }
        let last = last.unwrap();
        let loss = read_f32(&ctx, &caller.loss)[2];
        assert!((loss as f64 - last.loss).abs() / last.loss < 1e-5, "{loss} vs {}", last.loss);
        assert!(rel_err(&read_f32(&ctx, &caller.grad), &last.grad) < 1e-5);
        assert!(rel_err(&cl.centers().unwrap(), cpu.centers()) < 1e-5);

        // Forward only: gradient added onto what the caller's buffer holds, centers still.
        let before = cl.centers().unwrap();
        let acc_binding = cl.bind(bind(&caller, b, true)).unwrap();
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        cl.encode_forward(&mut enc, &acc_binding).unwrap();
        ctx.queue().submit([enc.finish()]);
        let reference = cpu.forward(&x, &y).unwrap();
        let doubled: Vec<f64> = reference.grad.iter().zip(&last.grad).map(|(a, b)| a + b).collect();
        assert!(rel_err(&read_f32(&ctx, &caller.grad), &doubled) < 1e-5);
        assert_eq!(cl.centers().unwrap(), before);
        assert!(cl.health().unwrap().is_clean());
    }
}

#[test]
fn poisoned_batches_are_skipped_and_reported() {
    let Some(ctx) = gpu() else { return };
    let (b, k) = (12, 9);
    // D = 8 takes the vec4 kernels (the fused walk in the CPU family), D = 6 the scalar ones.
    let cases = [UpdateMode::Atomic, UpdateMode::Deterministic].into_iter().flat_map(|u| [(u, 6), (u, 8)]);
    for (ctx, (update, d)) in kernel_variants(&ctx).into_iter().flat_map(|c| cases.clone().map(move |u| (c.clone(), u)))
    {
        let mut r = rng(20);
        let mut cl = GpuCenterLoss::new(&ctx, CenterLossConfig { feat_dim: d, ..cfg(update) }).unwrap();
        let init = uniform(&mut r, k * d, 1.0);
        cl.set_centers(&init).unwrap();
        let mut x = uniform(&mut r, b * d, 1.0);
        let mut y = labels(&mut r, b, k);
        // Two labels far out of range (one would index past the table) ...
        y[3] = 9;
        y[7] = u32::MAX;
        let bad_labels = caller_buffers(&ctx, &x, &y);
        let binding = cl.bind(bind(&bad_labels, b, false)).unwrap();
        submit_step(&ctx, &cl, &binding);
        assert_eq!(cl.centers().unwrap(), init, "{update:?} D={d} {:?}: poisoned update applied", ctx.kernels());
        assert_eq!(cl.health().unwrap(), GpuHealth { skipped_updates: 1, invalid_labels: 2, non_finite_values: 0 });
        let grad = read_f32(&ctx, &bad_labels.grad);
        assert!(grad[3 * d..4 * d].iter().all(|&g| g == 0.0));

        // ... then a NaN and an infinite feature with good labels.
        y[3] = 0;
        y[7] = 1;
        x[5] = f32::NAN;
        x[6] = f32::INFINITY;
        let bad_x = caller_buffers(&ctx, &x, &y);
        let binding = cl.bind(bind(&bad_x, b, false)).unwrap();
        submit_step(&ctx, &cl, &binding);
        assert_eq!(cl.centers().unwrap(), init);
        assert_eq!(cl.health().unwrap(), GpuHealth { skipped_updates: 2, invalid_labels: 2, non_finite_values: 2 });

        // A clean step afterwards updates again; the counters stay until reset.
        x[5] = 0.0;
        x[6] = 0.0;
        let good = caller_buffers(&ctx, &x, &y);
        let binding = cl.bind(bind(&good, b, false)).unwrap();
        submit_step(&ctx, &cl, &binding);
        assert_ne!(cl.centers().unwrap(), init);
        assert_eq!(cl.health().unwrap().skipped_updates, 2);
        cl.reset_health().unwrap();
        assert!(cl.health().unwrap().is_clean());
    }
}

#[test]
fn bind_checks_buffers() {
    let Some(ctx) = gpu() else { return };
    let cl = GpuCenterLoss::new(&ctx, cfg(UpdateMode::Atomic)).unwrap();
    let other = GpuCenterLoss::new(&ctx, cfg(UpdateMode::Atomic)).unwrap();
    let x = vec![0.0; 4 * 6];
    let caller = caller_buffers(&ctx, &x, &[0, 1, 2, 3]);
    let err = cl.bind(bind(&caller, 5, false)).unwrap_err();
    assert!(matches!(err, Error::Buffer { what: "features", .. }), "{err}");
    let err = cl.bind(bind(&caller, 0, false)).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    let err = cl.bind(BatchBuffers { loss_offset: 2, ..bind(&caller, 4, false) }).unwrap_err();
    assert!(matches!(err, Error::Buffer { what: "loss", .. }), "{err}");
    let no_storage = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 1024,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let err = cl.bind(BatchBuffers { grad: &no_storage, ..bind(&caller, 4, false) }).unwrap_err();
    assert!(matches!(err, Error::Buffer { what: "grad", .. }), "{err}");
    let binding = cl.bind(bind(&caller, 4, false)).unwrap();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    assert!(matches!(other.encode_step(&mut enc, &binding), Err(Error::Config(_))));
}

#[test]
fn profiled_steps_time_every_kernel_and_still_step() {
    let Some(ctx) = gpu() else { return };
    if !ctx.has_timestamps() {
        return;
    }
    let (b, k) = (37, 9);
    let separate_atomic =
        vec!["center_claim", "center_forward", "loss_reduce", "center_apply", "center_release", "status_finalize"];
    let separate_sorted = vec![
        "sort_keys_init",
        "bitonic_local",
        "center_forward",
        "loss_reduce",
        "center_update_sorted",
        "status_finalize",
    ];
    // D = 8 in the CPU family: the fused walk.
    let cpu = ctx.with_kernels(KernelChoice::Cpu);
    for (ctx, update, d, kernels) in [
        (ctx.clone(), UpdateMode::Atomic, 6, separate_atomic),
        (ctx.clone(), UpdateMode::Deterministic, 6, separate_sorted),
        (cpu.clone(), UpdateMode::Atomic, 8, vec!["center_inspect_vec4", "center_runs_vec4", "center_close"]),
        (
            cpu.clone(),
            UpdateMode::Deterministic,
            8,
            vec!["center_inspect_vec4", "bitonic_local", "center_runs_vec4", "center_close"],
        ),
    ] {
        let mut r = rng(30);
        let (cl, mut cpu) = gpu_and_reference(&ctx, update, d, &mut r);
        let (x, y) = (uniform(&mut r, b * d, 1.0), labels(&mut r, b, k));
        let caller = caller_buffers(&ctx, &x, &y);
        let binding = cl.bind(bind(&caller, b, false)).unwrap();
        let profile = cl.profile_step(&binding, 3).unwrap().expect("the adapter has timestamps");
        let names: Vec<&str> = profile.iter().map(|t| t.kernel).collect();
        assert_eq!(names, kernels, "{update:?} D={d}");
        assert!(profile.iter().all(|t| t.seconds > 0.0 && t.seconds.is_finite()), "{profile:?}");
        if let Some(sort) = profile.iter().find(|t| t.kernel == "bitonic_local") {
            // 64 padded rows: all 21 bitonic stages in one workgroup-memory dispatch.
            assert_eq!(sort.dispatches, 1);
        }
        // Three real steps ran.
        for _ in 0..3 {
            cpu.step(&x, &y).unwrap();
        }
        assert!(rel_err(&cl.centers().unwrap(), cpu.centers()) < 1e-5, "{update:?} D={d}");
    }
}

#[test]
fn a_batch_inside_larger_buffers_at_aligned_offsets() {
    let Some(ctx) = gpu() else { return };
    let (b, k) = (21, 9);
    let align = ctx.limits().min_storage_buffer_offset_alignment as usize;
    for (update, d) in [UpdateMode::Atomic, UpdateMode::Deterministic].into_iter().flat_map(|u| [(u, 6), (u, 8)]) {
        let mut r = rng(11);
        let (cl, mut cpu) = gpu_and_reference(&ctx, update, d, &mut r);
        let x = uniform(&mut r, b * d, 1.0);
        let y = labels(&mut r, b, k);
        // Pool-like buffers: the batch starts after `align` (features, grad) or 2 * `align`
        // (labels) bytes of other data, which must stay untouched.
        let pad = |lead: usize, values: &[u8]| [vec![0xAB; lead], values.to_vec(), vec![0xCD; 64]].concat();
        let xs = pad(align, bytemuck::cast_slice(&x));
        let ys = pad(2 * align, bytemuck::cast_slice(&y));
        let gs = pad(align, &vec![0u8; x.len() * 4]);
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let init = |contents: &[u8]| {
            ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents, usage })
        };
        let caller = Caller { features: init(&xs), labels: init(&ys), grad: init(&gs), loss: init(&[0u8; 16]) };
        let offsets = BatchOffsets { features: align as u64, labels: 2 * align as u64, grad: align as u64 };
        let binding = cl.bind_at(bind(&caller, b, false), offsets).unwrap();
        submit_step(&ctx, &cl, &binding);
        let step = cpu.step(&x, &y).unwrap();
        let grad_all = read_f32(&ctx, &caller.grad);
        let (lead, tail) = (align / 4, align / 4 + b * d);
        assert!(rel_err(&grad_all[lead..tail], &step.grad) < 1e-5);
        assert!(
            grad_all[..lead]
                .iter()
                .chain(&grad_all[tail..])
                .all(|v| v.to_bits() == u32::from_ne_bytes([0xAB; 4]) || v.to_bits() == u32::from_ne_bytes([0xCD; 4])),
            "bytes around the batch changed"
        );
        let loss = read_f32(&ctx, &caller.loss)[2];
        assert!((loss as f64 - step.loss).abs() / step.loss < 1e-5);
        assert!(rel_err(&cl.centers().unwrap(), cpu.centers()) < 1e-5);
        // An offset off the alignment, or past the end, is an error naming the buffer.
        let skew = BatchOffsets { labels: 4, ..offsets };
        match cl.bind_at(bind(&caller, b, false), skew) {
            Err(Error::Buffer { what: "labels", reason }) => assert!(reason.contains("alignment"), "{reason}"),
            other => panic!("expected a labels alignment error, got {other:?}"),
        }
        let past = BatchOffsets { grad: 4 * align as u64, ..offsets };
        assert!(matches!(cl.bind_at(bind(&caller, b, false), past), Err(Error::Buffer { what: "grad", .. })));
    }
}
