//! Data-parallel training on in-process groups: steps of the face network on 2 members
//! (one device each) equal the same steps on one member with the global batch, and the
//! members stay bit-identical.

mod common;

use centerloss::data::{Augment, Dataset, Shard};
use centerloss::nn::{fit, member_images, FitOptions, Group, Network, NetworkSpec, SgdConfig, TrainConfig};
use centerloss::{checkpoint, CenterLossConfig, Error, GpuContext, UpdateMode};
use common::{gpu, labels, rel_err, rng, run_group, uniform};

const SHARD: usize = 4;
const CLASSES: usize = 10;

fn spec() -> NetworkSpec {
    NetworkSpec::face_resnet(1, 32, 16, CLASSES)
}

/// Deterministic mode also clips the gradients (far below their norm, so every step is
/// clipped): the clip must see the global batch's gradients, after the all-reduce.
fn config(batch: usize, update: UpdateMode) -> TrainConfig {
    let clip = (update == UpdateMode::Deterministic).then_some(1e-2);
    let sgd = SgdConfig { clip_grad_norm: clip, ..Default::default() };
    let center = CenterLossConfig { lambda: 0.1, alpha: 0.5, update, ..Default::default() };
    TrainConfig { batch, sgd, center, seed: 11, ..Default::default() }
}

/// `steps` global batches of 2 * SHARD images, augmented (flip + crop) as one batch.
fn batches(steps: usize) -> Vec<(Vec<f32>, Vec<u32>)> {
    let mut r = rng(77);
    let shape = [1, 32, 32];
    let augment = Augment { flip: true, crop_pad: 2 };
    (0..steps)
        .map(|_| {
            let mut x = uniform(&mut r, 2 * SHARD * 32 * 32, 1.0);
            augment.apply(&mut x, shape, &mut r);
            (x, labels(&mut r, 2 * SHARD, CLASSES))
        })
        .collect()
}

/// Each member's own device, made once per test binary (pipelines are cached per device,
/// so later networks on it build fast).
fn member_context(rank: usize) -> GpuContext {
    static CONTEXTS: std::sync::OnceLock<Vec<GpuContext>> = std::sync::OnceLock::new();
    CONTEXTS.get_or_init(|| (0..2).map(|_| GpuContext::new().unwrap()).collect())[rank].clone()
}

fn flat(values: Vec<Vec<f32>>) -> Vec<f32> {
    values.into_iter().flatten().collect()
}

#[test]
fn two_members_train_like_one_with_the_global_batch() {
    let Some(ctx) = gpu() else { return };
    let steps = 5;
    let data = batches(steps);
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let mut single = Network::new(&ctx, spec(), config(2 * SHARD, update)).unwrap();
        let mut single_metrics = Vec::new();
        for (x, y) in &data {
            single_metrics.push(single.train_step(x, y, true).unwrap().unwrap());
        }
        let results = run_group(2, |rank, member| {
            let mut net = Network::new(&member_context(rank), spec(), config(SHARD, update)).unwrap();
            let pixels = 32 * 32;
            let rows = rank * SHARD..(rank + 1) * SHARD;
            let mut metrics = Vec::new();
            for (x, y) in &data {
                let shard = &x[rows.start * pixels..rows.end * pixels];
                let m = net.train_step_collective(shard, &y[rows.clone()], &member, true).unwrap();
                metrics.push(m.unwrap());
            }
            let centers = net.center_loss().unwrap().centers().unwrap();
            (flat(net.param_values().unwrap()), centers, metrics, net.step_count())
        });
        let (weights, centers, metrics, count) = &results[0];
        assert_eq!(*count, steps as u64);
        assert_eq!(weights, &results[1].0, "{update:?}: members' weights differ");
        assert_eq!(centers, &results[1].1, "{update:?}: members' centers differ");
        let reference = flat(single.param_values().unwrap());
        let reference: Vec<f64> = reference.iter().map(|&v| v as f64).collect();
        let err = rel_err(weights, &reference);
        assert!(err < 1e-4, "{update:?}: weights vs one member with the global batch: {err}");
        let single_centers: Vec<f64> =
            single.center_loss().unwrap().centers().unwrap().iter().map(|&v| v as f64).collect();
        assert!(rel_err(centers, &single_centers) < 1e-4, "{update:?}: centers");
        for (step, (a, b)) in metrics.iter().zip(&single_metrics).enumerate() {
            let (got, want) =
                ([a.softmax_loss, a.center_loss, a.accuracy], [b.softmax_loss, b.center_loss, b.accuracy]);
            let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
            assert!(rel_err(&got, &want) < 1e-4, "{update:?} step {step}: metrics {got:?} vs {want:?}");
        }
    }
}

#[test]
fn a_bad_shard_fails_every_member_before_anything_changes() {
    let Some(_) = gpu() else { return };
    let results = run_group(2, |rank, member| {
        let mut net = Network::new(&member_context(rank), spec(), config(SHARD, UpdateMode::Atomic)).unwrap();
        let before = flat(net.param_values().unwrap());
        let mut x = vec![0.5; SHARD * 32 * 32];
        if rank == 1 {
            x[3] = f32::INFINITY;
        }
        let result = net.train_step_collective(&x, &[0, 1, 2, 3], &member, true);
        (result.map(|_| ()), before == flat(net.param_values().unwrap()), net.step_count())
    });
    for (rank, (result, unchanged, count)) in results.iter().enumerate() {
        assert!(
            matches!(result, Err(Error::Rank { rank: 1, source }) if matches!(**source, Error::NonFinite { what: "images", .. })),
            "rank {rank}: {result:?}"
        );
        assert!(*unchanged && *count == 0, "rank {rank}: the refused step changed the network");
    }
}

#[test]
fn fit_on_two_members_equals_fit_with_the_global_batch() {
    let Some(ctx) = gpu() else { return };
    let mut r = rng(90);
    let data =
        Dataset { shape: [1, 32, 32], images: uniform(&mut r, 40 * 32 * 32, 1.0), labels: labels(&mut r, 40, CLASSES) };
    let opts = FitOptions {
        steps: 6,
        augment: Augment { flip: true, crop_pad: 2 },
        seed: 5,
        report_every: 1,
        progress: false,
        ..Default::default()
    };
    let mut single = Network::new(&ctx, spec(), config(2 * SHARD, UpdateMode::Deterministic)).unwrap();
    let single_report = fit(&mut single, &data, &opts, Group::Solo, None).unwrap();
    // Member 1 holds only the images its rows use (an MPI rank's share); member 0 all.
    let own = Shard::of(&data, member_images(data.len(), SHARD, 1, 2, opts.seed).unwrap()).unwrap();
    assert!(own.data.len() <= data.len() / 2 + 2, "a share, not the set: {} images", own.data.len());
    let results = run_group(2, |rank, member| {
        let mut net = Network::new(&member_context(rank), spec(), config(SHARD, UpdateMode::Deterministic)).unwrap();
        let report = match rank {
            0 => fit(&mut net, &data, &opts, Group::Member(&member), None).unwrap(),
            _ => fit(&mut net, &own, &opts, Group::Member(&member), None).unwrap(),
        };
        (flat(net.param_values().unwrap()), report)
    });
    assert_eq!(results[0].0, results[1].0, "members' weights differ");
    let reference: Vec<f64> = flat(single.param_values().unwrap()).iter().map(|&v| v as f64).collect();
    let err = rel_err(&results[0].0, &reference);
    assert!(err < 1e-4, "weights vs fit with the global batch: {err}");
    let losses = |h: &[(u64, centerloss::nn::StepMetrics)]| h.iter().map(|(_, m)| m.softmax_loss).collect::<Vec<_>>();
    let want: Vec<f64> = losses(&single_report.history).iter().map(|&v| v as f64).collect();
    assert!(rel_err(&losses(&results[0].1.history), &want) < 1e-4, "loss history differs");
}

#[test]
fn a_checkpoint_from_two_members_resumes_on_one_and_back() {
    let Some(ctx) = gpu() else { return };
    let mut r = rng(91);
    let data =
        Dataset { shape: [1, 32, 32], images: uniform(&mut r, 40 * 32 * 32, 1.0), labels: labels(&mut r, 40, CLASSES) };
    let opts = |steps| FitOptions {
        steps,
        augment: Augment { flip: true, crop_pad: 2 },
        seed: 8,
        progress: false,
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("centerloss-dp-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (half, whole) = (dir.join("half.safetensors"), dir.join("whole.safetensors"));
    let update = UpdateMode::Deterministic;
    // Uninterrupted: 6 steps on one device with the global batch.
    let mut reference = Network::new(&ctx, spec(), config(2 * SHARD, update)).unwrap();
    fit(&mut reference, &data, &opts(6), Group::Solo, None).unwrap();
    // Two members for 3 steps, then one device from their checkpoint to step 6.
    let on_two = |steps: u64, from: Option<&std::path::Path>, to: &std::path::Path| {
        run_group(2, |rank, member| {
            let mut net = Network::new(&member_context(rank), spec(), config(SHARD, update)).unwrap();
            if let Some(path) = from {
                checkpoint::load(&mut net, path).unwrap();
            }
            fit(&mut net, &data, &opts(steps), Group::Member(&member), None).unwrap();
            if rank == 0 {
                checkpoint::save(&net, to).unwrap();
            }
        });
    };
    on_two(3, None, &half);
    let mut one = Network::new(&ctx, spec(), config(2 * SHARD, update)).unwrap();
    checkpoint::load(&mut one, &half).unwrap();
    assert_eq!(one.step_count(), 3);
    fit(&mut one, &data, &opts(6), Group::Solo, None).unwrap();
    let want: Vec<f64> = flat(reference.param_values().unwrap()).iter().map(|&v| v as f64).collect();
    let err = rel_err(&flat(one.param_values().unwrap()), &want);
    assert!(err < 1e-4, "2 members then 1 device vs 1 device throughout: {err}");
    // And back: one device for 3 steps, two members to step 6.
    let mut first = Network::new(&ctx, spec(), config(2 * SHARD, update)).unwrap();
    fit(&mut first, &data, &opts(3), Group::Solo, None).unwrap();
    checkpoint::save(&first, &half).unwrap();
    on_two(6, Some(&half), &whole);
    let mut back = Network::new(&ctx, spec(), config(2 * SHARD, update)).unwrap();
    checkpoint::load(&mut back, &whole).unwrap();
    let err = rel_err(&flat(back.param_values().unwrap()), &want);
    assert!(err < 1e-4, "1 device then 2 members vs 1 device throughout: {err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_shard_without_the_images_its_rows_need_is_an_error() {
    let Some(ctx) = gpu() else { return };
    let mut r = rng(91);
    let data =
        Dataset { shape: [1, 32, 32], images: uniform(&mut r, 40 * 32 * 32, 1.0), labels: labels(&mut r, 40, CLASSES) };
    let part = Shard::of(&data, (0..20).collect()).unwrap();
    let member = centerloss::collective::ThreadGroup::new(1).pop().unwrap();
    let mut net = Network::new(&ctx, spec(), config(2 * SHARD, UpdateMode::Atomic)).unwrap();
    let opts = FitOptions { steps: 2, progress: false, ..Default::default() };
    let err = fit(&mut net, &part, &opts, Group::Member(&member), None).unwrap_err();
    assert!(matches!(&err, Error::Data(m) if m.contains("shard lacks")), "{err}");
    assert_eq!(net.step_count(), 0);
}
