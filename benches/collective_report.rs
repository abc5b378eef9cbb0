//! Measures the collective center-loss step and the data-parallel training step on
//! in-process groups (one device per member, `ThreadGroup`): wall time per step and the
//! bytes each member sends and receives, against the single-device `step` in the same
//! run; writes docs/BENCHMARKS-collective.md.
//!
//! cargo run --release --example collective_report [-- --quick] [--out FILE]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use centerloss::collective::{Collective, Metered, ThreadGroup};
use centerloss::gpu::median;
use centerloss::nn::{Network, NetworkSpec, TrainConfig};
use centerloss::{CenterLossConfig, GpuCenterLoss, GpuContext, Result, UpdateMode};
use clap::Parser;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "Benchmark the collective step and write docs/BENCHMARKS-collective.md")]
struct Args {
    /// Where the report goes.
    #[arg(long, default_value = "docs/BENCHMARKS-collective.md")]
    out: PathBuf,
    /// Fewer steps (a smoke run).
    #[arg(long)]
    quick: bool,
}

/// Per-step figures of one group size: median wall seconds (the slowest member), and the
/// bytes member 1 (or 0 alone) sent and received per step.
struct Measured {
    seconds: f64,
    sent: u64,
    received: u64,
}

fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-scale..scale)).collect()
}

/// Runs `body(member, ctx)` on `n` members, one device each, and returns each member's
/// result.
fn on_members<T: Send>(
    ctxs: &[GpuContext],
    n: usize,
    body: impl Fn(&Metered<ThreadGroup>, &GpuContext) -> T + Sync,
) -> Vec<T> {
    let members = ThreadGroup::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(rank, m)| {
                let (body, ctx) = (&body, &ctxs[rank]);
                s.spawn(move || body(&Metered::new(m), ctx))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("member")).collect()
    })
}

fn step_collective(ctxs: &[GpuContext], n: usize, k: usize, d: usize, b: usize, steps: usize) -> Result<Measured> {
    let x = random(1, b * d, 1.0);
    let y: Vec<u32> = (0..b as u32).map(|i| (i * 7919) % k as u32).collect();
    let shard = b / n;
    let per = on_members(ctxs, n, |member, ctx| -> Result<(Vec<f64>, u64, u64)> {
        let cfg = CenterLossConfig { num_classes: k, feat_dim: d, update: UpdateMode::Atomic, ..Default::default() };
        let mut cl = GpuCenterLoss::new(ctx, cfg)?;
        let rows = member.rank() * shard..(member.rank() + 1) * shard;
        let (xs, ys) = (&x[rows.start * d..rows.end * d], &y[rows]);
        for _ in 0..3 {
            cl.step_collective(xs, ys, member)?;
        }
        member.reset();
        let mut times = Vec::new();
        for _ in 0..steps {
            let t = Instant::now();
            cl.step_collective(xs, ys, member)?;
            times.push(t.elapsed().as_secs_f64());
        }
        let (sent, received) = member.bytes();
        Ok((times, sent / steps as u64, received / steps as u64))
    });
    let per: Vec<_> = per.into_iter().collect::<Result<_>>()?;
    let slowest: Vec<f64> = (0..steps).map(|i| per.iter().map(|p| p.0[i]).fold(0.0, f64::max)).collect();
    let last = &per[per.len() - 1];
    Ok(Measured { seconds: median(slowest), sent: last.1, received: last.2 })
}

fn single_step(ctx: &GpuContext, k: usize, d: usize, b: usize, steps: usize) -> Result<f64> {
    let cfg = CenterLossConfig { num_classes: k, feat_dim: d, update: UpdateMode::Atomic, ..Default::default() };
    let mut cl = GpuCenterLoss::new(ctx, cfg)?;
    let x = random(1, b * d, 1.0);
    let y: Vec<u32> = (0..b as u32).map(|i| (i * 7919) % k as u32).collect();
    for _ in 0..3 {
        cl.step(&x, &y)?;
    }
    let mut times = Vec::new();
    for _ in 0..steps {
        let t = Instant::now();
        cl.step(&x, &y)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// The data-parallel training step of a face network: time and bytes per step.
fn training_step(
    ctxs: &[GpuContext],
    n: usize,
    spec: &NetworkSpec,
    global: usize,
    steps: usize,
) -> Result<(Measured, usize)> {
    let pixels: usize = spec.input.iter().product();
    let shard = global / n;
    let x = random(3, global * pixels, 1.0);
    let y: Vec<u32> = (0..global as u32).map(|i| i % spec.num_classes as u32).collect();
    let per = on_members(ctxs, n, |member, ctx| -> Result<(Vec<f64>, u64, u64, usize)> {
        let cfg = TrainConfig {
            batch: shard,
            center: CenterLossConfig { lambda: 0.003, ..Default::default() },
            ..Default::default()
        };
        let mut net = Network::new(ctx, spec.clone(), cfg)?;
        let params = net.graph().params().iter().map(|p| p.len).sum();
        let rows = member.rank() * shard..(member.rank() + 1) * shard;
        let (xs, ys) = (&x[rows.start * pixels..rows.end * pixels], &y[rows]);
        net.train_step_collective(xs, ys, member, false)?;
        member.reset();
        let mut times = Vec::new();
        for _ in 0..steps {
            let t = Instant::now();
            net.train_step_collective(xs, ys, member, false)?;
            ctx.wait_idle()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let (sent, received) = member.bytes();
        Ok((times, sent / steps as u64, received / steps as u64, params))
    });
    let per: Vec<_> = per.into_iter().collect::<Result<_>>()?;
    let slowest: Vec<f64> = (0..steps).map(|i| per.iter().map(|p| p.0[i]).fold(0.0, f64::max)).collect();
    let last = &per[per.len() - 1];
    Ok((Measured { seconds: median(slowest), sent: last.1, received: last.2 }, last.3))
}

fn mb(bytes: u64) -> String {
    format!("{:.3}", bytes as f64 / 1e6)
}

fn main() -> Result<()> {
    env_logger::init();
    let args = Args::parse();
    let steps = if args.quick { 5 } else { 20 };
    let ctxs: Vec<GpuContext> = (0..4).map(|_| GpuContext::new()).collect::<Result<_>>()?;
    let adapter = ctxs[0].adapter_summary();
    let (b, d) = (512, 512);
    let mut md = String::new();
    writeln!(md, "# The collective step: measured\n").ok();
    writeln!(
        md,
        "`cargo run --release --example collective_report` on {adapter}; members are threads of one \
         process, each with its own device on that adapter (`ThreadGroup`), so the exchange is a \
         memory copy and the devices share the machine's cores: the times show the protocol's \
         overhead, not a speed-up. Bytes are payload per member per step (`Metered`): what it \
         contributes, and what it receives from the others. An all-reduce counts as its payload, \
         4·P bytes each way (what the transport moves for it depends on its algorithm: a ring \
         moves 2(N−1)/N times that). A one-member group exchanges nothing.\n"
    )
    .ok();
    writeln!(md, "## `step_collective`, global B = {b}, D = {d}, atomic mode\n").ok();
    writeln!(md, "| K | members | ms / step | MB sent | MB received | one-device `step` ms |").ok();
    writeln!(md, "|---|---|---|---|---|---|").ok();
    for k in [10_575, 100_000] {
        let single = single_step(&ctxs[0], k, d, b, steps)?;
        for n in [1, 2, 4] {
            let m = step_collective(&ctxs, n, k, d, b, steps)?;
            eprintln!("K {k} members {n}: {:.2} ms, sent {} received {}", m.seconds * 1e3, m.sent, m.received);
            writeln!(
                md,
                "| {k} | {n} | {:.2} | {} | {} | {:.2} |",
                m.seconds * 1e3,
                mb(m.sent),
                mb(m.received),
                single * 1e3
            )
            .ok();
        }
    }
    let spec = NetworkSpec::face_resnet(1, 64, 64, 1000);
    let global = 32;
    writeln!(
        md,
        "\n## Data-parallel training step: the face network (64 x 64 grey, embedding 64, 1 000 classes), global batch {global}\n"
    )
    .ok();
    writeln!(md, "| members | ms / step | MB sent | MB received | parameters |").ok();
    writeln!(md, "|---|---|---|---|---|").ok();
    for n in [1, 2, 4] {
        let (m, params) = training_step(&ctxs, n, &spec, global, steps.min(10))?;
        eprintln!("training members {n}: {:.1} ms, sent {} received {}", m.seconds * 1e3, m.sent, m.received);
        writeln!(md, "| {n} | {:.1} | {} | {} | {params} |", m.seconds * 1e3, mb(m.sent), mb(m.received)).ok();
    }
    std::fs::write(&args.out, &md)
        .map_err(|e| centerloss::Error::Io { path: args.out.display().to_string(), source: e })?;
    println!("{md}");
    Ok(())
}
