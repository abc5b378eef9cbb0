//! Runs every benchmark once, side by side, and writes BENCHMARKS.md: the center-loss step
//! grid (both update modes) against the copy-kernel bandwidth ceiling, the f64 CPU
//! reference and the PyTorch peers (benches/peers.py, when torch is installed); the GEMM
//! sweep; trainer images/s next to PyTorch's on the same networks.
//!
//! cargo run --release --example bench_report [-- --quick] [--out BENCHMARKS.md]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use centerloss::bench::{copy_bandwidth, cpu_center_loss_seconds, gemm_gflops, trainer_images_per_second};
use centerloss::bench::{CenterLossBench, CenterLossCase, Clock};
use centerloss::gpu::median;
use centerloss::nn::NetworkSpec;
use centerloss::{GpuContext, UpdateMode};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Run the benchmarks and write BENCHMARKS.md")]
struct Args {
    /// Where the report goes.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// A small grid and few repetitions (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Skip the PyTorch peers.
    #[arg(long)]
    no_peers: bool,
    /// Python interpreter for benches/peers.py.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// Runs benches/peers.py and returns its JSON lines.
fn peers(args: &Args, extra: &[&str]) -> Vec<serde_json::Value> {
    if args.no_peers {
        return Vec::new();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers.py");
    match Command::new(&args.python).arg(script).arg("--json").args(extra).output() {
        Ok(out) => {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
        }
        Err(e) => {
            eprintln!("peers: could not run {} ({e})", args.python);
            Vec::new()
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let args = Args::parse();
    let ctx = GpuContext::new()?;
    let info = ctx.adapter_info().clone();
    eprintln!("adapter: {}", ctx.adapter_summary());
    let (batches, dims, classes): (Vec<usize>, Vec<usize>, Vec<usize>) = if args.quick {
        (vec![128, 512], vec![2, 512], vec![10, 10_575])
    } else {
        (vec![128, 512, 2048], vec![2, 128, 512], vec![10, 10_575, 100_000])
    };
    let samples = if args.quick { 3 } else { 7 };

    // The ceiling.
    let (ceiling, copy_timing) = copy_bandwidth(&ctx, 256 << 20, samples)?;
    eprintln!("copy kernel: {ceiling:.2} GB/s ({})", copy_timing.clock);

    // The center-loss grid on the GPU.
    let mut rows = Vec::new();
    let mut clock = Clock::WallClock;
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for &k in &classes {
            for &d in &dims {
                for &b in &batches {
                    let case = CenterLossCase { batch: b, dim: d, classes: k, update };
                    let bench = CenterLossBench::new(&ctx, case, 1)?;
                    let iters = if b * d >= 512 * 512 { 4 } else { 16 };
                    let t = bench.time(iters, samples)?;
                    clock = t.clock;
                    eprintln!("{update:?} B={b} D={d} K={k}: {:.1} us", 1e6 * t.seconds);
                    rows.push((case, t.seconds, bench.min_bytes()));
                }
            }
        }
    }
    // Where the time of the headline step goes, kernel by kernel.
    let mut profiles = Vec::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let case = CenterLossCase { batch: 512, dim: 512, classes: 10_575, update };
        if let Some(kernels) = CenterLossBench::new(&ctx, case, 1)?.profile(samples)? {
            profiles.push((update, kernels));
        }
    }
    // K independence, measured apart from the grid: K = 10, 10 575 and 100 000 timed in
    // turn, round after round, so that a slow spell of a shared machine hits them alike.
    let rounds = if args.quick { 2 } else { 5 };
    let k_values = [10usize, 10_575, 100_000];
    let mut k_rounds = Vec::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let benches = k_values
            .iter()
            .map(|&k| CenterLossBench::new(&ctx, CenterLossCase { batch: 512, dim: 512, classes: k, update }, 1))
            .collect::<Result<Vec<_>, _>>()?;
        let mut times = vec![Vec::new(); k_values.len()];
        for _ in 0..rounds {
            for (t, bench) in times.iter_mut().zip(&benches) {
                t.push(bench.time(4, samples)?.seconds);
            }
        }
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        let last = &benches[k_values.len() - 1];
        k_rounds.push((update, medians, last.center_buffers(), last.center_passes()));
    }
    // The CPU reference, same shapes (atomic rows only: it has no modes).
    let mut cpu = HashMap::new();
    for &(case, _, _) in rows.iter().filter(|r| r.0.update == UpdateMode::Atomic) {
        let s = cpu_center_loss_seconds(case, 1, if case.batch * case.dim * case.classes > 1 << 28 { 2 } else { 5 })?;
        cpu.insert((case.batch, case.dim, case.classes), s);
    }
    // PyTorch on the same shapes.
    let shapes: Vec<String> = rows
        .iter()
        .filter(|r| r.0.update == UpdateMode::Atomic)
        .map(|r| format!("{},{},{}", r.0.batch, r.0.dim, r.0.classes))
        .collect();
    let peer_rows = peers(&args, &["--reps", if args.quick { "3" } else { "5" }, "--shapes", &shapes.join(";")]);
    let torch_version = peer_rows.first().and_then(|m| m.get("torch")).and_then(|v| v.as_str()).map(String::from);
    let mut torch: HashMap<(String, usize, usize, usize), f64> = HashMap::new();
    for r in &peer_rows {
        if let (Some(f), Some(s)) =
            (r.get("formulation").and_then(|v| v.as_str()), r.get("seconds").and_then(|v| v.as_f64()))
        {
            let key = |n: &str| r.get(n).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            torch.insert((f.to_string(), key("B"), key("D"), key("K")), s);
        }
    }

    // GEMM and trainer.
    let gemm_sizes: &[usize] = if args.quick { &[256, 512] } else { &[256, 512, 1024] };
    let mut gemm = Vec::new();
    for &n in gemm_sizes {
        let (g, _) = gemm_gflops(&ctx, n, n, n, 3)?;
        eprintln!("gemm {n}^3: {g:.2} GFLOP/s");
        gemm.push((n, g));
    }
    let steps = if args.quick { 1 } else { 3 };
    let lenet = trainer_images_per_second(&ctx, NetworkSpec::lenet_plus_plus(), 128, steps)?;
    let face = trainer_images_per_second(&ctx, NetworkSpec::face_resnet(1, 64, 128, 150), 64, steps * 3)?;
    eprintln!("trainer: LeNet++ {lenet:.1} img/s, face {face:.1} img/s");
    let torch_train = peers(&args, &["--trainer", "--reps", "3"]);
    let torch_ips = |net: &str| {
        torch_train
            .iter()
            .find(|r| r.get("net").and_then(|v| v.as_str()) == Some(net))
            .and_then(|r| r.get("images_per_second").and_then(|v| v.as_f64()))
    };

    // The report.
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo run --release --example bench_report{}` on {}.\n",
        if args.quick { " -- --quick" } else { "" },
        date()
    )?;
    writeln!(
        md,
        "- Machine: {}, {} logical CPUs",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;
    writeln!(
        md,
        "- Adapter: {} ({:?}, {:?}), driver: {} {}",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    )?;
    writeln!(md, "- GPU times: {clock}; median of {samples} samples")?;
    writeln!(
        md,
        "- Peers: {}\n",
        torch_version.as_deref().map_or("PyTorch not available (benches/peers.py said so)".to_string(), |v| format!(
            "PyTorch {v} on the CPU, same machine, same run"
        ))
    )?;
    writeln!(md, "## Bandwidth ceiling\n\nWGSL copy kernel over 2 x 256 MiB (capped at the binding limit): **{ceiling:.2} GB/s** (read + write).\n")?;
    writeln!(md, "## Center-loss step (loss + gradient + center update)\n")?;
    writeln!(md, "Bytes are the least a step must move (read x, read the gathered centers, write the gradient, read and write each touched center row, read the labels). Ratios over a peer are its time over ours (>1: we are faster).\n")?;
    writeln!(md, "| mode | B | D | K | us/step | GB/s | of ceiling | CPU f64 ref ms | x CPU ref | torch indexed ms | x indexed | torch distmat ms | x distmat |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let fmt_peer = |s: Option<f64>, ours: f64| match s {
        Some(s) => (format!("{:.3}", 1e3 * s), format!("{:.1}", s / ours)),
        None => ("-".into(), "-".into()),
    };
    for (case, secs, bytes) in &rows {
        let key = (case.batch, case.dim, case.classes);
        let gbps = *bytes as f64 / secs / 1e9;
        let (c_ms, c_x) = fmt_peer(cpu.get(&key).copied(), *secs);
        let (i_ms, i_x) = fmt_peer(torch.get(&("indexed".into(), key.0, key.1, key.2)).copied(), *secs);
        let (d_ms, d_x) = fmt_peer(torch.get(&("distmat".into(), key.0, key.1, key.2)).copied(), *secs);
        writeln!(
            md,
            "| {:?} | {} | {} | {} | {:.1} | {:.2} | {:.0}% | {c_ms} | {c_x} | {i_ms} | {i_x} | {d_ms} | {d_x} |",
            case.update,
            case.batch,
            case.dim,
            case.classes,
            1e6 * secs,
            gbps,
            100.0 * gbps / ceiling
        )?;
    }
    writeln!(md, "\n### K independence (B = 512, D = 512)\n")?;
    writeln!(
        md,
        "K = 10, 10 575 and 100 000 timed in turn for {rounds} rounds (median of the rounds' medians), apart from the grid above.\n"
    )?;
    writeln!(
        md,
        "| mode | K = 10 us | K = 10 575 us | K = 100 000 us | 100 000 over 10 | K = 100 000 buffers / passes |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for (update, medians, buffers, passes) in &k_rounds {
        writeln!(
            md,
            "| {update:?} | {:.0} | {:.0} | {:.0} | {:.2}x | {buffers} / {passes} |",
            1e6 * medians[0],
            1e6 * medians[1],
            1e6 * medians[2],
            medians[2] / medians[0]
        )?;
    }
    if !profiles.is_empty() {
        writeln!(md, "\n### Where the step's time goes (B = 512, D = 512, K = 10 575)\n")?;
        writeln!(md, "GPU timestamps around each dispatch, each in a compute pass of its own (`GpuCenterLoss::profile_step`); median of {samples} steps.\n")?;
        writeln!(md, "| mode | kernel | dispatches | us per step | share |\n|---|---|---|---|---|")?;
        for (update, kernels) in &profiles {
            let total: f64 = kernels.iter().map(|k| k.seconds).sum();
            for k in kernels {
                writeln!(
                    md,
                    "| {update:?} | {} | {} | {:.1} | {:.0}% |",
                    k.kernel,
                    k.dispatches,
                    1e6 * k.seconds,
                    100.0 * k.seconds / total
                )?;
            }
        }
    }
    writeln!(md, "\n## GEMM (tiled, workgroup memory)\n\n| M = N = K | GFLOP/s |\n|---|---|")?;
    for (n, g) in &gemm {
        writeln!(md, "| {n} | {g:.2} |")?;
    }
    writeln!(md, "\n## Trainer (softmax + center loss, SGD; images/s)\n\n| network | batch | centerloss (WGSL) | PyTorch CPU |\n|---|---|---|---|")?;
    let t = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    writeln!(md, "| LeNet++ | 128 | {lenet:.1} | {} |", t(torch_ips("lenet_plus_plus")))?;
    writeln!(md, "| face ResNet (64x64 grey, 128-d) | 64 | {face:.1} | {} |", t(torch_ips("face_resnet")))?;
    std::fs::write(&args.out, &md)?;
    print!("{md}");
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn date() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
