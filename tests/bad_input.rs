//! Every bad input gives a clear error and leaves the centers exactly as they were.

mod common;

use centerloss::cpu::CenterLossCpu;
use centerloss::{CenterLossConfig, Error, GpuCenterLoss, UpdateMode};
use common::{gpu, rng, uniform};

fn cfg(update: UpdateMode) -> CenterLossConfig {
    CenterLossConfig { num_classes: 4, feat_dim: 3, alpha: 0.5, lambda: 0.1, update, ..Default::default() }
}

#[test]
fn bad_configs_are_config_errors() {
    let bad = [
        CenterLossConfig { num_classes: 0, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { feat_dim: 0, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { alpha: 0.0, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { alpha: 1.5, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { alpha: f32::NAN, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { lambda: -0.1, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { lambda: f32::INFINITY, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { lambda: f32::NAN, ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { max_buffer_bytes: Some(8), ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { center_bindings: Some(0), ..cfg(UpdateMode::Atomic) },
        CenterLossConfig { center_bindings: Some(5), ..cfg(UpdateMode::Atomic) },
    ];
    for c in &bad {
        assert!(matches!(CenterLossCpu::new(c.clone()), Err(Error::Config(_))), "{c:?}");
    }
    assert!(CenterLossConfig { alpha: 1.0, lambda: 0.0, ..cfg(UpdateMode::Atomic) }.validate().is_ok());
    let Some(ctx) = gpu() else { return };
    for c in bad {
        let err = GpuCenterLoss::new(&ctx, c.clone()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{c:?}: {err}");
    }
}

#[test]
fn bad_batches_error_and_leave_centers_unchanged() {
    let Some(ctx) = gpu() else { return };
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let mut cl = GpuCenterLoss::new(&ctx, cfg(update)).unwrap();
        let mut cpu = CenterLossCpu::new(cfg(update)).unwrap();
        let init = uniform(&mut rng(1), 12, 1.0);
        cl.set_centers(&init).unwrap();
        cpu.set_centers(&init).unwrap();
        let x = uniform(&mut rng(2), 6, 1.0);

        let err = cl.step(&x[..5], &[0, 1]).unwrap_err();
        assert!(matches!(err, Error::Shape { what: "features", expected: 6, actual: 5 }), "{err}");
        let err = cl.step(&x, &[0, 1, 2]).unwrap_err();
        assert!(matches!(err, Error::Shape { expected: 9, actual: 6, .. }), "{err}");
        let err = cl.step(&x, &[0, 4]).unwrap_err();
        assert!(matches!(err, Error::LabelOutOfRange { index: 1, label: 4, num_classes: 4 }), "{err}");
        assert!(err.to_string().contains("label 4 at batch index 1"), "{err}");
        let err = cl.loss(&x, &[u32::MAX, 0]).unwrap_err();
        assert!(matches!(err, Error::LabelOutOfRange { index: 0, .. }), "{err}");
        for poison in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut bad = x.clone();
            bad[4] = poison;
            let err = cl.step(&bad, &[0, 1]).unwrap_err();
            assert!(matches!(err, Error::NonFinite { what: "features", index: 4, .. }), "{err}");
            assert!(matches!(cpu.step(&bad, &[0, 1]), Err(Error::NonFinite { .. })));
        }
        let err = cl.set_centers(&init[..11]).unwrap_err();
        assert!(matches!(err, Error::Shape { what: "centers", expected: 12, actual: 11 }), "{err}");
        let mut nan_centers = init.clone();
        nan_centers[7] = f32::NAN;
        assert!(matches!(cl.set_centers(&nan_centers), Err(Error::NonFinite { what: "centers", index: 7, .. })));
        assert_eq!(cl.centers().unwrap(), init, "{update:?}: centers changed after errors");
        assert_eq!(cpu.centers_f32(), init);

        // An empty batch: zero loss, empty gradient, nothing moves.
        let out = cl.step(&[], &[]).unwrap();
        assert_eq!((out.loss, out.grad.len()), (0.0, 0));
        assert_eq!(cl.loss(&[], &[]).unwrap(), 0.0);
        assert_eq!(cl.centers().unwrap(), init);
        // And the module still works.
        cl.step(&x, &[0, 1]).unwrap();
        assert_ne!(cl.centers().unwrap(), init);
        assert!(cl.health().unwrap().is_clean());
    }
}

#[test]
fn too_large_tables_name_their_sizes() {
    let Some(ctx) = gpu() else { return };
    let limit = ctx.limits().max_storage_buffer_binding_size.min(u32::MAX as u64);
    let dim = (limit / 4 + 1) as usize;
    let err =
        GpuCenterLoss::new(&ctx, CenterLossConfig { num_classes: 1, feat_dim: dim, ..Default::default() }).unwrap_err();
    match err {
        Error::TooLarge { bytes, limit: l, .. } => assert!(bytes > l, "{bytes} <= {l}"),
        other => panic!("expected TooLarge, got {other}"),
    }
}

#[test]
fn gpu_errors_name_what_failed_on_their_first_line() {
    let Some(ctx) = gpu() else { return };
    let too_big = ctx.limits().max_buffer_size + 4;
    let err = ctx
        .capture(|| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("oversized"),
                size: too_big,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
        .unwrap_err()
        .to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(err.contains("oversized") && err.contains(&too_big.to_string()), "{err}");
}
