//! Center loss on burn tensors (feature `burn`), on the device burn shares with this crate,
//! against the f64 reference: loss, the gradient burn's autodiff gives the features, and
//! the centers, over several steps, in both update modes.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::OnceLock;

use burn::tensor::{Device, Int, Tensor, TensorData};
use centerloss::cpu::CenterLossCpu;
use centerloss::{CenterLossConfig, UpdateMode};
use common::{gpu, labels, rel_err, rng, uniform};

const TOL: f64 = 1e-5;

/// Burn's device on the test binary's context (registered once).
fn burn_device() -> Option<Device> {
    static DEVICE: OnceLock<Option<Device>> = OnceLock::new();
    let _ = env_logger::builder().is_test(true).try_init();
    DEVICE.get_or_init(|| gpu().map(|ctx| centerloss::burn::device(&ctx).expect("burn on our device"))).clone()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn steps_on_burn_tensors_match_the_reference() {
    let (Some(ctx), Some(device)) = (gpu(), burn_device()) else { return };
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for (b, d, k) in [(37usize, 13usize, 50usize), (1, 4, 3), (64, 512, 10_575)] {
            let cfg =
                CenterLossConfig { num_classes: k, feat_dim: d, alpha: 0.5, lambda: 0.7, update, ..Default::default() };
            let mut r = rng(3 + d as u64);
            let init = uniform(&mut r, k * d, 1.0);
            let mut ours = centerloss::burn::CenterLoss::new(&ctx, cfg.clone()).unwrap();
            ours.inner_mut().set_centers(&init).unwrap();
            let mut cpu = CenterLossCpu::new(cfg).unwrap();
            cpu.set_centers(&init).unwrap();
            for step in 0..3 {
                let what = format!("{update:?} B {b} D {d} K {k} step {step}");
                let x = uniform(&mut r, b * d, 2.0);
                let y = labels(&mut r, b, k.min(7));
                // Step 1 runs on a graph with gradient checkpointing (the other autodiff
                // strategy burn offers).
                let graph = match step {
                    1 => device.clone().autodiff().gradient_checkpointing(),
                    _ => device.clone().autodiff(),
                };
                let features = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, d]), &graph).require_grad();
                // Labels on the plain device, or on the autodiff one as a softmax loss takes them.
                let label_device = if step % 2 == 1 { device.clone().autodiff() } else { device.clone() };
                let label_tensor = Tensor::<1, Int>::from_data(
                    TensorData::new(y.iter().map(|&v| v as i32).collect(), [b]),
                    &label_device,
                );
                let loss = ours.step(features.clone(), label_tensor).unwrap();
                let value = loss.clone().into_data().try_to_vec::<f32>().unwrap()[0];
                // Step 2 scales the loss: the backward multiplies G by the incoming gradient.
                let scale = if step == 2 { 0.25 } else { 1.0 };
                let grads = (loss * scale).backward();
                let grad = values(features.grad(&grads).expect("features have a gradient"));
                let want = cpu.step(&x, &y).unwrap();
                assert!(rel_err(&[value], &[want.loss]) < TOL, "{what}: loss {value} vs {}", want.loss);
                let want_grad: Vec<f64> = want.grad.iter().map(|g| g * scale).collect();
                assert!(rel_err(&grad, &want_grad) < TOL, "{what}: gradient");
                assert!(rel_err(&ours.inner().centers().unwrap(), cpu.centers()) < TOL, "{what}: centers");
            }
        }
    }
}

#[test]
fn forward_leaves_the_centers_and_save_load_round_trips() {
    let (Some(ctx), Some(device)) = (gpu(), burn_device()) else { return };
    let (b, d, k) = (9, 6, 11);
    let cfg = CenterLossConfig { num_classes: k, feat_dim: d, lambda: 0.3, ..Default::default() };
    let mut r = rng(17);
    let init = uniform(&mut r, k * d, 1.0);
    let mut ours = centerloss::burn::CenterLoss::new(&ctx, cfg.clone()).unwrap();
    ours.inner_mut().set_centers(&init).unwrap();
    let x = uniform(&mut r, b * d, 1.0);
    let y = labels(&mut r, b, k);
    let features = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, d]), &device);
    let label_tensor =
        Tensor::<1, Int>::from_data(TensorData::new(y.iter().map(|&v| v as i32).collect(), [b]), &device);
    let loss = ours.forward(features, label_tensor).unwrap().into_data().try_to_vec::<f32>().unwrap()[0];
    let mut cpu = CenterLossCpu::new(cfg.clone()).unwrap();
    cpu.set_centers(&init).unwrap();
    assert!(rel_err(&[loss], &[cpu.loss(&x, &y).unwrap()]) < TOL);
    assert_eq!(ours.inner().centers().unwrap(), init, "forward moved the centers");
    // Wrong feature width: an error naming the features, not a panic.
    let narrow = Tensor::<2>::zeros([b, d + 1], &device);
    let label_tensor = Tensor::<1, Int>::from_data(TensorData::new(vec![0i32; b], [b]), &device);
    assert!(matches!(ours.step(narrow, label_tensor), Err(centerloss::Error::Shape { what: "features", .. })));
    let path = std::env::temp_dir().join(format!("centerloss-burn-{}.safetensors", std::process::id()));
    ours.save(&path).unwrap();
    let mut other = centerloss::burn::CenterLoss::new(&ctx, cfg).unwrap();
    other.load(&path).unwrap();
    assert_eq!(other.inner().centers().unwrap(), init);
    let mut wrong = centerloss::burn::CenterLoss::new(
        &ctx,
        CenterLossConfig { num_classes: k + 1, feat_dim: d, ..Default::default() },
    )
    .unwrap();
    assert!(matches!(wrong.load(&path), Err(centerloss::Error::Checkpoint { .. })));
    std::fs::remove_file(&path).ok();
}
