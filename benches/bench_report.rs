//! Runs every benchmark once, side by side, and writes BENCHMARKS.md: the center-loss step
//! grid (both update modes) against the copy-kernel bandwidth ceiling, the f64 CPU
//! reference and the PyTorch peers (benches/peers.py, when torch is installed); the GEMM
//! sweep; trainer images/s next to PyTorch's on the same networks; what using a trained
//! model costs (embedding, 1:N search next to numpy and PyTorch).
//!
//! cargo run --release --example bench_report [-- --quick] [--out BENCHMARKS.md]
//! cargo run --release --example bench_report -- --only-model   # the last section alone
//! cargo run --release --example bench_report -- --only-k 5      # K up to 1 000 000 alone

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use centerloss::bench::{copy_bandwidth, cpu_center_loss_seconds, gemm_gflops, trainer_images_per_second};
use centerloss::bench::{host_step_seconds, trainer_profile, CenterLossBench, CenterLossCase, Clock};
use centerloss::gpu::{median, KernelChoice, KernelFamily, Tiling, TunedChoice};
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
    /// Where the PyTorch peers run: cpu, or cuda on a machine whose torch sees a GPU.
    #[arg(long, default_value = "cpu")]
    peer_device: String,
    /// Only the "Using a trained model" section (embedding and search).
    #[arg(long)]
    only_model: bool,
    /// Only the K-independence table (K up to 1 000 000), over this many rounds.
    #[arg(long, value_name = "ROUNDS")]
    only_k: Option<usize>,
}

/// Runs benches/peers.py and returns its JSON lines.
fn peers(args: &Args, extra: &[&str]) -> Vec<serde_json::Value> {
    if args.no_peers {
        return Vec::new();
    }
    // The built-in path, or the checkout the prebuilt binary runs from (scripts/gpu-bench.sh).
    let built = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers.py");
    let script = if std::path::Path::new(built).exists() { built } else { "benches/peers.py" };
    match Command::new(&args.python)
        .arg(script)
        .arg("--json")
        .args(["--device", &args.peer_device])
        .args(extra)
        .output()
    {
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

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;
/// A grid row: the case, seconds per step, the least bytes a step moves.
type GridRow = (CenterLossCase, f64, u64);
/// A K-independence row: the mode, medians at K = 10, 10 575 and 100 000, and the center
/// buffers and passes at K = 100 000.
type KRound = (UpdateMode, Vec<f64>, usize, usize);

/// The center-loss measurements: the grid, the per-kernel profiles, the K rounds and the
/// host-slice steps.
struct CenterLossFigures {
    clock: Clock,
    /// (case, seconds per step, least bytes a step moves).
    rows: Vec<GridRow>,
    profiles: Vec<(UpdateMode, Vec<centerloss::gpu::KernelTime>)>,
    rounds: usize,
    /// (mode, medians at K = 10, 10 575, 100 000, center buffers, passes at 100 000).
    k_rounds: Vec<KRound>,
    /// (mode, GPU seconds, wall seconds of `step()`).
    host_steps: Vec<(UpdateMode, f64, f64)>,
}

/// The center-loss step over the grid of shapes, both modes.
fn center_loss_grid(ctx: &GpuContext, args: &Args, samples: usize) -> BenchResult<(Clock, Vec<GridRow>)> {
    let (batches, dims, classes): (Vec<usize>, Vec<usize>, Vec<usize>) = if args.quick {
        (vec![128, 512], vec![2, 512], vec![10, 10_575])
    } else {
        (vec![128, 512, 2048], vec![2, 128, 512], vec![10, 10_575, 100_000])
    };
    let mut rows = Vec::new();
    let mut clock = Clock::WallClock;
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for &k in &classes {
            for &d in &dims {
                for &b in &batches {
                    let case = CenterLossCase { batch: b, dim: d, classes: k, update };
                    let bench = CenterLossBench::new(ctx, case, 1)?;
                    let iters = if b * d >= 512 * 512 { 4 } else { 16 };
                    let t = bench.time(iters, samples)?;
                    clock = t.clock;
                    eprintln!("{update:?} B={b} D={d} K={k}: {:.1} us", 1e6 * t.seconds);
                    rows.push((case, t.seconds, bench.min_bytes()));
                }
            }
        }
    }
    Ok((clock, rows))
}

/// The class counts of the K-independence rounds: up to the packs' scale (MS1M-V2 has
/// 85 742 identities, Glint360K 360 232; 1 000 000 x 512 is a 2 GB table).
const K_ROUNDS: [usize; 4] = [10, 10_575, 100_000, 1_000_000];

/// K independence, measured apart from the grid: the [`K_ROUNDS`] timed in turn, round
/// after round, so that a slow spell of a shared machine hits them alike.
fn k_rounds(ctx: &GpuContext, rounds: usize, samples: usize) -> BenchResult<Vec<KRound>> {
    let k_values = K_ROUNDS;
    let mut k_rounds = Vec::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let benches = k_values
            .iter()
            .map(|&k| CenterLossBench::new(ctx, CenterLossCase { batch: 512, dim: 512, classes: k, update }, 1))
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
    Ok(k_rounds)
}

fn center_loss_figures(ctx: &GpuContext, args: &Args, samples: usize) -> BenchResult<CenterLossFigures> {
    let (clock, rows) = center_loss_grid(ctx, args, samples)?;
    // Where the time of the headline step goes, kernel by kernel.
    let mut profiles = Vec::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let case = CenterLossCase { batch: 512, dim: 512, classes: 10_575, update };
        if let Some(kernels) = CenterLossBench::new(ctx, case, 1)?.profile(samples)? {
            profiles.push((update, kernels));
        }
    }
    let rounds = if args.quick { 2 } else { 5 };
    let k_rounds = k_rounds(ctx, rounds, samples)?;
    // What a caller of `step()` waits for: upload, step and read-back, wall clock.
    let mut host_steps = Vec::new();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let case = CenterLossCase { batch: 512, dim: 512, classes: 10_575, update };
        let gpu_time = rows.iter().find(|r| r.0 == case).map_or(f64::NAN, |r| r.1);
        host_steps.push((update, gpu_time, host_step_seconds(ctx, case, 1, samples)?));
    }
    Ok(CenterLossFigures { clock, rows, profiles, rounds, k_rounds, host_steps })
}

/// The center-loss step's peers on the grid's shapes: the f64 CPU reference and PyTorch.
struct CenterLossPeers {
    cpu: HashMap<(usize, usize, usize), f64>,
    torch_version: Option<String>,
    torch_device: String,
    /// (formulation, B, D, K) -> seconds.
    torch: HashMap<(String, usize, usize, usize), f64>,
}

fn center_loss_peers(args: &Args, rows: &[GridRow]) -> BenchResult<CenterLossPeers> {
    // The CPU reference, same shapes (atomic rows only: it has no modes).
    let mut cpu = HashMap::new();
    for &(case, _, _) in rows.iter().filter(|r| r.0.update == UpdateMode::Atomic) {
        let s = cpu_center_loss_seconds(case, 1, if case.batch * case.dim * case.classes > 1 << 28 { 2 } else { 5 })?;
        cpu.insert((case.batch, case.dim, case.classes), s);
    }
    let shapes: Vec<String> = rows
        .iter()
        .filter(|r| r.0.update == UpdateMode::Atomic)
        .map(|r| format!("{},{},{}", r.0.batch, r.0.dim, r.0.classes))
        .collect();
    let peer_rows = peers(args, &["--reps", if args.quick { "3" } else { "5" }, "--shapes", &shapes.join(";")]);
    let torch_version = peer_rows.first().and_then(|m| m.get("torch")).and_then(|v| v.as_str()).map(String::from);
    let torch_device =
        peer_rows.first().and_then(|m| m.get("device")).and_then(|v| v.as_str()).unwrap_or("CPU").to_string();
    let mut torch = HashMap::new();
    for r in &peer_rows {
        if let (Some(f), Some(s)) =
            (r.get("formulation").and_then(|v| v.as_str()), r.get("seconds").and_then(|v| v.as_f64()))
        {
            let key = |n: &str| r.get(n).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            torch.insert((f.to_string(), key("B"), key("D"), key("K")), s);
        }
    }
    Ok(CenterLossPeers { cpu, torch_version, torch_device, torch })
}

/// GEMM and trainer measurements in each kernel family (the adapter's default first), each
/// with the fixed rule's tiles and with the tuner's.
struct TrainerFigures {
    variants: Vec<(KernelFamily, Tiling)>,
    default_family: KernelFamily,
    gemm: Vec<(usize, Vec<f64>)>,
    /// (LeNet++ images/s, face network images/s) per variant.
    trainer: Vec<(f64, f64)>,
    profiles: Vec<(&'static str, Option<Vec<centerloss::gpu::KernelTime>>)>,
    /// The tuner's choices on this adapter: shape key -> choice.
    tuned: std::collections::BTreeMap<String, TunedChoice>,
    /// PyTorch's images/s per network name and precision setting.
    torch: Vec<serde_json::Value>,
    /// torch.mm's GFLOP/s per size and precision setting.
    torch_gemm: Vec<serde_json::Value>,
}

fn trainer_figures(ctx: &GpuContext, args: &Args, samples: usize) -> BenchResult<TrainerFigures> {
    // 4 096^3 (137 GFLOP) only where a GPU runs it: a CPU driver takes minutes per run.
    let on_gpu = ctx.adapter_info().device_type != wgpu::DeviceType::Cpu;
    let gemm_sizes: &[usize] = match (args.quick, on_gpu) {
        (true, _) => &[256, 512],
        (false, false) => &[256, 512, 1024],
        (false, true) => &[256, 512, 1024, 4096],
    };
    let default_family = ctx.kernels();
    let families: Vec<KernelFamily> = [default_family, KernelFamily::Gpu, KernelFamily::Cpu]
        .into_iter()
        .enumerate()
        .filter(|&(i, f)| i == 0 || f != default_family)
        .map(|(_, f)| f)
        .collect();
    let variants: Vec<(KernelFamily, Tiling)> =
        families.iter().flat_map(|&f| [(f, Tiling::Fixed), (f, Tiling::Tune)]).collect();
    let variant_ctx = |(f, tiling): (KernelFamily, Tiling)| {
        ctx.with_kernels(match f {
            KernelFamily::Gpu => KernelChoice::Gpu,
            KernelFamily::Cpu => KernelChoice::Cpu,
        })
        .with_tiling(tiling)
    };
    let mut gemm = Vec::new();
    for &n in gemm_sizes {
        let mut per_variant = Vec::new();
        for &v in &variants {
            let (g, _) = gemm_gflops(&variant_ctx(v), n, n, n, 3)?;
            eprintln!("gemm {n}^3 ({v:?}): {g:.2} GFLOP/s");
            per_variant.push(g);
        }
        gemm.push((n, per_variant));
    }
    let steps = if args.quick { 1 } else { 3 };
    let mut trainer = Vec::new();
    for &v in &variants {
        let vctx = variant_ctx(v);
        let lenet = trainer_images_per_second(&vctx, NetworkSpec::lenet_plus_plus(), 128, steps)?;
        let face = trainer_images_per_second(&vctx, NetworkSpec::face_resnet(1, 64, 128, 150), 64, steps * 3)?;
        eprintln!("trainer ({v:?}): LeNet++ {lenet:.1} img/s, face {face:.1} img/s");
        trainer.push((lenet, face));
    }
    let face = NetworkSpec::face_resnet(1, 64, 128, 150);
    let profiles = vec![
        ("LeNet++, batch 128", trainer_profile(ctx, NetworkSpec::lenet_plus_plus(), 128, samples.min(3))?),
        ("face ResNet, batch 64", trainer_profile(ctx, face, 64, samples.min(3))?),
    ];
    let tuned = ctx.tuner()?.choices();
    let torch = peers(args, &["--trainer", "--reps", "3"]);
    let sizes: Vec<String> = gemm_sizes.iter().map(usize::to_string).collect();
    let torch_gemm = peers(args, &["--gemm", &sizes.join(","), "--reps", "5"]);
    Ok(TrainerFigures { variants, default_family, gemm, trainer, profiles, tuned, torch, torch_gemm })
}

/// The report's header: command, machine, adapter, clock, peers.
fn write_header(
    md: &mut String,
    args: &Args,
    ctx: &GpuContext,
    clock: Clock,
    samples: usize,
    peers: &CenterLossPeers,
) -> std::fmt::Result {
    let info = ctx.adapter_info();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo run --release --example bench_report{}` on {}.\n",
        if args.quick { " -- --quick" } else { "" },
        date()
    )?;
    writeln!(md, "- Commit: {}", commit())?;
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
        peers.torch_version.as_deref().map_or("PyTorch not available (benches/peers.py said so)".to_string(), |v| {
            format!("PyTorch {v} on the {}, same machine, same run", peers.torch_device)
        })
    )
}

/// The center-loss grid against the ceiling and the peers.
fn write_grid(md: &mut String, c: &CenterLossFigures, peers: &CenterLossPeers, ceiling: f64) -> std::fmt::Result {
    writeln!(md, "## Bandwidth ceiling\n\nWGSL copy kernel over 2 x 256 MiB (capped at the binding limit): **{ceiling:.2} GB/s** (read + write).\n")?;
    writeln!(md, "## Center-loss step (loss + gradient + center update)\n")?;
    writeln!(md, "Bytes are the least a step must move (read x, read the gathered centers, write the gradient, read and write each touched center row, read the labels). Ratios over a peer are its time over ours (>1: we are faster).\n")?;
    writeln!(md, "| mode | B | D | K | us/step | GB/s | of ceiling | CPU f64 ref ms | x CPU ref | torch indexed ms | x indexed | torch distmat ms | x distmat |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let fmt_peer = |s: Option<f64>, ours: f64| match s {
        Some(s) => (format!("{:.3}", 1e3 * s), format!("{:.1}", s / ours)),
        None => ("-".into(), "-".into()),
    };
    for (case, secs, bytes) in &c.rows {
        let key = (case.batch, case.dim, case.classes);
        let gbps = *bytes as f64 / secs / 1e9;
        let (c_ms, c_x) = fmt_peer(peers.cpu.get(&key).copied(), *secs);
        let (i_ms, i_x) = fmt_peer(peers.torch.get(&("indexed".into(), key.0, key.1, key.2)).copied(), *secs);
        let (d_ms, d_x) = fmt_peer(peers.torch.get(&("distmat".into(), key.0, key.1, key.2)).copied(), *secs);
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
    Ok(())
}

/// The K-independence table.
fn write_k_rounds(md: &mut String, rounds: usize, k_rounds: &[KRound]) -> std::fmt::Result {
    writeln!(md, "\n### K independence (B = 512, D = 512)\n")?;
    writeln!(
        md,
        "K = 10, 10 575, 100 000 and 1 000 000 timed in turn for {rounds} rounds (median of the rounds' medians), apart from any grid.\n"
    )?;
    writeln!(
        md,
        "| mode | K = 10 us | K = 10 575 us | K = 100 000 us | K = 1 000 000 us | 1 000 000 over 10 575 | K = 1 000 000 buffers / passes |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for (update, medians, buffers, passes) in k_rounds {
        writeln!(
            md,
            "| {update:?} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {buffers} / {passes} |",
            1e6 * medians[0],
            1e6 * medians[1],
            1e6 * medians[2],
            1e6 * medians[3],
            medians[3] / medians[1]
        )?;
    }
    Ok(())
}

/// K independence, the host-slice step and the step's profile.
fn write_step_details(md: &mut String, c: &CenterLossFigures, samples: usize) -> std::fmt::Result {
    write_k_rounds(md, c.rounds, &c.k_rounds)?;
    writeln!(md, "\n### What a caller of `step()` waits for (B = 512, D = 512, K = 10 575)\n")?;
    writeln!(md, "Wall clock of `GpuCenterLoss::step` on host slices (upload, the step, read-back of loss and gradient), median of {samples}; the step's GPU time from the grid above.\n")?;
    writeln!(md, "| mode | GPU us | step() wall us |\n|---|---|---|")?;
    for (update, gpu_time, wall) in &c.host_steps {
        writeln!(md, "| {update:?} | {:.0} | {:.0} |", 1e6 * gpu_time, 1e6 * wall)?;
    }
    if c.profiles.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n### Where the step's time goes (B = 512, D = 512, K = 10 575)\n")?;
    writeln!(md, "GPU timestamps around each dispatch, each in a compute pass of its own (`GpuCenterLoss::profile_step`); median of {samples} steps.\n")?;
    writeln!(md, "| mode | kernel | dispatches | us per step | share |\n|---|---|---|---|---|")?;
    for (update, kernels) in &c.profiles {
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
    Ok(())
}

/// GEMM, trainer images/s against PyTorch, and where a training step's time goes.
fn write_trainer(md: &mut String, t: &TrainerFigures, torch_device: &str) -> std::fmt::Result {
    let default_family = t.default_family;
    let heads: Vec<String> = t
        .variants
        .iter()
        .map(|(f, tiling)| {
            format!("{f:?} kernels, {}", if *tiling == Tiling::Tune { "tuned tiles" } else { "fixed tiles" })
        })
        .collect();
    writeln!(md, "\n## GEMM (GFLOP/s; this adapter runs the {default_family:?} kernels by default)\n")?;
    writeln!(md, "Gpu: 64 x 64 (or 32 x 128) tiles in workgroup memory by 64 invocations (fixed rule), or 128 x 128 / 64 x 256 by 256 (the wide core), or 16 x 256 to 32 x 512 in registers by 32 to 128 invocations, columns interleaved (the register core): tuner candidates. Cpu: 16 x 8 blocks per invocation straight from storage, workgroups of 8, no barriers. Fixed tiles: each core's rule; tuned: the fastest of its candidates (`nn::GemmTiles`) measured on this adapter, listed below.\n")?;
    // The peers' precision settings present (torch's defaults; on CUDA also TF32 off).
    let precisions = |rows: &[serde_json::Value]| {
        let mut seen: Vec<String> = Vec::new();
        for p in rows.iter().filter_map(|r| r.get("precision").and_then(|v| v.as_str())) {
            if !seen.iter().any(|s| s == p) {
                seen.push(p.to_string());
            }
        }
        seen
    };
    let peer_head = |p: &str| match p {
        "tf32_off" => format!("PyTorch {torch_device} (TF32 off)"),
        _ => format!("PyTorch {torch_device}"),
    };
    let peer_value = |rows: &[serde_json::Value], key: (&str, serde_json::Value), precision: &str, field: &str| {
        rows.iter()
            .find(|r| r.get(key.0) == Some(&key.1) && r.get("precision").and_then(|v| v.as_str()) == Some(precision))
            .and_then(|r| r.get(field).and_then(|v| v.as_f64()))
            .map_or("-".to_string(), |v| format!("{v:.1}"))
    };
    let gemm_peers = precisions(&t.torch_gemm);
    let gemm_heads: Vec<String> = heads.iter().cloned().chain(gemm_peers.iter().map(|p| peer_head(p))).collect();
    writeln!(md, "| M = N = K | {} |\n|---{}|", gemm_heads.join(" | "), "|---".repeat(gemm_heads.len()))?;
    for (n, g) in &t.gemm {
        let mut cells: Vec<String> = g.iter().map(|g| format!("{g:.2}")).collect();
        cells.extend(gemm_peers.iter().map(|p| peer_value(&t.torch_gemm, ("gemm", (*n).into()), p, "gflops")));
        writeln!(md, "| {n} | {} |", cells.join(" | "))?;
    }
    let trainer_peers = precisions(&t.torch);
    let trainer_heads: Vec<String> = heads.iter().cloned().chain(trainer_peers.iter().map(|p| peer_head(p))).collect();
    writeln!(
        md,
        "\n## Trainer (softmax + center loss, SGD; images/s)\n\n| network | batch | {} |\n|---|---{}|",
        trainer_heads.join(" | "),
        "|---".repeat(trainer_heads.len())
    )?;
    let rows = [("LeNet++", 128, "lenet_plus_plus"), ("face ResNet (64x64 grey, 128-d)", 64, "face_resnet")];
    for (i, (label, batch, net)) in rows.into_iter().enumerate() {
        let mut cells: Vec<String> =
            t.trainer.iter().map(|r| format!("{:.1}", if i == 0 { r.0 } else { r.1 })).collect();
        cells.extend(trainer_peers.iter().map(|p| peer_value(&t.torch, ("net", net.into()), p, "images_per_second")));
        writeln!(md, "| {label} | {batch} | {} |", cells.join(" | "))?;
    }
    write_tuned(md, &t.tuned)?;
    for (name, profile) in &t.profiles {
        let Some(kernels) = profile else { continue };
        let total: f64 = kernels.iter().map(|k| k.seconds).sum();
        writeln!(md, "\n### Where a training step's time goes: {name} ({default_family:?} kernels)\n")?;
        writeln!(md, "GPU timestamps around each dispatch (`Network::profile_step`); total {:.1} ms.\n", 1e3 * total)?;
        writeln!(md, "| kernel | dispatches | ms per step | share |\n|---|---|---|---|")?;
        let mut sorted = kernels.clone();
        sorted.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        for k in sorted {
            writeln!(
                md,
                "| {} | {} | {:.2} | {:.0}% |",
                k.kernel,
                k.dispatches,
                1e3 * k.seconds,
                100.0 * k.seconds / total
            )?;
        }
    }
    Ok(())
}

/// The tuner's choice for each GEMM shape it measured on this adapter (this run's and those
/// its cache file held), with every candidate's time.
fn write_tuned(md: &mut String, tuned: &std::collections::BTreeMap<String, TunedChoice>) -> std::fmt::Result {
    if tuned.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n### Tile configurations the tuner chose on this adapter\n")?;
    writeln!(md, "Median GPU time of 3 runs of each candidate (`nn::GemmTiles::candidates`, in order), on the shapes the GEMMs and trainers above built; the key is the kernel family, kernel, its shape constants, M, N and K-slices.\n")?;
    writeln!(md, "| shape | chosen | us per candidate |\n|---|---|---|")?;
    for (key, choice) in tuned {
        let micros: Vec<String> = choice
            .micros
            .iter()
            .map(|&t| if t == centerloss::gpu::FAILED_MICROS { "failed".to_string() } else { format!("{t:.0}") })
            .collect();
        writeln!(md, "| `{key}` | {} | {} |", choice.label, micros.join(" / "))?;
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    env_logger::init();
    let args = Args::parse();
    let ctx = GpuContext::new()?;
    eprintln!("adapter: {}", ctx.adapter_summary());
    let samples = if args.quick { 3 } else { 7 };
    if let Some(rounds) = args.only_k {
        let mut md = String::new();
        write_k_rounds(&mut md, rounds, &k_rounds(&ctx, rounds, samples)?)?;
        std::fs::write(&args.out, &md)?;
        print!("{md}");
        return Ok(());
    }
    if args.only_model {
        let mut md = String::new();
        write_model(&mut md, &model_figures(&ctx, &args)?, &ctx)?;
        std::fs::write(&args.out, &md)?;
        print!("{md}");
        return Ok(());
    }
    // The ceiling.
    let (ceiling, copy_timing) = copy_bandwidth(&ctx, 256 << 20, samples)?;
    eprintln!("copy kernel: {ceiling:.2} GB/s ({})", copy_timing.clock);
    let center_loss = center_loss_figures(&ctx, &args, samples)?;
    let peers = center_loss_peers(&args, &center_loss.rows)?;
    let trainer = trainer_figures(&ctx, &args, samples)?;
    let mut md = String::new();
    write_header(&mut md, &args, &ctx, center_loss.clock, samples, &peers)?;
    write_grid(&mut md, &center_loss, &peers, ceiling)?;
    write_step_details(&mut md, &center_loss, samples)?;
    write_trainer(&mut md, &trainer, &peers.torch_device)?;
    write_model(&mut md, &model_figures(&ctx, &args)?, &ctx)?;
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

/// The checkout's commit (`git describe --always --dirty`), or why there is none.
fn commit() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown (not run from a git checkout)".into())
}

/// What using a trained model costs: embedding a folder (the forward pass alone, decoding
/// alone, and files end to end) and exhaustive 1:N search, with the numpy and PyTorch
/// peers of the search.
struct ModelFigures {
    images: usize,
    forward: f64,
    decode: f64,
    files: f64,
    search: (usize, usize, usize, usize),
    search_seconds: f64,
    search_peers: Vec<serde_json::Value>,
}

/// A face model (64x64 grey, 128-d, random weights) over a folder of generated 64x64 PNG
/// faces, and a random gallery of unit rows.
fn model_figures(ctx: &GpuContext, args: &Args) -> BenchResult<ModelFigures> {
    use centerloss::data::{folder, ImageSource, Preprocessing};
    use centerloss::model::{decode_files, Model};
    let dir = std::env::temp_dir().join(format!("centerloss-bench-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let net = centerloss::nn::Network::new(ctx, NetworkSpec::face_resnet(1, 64, 128, 10), Default::default())?;
    let preprocessing = Preprocessing::centre_square([1, 64, 64])?;
    let path = dir.join("face.safetensors");
    centerloss::checkpoint::save_with(
        &net,
        &path,
        &[(centerloss::checkpoint::PREPROCESSING, preprocessing.to_json())],
    )?;
    let model = Model::open(ctx, &path)?;
    let images = if args.quick { 256 } else { 2048 };
    let set = centerloss::data::faces::FaceSetConfig { images_per_identity: 16, resolution: 64, ..Default::default() };
    folder::write_folder(&set.generate(0, images / 16), &dir.join("faces"), |l| format!("id{l:05}"))?;
    let ImageSource::Files(listed) = ImageSource::open(&dir.join("faces"))? else {
        return Err("a folder lists files".into());
    };
    let paths: Vec<PathBuf> = listed.into_iter().map(|(p, _)| p).collect();
    let rate = |run: &mut dyn FnMut() -> BenchResult<()>| -> BenchResult<f64> {
        run()?;
        let mut times = Vec::new();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            run()?;
            times.push(start.elapsed().as_secs_f64());
        }
        Ok(images as f64 / median(times))
    };
    let pixels: Vec<f32> = decode_files(&preprocessing, &paths).into_iter().collect::<Result<Vec<_>, _>>()?.concat();
    let forward = rate(&mut || model.embed_pixels(&pixels).map(|_| ()).map_err(Into::into))?;
    let decode = rate(&mut || {
        decode_files(&preprocessing, &paths);
        Ok(())
    })?;
    let files = rate(&mut || model.embed_files(&paths, &mut |_| {}).map(|_| ()).map_err(Into::into))?;
    std::fs::remove_dir_all(&dir).ok();
    let (search, search_seconds) = search_figures(ctx, args)?;
    let shape = format!("{},{},{},{}", search.0, search.1, search.2, search.3);
    let search_peers = peers(args, &["--search", &shape, "--reps", "3"]);
    Ok(ModelFigures { images, forward, decode, files, search, search_seconds, search_peers })
}

/// Median seconds of a 1:N search on the GPU (gallery already uploaded): (rows, dim, probes, k).
fn search_figures(ctx: &GpuContext, args: &Args) -> BenchResult<((usize, usize, usize, usize), f64)> {
    use centerloss::model::normalize_rows;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let (rows, dim, probes, k) = if args.quick { (10_000, 128, 100, 5) } else { (100_000, 128, 1_000, 5) };
    let mut rng = StdRng::seed_from_u64(0);
    let mut unit = |n: usize| {
        let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        normalize_rows(&mut v, dim);
        v
    };
    let (gallery, probe) = (unit(rows), unit(probes));
    let mut search = centerloss::search::GallerySearch::new(ctx, &gallery, dim, k)?;
    search.search(&probe)?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = std::time::Instant::now();
        search.search(&probe)?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(((rows, dim, probes, k), median(times)))
}

fn write_model(md: &mut String, m: &ModelFigures, ctx: &GpuContext) -> BenchResult<()> {
    writeln!(md, "\n## Using a trained model\n")?;
    writeln!(
        md,
        "The face network (64x64 grey, 128-d) embedding {} generated 64x64 PNG faces (`model::Model`, batches of {}), \
         median of 3 runs after a warm-up, on {}; decoding on {} threads.\n",
        m.images,
        centerloss::model::EMBED_BATCH,
        ctx.adapter_summary(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )?;
    writeln!(md, "| embedding | images/s |\n|---|---|")?;
    writeln!(md, "| forward pass alone (`embed_pixels`, decoded images) | {:.0} |", m.forward)?;
    writeln!(md, "| decoding alone (PNG, centre crop, resize, scale) | {:.0} |", m.decode)?;
    let share = 100.0 * m.files / m.forward;
    writeln!(md, "| files end to end (`embed_files`: decoding overlapped with the GPU) | {:.0} ({share:.0}% of the forward pass) |", m.files)?;
    let (rows, dim, probes, k) = m.search;
    writeln!(
        md,
        "\n1:N search: a gallery of {rows} x {dim} unit rows, {probes} probes, top {k} each (median of 3).\n"
    )?;
    writeln!(md, "| search | seconds | GallerySearch's speed against it |\n|---|---|---|")?;
    writeln!(md, "| `search::GallerySearch` (GEMM + top-k on the GPU) | {:.3} | |", m.search_seconds)?;
    for peer in &m.search_peers {
        let Some(seconds) = peer["seconds"].as_f64() else { continue };
        let who = match peer["search"].as_str() {
            Some("numpy") => {
                format!("numpy {} (`probes @ gallery.T`, argpartition)", peer["numpy"].as_str().unwrap_or("?"))
            }
            _ => format!(
                "PyTorch {} on {} (matmul, topk)",
                peer["torch"].as_str().unwrap_or("?"),
                peer["device"].as_str().unwrap_or("?")
            ),
        };
        writeln!(md, "| {who} | {seconds:.3} | {:.2}x |", seconds / m.search_seconds)?;
    }
    Ok(())
}
