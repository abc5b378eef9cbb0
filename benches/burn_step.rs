//! The burn path's cost next to the plain step, wall clock, same run: B = D = 512,
//! K = 10 575 (atomic). Three ways, alternating rounds:
//! - `GpuCenterLoss::step` on host slices (upload, step, loss + gradient read back);
//! - `centerloss::burn::CenterLoss::step` on burn tensors, then `backward` and the
//!   features' gradient synchronised on the device (no read back);
//! - burn alone: the same tensors through `(x - x.detach()) * g` summed, backward, synced
//!   (what the detach identity adds on burn's side).
//!
//! cargo run --release --features burn --example burn_step

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use centerloss::gpu::median;
use centerloss::{CenterLossConfig, GpuCenterLoss, GpuContext, UpdateMode};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (b, d, k, rounds) = (512usize, 512usize, 10_575usize, 15);
    let ctx = GpuContext::new()?;
    let device = centerloss::burn::device(&ctx)?;
    let cfg = CenterLossConfig { num_classes: k, feat_dim: d, update: UpdateMode::Atomic, ..Default::default() };
    let mut r = StdRng::seed_from_u64(1);
    let x: Vec<f32> = (0..b * d).map(|_| r.random_range(-1.0..1.0)).collect();
    let y: Vec<u32> = (0..b).map(|_| r.random_range(0..k as u32)).collect();
    let mut plain = GpuCenterLoss::new(&ctx, cfg.clone())?;
    let mut ours = centerloss::burn::CenterLoss::new(&ctx, cfg)?;
    let auto = device.clone().autodiff();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(y.iter().map(|&v| v as i32).collect(), [b]), &device);
    let features = || Tensor::<2>::from_data(TensorData::new(x.clone(), [b, d]), &auto).require_grad();
    let (mut t_plain, mut t_burn, mut t_identity) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + 2 {
        let t = Instant::now();
        plain.step(&x, &y)?;
        let plain_s = t.elapsed().as_secs_f64();

        let f = features();
        device.sync()?;
        let t = Instant::now();
        let loss = ours.step(f.clone(), labels.clone())?;
        let grads = loss.backward();
        let _ = f.grad(&grads);
        device.sync()?;
        let burn_s = t.elapsed().as_secs_f64();

        let f = features();
        let g = Tensor::<2>::zeros([b, d], &device);
        device.sync()?;
        let t = Instant::now();
        let loss = ((f.clone() - f.clone().detach()) * g).sum();
        let grads = loss.backward();
        let _ = f.grad(&grads);
        device.sync()?;
        let identity_s = t.elapsed().as_secs_f64();
        if round >= 2 {
            t_plain.push(plain_s);
            t_burn.push(burn_s);
            t_identity.push(identity_s);
        }
    }
    println!("{}", ctx.adapter_summary());
    println!("B {b} D {d} K {k}, median of {rounds} alternating rounds, wall clock:");
    println!("| path | ms |\n|---|---|");
    println!("| GpuCenterLoss::step (host slices in, loss + gradient out) | {:.2} |", 1e3 * median(t_plain));
    println!("| burn: CenterLoss::step + backward + sync | {:.2} |", 1e3 * median(t_burn));
    println!("| burn alone: the detach identity + backward + sync | {:.2} |", 1e3 * median(t_identity));
    Ok(())
}
