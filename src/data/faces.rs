//! A built-in procedural face set, deterministic by seed, needing no files.
//!
//! Each identity has stable geometry and appearance: head shape, skin tone, hair style and
//! colour, eye size and spacing, brows, nose, mouth, glasses, beard. Each image of it varies
//! in nuisance: pose (shift, scale, in-plane rotation), lighting direction and contrast,
//! expression (smile, eye openness, brow raise), blur and noise, background, and a partial
//! occlusion. Identities are drawn independently from `(seed, identity index)`, so the
//! training and evaluation identities of [`FaceSetConfig::split`] are disjoint.

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::Dataset;

/// Sizes and difficulty of a generated face set.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceSetConfig {
    /// Identities used for training.
    pub train_identities: usize,
    /// Held-out identities used only for evaluation.
    pub test_identities: usize,
    /// Images per identity.
    pub images_per_identity: usize,
    /// Image side in pixels (square).
    pub resolution: usize,
    /// Three colour channels instead of one grey channel.
    pub rgb: bool,
    /// Scales every nuisance (pose, light, expression, noise, occlusion). The default 0.6
    /// keeps the set hard (softmax alone stays well short of perfect verification) while a
    /// run of minutes on a CPU driver converges; at 1.0 a 5-epoch run ended at ~50%
    /// training accuracy.
    pub difficulty: f32,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for FaceSetConfig {
    fn default() -> Self {
        Self {
            train_identities: 150,
            test_identities: 50,
            images_per_identity: 20,
            resolution: 64,
            rgb: false,
            difficulty: 0.6,
            seed: 7,
        }
    }
}

/// The stable traits of one identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    head: [f32; 3], // radius x, radius y, jaw narrowing
    skin: [f32; 3],
    hair: [f32; 3],
    hair_style: u8, // 0 short, 1 long, 2 bald, 3 fringe
    hairline: f32,
    eye_dx: f32,
    eye_y: f32,
    eye_r: f32,
    iris: f32,
    brow: [f32; 3],  // thickness, tilt, height above the eye
    nose: [f32; 3],  // length, width, shade
    mouth: [f32; 4], // y, half width, thickness, resting curvature
    glasses: bool,
    beard: f32,
}

impl Identity {
    /// The identity with index `index` of the set drawn from `seed`.
    pub fn generate(seed: u64, index: u64) -> Self {
        let mut r =
            StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let tone = r.random_range(0.35..0.9f32);
        let warm = r.random_range(0.0..0.15f32);
        let hair_tone = r.random_range(0.05..0.6f32);
        Self {
            head: [r.random_range(0.5..0.72), r.random_range(0.68..0.9), r.random_range(0.0..0.35)],
            skin: [tone + warm, tone, tone - warm],
            hair: [hair_tone + r.random_range(0.0..0.2), hair_tone, hair_tone * r.random_range(0.6..1.0)],
            hair_style: r.random_range(0..4),
            hairline: r.random_range(-0.55..-0.3),
            eye_dx: r.random_range(0.16..0.3),
            eye_y: r.random_range(-0.2..0.0),
            eye_r: r.random_range(0.05..0.1),
            iris: r.random_range(0.05..0.45),
            brow: [r.random_range(0.015..0.05), r.random_range(-0.35..0.35), r.random_range(0.1..0.18)],
            nose: [r.random_range(0.12..0.3), r.random_range(0.04..0.1), r.random_range(0.08..0.25)],
            mouth: [
                r.random_range(0.3..0.45),
                r.random_range(0.12..0.25),
                r.random_range(0.015..0.04),
                r.random_range(-0.6..0.6),
            ],
            glasses: r.random_bool(0.25),
            beard: if r.random_bool(0.2) { r.random_range(0.3..0.8) } else { 0.0 },
        }
    }
}

/// The nuisance of one image.
struct Nuisance {
    shift: [f32; 2],
    scale: f32,
    angle: f32,
    light: [f32; 2],
    contrast: f32,
    brightness: f32,
    smile: f32,
    eye_open: f32,
    brow_raise: f32,
    background: f32,
    noise: f32,
    blur: usize,
    occlusion: Option<([f32; 4], f32)>,
}

impl Nuisance {
    fn draw(r: &mut StdRng, d: f32) -> Self {
        let d = d.max(0.0);
        let s = |r: &mut StdRng, x: f32| if x > 0.0 { r.random_range(-x..x) } else { 0.0 };
        Self {
            shift: [s(r, 0.12 * d), s(r, 0.12 * d)],
            scale: 1.0 + s(r, 0.12 * d),
            angle: s(r, 0.25 * d),
            light: [s(r, 0.6 * d), s(r, 0.4 * d)],
            contrast: 1.0 + s(r, 0.35 * d),
            brightness: s(r, 0.15 * d),
            smile: s(r, 0.6 * d),
            eye_open: 1.0 - r.random_range(0.0..0.6 * d.min(1.5)),
            brow_raise: s(r, 0.04 * d),
            background: r.random_range(0.1..0.9),
            noise: r.random_range(0.0..0.06 * d),
            blur: if r.random_bool((0.4 * d as f64).min(1.0)) { r.random_range(1..=2) } else { 0 },
            occlusion: if r.random_bool((0.3 * d as f64).min(1.0)) {
                let (w, h) = (r.random_range(0.2..0.6), r.random_range(0.15..0.45));
                Some(([r.random_range(-0.9..0.9 - w), r.random_range(-0.9..0.9 - h), w, h], r.random_range(0.0..1.0)))
            } else {
                None
            },
        }
    }
}

fn ellipse(u: f32, v: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> f32 {
    ((u - cx) / rx).powi(2) + ((v - cy) / ry).powi(2)
}

/// Soft inside test: 1 well inside, 0 outside, smooth over about a pixel.
fn inside(level: f32, edge: f32) -> f32 {
    ((1.0 - level) / edge).clamp(0.0, 1.0)
}

/// The face's colour at canonical coordinates (u, v) in [-1, 1]^2 (v grows downwards).
fn shade(id: &Identity, n: &Nuisance, u: f32, v: f32, edge: f32) -> [f32; 3] {
    let bg = n.background;
    let mut c = [bg, bg * 0.95, bg * 0.9];
    let mix = |c: &mut [f32; 3], col: [f32; 3], a: f32| {
        for k in 0..3 {
            c[k] += (col[k] - c[k]) * a;
        }
    };
    let [rx, ry, jaw] = id.head;
    // Head, narrowing towards the chin.
    let head_rx = rx * (1.0 - jaw * (v.max(0.0) / ry).powi(2));
    let head = inside(ellipse(u, v, 0.0, 0.05, head_rx.max(0.05), ry), edge * 4.0);
    // Long hair behind the head.
    if id.hair_style == 1 {
        let back = inside(ellipse(u, v, 0.0, 0.1, rx * 1.15, ry * 1.05), edge * 4.0) * (v < 0.55) as u8 as f32;
        mix(&mut c, id.hair, back);
    }
    mix(&mut c, id.skin, head);
    // Beard on the lower face.
    if id.beard > 0.0 {
        let b = head * ((v - id.mouth[0] + 0.12) / 0.1).clamp(0.0, 1.0) * id.beard;
        mix(&mut c, id.hair, b);
    }
    // Hair on top.
    if id.hair_style != 2 {
        let line = id.hairline + if id.hair_style == 3 { 0.12 * (1.0 - (3.0 * u).cos()) - 0.1 } else { 0.0 };
        let top =
            inside(ellipse(u, v, 0.0, 0.0, rx * 1.08, ry * 1.06), edge * 4.0) * ((line - v) / 0.04).clamp(0.0, 1.0);
        mix(&mut c, id.hair, top);
    }
    // Eyes, brows and glasses.
    let open = n.eye_open;
    for side in [-1.0f32, 1.0] {
        let ex = side * id.eye_dx;
        let white = inside(ellipse(u, v, ex, id.eye_y, id.eye_r * 1.5, id.eye_r * open.max(0.15)), edge * 3.0);
        mix(&mut c, [0.92, 0.92, 0.9], white * head);
        let iris = inside(ellipse(u, v, ex, id.eye_y, id.eye_r * 0.7, id.eye_r * 0.7 * open.max(0.15)), edge * 3.0);
        mix(&mut c, [id.iris * 0.6, id.iris * 0.8, id.iris], iris * head);
        let by = id.eye_y - id.brow[2] - n.brow_raise;
        let tilt = side * id.brow[1] * (u - ex);
        let brow = ((id.brow[0] - (v - by - tilt).abs()) / edge).clamp(0.0, 1.0)
            * ((u - ex).abs() < id.eye_r * 1.8) as u8 as f32;
        mix(&mut c, id.hair, brow * head);
        if id.glasses {
            let ring = (ellipse(u, v, ex, id.eye_y, id.eye_r * 2.2, id.eye_r * 1.8).sqrt() - 1.0).abs();
            mix(&mut c, [0.08, 0.08, 0.1], ((0.12 - ring) / 0.06).clamp(0.0, 1.0));
        }
    }
    if id.glasses {
        let bridge = ((0.015 - (v - id.eye_y).abs()) / edge).clamp(0.0, 1.0)
            * (u.abs() < id.eye_dx - id.eye_r * 2.0) as u8 as f32;
        mix(&mut c, [0.08, 0.08, 0.1], bridge);
    }
    // Nose: a shaded wedge below the eyes.
    let [nl, nw, ns] = id.nose;
    let t = (v - id.eye_y) / nl;
    if (0.0..=1.0).contains(&t) {
        let width = nw * (0.3 + 0.7 * t);
        let a = ((width - u.abs()) / (edge * 2.0)).clamp(0.0, 1.0) * ns;
        let dark = [c[0] * 0.6, c[1] * 0.6, c[2] * 0.6];
        mix(&mut c, dark, a * head);
    }
    // Mouth: a curved line whose curvature the expression changes.
    let [my, mw, mt, curve] = id.mouth;
    if u.abs() < mw {
        let y = my + (curve + n.smile) * 0.25 * ((u / mw).powi(2) - 0.5);
        let a = ((mt - (v - y).abs()) / edge).clamp(0.0, 1.0);
        mix(&mut c, [0.45, 0.15, 0.15], a * head);
    }
    c
}

/// Renders one image of `id` with nuisance drawn from `rng` into `out`
/// (`channels * res * res` values in [-1, 1]).
pub fn render(id: &Identity, res: usize, rgb: bool, difficulty: f32, rng: &mut StdRng, out: &mut [f32]) {
    let n = Nuisance::draw(rng, difficulty);
    let plane = res * res;
    let (sin, cos) = n.angle.sin_cos();
    let edge = 2.0 / res as f32;
    let mut img = vec![[0.0f32; 3]; plane];
    for y in 0..res {
        for x in 0..res {
            // Pixel -> canonical coordinates: undo shift, rotation and scale.
            let px = (x as f32 + 0.5) / res as f32 * 2.0 - 1.0 - n.shift[0];
            let py = (y as f32 + 0.5) / res as f32 * 2.0 - 1.0 - n.shift[1];
            let u = (cos * px + sin * py) / n.scale;
            let v = (-sin * px + cos * py) / n.scale;
            let mut c = shade(id, &n, u, v, edge / n.scale);
            let light = 1.0 + n.light[0] * px + n.light[1] * py;
            for ch in &mut c {
                *ch = (*ch * light - 0.5) * n.contrast + 0.5 + n.brightness;
            }
            if let Some(([ox, oy, ow, oh], tone)) = n.occlusion {
                if px >= ox && px < ox + ow && py >= oy && py < oy + oh {
                    c = [tone, tone * 0.9, tone * 0.8];
                }
            }
            img[y * res + x] = c;
        }
    }
    for _ in 0..n.blur {
        let src = img.clone();
        for y in 0..res {
            for x in 0..res {
                let mut acc = [0.0f32; 3];
                let mut count = 0.0;
                for (dy, dx) in [(0i32, 0i32), (-1, 0), (1, 0), (0, -1), (0, 1)] {
                    let (yy, xx) = (y as i32 + dy, x as i32 + dx);
                    if yy >= 0 && xx >= 0 && (yy as usize) < res && (xx as usize) < res {
                        let p = src[yy as usize * res + xx as usize];
                        acc = [acc[0] + p[0], acc[1] + p[1], acc[2] + p[2]];
                        count += 1.0;
                    }
                }
                img[y * res + x] = acc.map(|a| a / count);
            }
        }
    }
    for (i, c) in img.iter().enumerate() {
        let noise = |r: &mut StdRng| if n.noise > 0.0 { r.random_range(-n.noise..n.noise) } else { 0.0 };
        if rgb {
            for ch in 0..3 {
                out[ch * plane + i] = ((c[ch] + noise(rng)).clamp(0.0, 1.0) - 0.5) * 2.0;
            }
        } else {
            let grey = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
            out[i] = ((grey + noise(rng)).clamp(0.0, 1.0) - 0.5) * 2.0;
        }
    }
}

/// The most memory a generated set may take decoded: 16 GiB (the default set takes 62 MiB).
pub const MAX_GENERATED_BYTES: u64 = 16 << 30;

impl FaceSetConfig {
    /// Bytes of `identities` identities' images.
    fn bytes(&self, identities: usize) -> Option<u64> {
        let per_image: u64 = self.shape().iter().try_fold(4u64, |n, &d| n.checked_mul(d as u64))?;
        per_image.checked_mul(self.images_per_identity as u64)?.checked_mul(identities as u64)
    }

    /// [`Error::Config`](crate::Error::Config) unless the set can be generated and evaluated:
    /// at least 1 training and 2 held-out identities (impostor pairs need two), 2 images
    /// per identity (genuine pairs need two), a side of at least 1 pixel, a finite
    /// difficulty >= 0, and `identities` of them at a time within [`MAX_GENERATED_BYTES`].
    pub fn validate(&self, identities: usize) -> crate::Result<()> {
        let fail = |why: String| Err(crate::Error::Config(format!("the built-in faces: {why}")));
        if self.train_identities == 0 {
            return fail("train on at least 1 identity (--identities)".into());
        }
        if self.test_identities < 2 {
            return fail(format!(
                "{} held-out identities give no impostor pair: hold out at least 2 (--eval-identities)",
                self.test_identities
            ));
        }
        if self.images_per_identity < 2 {
            return fail(format!(
                "{} image per identity gives no genuine pair: at least 2 (--images-per-identity)",
                self.images_per_identity
            ));
        }
        if self.resolution == 0 {
            return fail("the side must be at least 1 pixel (--resolution)".into());
        }
        if !(self.difficulty.is_finite() && self.difficulty >= 0.0) {
            return fail(format!("the difficulty must be a finite number >= 0, got {}", self.difficulty));
        }
        match self.bytes(identities) {
            Some(bytes) if bytes <= MAX_GENERATED_BYTES => Ok(()),
            bytes => fail(format!(
                "{identities} identities of {} images at {}x{} take {} in memory, more than {MAX_GENERATED_BYTES} \
                 bytes: generate fewer or smaller images",
                self.images_per_identity,
                self.resolution,
                self.resolution,
                bytes.map_or("more than 2^64 bytes".into(), |b| format!("{b} bytes"))
            )),
        }
    }

    /// Per-image shape.
    pub fn shape(&self) -> [usize; 3] {
        [if self.rgb { 3 } else { 1 }, self.resolution, self.resolution]
    }

    /// Generates identities `first..first + count` (labels 0..count), on all cores.
    pub fn generate(&self, first: usize, count: usize) -> Dataset {
        let shape = self.shape();
        let len: usize = shape.iter().product();
        let per = self.images_per_identity;
        let mut images = vec![0.0f32; count * per * len];
        let threads = crate::threads::available().min(count.max(1));
        let ids_per_thread = count.div_ceil(threads.max(1)).max(1);
        let parts = images.chunks_mut(ids_per_thread * per * len).collect();
        let done = crate::threads::run_parts(parts, |t, chunk: &mut [f32]| {
            for (k, id_images) in chunk.chunks_mut(per * len).enumerate() {
                let index = (first + t * ids_per_thread + k) as u64;
                let id = Identity::generate(self.seed, index);
                let mut rng = StdRng::seed_from_u64(self.seed ^ (index + 1).wrapping_mul(0xA24B_AED4_963E_E407));
                for img in id_images.chunks_mut(len) {
                    render(&id, self.resolution, self.rgb, self.difficulty, &mut rng, img);
                }
            }
        });
        for part in done {
            if let Err(panic) = part {
                std::panic::resume_unwind(panic);
            }
        }
        let labels = (0..count as u32).flat_map(|l| std::iter::repeat_n(l, per)).collect();
        Dataset { shape, images, labels }
    }

    /// The training set (identities 0..train_identities) and the evaluation set (the next
    /// test_identities, never seen in training), each labelled from 0.
    pub fn split(&self) -> (Dataset, Dataset) {
        (self.generate(0, self.train_identities), self.generate(self.train_identities, self.test_identities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> FaceSetConfig {
        FaceSetConfig {
            train_identities: 3,
            test_identities: 2,
            images_per_identity: 4,
            resolution: 32,
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_same_pixels_other_seed_other_pixels() {
        let (a, _) = small().split();
        let (b, _) = small().split();
        assert_eq!(a, b);
        let (c, _) = FaceSetConfig { seed: 8, ..small() }.split();
        assert_ne!(a.images, c.images);
        assert!(a.images.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(a.labels, vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn identities_are_disjoint_and_images_vary() {
        let cfg = small();
        let (train, test) = cfg.split();
        // Evaluation identities are generated from other indices than the training ones.
        for i in 0..cfg.test_identities {
            let held_out = Identity::generate(cfg.seed, (cfg.train_identities + i) as u64);
            for j in 0..cfg.train_identities {
                assert_ne!(held_out, Identity::generate(cfg.seed, j as u64));
            }
        }
        assert_eq!(test.len(), 8);
        // Two images of one identity differ (nuisance), as do two identities.
        assert_ne!(train.image(0), train.image(1));
        assert_ne!(train.image(0), train.image(4));
        let rgb = FaceSetConfig { rgb: true, ..small() }.generate(0, 1);
        assert_eq!(rgb.shape, [3, 32, 32]);
    }
}
