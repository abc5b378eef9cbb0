//! The crate in a real browser: headless Chromium's WebGPU (its own WGSL compiler, Tint),
//! run by `wasm-bindgen-test-runner` through chromedriver (`scripts/web.sh test`).
//!
//! Every variant of every kernel builds there; the center-loss step in both update modes
//! matches the f64 reference as tightly as natively; LeNet++ steps match the native run
//! (`lenet_steps.json`, checked natively by `tests/web_twins.rs`).
#![cfg(target_arch = "wasm32")]

use centerloss::cpu::CenterLossCpu;
use centerloss::gpu::shaders::BindingKind;
use centerloss::gpu::{kernel, layout_entries, KernelChoice};
use centerloss::{CenterLossConfig, GpuCenterLoss, GpuContext, UpdateMode};
use centerloss_web::twins::{self, rel_err};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

thread_local! {
    /// One device for every test: pipelines compiled by one are cached for the next.
    static CONTEXT: std::cell::RefCell<Option<GpuContext>> = const { std::cell::RefCell::new(None) };
}

async fn context() -> GpuContext {
    if let Some(ctx) = CONTEXT.with(|c| c.borrow().clone()) {
        return ctx;
    }
    let ctx = GpuContext::new_async()
        .await
        .expect("the browser has no WebGPU adapter (Chromium needs --enable-unsafe-webgpu)");
    console_log!("browser GPU: {}", ctx.adapter_summary());
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    ctx
}

/// A generator seeded afresh on every run (the clock), its seed printed.
fn fresh_rng(salt: u64) -> StdRng {
    let seed = js_sys::Date::now() as u64 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    console_log!("seed {seed}");
    StdRng::seed_from_u64(seed)
}

#[wasm_bindgen_test]
async fn every_kernel_variant_builds_in_the_browser() {
    let ctx = context().await;
    let factory = ctx.pipeline_factory();
    let max_storage = ctx.limits().max_storage_buffers_per_shader_stage as usize;
    let (mut built, mut skipped, mut rejected) = (0, Vec::new(), Vec::new());
    let mut kernels_built = std::collections::BTreeSet::new();
    for kernel in kernel::ALL {
        for variant in kernel.variants {
            let label = format!("{}/{} {:?}", kernel.family, kernel.name, variant.aliases);
            // What the device cannot run is never built on it (the center loss binds fewer
            // center buffers at once where storage bindings are scarce): not Tint's verdict.
            let storage = variant.bindings.iter().filter(|b| matches!(b.kind, BindingKind::Storage { .. })).count();
            if variant.float_atomics && !ctx.has_float_atomics() {
                skipped.push(format!("{label} (float atomics)"));
                continue;
            }
            if storage > max_storage {
                skipped.push(format!("{label} ({storage} storage buffers, the device binds {max_storage})"));
                continue;
            }
            let groups = variant.bindings.iter().map(|b| b.group + 1).max().unwrap_or(0);
            let pipeline = ctx
                .capture_async(|| -> centerloss::Result<_> {
                    let layouts = (0..groups)
                        .map(|g| Ok(factory.bind_group_layout(&label, &layout_entries(&[variant], g, false)?)))
                        .collect::<centerloss::Result<Vec<_>>>()?;
                    let layout = factory.pipeline_layout(&label, &layouts.iter().collect::<Vec<_>>());
                    let module = factory.shader_module(&label, kernel, variant.aliases)?;
                    Ok(factory.compute_pipeline(&label, &layout, &module, &[]))
                })
                .await;
            match pipeline {
                Ok(Ok(_)) => {
                    built += 1;
                    kernels_built.insert(kernel.name);
                }
                Ok(Err(e)) | Err(e) => rejected.push(format!("{label}: {e}")),
            }
        }
    }
    console_log!("{built} kernel variants built; {} skipped:\n{}", skipped.len(), skipped.join("\n"));
    assert!(rejected.is_empty(), "{} variants rejected:\n{}", rejected.len(), rejected.join("\n"));
    // Every kernel, in every variant but those the device cannot run, and in at least one.
    let unbuilt: Vec<_> = kernel::ALL.iter().map(|k| k.name).filter(|n| !kernels_built.contains(n)).collect();
    assert!(unbuilt.is_empty(), "no variant of {unbuilt:?} was built");
}

#[wasm_bindgen_test]
async fn center_loss_steps_match_the_f64_reference_in_both_modes() {
    const TOL: f64 = 1e-5;
    let base = context().await;
    let mut rng = fresh_rng(1);
    // (B, D, K, largest center buffer): one sample, 1-D, prime sizes, vec4 rows with heavy
    // duplicates, K >> B, and a table over ten buffers (one bound at a time here: the
    // browser binds 10 storage buffers per stage, too few for a window of more).
    let shapes = [(1, 1, 1, None), (29, 13, 37, None), (64, 8, 5, None), (7, 2, 1000, None), (33, 5, 300, Some(1024))];
    for family in [KernelChoice::Gpu, KernelChoice::Cpu] {
        let ctx = base.with_kernels(family);
        for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
            for &(b, d, k, max_buffer_bytes) in &shapes {
                let cfg = CenterLossConfig {
                    num_classes: k,
                    feat_dim: d,
                    alpha: 0.5,
                    lambda: 0.7,
                    update,
                    max_buffer_bytes,
                    ..Default::default()
                };
                let what =
                    format!("{family:?} kernels, {update:?}, B={b} D={d} K={k} buffers of {max_buffer_bytes:?} bytes");
                let mut gpu = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
                let mut cpu = CenterLossCpu::new(cfg).unwrap();
                let init: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
                gpu.set_centers(&init).unwrap();
                cpu.set_centers(&init).unwrap();
                for step in 0..3 {
                    let x: Vec<f32> = (0..b * d).map(|_| rng.random_range(-2.0..2.0) + 0.05 * step as f32).collect();
                    let y: Vec<u32> = (0..b).map(|_| rng.random_range(0..k as u32)).collect();
                    let g = gpu.step_async(&x, &y).unwrap().output().await.unwrap();
                    let c = cpu.step(&x, &y).unwrap();
                    let loss_err = (g.loss as f64 - c.loss).abs() / c.loss.abs().max(1e-30);
                    assert!(loss_err < TOL, "{what} step {step}: loss {} vs {}", g.loss, c.loss);
                    let grad_err = rel_err(&g.grad, &c.grad);
                    assert!(grad_err < TOL, "{what} step {step}: gradient relative error {grad_err:e}");
                    let centers_err = rel_err(&gpu.centers_async().await.unwrap(), cpu.centers());
                    assert!(centers_err < TOL, "{what} step {step}: centers relative error {centers_err:e}");
                }
                if update == UpdateMode::Atomic {
                    assert_eq!(gpu.uses_native_float_atomics(), ctx.has_float_atomics(), "{what}");
                }
                if max_buffer_bytes.is_some() {
                    assert!(gpu.num_center_buffers() > 1, "{what}: {} buffers", gpu.num_center_buffers());
                }
            }
        }
    }
}

#[wasm_bindgen_test]
async fn lenet_steps_match_the_native_run() {
    let base = context().await;
    let expected: twins::Twins = serde_json::from_str(include_str!("lenet_steps.json")).unwrap();
    for family in [KernelChoice::Gpu, KernelChoice::Cpu] {
        let ctx = base.with_kernels(family);
        let run = twins::lenet_runs(&ctx).await.unwrap();
        console_log!("{family:?} kernels: {:?} / {:?}", run.softmax.metrics, run.arcface.metrics);
        let differences = twins::differences(&run, &expected, twins::TOLERANCE);
        assert!(differences.is_empty(), "{family:?} kernels against {}: {differences:#?}", expected.softmax.adapter);
    }
}

#[wasm_bindgen_test]
async fn a_blocking_read_is_an_error_not_a_hang() {
    let ctx = context().await;
    let mut cl =
        GpuCenterLoss::new(&ctx, CenterLossConfig { num_classes: 3, feat_dim: 2, ..Default::default() }).unwrap();
    let e = cl.step(&[0.5, 1.0], &[2]).unwrap_err();
    assert!(matches!(e, centerloss::Error::WouldBlock(_)), "{e}");
    assert!(e.to_string().contains("asynchronous form"), "{e}");
}
