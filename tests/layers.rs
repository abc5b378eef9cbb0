//! Each trainer layer's forward and backward kernels against the f64 reference, on random
//! inputs and awkward shapes (odd sizes, channels that are not multiples of the tile, batch 1).

mod common;

use centerloss::gpu::{read_buffer, KernelFamily, Tiling};
use centerloss::nn::{reference as cpu, GemmCore, GemmTiles, Graph, Head, LayerSpec, Tensor};
use centerloss::GpuContext;
use common::{f64s, gpu, kernel_variants, rng, uniform};

const TOL: f64 = 1e-4;

/// Relative error, with an absolute floor of 1e-6 per value: a gradient that is zero up to
/// rounding (an L2-normalised 1-D embedding) compares as equal to its f64 reference.
fn rel(a: &[f32], b: &[f64]) -> f64 {
    let norm = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    let diff = common::rel_err(a, b) * if norm == 0.0 { 1.0 } else { norm };
    diff / norm.max(1e-6 / TOL * (b.len() as f64).sqrt())
}

/// A one-layer graph with random input, random parameters and a random output gradient,
/// run forward and backward. Returns (x, params, y, dy, dx, param grads).
struct Run {
    x: Vec<f32>,
    params: Vec<Vec<f32>>,
    y: Vec<f32>,
    dy: Vec<f32>,
    dx: Vec<f32>,
    grads: Vec<Vec<f32>>,
}

fn run_layer(ctx: &GpuContext, batch: usize, shape: [usize; 3], spec: LayerSpec, salt: u64) -> (Run, Tensor) {
    let mut g = Graph::new(ctx, batch, salt).unwrap();
    let x = g.input(shape, true);
    let y = g.layer(&x, &spec, "layer").unwrap();
    let mut r = rng(salt);
    let xv = uniform(&mut r, batch * x.per_sample(), 1.0);
    g.write(&x.buffer, &xv).unwrap();
    // Random parameters (PReLU slopes too, so both sides of the kink are exercised).
    let mut params = Vec::new();
    for p in g.params() {
        let v = uniform(&mut r, p.len, 0.5);
        g.write(&p.value, &v).unwrap();
        params.push(v);
    }
    let dy = uniform(&mut r, batch * y.per_sample(), 1.0);
    g.write(y.grad.as_ref().unwrap(), &dy).unwrap();
    g.run(true).unwrap();
    let yv = g.read(&y.buffer, batch * y.per_sample()).unwrap();
    let dx = g.read(x.grad.as_ref().unwrap(), xv.len()).unwrap();
    let grads = g.params().iter().map(|p| read_buffer(ctx, p.grad().unwrap(), p.len).unwrap()).collect();
    (Run { x: xv, params, y: yv, dy, dx, grads }, y)
}

#[test]
fn conv2d_matches_reference() {
    let Some(gpu_ctx) = gpu() else { return };
    for ctx in kernel_variants(&gpu_ctx) {
        conv2d_cases(&ctx);
    }
}

fn conv2d_cases(ctx: &GpuContext) {
    let family = ctx.kernels();
    // (batch, in_c, h, w, out_c, k, stride, pad)
    let cases = [
        (1, 1, 5, 5, 1, 1, 1, 0),
        (2, 3, 7, 9, 5, 3, 1, 1),
        (3, 5, 11, 6, 70, 5, 2, 2),
        (1, 17, 8, 8, 33, 3, 2, 1),
        (4, 2, 28, 28, 3, 5, 1, 2),
        (64, 1, 6, 6, 2, 3, 1, 0), // a long reduction: split-K in the weight gradient
    ];
    for (i, &(b, ic, h, w, oc, k, s, p)) in cases.iter().enumerate() {
        for bias in [true, false] {
            let spec = LayerSpec::Conv2d { out_channels: oc, kernel: k, stride: s, pad: p, bias };
            let (r, y) = run_layer(ctx, b, [ic, h, w], spec, 10 + i as u64);
            let wt = f64s(&r.params[0]);
            let bt = bias.then(|| f64s(&r.params[1]));
            let shape = cpu::ConvShape {
                batch: b,
                in_channels: ic,
                height: h,
                width: w,
                out_channels: oc,
                kernel: k,
                stride: s,
                pad: p,
            };
            let yref = cpu::conv2d(&f64s(&r.x), &wt, bt.as_deref(), shape);
            assert_eq!(y.shape, [oc, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1]);
            let case = format!("case {i} bias {bias} {family:?}");
            assert!(rel(&r.y, &yref) < TOL, "forward {case}: {}", rel(&r.y, &yref));
            let (dx, dw, db) = cpu::conv2d_backward(&f64s(&r.x), &wt, &f64s(&r.dy), shape);
            assert!(rel(&r.dx, &dx) < TOL, "dx {case}: {}", rel(&r.dx, &dx));
            assert!(rel(&r.grads[0], &dw) < TOL, "dw {case}: {}", rel(&r.grads[0], &dw));
            if bias {
                assert!(rel(&r.grads[1], &db) < TOL, "db {case}");
            }
        }
    }
}

#[test]
fn linear_matches_reference() {
    let Some(gpu_ctx) = gpu() else { return };
    for ctx in kernel_variants(&gpu_ctx) {
        linear_cases(&ctx);
    }
}

fn linear_cases(ctx: &GpuContext) {
    for (i, &(b, shape, o)) in
        [(1, [1, 1, 1], 1), (7, [13, 1, 1], 5), (129, [3, 5, 7], 65), (5, [200, 1, 1], 3)].iter().enumerate()
    {
        for bias in [true, false] {
            let (r, _) = run_layer(ctx, b, shape, LayerSpec::Linear { out_features: o, bias }, 30 + i as u64);
            let n_in: usize = shape.iter().product();
            let wt = f64s(&r.params[0]);
            let bt = bias.then(|| f64s(&r.params[1]));
            let yref = cpu::linear(&f64s(&r.x), &wt, bt.as_deref(), b, n_in, o);
            assert!(rel(&r.y, &yref) < TOL, "forward case {i}");
            let (dx, dw, db) = cpu::linear_backward(&f64s(&r.x), &wt, &f64s(&r.dy), b, n_in, o);
            assert!(rel(&r.dx, &dx) < TOL, "dx case {i}");
            assert!(rel(&r.grads[0], &dw) < TOL, "dw case {i}");
            if bias {
                assert!(rel(&r.grads[1], &db) < TOL, "db case {i}");
            }
        }
    }
}

/// The dense GEMM on shapes that are not multiples of its 64 x 64 x 16 tile, through a
/// bias-free linear layer: forward M x N x K = batch x out x in, and both backward GEMMs.
#[test]
fn gemm_on_untiled_shapes() {
    let Some(gpu_ctx) = gpu() else { return };
    for ctx in kernel_variants(&gpu_ctx) {
        gemm_cases(&ctx, &[(1, 1, 1), (7, 13, 5), (129, 257, 65), (64, 64, 16), (65, 1, 300)]);
    }
}

/// A reduction longer than 65 535: Mesa before 25.0 silently ends any shader loop after
/// 65 535 iterations, so a GEMM that walked K one step per iteration would come out short.
#[test]
fn gemm_with_a_reduction_longer_than_65535() {
    let Some(gpu_ctx) = gpu() else { return };
    for ctx in kernel_variants(&gpu_ctx) {
        gemm_cases(&ctx, &[(3, 5, 70_001)]);
    }
}

/// Every tile configuration of the three GEMM cores (the candidates the tuner measures) gives
/// the same bits as the fixed rule's choice, which matches the f64 reference here (and in
/// the tests above): a convolution whose 70 output channels span tiles, with bias, a
/// linear layer of 129 x 65 outputs, and one whose weight gradient is split over K. The
/// tuner's pick changes speed, never results.
#[test]
fn every_gemm_tile_candidate_gives_the_fixed_rules_bits() {
    let Some(gpu_ctx) = gpu() else { return };
    let conv = LayerSpec::Conv2d { out_channels: 70, kernel: 5, stride: 2, pad: 2, bias: true };
    let linear = LayerSpec::Linear { out_features: 65, bias: true };
    // A weight gradient long enough in K (a batch of 8 200) to be split over slices.
    let split = LayerSpec::Linear { out_features: 2, bias: false };
    let runs = |ctx: &GpuContext| {
        [
            run_layer(ctx, 3, [5, 11, 6], conv.clone(), 90).0,
            run_layer(ctx, 129, [3, 5, 7], linear.clone(), 91).0,
            run_layer(ctx, 8200, [3, 1, 1], split.clone(), 92).0,
        ]
    };
    let bits = |runs: &[Run; 3]| {
        let all = runs.iter().flat_map(|r| r.y.iter().chain(&r.dx).chain(r.grads.iter().flatten()));
        all.map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    for family in kernel_variants(&gpu_ctx) {
        let fixed = runs(&family.with_tiling(Tiling::Fixed));
        let [c, l, k] = &fixed;
        let shape = cpu::ConvShape {
            batch: 3,
            in_channels: 5,
            height: 11,
            width: 6,
            out_channels: 70,
            kernel: 5,
            stride: 2,
            pad: 2,
        };
        let (cw, cb) = (f64s(&c.params[0]), f64s(&c.params[1]));
        assert!(rel(&c.y, &cpu::conv2d(&f64s(&c.x), &cw, Some(&cb), shape)) < TOL);
        let (dx, dw, db) = cpu::conv2d_backward(&f64s(&c.x), &cw, &f64s(&c.dy), shape);
        assert!(rel(&c.dx, &dx) < TOL && rel(&c.grads[0], &dw) < TOL && rel(&c.grads[1], &db) < TOL);
        let (lw, lb) = (f64s(&l.params[0]), f64s(&l.params[1]));
        assert!(rel(&l.y, &cpu::linear(&f64s(&l.x), &lw, Some(&lb), 129, 105, 65)) < TOL);
        let (dx, dw, db) = cpu::linear_backward(&f64s(&l.x), &lw, &f64s(&l.dy), 129, 105, 65);
        assert!(rel(&l.dx, &dx) < TOL && rel(&l.grads[0], &dw) < TOL && rel(&l.grads[1], &db) < TOL);
        let kw = f64s(&k.params[0]);
        assert!(rel(&k.y, &cpu::linear(&f64s(&k.x), &kw, None, 8200, 3, 2)) < TOL);
        let (dx, dw, _) = cpu::linear_backward(&f64s(&k.x), &kw, &f64s(&k.dy), 8200, 3, 2);
        assert!(rel(&k.dx, &dx) < TOL && rel(&k.grads[0], &dw) < TOL);
        for (i, tiles) in GemmTiles::candidates(family.kernels()).iter().enumerate() {
            let candidate = runs(&family.with_tiling(Tiling::Candidate(i)));
            assert!(
                bits(&candidate) == bits(&fixed),
                "{:?} {}: other bits than the fixed rule",
                family.kernels(),
                tiles.label()
            );
        }
    }
}

fn gemm_cases(ctx: &GpuContext, shapes: &[(usize, usize, usize)]) {
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        let (r, _) = run_layer(ctx, m, [k, 1, 1], LayerSpec::Linear { out_features: n, bias: false }, 80 + i as u64);
        let wt = f64s(&r.params[0]);
        let yref = cpu::linear(&f64s(&r.x), &wt, None, m, k, n);
        assert!(rel(&r.y, &yref) < TOL, "{m}x{n}x{k} {:?}: {}", ctx.kernels(), rel(&r.y, &yref));
        let (dx, dw, _) = cpu::linear_backward(&f64s(&r.x), &wt, &f64s(&r.dy), m, k, n);
        assert!(rel(&r.dx, &dx) < TOL, "{m}x{n}x{k} dx");
        assert!(rel(&r.grads[0], &dw) < TOL, "{m}x{n}x{k} dw");
    }
}

#[test]
fn maxpool_matches_reference() {
    let Some(gpu_ctx) = gpu() else { return };
    // Both kernel families (the walking and fused kernels differ).
    for ctx in kernel_variants(&gpu_ctx) {
        for (i, &(b, c, h, w, k, s)) in
            // The last: rows wider than a workgroup's step of 256 pixels.
            [
                (1, 1, 2, 2, 2, 2),
                (2, 3, 7, 7, 3, 2),
                (3, 5, 9, 6, 2, 2),
                (1, 2, 5, 8, 3, 1),
                (2, 3, 5, 300, 3, 2),
            ]
            .iter()
            .enumerate()
        {
            let (r, _) = run_layer(&ctx, b, [c, h, w], LayerSpec::MaxPool { kernel: k, stride: s }, 40 + i as u64);
            let (yref, arg) = cpu::maxpool(&f64s(&r.x), b, c, h, w, k, s);
            assert!(rel(&r.y, &yref) < TOL, "forward case {i}");
            let dx = cpu::maxpool_backward(&f64s(&r.dy), &arg, r.x.len());
            assert!(rel(&r.dx, &dx) < TOL, "dx case {i}");
        }
    }
}

#[test]
fn prelu_matches_reference() {
    let Some(gpu_ctx) = gpu() else { return };
    // Both kernel families (the walking and fused kernels differ).
    for ctx in kernel_variants(&gpu_ctx) {
        // Tiny tensors, and ones whose invocations walk several steps of 256 elements: planes
        // longer than a step (323 pixels), and several planes per step wrapping the channels
        // (30 pixels: 8 planes over 7 channels; 64 pixels over 37 channels, several workgroups).
        let cases = [
            (1, [1, 1, 1]),
            (3, [5, 3, 7]),
            (2, [2, 1, 1]),
            (4, [33, 2, 2]),
            (3, [5, 17, 19]),
            (2, [7, 6, 5]),
            (9, [37, 8, 8]),
        ];
        for (i, &(b, shape)) in cases.iter().enumerate() {
            for shared in [false, true] {
                let (r, _) = run_layer(&ctx, b, shape, LayerSpec::PRelu { shared }, 50 + i as u64);
                let pixels = if shared { shape.iter().product() } else { shape[1] * shape[2] };
                let slopes = f64s(&r.params[0]);
                assert_eq!(slopes.len(), if shared { 1 } else { shape[0] });
                let yref = cpu::prelu(&f64s(&r.x), &slopes, pixels);
                assert!(rel(&r.y, &yref) < TOL, "forward case {i}");
                let (dx, ds) = cpu::prelu_backward(&f64s(&r.x), &slopes, &f64s(&r.dy), pixels);
                assert!(rel(&r.dx, &dx) < TOL, "dx case {i}");
                assert!(rel(&r.grads[0], &ds) < TOL, "dslope case {i} shared {shared}");
            }
        }
    }
}

/// A per-channel PReLU on a convolution's output also sums that convolution's bias gradient
/// (`prelu_backward_channel`, the convolution's own sum dropped): it must equal the sum of
/// the PReLU's input gradient per channel. And a PReLU on an input without a gradient
/// still gets its slope gradient.
#[test]
fn prelu_takes_over_the_convolution_bias_gradient() {
    let Some(gpu_ctx) = gpu() else { return };
    // Both kernel families (the walking and fused kernels differ).
    for ctx in kernel_variants(&gpu_ctx) {
        let (b, shape) = (3, [2, 9, 7]);
        let mut g = Graph::new(&ctx, b, 7).unwrap();
        let x = g.input(shape, true);
        let conv = g.layer(&x, &LayerSpec::conv(5, 3, 1, 1), "conv").unwrap();
        let y = g.layer(&conv, &LayerSpec::prelu(), "prelu").unwrap();
        let mut r = rng(70);
        g.write(&x.buffer, &uniform(&mut r, b * x.per_sample(), 1.0)).unwrap();
        let params: Vec<Vec<f32>> = g.params().iter().map(|p| uniform(&mut r, p.len, 0.5)).collect();
        for (p, v) in g.params().iter().zip(&params) {
            g.write(&p.value, v).unwrap();
        }
        let dy = uniform(&mut r, b * y.per_sample(), 1.0);
        g.write(y.grad.as_ref().unwrap(), &dy).unwrap();
        g.run(true).unwrap();
        let pixels = 9 * 7;
        let conv_out = f64s(&g.read(&conv.buffer, b * conv.per_sample()).unwrap());
        // Parameters in order: conv weight, conv bias, PReLU slopes.
        let slopes = f64s(&params[2]);
        let (dconv, dslope) = cpu::prelu_backward(&conv_out, &slopes, &f64s(&dy), pixels);
        let mut dbias = vec![0.0; 5];
        for (i, v) in dconv.iter().enumerate() {
            dbias[(i / pixels) % 5] += v;
        }
        let grads: Vec<Vec<f32>> =
            g.params().iter().map(|p| read_buffer(&ctx, p.grad().unwrap(), p.len).unwrap()).collect();
        assert!(rel(&grads[1], &dbias) < TOL, "conv bias gradient {:?} vs {dbias:?}", grads[1]);
        assert!(rel(&grads[2], &dslope) < TOL, "slope gradient");
        assert!(rel(&g.read(conv.grad.as_ref().unwrap(), dconv.len()).unwrap(), &dconv) < TOL, "PReLU dx");

        let mut g = Graph::new(&ctx, b, 8).unwrap();
        let x = g.input(shape, false);
        let y = g.layer(&x, &LayerSpec::prelu(), "prelu").unwrap();
        let xv = uniform(&mut r, b * x.per_sample(), 1.0);
        g.write(&x.buffer, &xv).unwrap();
        let slopes = uniform(&mut r, 2, 0.5);
        g.write(&g.params()[0].value, &slopes).unwrap();
        let dy = uniform(&mut r, b * y.per_sample(), 1.0);
        g.write(y.grad.as_ref().unwrap(), &dy).unwrap();
        g.run(true).unwrap();
        let (_, dslope) = cpu::prelu_backward(&f64s(&xv), &f64s(&slopes), &f64s(&dy), pixels);
        assert!(
            rel(&read_buffer(&ctx, g.params()[0].grad().unwrap(), 2).unwrap(), &dslope) < TOL,
            "slope gradient, no dx"
        );
    }
}

/// On GPUs a PReLU right after a convolution runs in the convolution's store (CPU drivers
/// keep its pass): its output has the bits prelu_forward gives the convolution's output
/// (which is still written, for the backward pass), per-channel or shared, with or without
/// bias, on each GEMM core; a PReLU after pooling keeps its own pass.
#[test]
fn a_prelu_after_a_convolution_is_fused_into_its_store() {
    let Some(gpu_ctx) = gpu() else { return };
    let first_of_each_core = |family: &GpuContext| -> Vec<GpuContext> {
        let candidates = GemmTiles::candidates(family.kernels());
        let mut cores: Vec<GemmCore> = candidates.iter().map(|t| t.core).collect();
        cores.dedup();
        let firsts = cores.iter().filter_map(|core| candidates.iter().position(|t| t.core == *core));
        std::iter::once(Tiling::Fixed).chain(firsts.map(Tiling::Candidate)).map(|t| family.with_tiling(t)).collect()
    };
    for ctx in kernel_variants(&gpu_ctx).iter().flat_map(first_of_each_core) {
        for (i, shared) in [false, true].into_iter().enumerate() {
            let (b, shape) = (3, [2, 9, 7]);
            let conv_spec = LayerSpec::Conv2d { out_channels: 5, kernel: 3, stride: 1, pad: 1, bias: !shared };
            let mut g = Graph::new(&ctx, b, 7).unwrap();
            let x = g.input(shape, false);
            let conv = g.layer(&x, &conv_spec, "conv").unwrap();
            let y = g.layer(&conv, &LayerSpec::PRelu { shared }, "prelu").unwrap();
            let fused = match ctx.kernels() {
                KernelFamily::Gpu => &["conv2d_forward"][..],
                KernelFamily::Cpu => &["conv2d_forward", "prelu_forward"][..],
            };
            assert_eq!(g.forward_kernels(), fused, "{:?} {:?} shared {shared}", ctx.kernels(), ctx.tiling());
            let mut r = rng(75 + i as u64);
            let xv = uniform(&mut r, b * x.per_sample(), 1.0);
            g.write(&x.buffer, &xv).unwrap();
            let params: Vec<Vec<f32>> = g.params().iter().map(|p| uniform(&mut r, p.len, 0.5)).collect();
            for (p, v) in g.params().iter().zip(&params) {
                g.write(&p.value, v).unwrap();
            }
            g.run(false).unwrap();
            let conv_out = g.read(&conv.buffer, b * conv.per_sample()).unwrap();
            let cshape = cpu::ConvShape {
                batch: b,
                in_channels: 2,
                height: 9,
                width: 7,
                out_channels: 5,
                kernel: 3,
                stride: 1,
                pad: 1,
            };
            let bias = (!shared).then(|| f64s(&params[1]));
            let reference = cpu::conv2d(&f64s(&xv), &f64s(&params[0]), bias.as_deref(), cshape);
            assert!(rel(&conv_out, &reference) < TOL, "the convolution's own output");
            let slopes = params.last().unwrap();
            let expected: Vec<u32> = conv_out
                .iter()
                .enumerate()
                .map(|(j, &v)| if v > 0.0 { v } else { slopes[if shared { 0 } else { (j / 63) % 5 }] * v })
                .map(f32::to_bits)
                .collect();
            let got: Vec<u32> = g.read(&y.buffer, conv_out.len()).unwrap().into_iter().map(f32::to_bits).collect();
            assert!(got == expected, "{:?} {:?} shared {shared}: the fused PReLU's bits", ctx.kernels(), ctx.tiling());
        }
        let mut g = Graph::new(&ctx, 2, 9).unwrap();
        let x = g.input([2, 8, 8], false);
        let conv = g.layer(&x, &LayerSpec::conv(3, 3, 1, 1), "conv").unwrap();
        let pooled = g.layer(&conv, &LayerSpec::MaxPool { kernel: 2, stride: 2 }, "pool").unwrap();
        g.layer(&pooled, &LayerSpec::prelu(), "prelu").unwrap();
        assert_eq!(g.forward_kernels(), ["conv2d_forward", "maxpool_forward", "prelu_forward"]);
    }
}

/// A convolution whose output feeds a residual block starting with a PReLU: the PReLU sees
/// only the body's share of the output gradient, so the convolution must keep its own bias
/// sum. Every parameter gradient in the CPU family (fused PReLU backward) equals the GPU
/// family's (separate passes).
#[test]
fn a_residual_branch_does_not_take_the_convolution_bias_gradient() {
    let Some(gpu_ctx) = gpu() else { return };
    let specs = [
        LayerSpec::conv(4, 3, 1, 1),
        LayerSpec::Residual { body: vec![LayerSpec::prelu(), LayerSpec::conv(4, 3, 1, 1)], shortcut: vec![] },
        LayerSpec::prelu(),
    ];
    let (b, shape) = (2, [3, 6, 5]);
    let run = |ctx: &GpuContext| {
        let mut g = Graph::new(ctx, b, 9).unwrap();
        let x = g.input(shape, false);
        let y = g.sequence(&x, &specs, "net").unwrap();
        let mut r = rng(90);
        g.write(&x.buffer, &uniform(&mut r, b * x.per_sample(), 1.0)).unwrap();
        for p in g.params() {
            g.write(&p.value, &uniform(&mut r, p.len, 0.5)).unwrap();
        }
        g.write(y.grad.as_ref().unwrap(), &uniform(&mut r, b * y.per_sample(), 1.0)).unwrap();
        g.run(true).unwrap();
        g.params().iter().map(|p| read_buffer(ctx, p.grad().unwrap(), p.len).unwrap()).collect::<Vec<_>>()
    };
    let [gpu_family, cpu_family] = kernel_variants(&gpu_ctx).map(|ctx| run(&ctx));
    for (i, (c, g)) in cpu_family.iter().zip(&gpu_family).enumerate() {
        assert!(rel(c, &f64s(g)) < TOL, "parameter {i}: {c:?} vs {g:?}");
    }
}

#[test]
fn l2norm_matches_reference() {
    let Some(ctx) = gpu() else { return };
    for (i, &(b, d)) in [(1, 1), (5, 2), (9, 128), (3, 7)].iter().enumerate() {
        let (r, _) = run_layer(&ctx, b, [d, 1, 1], LayerSpec::L2Norm, 60 + i as u64);
        let (yref, norms) = cpu::l2norm(&f64s(&r.x), d);
        assert!(rel(&r.y, &yref) < TOL, "forward case {i}");
        let dx = cpu::l2norm_backward(&yref, &norms, &f64s(&r.dy), d);
        // dx = (dy − y(y·dy)) / ‖x‖ cancels: in one dimension it is exactly zero, and with a
        // short x the f32 rounding of the terms is ε·|dy|/‖x‖. So the error is measured against
        // the size of the terms, ‖dy/‖x‖‖, when that exceeds ‖dx‖ (a plain relative error
        // failed one random draw in CI at 2.2e-4).
        let terms = r.dy.iter().enumerate().map(|(j, &g)| (g as f64 / norms[j / d]).powi(2)).sum::<f64>().sqrt();
        let diff = r.dx.iter().zip(&dx).map(|(&a, b)| (a as f64 - b).powi(2)).sum::<f64>().sqrt();
        let err = diff / dx.iter().map(|v| v * v).sum::<f64>().sqrt().max(terms);
        assert!(err < TOL, "dx case {i}: {err}");
    }
}

#[test]
fn residual_block_sums_branches_both_ways() {
    let Some(gpu_ctx) = gpu() else { return };
    // Both kernel families (the walking and fused kernels differ).
    for ctx in kernel_variants(&gpu_ctx) {
        let (b, shape) = (3, [4, 5, 5]);
        let n = b * 100;
        for shortcut in [vec![], vec![LayerSpec::PRelu { shared: true }]] {
            let spec =
                LayerSpec::Residual { body: vec![LayerSpec::PRelu { shared: false }], shortcut: shortcut.clone() };
            let (r, _) = run_layer(&ctx, b, shape, spec, 70);
            let x = f64s(&r.x);
            let body = cpu::prelu(&x, &f64s(&r.params[0]), 25);
            let short = if shortcut.is_empty() { x.clone() } else { cpu::prelu(&x, &f64s(&r.params[1]), 100) };
            let yref: Vec<f64> = body.iter().zip(&short).map(|(a, b)| a + b).collect();
            assert!(rel(&r.y, &yref) < TOL);
            let (dbody, _) = cpu::prelu_backward(&x, &f64s(&r.params[0]), &f64s(&r.dy), 25);
            let dshort = if shortcut.is_empty() {
                f64s(&r.dy)
            } else {
                cpu::prelu_backward(&x, &f64s(&r.params[1]), &f64s(&r.dy), 100).0
            };
            let dx: Vec<f64> = dbody.iter().zip(&dshort).map(|(a, b)| a + b).collect();
            assert_eq!(dx.len(), n);
            assert!(rel(&r.dx, &dx) < TOL, "dx with {} shortcut layers", shortcut.len());
        }
    }
}

#[test]
fn shape_mismatches_name_the_layer() {
    let Some(ctx) = gpu() else { return };
    let mut g = Graph::new(&ctx, 2, 0).unwrap();
    let x = g.input([1, 4, 4], false);
    let err = g.layer(&x, &LayerSpec::conv(8, 5, 1, 0), "trunk.3").unwrap_err().to_string();
    assert!(err.contains("trunk.3") && err.contains("smaller than the kernel"), "{err}");
    let bad = LayerSpec::Residual { body: vec![LayerSpec::conv(8, 3, 2, 1)], shortcut: vec![] };
    let err = g.layer(&x, &bad, "block").unwrap_err().to_string();
    assert!(err.contains("block") && err.contains("shortcut"), "{err}");
    assert!(Graph::new(&ctx, 0, 0).is_err());
}

/// Runs `margin_cross_entropy.wgsl` on `cosines` [b, k] once: (d cosines, row stats).
fn margin_kernel(ctx: &GpuContext, head: &Head, cosines: &[f32], labels: &[u32], k: usize) -> (Vec<f32>, Vec<f32>) {
    use centerloss::gpu::{buffer, KernelSet, STORAGE_RW};
    let b = labels.len();
    let aliases = match ctx.kernels() {
        KernelFamily::Gpu => &[][..],
        KernelFamily::Cpu => centerloss::nn::CPU_KERNEL_ALIASES,
    };
    let kernels = KernelSet::for_context(ctx, centerloss::nn::KERNELS, aliases).unwrap();
    let device = ctx.device();
    let storage = |label, values: &[u8]| {
        let buf = buffer(device, label, values.len().max(16) as u64, STORAGE_RW);
        ctx.queue().write_buffer(&buf, 0, values);
        buf
    };
    // SoftmaxParams { batch, classes, grad_scale, _pad }.
    let params = [b as u32, k as u32, (1.0 / b as f32).to_bits(), 0];
    let uniform = buffer(device, "params", 16, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST);
    ctx.queue().write_buffer(&uniform, 0, bytemuck::cast_slice(&params));
    let cos = storage("cosines", bytemuck::cast_slice(cosines));
    let lab = storage("labels", bytemuck::cast_slice(labels));
    let grad = storage("grad", &vec![0u8; 4 * cosines.len()]);
    let stats = storage("stats", &vec![0u8; 8 * b]);
    // The layout is the WGSL's: a dispatch given other bindings is refused before wgpu sees it.
    let wrong = kernels.op(&centerloss::gpu::kernel::MARGIN_CROSS_ENTROPY, &[], Some(&uniform), &[&cos], (1, 1, 1));
    let err = wrong.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("margin_cross_entropy binds 1 uniform(s) and 4 storage buffer(s); given 1 and 1"), "{err}");
    let absent = kernels.op(&centerloss::gpu::kernel::TOP_K, &[], Some(&uniform), &[&cos], (1, 1, 1));
    assert!(absent.err().is_some_and(|e| e.to_string().contains("top_k is not in this kernel set")));
    let op = kernels
        .op(
            &centerloss::gpu::kernel::MARGIN_CROSS_ENTROPY,
            &head.kernel_constants(),
            Some(&uniform),
            &[&cos, &lab, &grad, &stats],
            (b as u32, 1, 1),
        )
        .unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        op.record(&mut pass);
    }
    ctx.queue().submit([encoder.finish()]);
    (read_buffer(ctx, &grad, cosines.len()).unwrap(), read_buffer(ctx, &stats, 2 * b).unwrap())
}

/// The margin head's loss and cosine gradient against the f64 twin, in both kernel families,
/// on awkward shapes (one class, fewer classes than a workgroup, more than two workgroups'
/// worth), with true classes at angles next to 0 and π, exactly 0 and π, past the clamp, and
/// in ArcFace's fallback region.
#[test]
fn margin_cross_entropy_matches_reference() {
    let Some(gpu_ctx) = gpu() else { return };
    let heads = [
        Head::arcface(64.0, 0.5),
        Head::cosface(64.0, 0.35),
        Head::normalized(16.0),
        Head { m1: 1.0, m2: 0.3, m3: 0.2, ..Head::normalized(30.0) },
        Head { m1: 1.35, ..Head::normalized(8.0) },
    ];
    let awkward = [1.0 - 1e-6, -1.0 + 1e-6, 1.0, -1.0, 1.0 + 1e-7, 0.999, -0.95, 0.0];
    for ctx in kernel_variants(&gpu_ctx) {
        for (case, &(b, k)) in [(1, 1), (7, 13), (9, 130), (3, 64)].iter().enumerate() {
            let mut r = rng(90 + case as u64);
            let labels = common::labels(&mut r, b, k);
            let mut cosines = uniform(&mut r, b * k, 1.0);
            for (row, &y) in labels.iter().enumerate() {
                cosines[row * k + y as usize] = awkward[row % awkward.len()];
            }
            for head in &heads {
                let (grad, stats) = margin_kernel(&ctx, head, &cosines, &labels, k);
                let (loss, dref, accuracy) = cpu::margin_cross_entropy(&f64s(&cosines), &labels, k, head);
                let what = format!("{:?} b {b} k {k} {head:?}", ctx.kernels());
                // m1 != 1 takes atan2, cos and sin of the angle, whose WGSL accuracy is the
                // driver's (lavapipe: about 2e-5 relative); m1 = 1 (ArcFace, CosFace) takes none.
                let tol = if head.m1 == 1.0 { 1e-5 } else { 1e-4 };
                let err = common::rel_err(&grad, &dref);
                assert!(err <= tol, "{what}: gradient rel err {err}");
                let gpu_loss = stats.iter().step_by(2).map(|&l| l as f64).sum::<f64>() / b as f64;
                assert!((gpu_loss - loss).abs() <= tol * loss.abs().max(1e-3), "{what}: loss {gpu_loss} vs {loss}");
                let gpu_accuracy = stats.iter().skip(1).step_by(2).map(|&a| a as f64).sum::<f64>() / b as f64;
                assert_eq!(gpu_accuracy, accuracy, "{what}");
            }
        }
    }
}
