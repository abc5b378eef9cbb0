//! The collective step under real MPI (feature `mpi`). Run as a test it launches itself
//! with `mpirun -n 2 --oversubscribe` (`cargo test --release --features mpi --test mpi`);
//! each rank then checks the step against one step on the whole batch, the centers
//! bit-identical across ranks, the collectives themselves and a bad-input round; then the
//! trainer: `fit` on 2 ranks, rank 1 holding only its share of the images
//! (`rank_shard`), equals `fit` on one device with the global batch.

use std::process::{Command, ExitCode};

use centerloss::collective::{Collective, Mpi};
use centerloss::cpu::CenterLossCpu;
use centerloss::{CenterLossConfig, Error, GpuCenterLoss, GpuContext, UpdateMode};
use rand::{rngs::StdRng, Rng, SeedableRng};

const RANKS: usize = 2;

fn main() -> ExitCode {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_none() && std::env::var_os("PMI_SIZE").is_none() {
        return launch();
    }
    let comm = match Mpi::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("MPI init failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&comm) {
        Ok(()) => {
            println!("rank {}: ok", comm.rank());
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("rank {}: FAILED: {why}", comm.rank());
            ExitCode::FAILURE
        }
    }
}

/// Runs this binary under `mpirun`; Open MPI refuses root without the two variables.
fn launch() -> ExitCode {
    let me = std::env::current_exe().expect("own path");
    let status = Command::new("mpirun")
        .args(["-n", &RANKS.to_string(), "--oversubscribe"])
        .arg(me)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("mpirun -n {RANKS} failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot run mpirun ({e}): install Open MPI (apt-get install openmpi-bin libopenmpi-dev)");
            ExitCode::FAILURE
        }
    }
}

fn rel(a: &[f32], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(&x, y)| (x as f64 - y).powi(2)).sum::<f64>().sqrt();
    diff / b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-30)
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn run(comm: &Mpi) -> Result<(), String> {
    ensure(comm.size() == RANKS, || format!("expected {RANKS} ranks, got {}", comm.size()))?;
    let rank = comm.rank();
    let ctx = GpuContext::new().map_err(|e| e.to_string())?;
    // Collectives first: a sum and a broadcast, identical on both ranks.
    let mut v = vec![rank as f32 + 0.5, 1.0];
    comm.all_reduce_sum(&mut v).map_err(|e| e.to_string())?;
    ensure(v == [2.0, 2.0], || format!("all_reduce_sum gave {v:?}"))?;
    let mut b = if rank == 1 { b"from one".to_vec() } else { Vec::new() };
    comm.broadcast(1, &mut b).map_err(|e| e.to_string())?;
    ensure(b == b"from one", || format!("broadcast gave {b:?}"))?;

    let (k, d) = (29, 12);
    let sizes = [19usize, 0, 7];
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let cfg =
            CenterLossConfig { num_classes: k, feat_dim: d, alpha: 0.5, lambda: 0.3, update, ..Default::default() };
        // Both ranks draw the same data; rank r's shard is rows [start, end).
        let mut r = StdRng::seed_from_u64(5);
        let init: Vec<f32> = (0..k * d).map(|_| r.random_range(-1.0..1.0)).collect();
        let mut cl = GpuCenterLoss::new(&ctx, cfg.clone()).map_err(|e| e.to_string())?;
        let mut cpu = CenterLossCpu::new(cfg.clone()).map_err(|e| e.to_string())?;
        cl.set_centers(&init).map_err(|e| e.to_string())?;
        cpu.set_centers(&init).map_err(|e| e.to_string())?;
        // Two shards per step: rank 0 takes sizes[step], rank 1 the rest of 26 rows.
        for (step, &mine0) in sizes.iter().enumerate() {
            let batch = 26;
            let x: Vec<f32> = (0..batch * d).map(|_| r.random_range(-2.0..2.0)).collect();
            let y: Vec<u32> = (0..batch).map(|_| r.random_range(0..6)).collect();
            let rows = if rank == 0 { 0..mine0 } else { mine0..batch };
            let out = cl
                .step_collective(&x[rows.start * d..rows.end * d], &y[rows.clone()], comm)
                .map_err(|e| e.to_string())?;
            let expected = cpu.step(&x, &y).map_err(|e| e.to_string())?;
            let what = format!("{update:?} step {step}");
            ensure(rel(&[out.loss], &[expected.loss]) < 1e-5, || {
                format!("{what}: loss {} vs {}", out.loss, expected.loss)
            })?;
            ensure(rel(&out.grad, &expected.grad[rows.start * d..rows.end * d]) < 1e-5 || rows.is_empty(), || {
                format!("{what}: gradient rows differ")
            })?;
            let centers = cl.centers().map_err(|e| e.to_string())?;
            ensure(rel(&centers, cpu.centers()) < 1e-5, || format!("{what}: centers differ from f64"))?;
            let all = comm.all_gather(bytemuck::cast_slice(&centers)).map_err(|e| e.to_string())?;
            ensure(all.iter().all(|c| c == &all[0]), || format!("{what}: centers not bit-identical across ranks"))?;
            let losses = comm.all_gather(&out.loss.to_le_bytes()).map_err(|e| e.to_string())?;
            ensure(losses[0] == losses[1], || format!("{what}: losses differ across ranks"))?;
        }
        // Rank 1 passes a label >= K: both ranks get the same error, no center moves.
        let before = cl.centers().map_err(|e| e.to_string())?;
        let labels = if rank == 1 { vec![0, k as u32] } else { vec![0, 1] };
        match cl.step_collective(&vec![0.5; 2 * d], &labels, comm) {
            Err(Error::Rank { rank: 1, source }) if matches!(*source, Error::LabelOutOfRange { .. }) => {}
            other => return Err(format!("{update:?}: bad label on rank 1 gave {other:?}")),
        }
        ensure(cl.centers().map_err(|e| e.to_string())? == before, || "centers changed after a refused step".into())?;
    }
    train(comm, &ctx)
}

/// Six augmented steps of a small face network: 2 ranks of 4 rows, rank 1 on its shard
/// alone, against one network with batches of 8 (on rank 0).
fn train(comm: &Mpi, ctx: &GpuContext) -> Result<(), String> {
    use centerloss::data::TrainingSet;
    use centerloss::data::{Augment, Dataset};
    use centerloss::experiments::training::rank_shard;
    use centerloss::nn::{fit, FitOptions, Group, Network, NetworkSpec, TrainConfig};
    let e = |e: Error| e.to_string();
    let mut r = StdRng::seed_from_u64(9);
    let n = 40;
    let mut data = Dataset {
        shape: [1, 32, 32],
        images: (0..n * 32 * 32).map(|_| r.random_range(-1.0..1.0)).collect(),
        labels: (0..n).map(|_| r.random_range(0..10)).collect(),
    };
    let spec = NetworkSpec::face_resnet(1, 32, 16, 10);
    let config = |batch| TrainConfig {
        batch,
        center: CenterLossConfig { lambda: 0.1, alpha: 0.5, ..Default::default() },
        seed: 3,
        ..Default::default()
    };
    let opts = FitOptions {
        steps: 6,
        augment: Augment { flip: true, crop_pad: 2 },
        seed: 4,
        progress: false,
        ..Default::default()
    };
    let whole = data.clone();
    let own = rank_shard(&mut data, 8, Some(comm), opts.seed).map_err(e)?;
    ensure((comm.rank() == 1) == own.is_some(), || "rank 1 alone keeps a shard".into())?;
    if let Some(own) = &own {
        ensure(data.is_empty() && own.data.len() <= n / 2 + 2, || format!("rank 1 holds {} images", own.data.len()))?;
    }
    let mut net = Network::new(ctx, spec.clone(), config(4)).map_err(e)?;
    let set = own.as_ref().map_or(TrainingSet::All(&data), TrainingSet::Shard);
    fit(&mut net, set, &opts, Group::Member(comm), None).map_err(e)?;
    let weights: Vec<f32> = net.param_values().map_err(e)?.concat();
    let all = comm.all_gather(bytemuck::cast_slice(&weights)).map_err(e)?;
    ensure(all[0] == all[1], || "weights not bit-identical across ranks".into())?;
    if comm.rank() == 0 {
        let mut single = Network::new(ctx, spec, config(8)).map_err(e)?;
        fit(&mut single, &whole, &opts, Group::Solo, None).map_err(e)?;
        let want: Vec<f64> = single.param_values().map_err(e)?.concat().iter().map(|&v| v as f64).collect();
        let err = rel(&weights, &want);
        ensure(err < 1e-4, || format!("weights vs fit with the global batch: {err}"))?;
    }
    Ok(())
}
