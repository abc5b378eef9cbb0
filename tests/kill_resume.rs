//! Crash safety of the face job: a training process killed with SIGKILL at random moments
//! (mid-step, mid-checkpoint, at start-up) always leaves a last checkpoint that loads, and
//! resuming after the kills finishes exactly where an uninterrupted run finishes (bit for
//! bit: deterministic center updates, the same adapter).
#![cfg(all(feature = "experiments", unix))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use centerloss::data::faces::FaceSetConfig;
use centerloss::experiments::faces::{self, FaceOptions, FaceSource};
use centerloss::nn::{Network, NetworkSpec, TrainConfig};
use centerloss::{checkpoint, CenterLossConfig, GpuContext};
use common::gpu;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Set in the child process: where its run writes.
const CHILD_OUT: &str = "CENTERLOSS_KILL_TEST_OUT";
const KILLS: usize = 20;

fn job(out: PathBuf) -> FaceOptions {
    let set = FaceSetConfig { train_identities: 6, test_identities: 3, images_per_identity: 8, ..Default::default() };
    FaceOptions {
        source: FaceSource::BuiltIn(set),
        resolution: 32,
        epochs: Some(40),
        batch: 16,
        embed_dim: 16,
        resume: true,
        out,
        progress: false,
        ..Default::default()
    }
}

/// A network of the job's shape, to load its checkpoints into.
fn network(ctx: &GpuContext) -> Network {
    let cfg = TrainConfig {
        batch: 16,
        center: CenterLossConfig { lambda: 0.01, ..Default::default() },
        ..Default::default()
    };
    Network::new(ctx, NetworkSpec::face_resnet(1, 32, 16, 6), cfg).unwrap()
}

/// Every tensor of a checkpoint, by name (the metadata's order is not fixed).
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<u8>)> =
        st.tensors().into_iter().map(|(name, t)| (name.to_string(), t.data().to_vec())).collect();
    all.sort();
    all
}

/// The child: one resumable run of the job, to be killed.
#[test]
fn child_training_run() {
    let Some(out) = std::env::var_os(CHILD_OUT) else { return };
    let ctx = GpuContext::new().unwrap();
    faces::run(&ctx, &job(out.into())).unwrap();
}

#[test]
fn sigkill_at_random_moments_then_resume_finishes_where_an_uninterrupted_run_does() {
    let Some(ctx) = gpu() else { return };
    let base = std::env::temp_dir().join(format!("centerloss-kill-{}", std::process::id()));
    std::fs::remove_dir_all(&base).ok();
    let (reference, killed) = (base.join("reference"), base.join("killed"));

    let t = Instant::now();
    faces::run(&ctx, &job(reference.clone())).unwrap();
    let uninterrupted = t.elapsed();

    let seed: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill moments from seed {seed}; an uninterrupted run takes {uninterrupted:?}");
    let mut rng = StdRng::seed_from_u64(seed);
    let last = killed.join("center-last.safetensors");
    // The child run, in this test binary, writing to `killed`.
    let child_run = || {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", "child_training_run", "--test-threads=1"]).env(CHILD_OUT, &killed);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    let spawn = || child_run().spawn().unwrap();
    // How long a child takes to start and write its first checkpoint.
    let t = Instant::now();
    let mut child = spawn();
    while !last.exists() && t.elapsed() < uninterrupted * 4 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let startup = t.elapsed();
    child.kill().unwrap();
    child.wait().unwrap();
    // Each kill: every fifth during start-up, the others after start-up plus a random share
    // of the training time (up to 1/KILLS of the run), so that the kills spread
    // over the whole run (mid-step, mid-checkpoint, mid-evaluation).
    let share = uninterrupted.saturating_sub(startup).mul_f64(1.0 / KILLS as f64);
    let mut steps_seen = Vec::new();
    for kill in 0..KILLS {
        let mut child = spawn();
        let wait = if kill % 5 == 0 {
            startup.mul_f64(rng.random_range(0.0..1.0))
        } else {
            startup + share.mul_f64(rng.random_range(0.0..1.0))
        };
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if last.exists() {
            let mut net = network(&ctx);
            checkpoint::load(&mut net, &last).unwrap_or_else(|e| panic!("kill {kill} after {wait:?}: {e}"));
            steps_seen.push(net.step_count());
        }
    }
    eprintln!("start-up {startup:?}; steps of the last checkpoint after each kill: {steps_seen:?}");
    assert!(steps_seen.len() >= KILLS / 2, "most kills should come after the first checkpoint");

    // Finish the run (it removes the temporary files a kill left) and compare.
    let status = child_run().status().unwrap();
    assert!(status.success());
    for name in ["center-last.safetensors", "center.safetensors"] {
        assert!(
            tensors(&reference.join(name)) == tensors(&killed.join(name)),
            "{name} differs from the uninterrupted run's"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(&killed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "stale temporary files: {leftovers:?}");
    std::fs::remove_dir_all(&base).ok();
}
