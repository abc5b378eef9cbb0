//! The smallest use of the API: 3 classes of 2-D points around fixed means; the centers,
//! starting at zero, move toward the class means while the loss falls.
//!
//! cargo run --release --example basic

use centerloss::{CenterLossConfig, GpuCenterLoss, GpuContext, Reduction, UpdateMode};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn main() -> Result<(), centerloss::Error> {
    env_logger::init();
    let ctx = GpuContext::new()?;
    println!("adapter: {}", ctx.adapter_summary());

    let means = [[2.0f32, 0.0], [-1.0, 1.5], [-1.0, -1.5]];
    let cfg = CenterLossConfig {
        num_classes: means.len(),
        feat_dim: 2,
        // alpha and lambda: the defaults (centerloss::DEFAULT_ALPHA, DEFAULT_LAMBDA).
        reduction: Reduction::Mean,
        update: UpdateMode::Atomic,
        ..Default::default()
    };
    let mut cl = GpuCenterLoss::new(&ctx, cfg)?;
    let mut rng = StdRng::seed_from_u64(7);
    let batch = 64;
    for step in 0..=20 {
        let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..means.len() as u32)).collect();
        let features: Vec<f32> =
            labels.iter().flat_map(|&l| means[l as usize].map(|m| m + rng.random_range(-0.3..0.3))).collect();
        let out = cl.step(&features, &labels)?;
        if step % 5 == 0 {
            let c = cl.centers()?;
            println!(
                "step {step:2}  loss {:.5}  centers [{:+.3} {:+.3}] [{:+.3} {:+.3}] [{:+.3} {:+.3}]",
                out.loss, c[0], c[1], c[2], c[3], c[4], c[5]
            );
        }
    }
    println!(
        "class means      [{:+.3} {:+.3}] [{:+.3} {:+.3}] [{:+.3} {:+.3}]",
        means[0][0], means[0][1], means[1][0], means[1][1], means[2][0], means[2][1]
    );
    Ok(())
}
