//! GPU center loss against the f64 CPU reference, on lavapipe in CI.

mod common;

use centerloss::cpu::CenterLossCpu;
use centerloss::{CenterLossConfig, GpuCenterLoss, GpuContext, Reduction, UpdateMode};
use common::{gpu, kernel_variants, labels, rel_err, rng, uniform};

const TOL: f64 = 1e-5;

/// The three ways the GPU can update centers.
#[derive(Clone, Copy, Debug)]
enum Variant {
    AtomicNative,
    AtomicCas,
    Deterministic,
}

const VARIANTS: [Variant; 3] = [Variant::AtomicNative, Variant::AtomicCas, Variant::Deterministic];

fn config(k: usize, d: usize, variant: Variant, reduction: Reduction) -> CenterLossConfig {
    CenterLossConfig {
        num_classes: k,
        feat_dim: d,
        alpha: 0.5,
        lambda: 0.7,
        reduction,
        update: match variant {
            Variant::Deterministic => UpdateMode::Deterministic,
            _ => UpdateMode::Atomic,
        },
        force_cas_atomics: matches!(variant, Variant::AtomicCas),
        ..Default::default()
    }
}

/// Runs `steps` steps of fresh batches on GPU and CPU from the same random centers and
/// compares loss, gradient and centers after each.
fn compare(
    cfg: CenterLossConfig,
    batch: usize,
    steps: usize,
    salt: u64,
    label_of: &dyn Fn(&mut rand::rngs::StdRng) -> Vec<u32>,
) {
    let Some(gpu_ctx) = gpu() else { return };
    for ctx in kernel_variants(&gpu_ctx) {
        compare_on(&ctx, cfg.clone(), batch, steps, salt, label_of);
    }
}

/// [`compare`] with one kernel family.
fn compare_on(
    ctx: &GpuContext,
    cfg: CenterLossConfig,
    batch: usize,
    steps: usize,
    salt: u64,
    label_of: &dyn Fn(&mut rand::rngs::StdRng) -> Vec<u32>,
) {
    let (k, d) = (cfg.num_classes, cfg.feat_dim);
    let mut rng = rng(salt);
    let mut gpu_cl = GpuCenterLoss::new(ctx, cfg.clone()).unwrap();
    let mut cpu_cl = CenterLossCpu::new(cfg.clone()).unwrap();
    let init = uniform(&mut rng, k * d, 1.0);
    gpu_cl.set_centers(&init).unwrap();
    cpu_cl.set_centers(&init).unwrap();
    for step in 0..steps {
        // The features drift, so the centers keep moving.
        let mut x = uniform(&mut rng, batch * d, 2.0);
        x.iter_mut().for_each(|v| *v += 0.05 * step as f32);
        let y = label_of(&mut rng);
        assert_eq!(y.len(), batch);
        let g = gpu_cl.step(&x, &y).unwrap();
        let c = cpu_cl.step(&x, &y).unwrap();
        let ctx_msg = format!("{cfg:?} B={batch} step {step} {:?} kernels", ctx.kernels());
        let loss_err = (g.loss as f64 - c.loss).abs() / c.loss.abs().max(1e-30);
        assert!(loss_err < TOL, "loss {} vs {} ({loss_err:e}) {ctx_msg}", g.loss, c.loss);
        let grad_err = rel_err(&g.grad, &c.grad);
        assert!(grad_err < TOL, "grad rel err {grad_err:e} {ctx_msg}");
        let centers = gpu_cl.centers().unwrap();
        let centers_err = rel_err(&centers, cpu_cl.centers());
        assert!(centers_err < TOL, "centers rel err {centers_err:e} {ctx_msg}");
        // The rows this batch touched alone, so a large table cannot hide an error.
        let mut touched: Vec<usize> = y.iter().map(|&l| l as usize).collect();
        touched.sort_unstable();
        touched.dedup();
        let rows = |c: &mut dyn Iterator<Item = usize>| c.flat_map(|r| r * d..(r + 1) * d).collect::<Vec<_>>();
        let idx = rows(&mut touched.iter().copied());
        let g_rows: Vec<f32> = idx.iter().map(|&i| centers[i]).collect();
        let c_rows: Vec<f64> = idx.iter().map(|&i| cpu_cl.centers()[i]).collect();
        let touched_err = rel_err(&g_rows, &c_rows);
        assert!(touched_err < TOL, "touched centers rel err {touched_err:e} {ctx_msg}");
        if std::env::var("CENTERLOSS_TEST_VERBOSE").is_ok() {
            eprintln!(
                "loss {loss_err:.1e} grad {grad_err:.1e} centers {centers_err:.1e} touched {touched_err:.1e} {ctx_msg}"
            );
        }
    }
}

fn random_labels(batch: usize, k: usize) -> impl Fn(&mut rand::rngs::StdRng) -> Vec<u32> {
    move |rng| labels(rng, batch, k)
}

#[test]
fn matches_cpu_on_awkward_shapes() {
    // (B, D, K): single sample, 1-D, prime and tile-straddling sizes, K = 1,
    // heavy duplicates (B >> K) and K >> B.
    // D divisible by 4 takes the vec4 kernels (in the CPU family the fused walk, whose rows
    // are split over walk lanes: 1 word, 9 words in one lane, 17 over 2, 128 over 8).
    let shapes = [
        (1, 1, 1),
        (1, 2, 3),
        (7, 3, 5),
        (33, 511, 10),
        (64, 512, 7),
        (257, 2, 1),
        (2048, 3, 4),
        (50, 16, 50_000),
        (300, 4, 3),
        (13, 36, 5),
        (19, 68, 1000),
    ];
    for (i, &(b, d, k)) in shapes.iter().enumerate() {
        for variant in VARIANTS {
            for reduction in [Reduction::Mean, Reduction::Sum] {
                compare(config(k, d, variant, reduction), b, 2, i as u64, &random_labels(b, k));
            }
        }
    }
}

#[test]
fn fifty_steps_with_drifting_centers() {
    for variant in VARIANTS {
        compare(config(10, 32, variant, Reduction::Mean), 96, 50, 100, &random_labels(96, 10));
    }
}

#[test]
fn center_table_split_over_many_buffers() {
    // 5 rows (of 3 floats padded to 4) per buffer: 23 classes over 5 buffers, labels
    // crossing every boundary; bound
    // one, two or (the default, where the adapter allows) four buffers per dispatch.
    // D = 3 and D = 4 (the vec4 kernels) both fill a padded row of 4 floats.
    for (variant, d) in VARIANTS.into_iter().flat_map(|v| [(v, 3), (v, 4)]) {
        for (bindings, passes) in [(Some(1), 5), (Some(2), 3), (None, 2)] {
            let cfg = CenterLossConfig {
                max_buffer_bytes: Some(4 * 4 * 5),
                center_bindings: bindings,
                ..config(23, d, variant, Reduction::Mean)
            };
            if let Some(ctx) = gpu() {
                let cl = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
                assert_eq!(cl.num_center_buffers(), 5);
                assert_eq!(cl.center_passes(), passes, "{variant:?} with {bindings:?} bindings");
            }
            compare(cfg, 41, 3, 200, &random_labels(41, 23));
        }
    }
}

#[test]
fn batch_needing_more_than_65535_workgroups() {
    // B*D = 16 793 600 elements = 65 600 workgroups of 256: the grid spills into y.
    let (b, d, k) = (32_800, 512, 300);
    for variant in [Variant::AtomicNative, Variant::Deterministic] {
        compare(config(k, d, variant, Reduction::Mean), b, 1, 300, &random_labels(b, k));
    }
}

#[test]
fn deterministic_mode_is_bit_identical_across_runs() {
    let Some(ctx) = gpu() else { return };
    let (b, d, k) = (1000, 24, 6);
    let cfg = config(k, d, Variant::Deterministic, Reduction::Mean);
    let mut rng = rng(400);
    let init = uniform(&mut rng, k * d, 1.0);
    let batches: Vec<(Vec<f32>, Vec<u32>)> =
        (0..5).map(|_| (uniform(&mut rng, b * d, 3.0), labels(&mut rng, b, k))).collect();
    let run = |ctx: &GpuContext| {
        let mut cl = GpuCenterLoss::new(ctx, cfg.clone()).unwrap();
        cl.set_centers(&init).unwrap();
        let outs: Vec<_> = batches.iter().map(|(x, y)| cl.step(x, y).unwrap()).collect();
        (outs, cl.centers().unwrap())
    };
    // Twice with each kernel family: bit for bit the same.
    let families = kernel_variants(&ctx);
    let runs: Vec<_> = families.iter().map(|family| (run(family), run(family))).collect();
    for ((out_a, centers_a), (out_b, centers_b)) in &runs {
        for (a, b) in out_a.iter().zip(out_b) {
            assert_eq!(a.loss.to_bits(), b.loss.to_bits());
            assert!(a.grad.iter().zip(&b.grad).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        assert!(centers_a.iter().zip(centers_b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    // Across families the gradient and the centers too (the CPU family's walk sums each
    // class's rows in the same order); the loss adds the same squares in another grouping.
    let ((gpu_out, gpu_centers), _) = &runs[0];
    let ((cpu_out, cpu_centers), _) = &runs[1];
    for (a, b) in gpu_out.iter().zip(cpu_out) {
        assert!(((a.loss - b.loss) / a.loss).abs() < 1e-6, "loss {} vs {}", a.loss, b.loss);
        assert!(a.grad.iter().zip(&b.grad).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    assert!(gpu_centers.iter().zip(cpu_centers).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// `step_async` then `wait` is `step`, bit for bit, while the caller draws its next batch
/// between them; a bad batch is an error before anything is submitted.
#[test]
fn an_async_step_equals_a_step() {
    let Some(ctx) = gpu() else { return };
    let (b, d, k) = (37, 20, 9);
    let cfg = config(k, d, Variant::Deterministic, Reduction::Mean);
    let mut r = rng(410);
    let init = uniform(&mut r, k * d, 1.0);
    let batch = |r: &mut rand::rngs::StdRng| (uniform(r, b * d, 2.0), labels(r, b, k));
    let module = || {
        let mut cl = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
        cl.set_centers(&init).unwrap();
        cl
    };
    let (mut sync, mut asynchronous) = (module(), module());
    let (mut r_sync, mut r_async) = (rng(411), rng(411));
    let mut next = batch(&mut r_async);
    for _ in 0..4 {
        let (x, y) = batch(&mut r_sync);
        let expected = sync.step(&x, &y).unwrap();
        let current = next;
        let pending = asynchronous.step_async(&current.0, &current.1).unwrap();
        next = batch(&mut r_async);
        let got = pending.wait().unwrap();
        assert_eq!(got.loss.to_bits(), expected.loss.to_bits());
        assert_eq!(got.grad.len(), b * d);
        assert!(got.grad.iter().zip(&expected.grad).all(|(a, e)| a.to_bits() == e.to_bits()));
    }
    assert_eq!(asynchronous.centers().unwrap(), sync.centers().unwrap());
    let before = asynchronous.centers().unwrap();
    let mut bad = next.1.clone();
    bad[5] = k as u32;
    let err = asynchronous.step_async(&next.0, &bad).err().unwrap();
    assert!(matches!(err, centerloss::Error::LabelOutOfRange { index: 5, .. }), "{err}");
    assert_eq!(asynchronous.centers().unwrap(), before);
}

#[test]
fn absent_classes_stay_bit_identical() {
    let Some(ctx) = gpu() else { return };
    let (b, d, k) = (64, 7, 40);
    for variant in VARIANTS {
        let mut rng = rng(500);
        let mut cl = GpuCenterLoss::new(&ctx, config(k, d, variant, Reduction::Mean)).unwrap();
        let init = uniform(&mut rng, k * d, 1.0);
        cl.set_centers(&init).unwrap();
        // Only even classes appear.
        let y: Vec<u32> = labels(&mut rng, b, k / 2).iter().map(|l| 2 * l).collect();
        cl.step(&uniform(&mut rng, b * d, 1.0), &y).unwrap();
        let after = cl.centers().unwrap();
        for class in (1..k).step_by(2) {
            let row = class * d..(class + 1) * d;
            assert!(
                after[row.clone()].iter().zip(&init[row]).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{variant:?}: absent class {class} moved"
            );
        }
        for &class in &y {
            let row = class as usize * d..(class as usize + 1) * d;
            assert_ne!(after[row.clone()], init[row], "{variant:?}: present class {class} did not move");
        }
    }
}

#[test]
fn loss_and_forward_leave_centers_alone() {
    let Some(ctx) = gpu() else { return };
    let (b, d, k) = (30, 5, 4);
    for variant in VARIANTS {
        let cfg = config(k, d, variant, Reduction::Mean);
        let mut rng = rng(600);
        let mut g = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
        let mut c = CenterLossCpu::new(cfg).unwrap();
        let init = uniform(&mut rng, k * d, 1.0);
        g.set_centers(&init).unwrap();
        c.set_centers(&init).unwrap();
        let x = uniform(&mut rng, b * d, 1.0);
        let y = labels(&mut rng, b, k);
        let reference = c.forward(&x, &y).unwrap();
        let loss = g.loss(&x, &y).unwrap();
        assert!((loss as f64 - reference.loss).abs() / reference.loss < TOL);
        let out = g.forward(&x, &y).unwrap();
        assert!(rel_err(&out.grad, &reference.grad) < TOL);
        assert_eq!(g.centers().unwrap(), init);
        assert!(g.health().unwrap().is_clean());
    }
}

#[test]
fn update_does_not_depend_on_lambda() {
    let Some(ctx) = gpu() else { return };
    let mut rng = rng(700);
    let (b, d, k) = (20, 4, 3);
    let x = uniform(&mut rng, b * d, 1.0);
    let y = labels(&mut rng, b, k);
    let centers_after = |lambda: f32| {
        let cfg = CenterLossConfig { lambda, ..config(k, d, Variant::Deterministic, Reduction::Mean) };
        let mut cl = GpuCenterLoss::new(&ctx, cfg).unwrap();
        cl.step(&x, &y).unwrap();
        cl.centers().unwrap()
    };
    assert_eq!(centers_after(0.0), centers_after(5.0));
}

#[test]
fn large_table_k100000_d512() {
    let Some(ctx) = gpu() else { return };
    let (k, d) = (100_000, 512);
    let limit = ctx.limits().max_storage_buffer_binding_size;
    for variant in [Variant::AtomicNative, Variant::Deterministic] {
        let cfg = config(k, d, variant, Reduction::Mean);
        let cl = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
        if limit < (k * d * 4) as u64 {
            assert!(cl.num_center_buffers() >= 2, "a {limit}-byte binding limit must split the table");
        }
        drop(cl);
        // Labels spread over the whole table, so rows in every buffer are touched.
        compare(cfg, 256, 1, 800, &move |rng: &mut rand::rngs::StdRng| labels(rng, 256, k));
    }
}

#[test]
fn center_rows_read_and_write_only_the_rows_named() {
    let Some(ctx) = gpu() else { return };
    // 23 classes of D = 5 (rows padded to 8 floats) over buffers of 3 rows each.
    let cfg =
        CenterLossConfig { max_buffer_bytes: Some(3 * 8 * 4), ..config(23, 5, Variant::AtomicCas, Reduction::Mean) };
    let mut cl = GpuCenterLoss::new(&ctx, cfg).unwrap();
    assert!(!cl.uses_native_float_atomics(), "force_cas_atomics must select the compare-exchange loop");
    assert!(cl.num_center_buffers() > 1);
    let mut r = rng(300);
    let centers = uniform(&mut r, 23 * 5, 2.0);
    cl.set_centers(&centers).unwrap();
    let classes = [22u32, 0, 7, 7, 14];
    let rows = cl.center_rows(&classes).unwrap();
    let expected: Vec<f32> = classes.iter().flat_map(|&c| centers[c as usize * 5..][..5].to_vec()).collect();
    assert_eq!(rows, expected);

    let written = [3u32, 21];
    let values = uniform(&mut r, 2 * 5, 2.0);
    cl.set_center_rows(&written, &values).unwrap();
    let mut after = centers.clone();
    after[3 * 5..4 * 5].copy_from_slice(&values[..5]);
    after[21 * 5..22 * 5].copy_from_slice(&values[5..]);
    assert_eq!(cl.centers().unwrap(), after);

    // A label >= K or a non-finite value changes nothing.
    assert!(matches!(cl.center_rows(&[23]), Err(centerloss::Error::LabelOutOfRange { .. })));
    assert!(cl.set_center_rows(&[1, 23], &values).is_err());
    let mut bad = values.clone();
    bad[7] = f32::NAN;
    assert!(cl.set_center_rows(&written, &bad).is_err());
    assert_eq!(cl.centers().unwrap(), after);
}

#[test]
fn a_second_module_of_the_same_configuration_compiles_no_pipeline() {
    if gpu().is_none() {
        return;
    }
    // A device of its own: the other tests of this binary compile on the shared one meanwhile.
    let device = GpuContext::new().unwrap();
    for ctx in kernel_variants(&device) {
        for (variant, d) in VARIANTS.into_iter().flat_map(|v| [(v, 3), (v, 8)]) {
            let cfg = config(11, d, variant, Reduction::Mean);
            let before = ctx.pipelines_compiled();
            let mut first = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
            let compiled = ctx.pipelines_compiled();
            assert!(compiled > before, "{variant:?} D {d}: the first module compiles its pipelines");
            let mut second = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
            assert_eq!(ctx.pipelines_compiled(), compiled, "{variant:?} D {d}: the second module compiled pipelines");
            // The modules share pipelines, not centers.
            let mut r = rng(400);
            let centers = uniform(&mut r, 11 * d, 1.0);
            first.set_centers(&centers).unwrap();
            second.step(&uniform(&mut r, 5 * d, 1.0), &labels(&mut r, 5, 11)).unwrap();
            assert_eq!(first.centers().unwrap(), centers);
            assert_eq!(ctx.pipelines_compiled(), compiled);
        }
    }
}

#[test]
fn a_million_classes_of_512_where_a_few_batches_touch_them() {
    // MS1M-V2 has 85 742 identities, Glint360K 360 232, WebFace42M 2 059 906: a table of
    // 1 000 000 x 512 (2 GB; 16 buffers of 128 MiB on lavapipe). The reference holds only
    // the rows the batches touch, relabelled 0..m: each class's update reads its own row.
    let Some(ctx) = gpu() else { return };
    use rand::Rng;
    let (k, d, b) = (1_000_000usize, 512usize, 256usize);
    let mut r = rng(1_000_000);
    let rows_per_buffer = (128usize << 20) / (4 * d);
    let mut classes: Vec<u32> = (1..k / rows_per_buffer + 1)
        .flat_map(|i| [(i * rows_per_buffer - 1) as u32, (i * rows_per_buffer) as u32])
        .filter(|&c| (c as usize) < k)
        .chain([0, k as u32 - 1])
        .chain((0..60).map(|_| r.random_range(0..k as u32)))
        .collect();
    classes.sort_unstable();
    classes.dedup();
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        let cfg =
            CenterLossConfig { num_classes: k, feat_dim: d, lambda: 0.01, alpha: 0.5, update, ..Default::default() };
        let mut cl = GpuCenterLoss::new(&ctx, cfg.clone()).unwrap();
        assert!(cl.num_center_buffers() >= 2, "a 2 GB table spans several buffers");
        let initial = uniform(&mut r, classes.len() * d, 1.0);
        cl.set_center_rows(&classes, &initial).unwrap();
        let mut reference = CenterLossCpu::new(CenterLossConfig { num_classes: classes.len(), ..cfg.clone() }).unwrap();
        reference.set_centers(&initial).unwrap();
        for step in 0..3 {
            let picks: Vec<usize> = (0..b).map(|_| r.random_range(0..classes.len())).collect();
            let global: Vec<u32> = picks.iter().map(|&p| classes[p]).collect();
            let local: Vec<u32> = picks.iter().map(|&p| p as u32).collect();
            let x = uniform(&mut r, b * d, 1.0);
            let out = cl.step(&x, &global).unwrap();
            let expected = reference.step(&x, &local).unwrap();
            assert!(rel_err(&out.grad, &expected.grad) < 1e-5, "{update:?} step {step}: gradient");
            assert!(((out.loss as f64 - expected.loss) / expected.loss).abs() < 1e-5, "{update:?} step {step}: loss");
        }
        let rows = cl.center_rows(&classes).unwrap();
        assert!(rel_err(&rows, reference.centers()) < 1e-5, "{update:?}: the touched rows");
        // Rows no batch touched, beside touched ones and anywhere, are still zero.
        let untouched: Vec<u32> = classes
            .iter()
            .flat_map(|&c| [c.wrapping_sub(1), c + 1])
            .chain((0..100).map(|_| r.random_range(0..k as u32)))
            .filter(|c| (*c as usize) < k && classes.binary_search(c).is_err())
            .collect();
        assert!(cl.center_rows(&untouched).unwrap().iter().all(|&v| v == 0.0), "{update:?}: an untouched row moved");
    }
}
