//! Whole-network tests: finite-difference gradients through softmax + center loss, a
//! training run on a generated learnable problem, and checkpoints.

mod common;

use centerloss::gpu::{KernelChoice, Tiling};
use centerloss::nn::{
    reference as cpu, CenterFeatures, GemmTiles, Head, LayerSpec, MultiStep, Network, NetworkSpec, SgdConfig,
    TrainConfig, WeightInit,
};
use centerloss::{checkpoint, CenterLossConfig, Error, GpuContext, UpdateMode};
use common::{f64s, gpu, rng, uniform};
use rand::Rng;

/// Center loss with weight `lambda` and deterministic center updates.
fn deterministic(lambda: f32) -> CenterLossConfig {
    CenterLossConfig { lambda, update: UpdateMode::Deterministic, ..Default::default() }
}

fn small_spec() -> NetworkSpec {
    NetworkSpec {
        input: [2, 6, 6],
        trunk: vec![
            LayerSpec::conv(3, 3, 1, 1),
            LayerSpec::prelu(),
            LayerSpec::MaxPool { kernel: 2, stride: 2 },
            LayerSpec::Residual { body: vec![LayerSpec::conv(3, 3, 1, 1), LayerSpec::prelu()], shortcut: vec![] },
            LayerSpec::Linear { out_features: 4, bias: true },
            LayerSpec::PRelu { shared: true },
        ],
        num_classes: 3,
        classifier_bias: true,
        init: WeightInit::HeNormal,
        head: Head::linear(),
    }
}

/// Every parameter's gradient of softmax + lambda * center loss, checked against central
/// finite differences of the loss the GPU computes.
#[test]
fn finite_difference_gradient_check() {
    let Some(ctx) = gpu() else { return };
    let cfg = TrainConfig { batch: 4, center: deterministic(0.5), seed: 3, ..Default::default() };
    check_gradients(&ctx, small_spec(), cfg);
}

/// The same check through margin heads: ArcFace with center loss on the raw embedding,
/// CosFace with center loss on the normalised one, and a combined margin alone.
#[test]
fn finite_difference_gradient_check_through_margin_heads() {
    let Some(ctx) = gpu() else { return };
    let margin = |head| NetworkSpec { head, classifier_bias: false, ..small_spec() };
    let cases = [
        (Head::arcface(4.0, 0.5), CenterFeatures::Raw, 0.5),
        (Head::cosface(4.0, 0.35), CenterFeatures::Normalized, 0.5),
        (Head { m2: 0.3, m3: 0.2, ..Head::normalized(3.0) }, CenterFeatures::Raw, 0.0),
    ];
    for (head, center_features, lambda) in cases {
        let cfg =
            TrainConfig { batch: 4, center: deterministic(lambda), center_features, seed: 3, ..Default::default() };
        check_gradients(&ctx, margin(head), cfg);
    }
}

fn check_gradients(ctx: &GpuContext, spec: NetworkSpec, cfg: TrainConfig) {
    let lambda = cfg.center.lambda;
    let mut net = Network::new(ctx, spec, cfg).unwrap();
    let mut r = rng(1);
    let images = uniform(&mut r, 4 * 72, 1.0);
    let labels = vec![0, 1, 2, 1];
    // Centers away from zero, so the center term's gradient is not the embedding itself.
    // (A step moves them; gradients are then taken without further updates.)
    net.train_step(&images, &labels, false).unwrap();
    // Then every parameter moved at random, so that the zero-initialised residual body does
    // not keep all its PReLU inputs within a step of the kink at 0.
    for (pi, v) in net.param_values().unwrap().iter().enumerate() {
        let moved: Vec<f32> = v.iter().zip(uniform(&mut r, v.len(), 0.2)).map(|(a, b)| a + b).collect();
        net.set_param(pi, &moved).unwrap();
    }
    let analytic = net.gradients(&images, &labels).unwrap();
    let values = net.param_values().unwrap();
    // Central differences on a loss that is only piecewise smooth (PReLU and max-pool kinks).
    // A coordinate counts only where the estimate has converged: the central differences at
    // eps and eps/2 agree, and at eps/2 the one-sided slopes agree; otherwise smaller steps
    // are tried and, failing those, the coordinate is skipped.
    let (mut num, mut ana) = (Vec::new(), Vec::new());
    let loss_at = |net: &mut Network, pi: usize, w: &[f32]| {
        net.set_param(pi, w).unwrap();
        net.evaluate_loss(&images, &labels).unwrap().total_loss() as f64
    };
    let agree = |a: f64, b: f64| (a - b).abs() <= 0.02 * a.abs().max(b.abs()) + 1e-3;
    // Rarely a small parameter (a bias that moves a whole channel) has every sampled
    // coordinate next to a kink; one such parameter may be left out, never two.
    let mut skipped = Vec::new();
    for (pi, v) in values.iter().enumerate() {
        let mut checked = 0;
        for _ in 0..12 {
            if checked == 3 {
                break;
            }
            let j = r.random_range(0..v.len());
            let mut w = v.clone();
            let center = loss_at(&mut net, pi, &w);
            // (forward, backward, central) slopes at step eps.
            let mut slopes = |eps: f32| {
                w[j] = v[j] + eps;
                let plus = loss_at(&mut net, pi, &w);
                w[j] = v[j] - eps;
                let minus = loss_at(&mut net, pi, &w);
                w[j] = v[j];
                let e = eps as f64;
                ((plus - center) / e, (center - minus) / e, (plus - minus) / (2.0 * e))
            };
            for eps in [2e-3f32, 1e-3, 5e-4] {
                let (_, _, wide) = slopes(eps);
                let (fwd, bwd, narrow) = slopes(eps / 2.0);
                // One-sided slopes differ by curvature too: the looser tolerance of a kink test.
                if agree(wide, narrow) && (fwd - bwd).abs() <= 0.05 * fwd.abs().max(bwd.abs()) + 2e-3 {
                    num.push(narrow);
                    ana.push(analytic[pi][j]);
                    checked += 1;
                    break;
                }
            }
            net.set_param(pi, v).unwrap();
        }
        if checked == 0 {
            skipped.push(pi);
            continue;
        }
        // Each parameter on its own, so that one wrong kernel cannot hide among the others.
        let first = num.len() - checked;
        let (n, a): (Vec<f64>, Vec<f32>) = (num[first..].to_vec(), ana[first..].to_vec());
        let scale = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt().max(1e-2);
        let diff = n.iter().zip(&a).map(|(x, &y)| (x - y as f64).powi(2)).sum::<f64>().sqrt();
        assert!(diff / scale < 5e-2, "parameter {pi}: numeric {n:?} analytic {a:?}");
    }
    assert!(skipped.len() <= 1, "parameters {skipped:?}: every sampled coordinate sat on a kink");
    let m = net.evaluate_loss(&images, &labels).unwrap();
    assert!((m.center_loss > 0.0) == (lambda > 0.0) && m.softmax_loss > 0.0, "{m:?}");
    let err = common::rel_err(&ana, &num);
    assert!(err < 2e-2, "gradient check: rel err {err}\nnumeric {num:?}\nanalytic {ana:?}");
}

/// Gradient-norm clipping: with the clip above the gradients' norm a step is bit-identical
/// to one without clipping; below it, the first step is w - lr (s g + decay w) with
/// s = clip / norm (the momentum starts at zero), checked in f64.
#[test]
fn gradient_clipping_scales_the_step_to_the_clip() {
    let Some(ctx) = gpu() else { return };
    let config = |clip: Option<f32>| TrainConfig {
        batch: 4,
        center: deterministic(0.5),
        seed: 3,
        sgd: SgdConfig { lr: 0.1, clip_grad_norm: clip, ..Default::default() },
        ..Default::default()
    };
    let mut r = rng(2);
    let images = uniform(&mut r, 4 * 72, 1.0);
    let labels = vec![2, 0, 1, 1];
    let mut plain = Network::new(&ctx, small_spec(), config(None)).unwrap();
    let start = plain.param_values().unwrap();
    let grads = plain.gradients(&images, &labels).unwrap();
    let norm = grads.iter().flatten().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
    assert!(norm > 0.0);
    plain.train_step(&images, &labels, false).unwrap();
    let mut loose = Network::new(&ctx, small_spec(), config(Some((1.01 * norm) as f32))).unwrap();
    loose.train_step(&images, &labels, false).unwrap();
    assert_eq!(loose.param_values().unwrap(), plain.param_values().unwrap(), "a clip above the norm changed the step");

    let clip = 0.25 * norm;
    let mut tight = Network::new(&ctx, small_spec(), config(Some(clip as f32))).unwrap();
    assert_eq!(tight.param_values().unwrap(), start);
    tight.train_step(&images, &labels, false).unwrap();
    // The steps themselves are compared (the weights would hide an error in a small step).
    let sgd = &tight.train_config().sgd;
    let after = tight.param_values().unwrap();
    let (mut got, mut want, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for (i, p) in tight.graph().params().iter().enumerate() {
        let decay = sgd.decay_for(p.kind) as f64;
        for j in 0..p.len {
            let (w, g) = (start[i][j] as f64, grads[i][j] as f64);
            got.push(after[i][j] - start[i][j]);
            want.push(-0.1 * (clip / norm * g + decay * w));
            full.push(-0.1 * (g + decay * w));
        }
    }
    let err = common::rel_err(&got, &want);
    assert!(err < 1e-4, "clipped step vs f64: rel err {err}");
    assert!(common::rel_err(&got, &full) > 0.5, "the step was not clipped");
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = Network::new(&ctx, small_spec(), config(Some(bad))).err().unwrap().to_string();
        assert!(err.contains("gradient-norm clip"), "{err}");
    }
}

/// One SGD step over the parameter arena is w - lr (g + decay w) for every parameter, with
/// its kind's decay (weights, biases and slopes each their own here; checked in f64 from
/// random starting values, so a bias's decay shows), on networks whose arena is one page
/// (the spec's own size, [`NetworkSpec::arena_values`]) and, on an adapter whose storage
/// bindings stop at 256 MiB or less (lavapipe: 128 MiB), on one whose parameters outgrow a
/// binding and span two pages.
#[test]
fn an_sgd_step_updates_the_whole_arena_with_each_kinds_decay() {
    let Some(ctx) = gpu() else { return };
    let sgd = SgdConfig {
        lr: 1.0,
        momentum: 0.9,
        weight_decay: 0.1,
        decay_mult_weight: 1.0,
        decay_mult_bias: 3.0,
        decay_mult_slope: 7.0,
        ..Default::default()
    };
    let mut r = rng(21);
    let mut check = |spec: NetworkSpec, batch: usize, pages: usize| {
        let cfg = TrainConfig { batch, center: deterministic(0.0), seed: 5, sgd: sgd.clone(), ..Default::default() };
        let mut net = Network::new(&ctx, spec.clone(), cfg).unwrap();
        let arena = net.graph().param_pages();
        assert_eq!(arena.len(), pages, "pages of the arena");
        if pages == 1 {
            assert_eq!(arena[0].used, spec.arena_values(), "the arena is the spec's size");
        }
        for i in 0..net.graph().params().len() {
            let values = uniform(&mut r, net.graph().params()[i].len, 0.5);
            net.set_param(i, &values).unwrap();
        }
        let images = uniform(&mut r, batch * spec.input.iter().product::<usize>(), 1.0);
        let labels: Vec<u32> = (0..batch).map(|i| (i % spec.num_classes) as u32).collect();
        let start = net.param_values().unwrap();
        let grads = net.gradients(&images, &labels).unwrap();
        net.train_step(&images, &labels, false).unwrap();
        let after = net.param_values().unwrap();
        for (i, p) in net.graph().params().iter().enumerate() {
            let decay = sgd.decay_for(p.kind) as f64;
            let got: Vec<f32> = after[i].iter().zip(&start[i]).map(|(a, s)| a - s).collect();
            let want: Vec<f64> =
                start[i].iter().zip(&grads[i]).map(|(&w, &g)| -(g as f64 + decay * w as f64)).collect();
            let err = common::rel_err(&got, &want);
            assert!(err < 1e-5, "{} ({:?}, page {}): step vs f64, rel err {err}", p.name, p.kind, p.page);
        }
    };
    check(small_spec(), 4, 1);
    check(NetworkSpec::lenet_plus_plus(), 2, 1);
    // Two linear layers of n (n + 1) and (n + 1)^2 weights: together over one binding.
    let max_values = ctx.limits().max_storage_buffer_binding_size / 4;
    if max_values > 1 << 26 {
        eprintln!("skipping the two-page network: this adapter binds {max_values} values at once");
        return;
    }
    let n = ((max_values / 2) as f64).sqrt().ceil() as usize;
    let wide = NetworkSpec {
        input: [n, 1, 1],
        trunk: vec![
            LayerSpec::Linear { out_features: n + 1, bias: true },
            LayerSpec::PRelu { shared: false },
            LayerSpec::Linear { out_features: n + 1, bias: true },
        ],
        num_classes: 3,
        classifier_bias: true,
        init: WeightInit::HeNormal,
        head: Head::linear(),
    };
    check(wide, 2, 2);
}

/// A parameter larger than one storage binding is a config error that names it (on an
/// adapter whose bindings stop at 256 MiB or less: lavapipe's 128 MiB).
#[test]
fn a_parameter_over_the_binding_limit_is_a_config_error() {
    let Some(ctx) = gpu() else { return };
    let max_values = (ctx.limits().max_storage_buffer_binding_size / 4) as usize;
    if max_values > 1 << 26 {
        eprintln!("skipped: this adapter binds {max_values} values at once");
        return;
    }
    let spec = NetworkSpec {
        input: [4096, 1, 1],
        trunk: vec![LayerSpec::Linear { out_features: max_values / 4096 + 1, bias: false }],
        num_classes: 2,
        classifier_bias: false,
        init: WeightInit::HeNormal,
        head: Head::linear(),
    };
    let cfg = TrainConfig { batch: 1, center: deterministic(0.0), ..Default::default() };
    let err = Network::new(&ctx, spec, cfg).err().expect("a parameter over the binding limit");
    // Refused before anything is allocated (NetworkSpec::footprint), naming the layer and its weights.
    let text = err.to_string();
    assert!(
        matches!(err, Error::Config(_))
            && text.contains("layer trunk.0 (linear -> ")
            && text.contains("its weights take"),
        "{text}"
    );
}

/// Four classes of 8x8 images, each a bright square in its own quadrant plus noise.
fn quadrant_data(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = rng(seed);
    let mut images = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class: u32 = r.random_range(0..4);
        let (qy, qx) = ((class / 2) as usize * 4, (class % 2) as usize * 4);
        for y in 0..8 {
            for x in 0..8 {
                let inside = (qy..qy + 4).contains(&y) && (qx..qx + 4).contains(&x);
                images.push(if inside { 1.0 } else { 0.0 } + r.random_range(-0.4..0.4));
            }
        }
        labels.push(class);
    }
    (images, labels)
}

/// Batch `i` of 32 images and labels from [`quadrant_data`]'s arrays.
fn quadrant_batch<'a>(x: &'a [f32], y: &'a [u32], i: usize) -> (&'a [f32], &'a [u32]) {
    (&x[i * 32 * 64..(i + 1) * 32 * 64], &y[i * 32..(i + 1) * 32])
}

fn quadrant_net(ctx: &GpuContext, update: UpdateMode) -> Network {
    let spec = NetworkSpec {
        input: [1, 8, 8],
        trunk: vec![
            LayerSpec::conv(8, 3, 1, 1),
            LayerSpec::prelu(),
            LayerSpec::MaxPool { kernel: 2, stride: 2 },
            LayerSpec::Linear { out_features: 8, bias: true },
            LayerSpec::prelu(),
        ],
        num_classes: 4,
        classifier_bias: true,
        init: WeightInit::HeNormal,
        head: Head::linear(),
    };
    let sgd = SgdConfig {
        lr: 0.05,
        schedule: MultiStep { milestones: vec![60], ..Default::default() },
        ..Default::default()
    };
    let cfg = TrainConfig {
        batch: 32,
        sgd,
        center: CenterLossConfig { lambda: 0.01, alpha: 0.5, update, ..Default::default() },
        seed: 11,
        ..Default::default()
    };
    Network::new(ctx, spec, cfg).unwrap()
}

#[test]
fn trains_to_high_accuracy_on_a_learnable_problem() {
    let Some(ctx) = gpu() else { return };
    let mut net = quadrant_net(&ctx, UpdateMode::Atomic);
    let (train_x, train_y) = quadrant_data(32 * 80, 5);
    let mut first = None;
    let mut last = None;
    for step in 0..80 {
        let (x, y) = quadrant_batch(&train_x, &train_y, step);
        let m = net.train_step(x, y, step % 10 == 0 || step == 79).unwrap();
        if first.is_none() {
            first = m;
        }
        last = m.or(last);
    }
    assert!((net.learning_rate() - 0.005).abs() < 1e-7, "schedule did not drop the rate");
    let (first, last) = (first.unwrap(), last.unwrap());
    assert!(last.total_loss() < 0.5 * first.total_loss(), "{first:?} -> {last:?}");
    let (test_x, test_y) = quadrant_data(200, 6);
    let out = net.infer(&test_x).unwrap();
    assert_eq!(out.embeddings.len(), 200 * 8);
    let acc = out.predictions(4).iter().zip(&test_y).filter(|(p, y)| p == y).count() as f64 / 200.0;
    assert!(acc >= 0.95, "held-out accuracy {acc}");
}

#[test]
fn bad_batches_are_errors() {
    let Some(ctx) = gpu() else { return };
    let mut net = quadrant_net(&ctx, UpdateMode::Atomic);
    let (x, mut y) = quadrant_data(32, 7);
    assert!(matches!(net.train_step(&x[1..], &y, false), Err(Error::Shape { .. })));
    y[3] = 4;
    assert!(matches!(net.train_step(&x, &y, false), Err(Error::LabelOutOfRange { index: 3, .. })));
    let mut spec = small_spec();
    spec.trunk.insert(0, LayerSpec::conv(4, 9, 1, 0));
    let err = Network::new(&ctx, spec, TrainConfig::default()).err().unwrap().to_string();
    assert!(err.contains("trunk.0") && err.contains("smaller than the kernel"), "{err}");
}

#[test]
fn checkpoint_round_trip_and_exact_resume() {
    let Some(ctx) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("centerloss-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.safetensors");
    let (x, y) = quadrant_data(32 * 6, 8);
    let batch = |i: usize| quadrant_batch(&x, &y, i);

    // Six steps straight through...
    let mut straight = quadrant_net(&ctx, UpdateMode::Deterministic);
    for i in 0..6 {
        straight.train_step(batch(i).0, batch(i).1, false).unwrap();
    }
    // ... equal three steps, a checkpoint, a fresh network restored from it, three more.
    let mut first = quadrant_net(&ctx, UpdateMode::Deterministic);
    for i in 0..3 {
        first.train_step(batch(i).0, batch(i).1, false).unwrap();
    }
    checkpoint::save(&first, &path).unwrap();
    let mut resumed = quadrant_net(&ctx, UpdateMode::Deterministic);
    checkpoint::load(&mut resumed, &path).unwrap();
    assert_eq!(resumed.step_count(), 3);
    assert_eq!(resumed.param_values().unwrap(), first.param_values().unwrap());
    for i in 3..6 {
        resumed.train_step(batch(i).0, batch(i).1, false).unwrap();
    }
    assert_eq!(resumed.param_values().unwrap(), straight.param_values().unwrap(), "resume is not exact");
    let c = |n: &Network| n.center_loss().unwrap().centers().unwrap();
    assert_eq!(c(&resumed), c(&straight));

    // Other safetensors readers see the documented names.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("centers").unwrap().shape(), &[4, 8]);
    assert!(st.tensor("param/trunk.0.weight").is_ok() && st.tensor("velocity/trunk.0.weight").is_ok());

    // A truncated file and a different network are clear errors and change nothing.
    let before = resumed.param_values().unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load(&mut resumed, &truncated).unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    std::fs::write(&truncated, b"not a checkpoint at all").unwrap();
    assert!(matches!(checkpoint::load(&mut resumed, &truncated), Err(Error::Checkpoint { .. })));
    let mut other = Network::new(&ctx, small_spec(), TrainConfig { batch: 4, ..Default::default() }).unwrap();
    let err = checkpoint::load(&mut other, &path).unwrap_err();
    assert!(err.to_string().contains("different network"), "{err}");
    assert!(matches!(checkpoint::load(&mut resumed, &dir.join("missing")), Err(Error::Io { .. })));
    assert_eq!(resumed.param_values().unwrap(), before);

    // Atomic write: an unwritable target leaves the old checkpoint intact and no temp file.
    let blocker = dir.join("blocked");
    std::fs::create_dir_all(blocker.join("inner")).unwrap();
    assert!(checkpoint::save(&resumed, &blocker).is_err());
    checkpoint::save(&resumed, &path).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Warming the kernels up runs a whole step and takes it back: a warmed network, fresh or
/// restored mid-run (momenta and centers non-zero), trains bit for bit as one never warmed.
#[test]
fn warm_up_leaves_the_network_as_it_was() {
    let Some(ctx) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("centerloss-warm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (x, y) = quadrant_data(32 * 4, 9);
    let batch = |i: usize| quadrant_batch(&x, &y, i);
    let centers = |n: &Network| n.center_loss().unwrap().centers().unwrap();
    let same = |a: &Network, b: &Network| {
        assert_eq!(a.param_values().unwrap(), b.param_values().unwrap());
        assert_eq!(centers(a), centers(b));
        assert_eq!((a.step_count(), a.learning_rate()), (b.step_count(), b.learning_rate()));
    };
    let mut plain = quadrant_net(&ctx, UpdateMode::Deterministic);
    let mut warmed = quadrant_net(&ctx, UpdateMode::Deterministic);
    assert!(warmed.warm_up().unwrap() > 0.0);
    assert_eq!(warmed.warm_up().unwrap(), 0.0, "a warm network warms up again");
    same(&warmed, &plain);
    for i in 0..2 {
        plain.train_step(batch(i).0, batch(i).1, false).unwrap();
        warmed.train_step(batch(i).0, batch(i).1, false).unwrap();
    }
    same(&warmed, &plain);
    assert!(centers(&plain)[..8].iter().any(|&c| c != 0.0), "center 0 never moved");
    let path = dir.join("mid-run.safetensors");
    checkpoint::save(&plain, &path).unwrap();
    let mut restored = quadrant_net(&ctx, UpdateMode::Deterministic);
    checkpoint::load(&mut restored, &path).unwrap();
    assert!(restored.warm_up().unwrap() > 0.0);
    same(&restored, &plain);
    for i in 2..4 {
        plain.train_step(batch(i).0, batch(i).1, false).unwrap();
        restored.train_step(batch(i).0, batch(i).1, false).unwrap();
    }
    same(&restored, &plain);
    std::fs::remove_dir_all(&dir).ok();
}

/// The tuner measures each GEMM shape of a network once on a device, keeps the fastest
/// candidate in its cache file (which a new device on the same adapter reads instead of
/// measuring), and changes no bit of training.
#[test]
fn the_tuner_measures_each_shape_once_keeps_it_on_disk_and_changes_no_bits() {
    let Some(ctx) = gpu() else { return };
    let dir = std::env::temp_dir().join(format!("centerloss-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tuning.json");
    let tuned_device = || {
        let fresh = GpuContext::new().unwrap().with_kernels(KernelChoice::Cpu).with_tiling(Tiling::Tune);
        fresh.set_tuning_cache(Some(path.clone())).unwrap();
        fresh
    };
    let tuned = tuned_device();
    let mut a = quadrant_net(&tuned, UpdateMode::Deterministic);
    let tuner = tuned.tuner().unwrap();
    let (measured, choices) = (tuner.measured(), tuner.choices());
    assert!(measured >= 3 && measured == choices.len(), "{measured} measured, {} choices", choices.len());
    let candidates = GemmTiles::candidates(tuned.kernels());
    for (key, c) in &choices {
        assert_eq!(c.micros.len(), candidates.len(), "{key}");
        assert_eq!(c.label, candidates[c.index].label(), "{key}");
        assert!(c.micros.iter().all(|t| t.is_finite() && *t > 0.0), "{key}: {:?}", c.micros);
    }
    quadrant_net(&tuned, UpdateMode::Deterministic);
    assert_eq!(tuner.measured(), measured, "a second network of the same shapes was measured again");
    let again = tuned_device();
    quadrant_net(&again, UpdateMode::Deterministic);
    let picks = |c: &std::collections::BTreeMap<String, centerloss::gpu::TunedChoice>| -> Vec<(String, usize)> {
        c.iter().map(|(k, v)| (k.clone(), v.index)).collect()
    };
    assert_eq!(again.tuner().unwrap().measured(), 0, "the cache file was not read");
    assert_eq!(picks(&again.tuner().unwrap().choices()), picks(&choices));

    let mut b =
        quadrant_net(&ctx.with_kernels(KernelChoice::Cpu).with_tiling(Tiling::Fixed), UpdateMode::Deterministic);
    let (x, y) = quadrant_data(32 * 3, 12);
    for i in 0..3 {
        let (xi, yi) = quadrant_batch(&x, &y, i);
        a.train_step(xi, yi, false).unwrap();
        b.train_step(xi, yi, false).unwrap();
    }
    assert_eq!(a.param_values().unwrap(), b.param_values().unwrap());
    // Both networks record the configuration of each GEMM dispatch, the same shapes in the
    // same order; the fixed one the fixed rule's, and a checkpoint carries them.
    let (tuned_tiles, fixed_tiles) = (a.graph().gemm_tiles(), b.graph().gemm_tiles());
    let split = |t: &String| t.split_once(": ").map(|(s, l)| (s.to_string(), l.to_string())).unwrap();
    assert!(fixed_tiles.len() >= 3 && tuned_tiles.len() == fixed_tiles.len());
    for (t, f) in tuned_tiles.iter().zip(&fixed_tiles) {
        let ((tuned_shape, tuned_label), (shape, label)) = (split(t), split(f));
        assert_eq!(tuned_shape, shape);
        assert!(candidates.iter().any(|c| c.label() == tuned_label), "{t}");
        let m: usize = shape.split([' ', 'x']).nth(1).unwrap().parse().unwrap();
        assert_eq!(label, candidates[GemmTiles::fixed(b.graph().context().kernels(), m)].label(), "{f}");
    }
    assert!(a.graph().gemm_tiles_summary().starts_with("tuned: "), "{}", a.graph().gemm_tiles_summary());
    assert!(b.graph().gemm_tiles_summary().starts_with("fixed rule: "), "{}", b.graph().gemm_tiles_summary());
    // The summary counts every dispatch once: "how: label x count; label x count".
    for (net, tiles) in [(&a, &tuned_tiles), (&b, &fixed_tiles)] {
        let summary = net.graph().gemm_tiles_summary();
        let (_, each) = summary.split_once(": ").unwrap();
        let counted: usize = each.split("; ").map(|e| e.rsplit_once(" x ").unwrap().1.parse::<usize>().unwrap()).sum();
        assert_eq!(counted, tiles.len(), "{summary}");
    }
    let saved = dir.join("fixed.safetensors");
    checkpoint::save(&b, &saved).unwrap();
    assert!(checkpoint::metadata(&saved).unwrap()[checkpoint::GEMM_TILES].ends_with(&fixed_tiles.join("\n")));
    std::fs::remove_dir_all(&dir).ok();
}

/// The trunk's first weights follow the spec's initialisation: LeNet++ draws U(±1/√fan_in)
/// (PyTorch's default; He-normal diverges at its learning rate), the face network He-normal.
#[test]
fn weights_start_as_the_spec_says() {
    let Some(ctx) = gpu() else { return };
    let cfg = TrainConfig { batch: 2, seed: 3, ..Default::default() };
    let first = |spec: NetworkSpec| Network::new(&ctx, spec, cfg.clone()).unwrap().param_values().unwrap()[0].clone();
    let std = |w: &[f32]| (w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    let lenet = first(NetworkSpec::lenet_plus_plus());
    let bound = 1.0 / 25f64.sqrt(); // 1 channel, 5 x 5 taps
    assert!(lenet.iter().all(|&v| (v as f64).abs() <= bound + 1e-7));
    assert!((std(&lenet) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.1, "std {}", std(&lenet));
    let face = first(NetworkSpec::face_resnet(1, 32, 16, 5));
    assert!((std(&face) / (2.0f64 / 25.0).sqrt() - 1.0).abs() < 0.15, "std {}", std(&face));
}

#[test]
fn the_papers_network_builds_and_trains_at_112_by_96() {
    let Some(ctx) = gpu() else { return };
    let spec = NetworkSpec::face_resnet_paper(3, [112, 96], 512, 10);
    let cfg = TrainConfig { batch: 2, seed: 4, ..Default::default() };
    let mut net = Network::new(&ctx, spec, cfg).unwrap();
    assert_eq!(net.embed_dim(), 512);
    let mut r = rng(112);
    let x = uniform(&mut r, 2 * 3 * 112 * 96, 1.0);
    for _ in 0..2 {
        let m = net.train_step(&x, &[3, 7], true).unwrap().unwrap();
        // Starting near ln 10, not at the thousands an unnormalised deep net can start at.
        assert!(m.softmax_loss.is_finite() && m.softmax_loss < 5.0, "{m:?}");
    }
    assert_eq!(net.infer(&x).unwrap().embeddings.len(), 2 * 512);
}

/// A margin head's logits, loss and gradients against the f64 twins composed by hand
/// (x -> L2 -> cos = x̂ Ŵᵀ with Ŵ the unit class rows -> margin cross-entropy, and back),
/// through an identity trunk, in both kernel families.
#[test]
fn a_margin_head_matches_the_f64_reference() {
    let Some(gpu_ctx) = gpu() else { return };
    let (b, d, k) = (6, 5, 70);
    for ctx in common::kernel_variants(&gpu_ctx) {
        for head in [Head::arcface(64.0, 0.5), Head::cosface(30.0, 0.35)] {
            let spec = NetworkSpec {
                input: [d, 1, 1],
                trunk: vec![LayerSpec::Linear { out_features: d, bias: false }],
                num_classes: k,
                classifier_bias: false,
                init: WeightInit::HeNormal,
                head,
            };
            let cfg = TrainConfig { batch: b, center: deterministic(0.0), ..Default::default() };
            let mut net = Network::new(&ctx, spec, cfg).unwrap();
            let identity: Vec<f32> = (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
            net.set_param(0, &identity).unwrap();
            let mut r = rng(7);
            let images = uniform(&mut r, b * d, 1.0);
            let labels = common::labels(&mut r, b, k);
            let w = f64s(&net.param_values().unwrap()[1]);
            let (xh, nx) = cpu::l2norm(&f64s(&images), d);
            let (wh, nw) = cpu::l2norm(&w, d);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let cos: Vec<f64> = (0..b * k).map(|i| dot(&xh[i / k * d..][..d], &wh[i % k * d..][..d])).collect();
            let (loss, dcos, accuracy) = cpu::margin_cross_entropy(&cos, &labels, k, &head);
            let dwh: Vec<f64> =
                (0..k * d).map(|i| (0..b).map(|n| dcos[n * k + i / d] * xh[n * d + i % d]).sum()).collect();
            let dw = cpu::l2norm_backward(&wh, &nw, &dwh, d);
            let dxh: Vec<f64> =
                (0..b * d).map(|i| (0..k).map(|c| dcos[i / d * k + c] * wh[c * d + i % d]).sum()).collect();
            let dx = cpu::l2norm_backward(&xh, &nx, &dxh, d);
            let dtrunk: Vec<f64> =
                (0..d * d).map(|i| (0..b).map(|n| dx[n * d + i / d] * images[n * d + i % d] as f64).sum()).collect();
            let what = format!("{:?} {head:?}", ctx.kernels());
            let logits = net.infer(&images).unwrap().logits;
            let scaled: Vec<f64> = cos.iter().map(|c| c * head.scale as f64).collect();
            assert!(common::rel_err(&logits, &scaled) < 1e-5, "{what}: logits");
            let m = net.evaluate_loss(&images, &labels).unwrap();
            assert!((m.softmax_loss as f64 - loss).abs() < 1e-5 * loss, "{what}: loss {} vs {loss}", m.softmax_loss);
            // The same count of right answers (an f32 k/6 is not the f64 k/6).
            assert_eq!((m.accuracy as f64 * b as f64).round(), (accuracy * b as f64).round(), "{what}: accuracy");
            let grads = net.gradients(&images, &labels).unwrap();
            let (err_w, err_trunk) = (common::rel_err(&grads[1], &dw), common::rel_err(&grads[0], &dtrunk));
            assert!(err_w < 1e-4 && err_trunk < 1e-4, "{what}: class weights {err_w}, trunk {err_trunk}");
        }
    }
}

/// Heads that cannot train are refused when the network is built, with a `Config` error.
#[test]
fn bad_heads_are_config_errors() {
    let Some(ctx) = gpu() else { return };
    let spec = |head, classifier_bias| NetworkSpec { head, classifier_bias, ..small_spec() };
    let cfg = TrainConfig { batch: 4, ..Default::default() };
    let arcface = Head::arcface(64.0, 0.5);
    let cases = [
        ("s = 0", spec(Head::arcface(0.0, 0.5), false), cfg.clone()),
        ("m2 = pi/2", spec(Head::arcface(64.0, std::f32::consts::FRAC_PI_2), false), cfg.clone()),
        ("margin without normalisation", spec(Head { m2: 0.5, ..Head::linear() }, true), cfg.clone()),
        ("bias on a normalised head", spec(arcface, true), cfg.clone()),
        (
            "center on normalised features of a linear head",
            spec(Head::linear(), true),
            TrainConfig { center_features: CenterFeatures::Normalized, ..cfg.clone() },
        ),
        ("lambda < 0", spec(arcface, false), TrainConfig { center: deterministic(-0.1), ..cfg }),
    ];
    for (what, spec, cfg) in cases {
        match Network::new(&ctx, spec, cfg) {
            Err(Error::Config(message)) => eprintln!("{what}: {message}"),
            Err(other) => panic!("{what}: {other}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}
