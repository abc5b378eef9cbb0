//! The collective center-loss step on in-process groups (`ThreadGroup`, one device per
//! member on lavapipe): equal to one step on the concatenated batch, bit-identical centers
//! on every member, the same error everywhere for bad input, and a dropped member noticed.

mod common;

use std::time::{Duration, Instant};

use centerloss::collective::{Collective, Metered, ThreadGroup};
use centerloss::cpu::CenterLossCpu;
use centerloss::{CenterLossConfig, Error, GpuCenterLoss, GpuContext, StepOutput, UpdateMode};
use common::{gpu, labels, rel_err, rng, run_group, uniform};

const TOL: f64 = 1e-5;

fn config(k: usize, d: usize, update: UpdateMode) -> CenterLossConfig {
    CenterLossConfig { num_classes: k, feat_dim: d, alpha: 0.6, lambda: 0.7, update, ..Default::default() }
}

/// A fresh device per member, as each member of a real group owns its own.
fn member_context() -> GpuContext {
    GpuContext::new().expect("a second device on the same adapter")
}

/// Row ranges of shards of the given sizes.
fn shard_rows(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            start += n;
            start - n..start
        })
        .collect()
}

#[test]
fn collective_steps_equal_one_step_on_the_concatenated_batch() {
    let Some(ctx) = gpu() else { return };
    let (k, d, steps) = (37, 13, 3);
    for update in [UpdateMode::Atomic, UpdateMode::Deterministic] {
        for sizes in [vec![23usize, 9], vec![17, 0, 31]] {
            let batch: usize = sizes.iter().sum();
            let mut r = rng(7 + sizes.len() as u64);
            let init = uniform(&mut r, k * d, 1.0);
            let batches: Vec<(Vec<f32>, Vec<u32>)> =
                (0..steps).map(|_| (uniform(&mut r, batch * d, 2.0), labels(&mut r, batch, 5))).collect();
            // The references: one step on the whole batch, on the GPU and in f64.
            let mut single = GpuCenterLoss::new(&ctx, config(k, d, update)).unwrap();
            single.set_centers(&init).unwrap();
            let mut cpu = CenterLossCpu::new(config(k, d, update)).unwrap();
            cpu.set_centers(&init).unwrap();
            let mut expected = Vec::new();
            for (x, y) in &batches {
                let g = single.step(x, y).unwrap();
                let c = cpu.step(x, y).unwrap();
                expected.push((g, c, single.centers().unwrap(), cpu.centers().to_vec()));
            }
            let rows = shard_rows(&sizes);
            let results = run_group(sizes.len(), |rank, member| {
                let mut cl = GpuCenterLoss::new(&member_context(), config(k, d, update)).unwrap();
                cl.set_centers(&init).unwrap();
                let rows = rows[rank].clone();
                let mut outs = Vec::new();
                for (x, y) in &batches {
                    let out = cl.step_collective(&x[rows.start * d..rows.end * d], &y[rows.clone()], &member).unwrap();
                    outs.push((out, cl.centers().unwrap()));
                }
                outs
            });
            for (step, (gpu_single, cpu_step, single_centers, cpu_centers)) in expected.iter().enumerate() {
                let what = format!("{update:?} shards {sizes:?} step {step}");
                let (_, first_centers) = &results[0][step];
                for (rank, member) in results.iter().enumerate() {
                    let (out, centers): &(StepOutput, Vec<f32>) = &member[step];
                    assert_eq!(centers, first_centers, "{what}: rank {rank}'s centers differ from rank 0's");
                    assert_eq!(out.loss.to_bits(), results[0][step].0.loss.to_bits(), "{what}: loss differs");
                    assert!(rel_err(&[out.loss], &[cpu_step.loss]) < TOL, "{what}: loss vs f64");
                    let own = rows[rank].start * d..rows[rank].end * d;
                    assert_eq!(out.grad.len(), own.len(), "{what}: rank {rank} gradient rows");
                    assert!(rel_err(&out.grad, &cpu_step.grad[own.clone()]) < TOL, "{what}: grad vs f64");
                    let single_rows: Vec<f64> = gpu_single.grad[own].iter().map(|&v| v as f64).collect();
                    assert!(rel_err(&out.grad, &single_rows) < TOL, "{what}: grad vs one GPU step");
                    assert!(rel_err(centers, cpu_centers) < TOL, "{what}: centers vs f64");
                    let single_centers: Vec<f64> = single_centers.iter().map(|&v| v as f64).collect();
                    assert!(rel_err(centers, &single_centers) < TOL, "{what}: centers vs one GPU step");
                }
            }
        }
    }
}

#[test]
fn bad_input_on_one_member_is_the_same_error_everywhere_and_changes_nothing() {
    let Some(_) = gpu() else { return };
    let (k, d) = (11, 6);
    let mut r = rng(31);
    let init = uniform(&mut r, k * d, 1.0);
    let x = uniform(&mut r, 4 * d, 1.0);
    let mut nan = x.clone();
    nan[5] = f32::NAN;
    // (what member 1 passes, its alpha, the check on the error every member returns)
    type Check = fn(&Error) -> bool;
    let cases: [(Vec<f32>, Vec<u32>, f32, Check); 4] = [
        (x.clone(), vec![1, 2, 11, 3], 0.6, |e| matches!(e, Error::LabelOutOfRange { label: 11, .. })),
        (nan, vec![1, 2, 3, 4], 0.6, |e| matches!(e, Error::NonFinite { what: "features", index: 5, .. })),
        (x[..7].to_vec(), vec![1], 0.6, |e| matches!(e, Error::Shape { what: "features", .. })),
        (x.clone(), vec![1, 2, 3, 4], 0.4, |e| matches!(e, Error::Config(m) if m.contains("alpha 0.4"))),
    ];
    for (case, (bad_x, bad_y, bad_alpha, check)) in cases.iter().enumerate() {
        let results = run_group(3, |rank, member| {
            let alpha = if rank == 1 { *bad_alpha } else { 0.6 };
            let mut cl =
                GpuCenterLoss::new(&member_context(), CenterLossConfig { alpha, ..config(k, d, UpdateMode::Atomic) })
                    .unwrap();
            cl.set_centers(&init).unwrap();
            let err = if rank == 1 {
                cl.step_collective(bad_x, bad_y, &member)
            } else {
                cl.step_collective(&x, &[0, 1, 2, 3], &member)
            };
            (err.map(|_| ()), cl.centers().unwrap())
        });
        for (rank, (result, centers)) in results.iter().enumerate() {
            match result {
                Err(Error::Rank { rank: 1, source }) => assert!(check(source), "case {case}, rank {rank}: {source}"),
                other => panic!("case {case}, rank {rank}: expected Error::Rank naming rank 1, got {other:?}"),
            }
            assert_eq!(centers, &init, "case {case}: rank {rank}'s centers changed");
        }
        let messages: Vec<String> = results.iter().map(|(r, _)| r.as_ref().unwrap_err().to_string()).collect();
        assert!(messages.iter().all(|m| m == &messages[0]), "case {case}: {messages:?}");
    }
}

#[test]
fn a_member_that_leaves_or_panics_fails_the_others_pending_step() {
    let Some(_) = gpu() else { return };
    for panics in [false, true] {
        let results = run_group(3, |rank, member| {
            if rank == 2 {
                std::thread::sleep(Duration::from_millis(300));
                if panics {
                    // The member goes down with its thread; catch it so the test thread lives.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                        let _owned = member;
                        panic!("member 2 fails on purpose");
                    }));
                } else {
                    drop(member);
                }
                return None;
            }
            let mut cl = GpuCenterLoss::new(&member_context(), config(5, 4, UpdateMode::Atomic)).unwrap();
            let start = Instant::now();
            let result = cl.step_collective(&[0.5; 8], &[1, 2], &member);
            Some((result.map(|_| ()), start.elapsed()))
        });
        for (rank, r) in results.into_iter().enumerate().take(2) {
            let (result, waited) = r.unwrap();
            assert!(matches!(&result, Err(Error::Collective(m)) if m.contains("member 2")), "rank {rank}: {result:?}");
            assert!(waited < Duration::from_secs(10), "rank {rank} waited {waited:?}");
        }
    }
}

#[test]
fn bytes_per_step_grow_with_the_batch_not_the_classes() {
    let Some(_) = gpu() else { return };
    let d = 8;
    let per_step = |k: usize| {
        run_group(2, |_, member| {
            let member = Metered::new(member);
            let mut cl = GpuCenterLoss::new(&member_context(), config(k, d, UpdateMode::Atomic)).unwrap();
            cl.step_collective(&vec![0.25; 16 * d], &(0..16).collect::<Vec<u32>>(), &member).unwrap();
            member.bytes()
        })
    };
    let (small, large) = (per_step(20), per_step(20_000));
    assert_eq!(small, large, "bytes exchanged depend on K");
    // Each member sends its 16 rows (features and labels) and a small header.
    let (sent, received) = small[1];
    assert!(sent >= 16 * (d as u64 + 1) * 4 && sent < 16 * (d as u64 + 1) * 4 + 200, "sent {sent}");
    assert!(received > sent, "rank 1 also receives rank 0's updated rows: {received}");
}

#[test]
fn one_member_groups_match_step() {
    let Some(ctx) = gpu() else { return };
    let (k, d) = (9, 5);
    let mut r = rng(41);
    let (x, y) = (uniform(&mut r, 7 * d, 1.0), labels(&mut r, 7, k));
    let mut a = GpuCenterLoss::new(&ctx, config(k, d, UpdateMode::Deterministic)).unwrap();
    let mut b = GpuCenterLoss::new(&ctx, config(k, d, UpdateMode::Deterministic)).unwrap();
    let member = ThreadGroup::new(1).pop().unwrap();
    assert_eq!(member.size(), 1);
    assert_eq!(a.step(&x, &y).unwrap(), b.step_collective(&x, &y, &member).unwrap());
    assert_eq!(a.centers().unwrap(), b.centers().unwrap());
}

#[test]
fn the_bound_collective_step_writes_each_members_rows_into_its_buffers() {
    let Some(ctx) = gpu() else { return };
    use centerloss::gpu::{buffer, read_buffer};
    use centerloss::BatchBuffers;
    let (k, d, sizes) = (12, 8, [6usize, 3]);
    let batch: usize = sizes.iter().sum();
    let mut r = rng(51);
    let init = uniform(&mut r, k * d, 1.0);
    let (x, y) = (uniform(&mut r, batch * d, 1.5), labels(&mut r, batch, 5));
    let mut single = GpuCenterLoss::new(&ctx, config(k, d, UpdateMode::Atomic)).unwrap();
    single.set_centers(&init).unwrap();
    let expected = single.step(&x, &y).unwrap();
    let rows = shard_rows(&sizes);
    let results = run_group(2, |rank, member| {
        let ctx = member_context();
        let mut cl = GpuCenterLoss::new(&ctx, config(k, d, UpdateMode::Atomic)).unwrap();
        cl.set_centers(&init).unwrap();
        let own = rows[rank].clone();
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let device = ctx.device();
        let (fb, lb) = (
            buffer(device, "f", (own.len() * d * 4) as u64, usage),
            buffer(device, "l", (own.len() * 4) as u64, usage),
        );
        let (gb, loss) = (buffer(device, "g", (own.len() * d * 4) as u64, usage), buffer(device, "loss", 8, usage));
        ctx.queue().write_buffer(&fb, 0, bytemuck::cast_slice(&x[own.start * d..own.end * d]));
        ctx.queue().write_buffer(&lb, 0, bytemuck::cast_slice(&y[own.clone()]));
        // The gradient is added to what the buffer holds (ones).
        ctx.queue().write_buffer(&gb, 0, bytemuck::cast_slice(&vec![1.0f32; own.len() * d]));
        let binding = cl
            .bind(BatchBuffers {
                features: &fb,
                labels: &lb,
                grad: &gb,
                loss: &loss,
                loss_offset: 4,
                batch: own.len(),
                accumulate_grad: true,
            })
            .unwrap();
        let returned = cl.step_collective_bound(&binding, &member).unwrap();
        let grad: Vec<f32> = read_buffer(&ctx, &gb, own.len() * d).unwrap();
        let written: Vec<f32> = read_buffer(&ctx, &loss, 2).unwrap();
        // Afterwards the binding's own passes are scaled by its own batch again.
        let centers = cl.centers().unwrap();
        ctx.queue().write_buffer(&gb, 0, bytemuck::cast_slice(&vec![0.0f32; own.len() * d]));
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        cl.encode_forward(&mut enc, &binding).unwrap();
        ctx.queue().submit([enc.finish()]);
        let plain: Vec<f32> = read_buffer(&ctx, &gb, own.len() * d).unwrap();
        let mut cpu = CenterLossCpu::new(config(k, d, UpdateMode::Atomic)).unwrap();
        cpu.set_centers(&centers).unwrap();
        let want = cpu.forward(&x[own.start * d..own.end * d], &y[own.clone()]).unwrap().grad;
        assert!(rel_err(&plain, &want) < TOL, "rank {rank}: a plain pass after the collective step");
        (returned, written[1], grad, centers)
    });
    let single_centers: Vec<f64> = single.centers().unwrap().iter().map(|&v| v as f64).collect();
    for (rank, (returned, written, grad, centers)) in results.iter().enumerate() {
        assert_eq!(
            returned.to_bits(),
            written.to_bits(),
            "rank {rank}: the loss written differs from the one returned"
        );
        assert!(rel_err(&[*returned], &[expected.loss as f64]) < TOL, "rank {rank}: loss");
        let want: Vec<f64> =
            expected.grad[rows[rank].start * d..rows[rank].end * d].iter().map(|&g| 1.0 + g as f64).collect();
        assert!(rel_err(grad, &want) < TOL, "rank {rank}: gradient rows (added to ones)");
        assert!(rel_err(centers, &single_centers) < TOL, "rank {rank}: centers");
        assert_eq!(centers, &results[0].3, "rank {rank}: centers differ from rank 0's");
    }
}
