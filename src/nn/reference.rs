//! Plain-Rust f64 twins of the trainer's layers: the specification the GPU kernels are
//! tested against. Tensors are NCHW slices; `b` is the batch size.

use super::Head;

/// The shape of a convolution: NCHW input, square kernel, one stride and padding for both
/// axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl ConvShape {
    /// Output height and width.
    pub fn output_size(&self) -> (usize, usize) {
        let out = |n: usize| (n + 2 * self.pad - self.kernel) / self.stride + 1;
        (out(self.height), out(self.width))
    }
}

/// Calls `tap(y, x, w)` for every (output, input, weight) index triple of a convolution
/// whose input position lies inside the image (zero padding contributes nothing).
fn conv_taps(s: ConvShape, mut tap: impl FnMut(usize, usize, usize)) {
    let ConvShape { batch: b, in_channels: ic, height: h, width: wd, out_channels: oc, kernel: k, stride, pad } = s;
    let (oh, ow) = s.output_size();
    for n in 0..b {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * oc + o) * oh + oy) * ow + ox;
                    for c in 0..ic {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                tap(
                                    yi,
                                    ((n * ic + c) * h + iy as usize) * wd + ix as usize,
                                    ((o * ic + c) * k + ky) * k + kx,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Convolution forward: `x` [b, ic, h, w], `w` [oc, ic, k, k], `bias` \[oc\] -> [b, oc, oh, ow].
pub fn conv2d(x: &[f64], w: &[f64], bias: Option<&[f64]>, s: ConvShape) -> Vec<f64> {
    let (oh, ow) = s.output_size();
    let (pixels, oc) = (oh * ow, s.out_channels);
    let mut y: Vec<f64> = (0..s.batch * oc * pixels).map(|i| bias.map_or(0.0, |bb| bb[(i / pixels) % oc])).collect();
    conv_taps(s, |yi, xi, wi| y[yi] += w[wi] * x[xi]);
    y
}

/// Convolution backward: returns (dx, dw, dbias) for output gradient `dy`.
pub fn conv2d_backward(x: &[f64], w: &[f64], dy: &[f64], s: ConvShape) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (oh, ow) = s.output_size();
    let (pixels, oc) = (oh * ow, s.out_channels);
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; oc];
    for (i, g) in dy.iter().enumerate() {
        db[(i / pixels) % oc] += g;
    }
    conv_taps(s, |yi, xi, wi| {
        dw[wi] += dy[yi] * x[xi];
        dx[xi] += dy[yi] * w[wi];
    });
    (dx, dw, db)
}

/// Linear forward: `x` [b, i], `w` [o, i] -> [b, o].
pub fn linear(x: &[f64], w: &[f64], bias: Option<&[f64]>, b: usize, i: usize, o: usize) -> Vec<f64> {
    let mut y = vec![0.0; b * o];
    for n in 0..b {
        for j in 0..o {
            y[n * o + j] = bias.map_or(0.0, |bb| bb[j]) + (0..i).map(|t| x[n * i + t] * w[j * i + t]).sum::<f64>();
        }
    }
    y
}

/// Linear backward: (dx, dw, dbias).
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    b: usize,
    i: usize,
    o: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; b * i];
    let mut dw = vec![0.0; o * i];
    let mut db = vec![0.0; o];
    for n in 0..b {
        for j in 0..o {
            let g = dy[n * o + j];
            db[j] += g;
            for t in 0..i {
                dw[j * i + t] += g * x[n * i + t];
                dx[n * i + t] += g * w[j * i + t];
            }
        }
    }
    (dx, dw, db)
}

/// Max pooling forward (floor mode, no padding); returns values and arg-max indices
/// (first maximum in window order).
pub fn maxpool(x: &[f64], b: usize, c: usize, h: usize, w: usize, k: usize, s: usize) -> (Vec<f64>, Vec<usize>) {
    let oh = (h - k) / s + 1;
    let ow = (w - k) / s + 1;
    let mut y = Vec::with_capacity(b * c * oh * ow);
    let mut arg = Vec::with_capacity(b * c * oh * ow);
    for plane in 0..b * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = plane * h * w + oy * s * w + ox * s;
                for ky in 0..k {
                    for kx in 0..k {
                        let i = plane * h * w + (oy * s + ky) * w + ox * s + kx;
                        if x[i] > x[best] {
                            best = i;
                        }
                    }
                }
                y.push(x[best]);
                arg.push(best);
            }
        }
    }
    (y, arg)
}

/// Max pooling backward: scatter `dy` to the arg-max positions.
pub fn maxpool_backward(dy: &[f64], arg: &[usize], input_len: usize) -> Vec<f64> {
    let mut dx = vec![0.0; input_len];
    for (g, &i) in dy.iter().zip(arg) {
        dx[i] += g;
    }
    dx
}

/// PReLU forward with `slopes.len()` channels over `pixels` values each.
pub fn prelu(x: &[f64], slopes: &[f64], pixels: usize) -> Vec<f64> {
    x.iter().enumerate().map(|(i, &v)| if v > 0.0 { v } else { slopes[(i / pixels) % slopes.len()] * v }).collect()
}

/// PReLU backward: (dx, dslopes).
pub fn prelu_backward(x: &[f64], slopes: &[f64], dy: &[f64], pixels: usize) -> (Vec<f64>, Vec<f64>) {
    let mut ds = vec![0.0; slopes.len()];
    let dx = x
        .iter()
        .zip(dy)
        .enumerate()
        .map(|(i, (&v, &g))| {
            let c = (i / pixels) % slopes.len();
            if v > 0.0 {
                g
            } else {
                ds[c] += g * v;
                slopes[c] * g
            }
        })
        .collect();
    (dx, ds)
}

/// Softmax cross-entropy over rows of `logits` [b, classes]: (mean loss, d logits, accuracy).
pub fn softmax_cross_entropy(logits: &[f64], labels: &[u32], classes: usize) -> (f64, Vec<f64>, f64) {
    let b = labels.len();
    let mut grad = vec![0.0; logits.len()];
    let mut loss = 0.0;
    let mut correct = 0;
    for (n, &y) in labels.iter().enumerate() {
        let row = &logits[n * classes..(n + 1) * classes];
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|z| (z - max).exp()).sum();
        loss += sum.ln() + max - row[y as usize];
        let argmax = row.iter().enumerate().fold(0, |best, (c, &z)| if z > row[best] { c } else { best });
        correct += (argmax == y as usize) as usize;
        for c in 0..classes {
            grad[n * classes + c] = ((row[c] - max).exp() / sum - (c == y as usize) as u8 as f64) / b as f64;
        }
    }
    (loss / b as f64, grad, correct as f64 / b as f64)
}

/// Margin softmax cross-entropy over rows of `cosines` [b, classes] of a normalised
/// [`Head`]: the true class's logit s·f(cos θ_y) ([`Head::target`]), the others' s·cos θ_c.
/// (mean loss, d cosines, accuracy of the arg-max cosine).
pub fn margin_cross_entropy(cosines: &[f64], labels: &[u32], classes: usize, head: &Head) -> (f64, Vec<f64>, f64) {
    let scale = head.scale as f64;
    let mut logits: Vec<f64> = cosines.iter().map(|c| scale * c).collect();
    let mut slopes = vec![1.0; labels.len()];
    for (n, &y) in labels.iter().enumerate() {
        let (target, slope) = head.target(cosines[n * classes + y as usize]);
        logits[n * classes + y as usize] = scale * target;
        slopes[n] = slope;
    }
    let (loss, mut grad, _) = softmax_cross_entropy(&logits, labels, classes);
    let (_, _, accuracy) = softmax_cross_entropy(cosines, labels, classes);
    for (n, &y) in labels.iter().enumerate() {
        for c in 0..classes {
            grad[n * classes + c] *= scale * if c == y as usize { slopes[n] } else { 1.0 };
        }
    }
    (loss, grad, accuracy)
}

/// L2 normalisation of rows of `dim`: (y, norms).
pub fn l2norm(x: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; x.len()];
    let mut norms = Vec::new();
    for (r, row) in x.chunks(dim).enumerate() {
        let n = (row.iter().map(|v| v * v).sum::<f64>() + 1e-10).sqrt();
        norms.push(n);
        for d in 0..dim {
            y[r * dim + d] = row[d] / n;
        }
    }
    (y, norms)
}

/// L2 normalisation backward.
pub fn l2norm_backward(y: &[f64], norms: &[f64], dy: &[f64], dim: usize) -> Vec<f64> {
    let mut dx = vec![0.0; y.len()];
    for (r, n) in norms.iter().enumerate() {
        let dot: f64 = (0..dim).map(|d| y[r * dim + d] * dy[r * dim + d]).sum();
        for d in 0..dim {
            dx[r * dim + d] = (dy[r * dim + d] - y[r * dim + d] * dot) / n;
        }
    }
    dx
}
