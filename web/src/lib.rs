//! `centerloss` in the browser: the page's trainer (LeNet++, the paper's MNIST network, with
//! softmax + center loss on the browser's WebGPU) as a JavaScript class.
//!
//! Every wait for the GPU is a JavaScript promise: the library's asynchronous forms
//! ([`Network::train_step_async`], [`Network::infer_async`],
//! [`centerloss::GpuCenterLoss::centers_async`]) are awaited here, never blocked on.

pub mod twins;

use std::cell::RefCell;
use std::rc::Rc;

use centerloss::data::faces::FaceSetConfig;
use centerloss::data::{mnist, Dataset};
use centerloss::nn::{MultiStep, Network, NetworkSpec, SgdConfig, TrainConfig};
use centerloss::{eval, CenterLossConfig, GpuContext, UpdateMode, DEFAULT_ALPHA, DEFAULT_LAMBDA};
use js_sys::{Float32Array, Promise, Uint32Array};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// LeNet++'s classes and embedding width.
const CLASSES: usize = 10;
const DIM: usize = 2;

thread_local! {
    /// The page's one GPU context: every trainer shares its device and compiled pipelines.
    static CONTEXT: RefCell<Option<GpuContext>> = const { RefCell::new(None) };
}

/// The page's GPU context, opened on first use.
async fn context() -> Result<GpuContext, JsValue> {
    if let Some(ctx) = CONTEXT.with(|c| c.borrow().clone()) {
        return Ok(ctx);
    }
    let ctx = GpuContext::new_async().await.map_err(js)?;
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    Ok(ctx)
}

/// The paper's (and the crate's) default center-loss weight λ.
#[wasm_bindgen(js_name = defaultLambda)]
pub fn default_lambda() -> f32 {
    DEFAULT_LAMBDA
}

/// The paper's (and the crate's) default center learning rate α.
#[wasm_bindgen(js_name = defaultAlpha)]
pub fn default_alpha() -> f32 {
    DEFAULT_ALPHA
}

fn js(e: centerloss::Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// LeNet++ training on one data set, with the test features it draws.
struct State {
    net: Network,
    train: Dataset,
    test: Dataset,
    order: Vec<usize>,
    cursor: usize,
    rng: StdRng,
    batch: usize,
    images: Vec<f32>,
    labels: Vec<u32>,
    /// The test features of the last `features` call, and their accuracy.
    features: Vec<f32>,
    test_accuracy: f64,
}

impl State {
    /// The next batch of the shuffled training set (reshuffled at each epoch's end).
    fn next_batch(&mut self) {
        let per: usize = self.train.shape.iter().product();
        for k in 0..self.batch {
            if self.cursor == self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.cursor = 0;
            }
            let i = self.order[self.cursor];
            self.cursor += 1;
            self.images[k * per..(k + 1) * per].copy_from_slice(&self.train.images[i * per..(i + 1) * per]);
            self.labels[k] = self.train.labels[i];
        }
    }
}

/// How a trainer trains: the center loss's λ and α, the steps planned (the learning rate
/// drops 10x at 60% and 85% of them), images per step, and test images drawn.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The center-loss weight (0: softmax alone).
    pub lambda: f32,
    /// The centers' learning rate.
    pub alpha: f32,
    /// Steps planned.
    pub steps: u32,
    /// Images per step.
    pub batch: usize,
    /// Test images whose features are drawn (at most the test set's).
    pub test_images: usize,
}

#[wasm_bindgen]
impl Plan {
    /// A plan with the MNIST experiment's batch (64) and 1 000 test images drawn.
    #[wasm_bindgen(constructor)]
    pub fn new(lambda: f32, alpha: f32, steps: u32) -> Plan {
        Plan { lambda, alpha, steps, batch: 64, test_images: 1000 }
    }
}

/// LeNet++ with softmax + λ · center loss, trained step by step on the browser's GPU.
#[wasm_bindgen]
pub struct Trainer {
    state: Rc<RefCell<State>>,
    adapter: String,
}

#[wasm_bindgen]
impl Trainer {
    /// A trainer on MNIST IDX files (not gzipped): the first 8 000 images train, the rest
    /// test (as `centerloss mnist` splits the t10k files). Resolves to a `Trainer`.
    pub fn mnist(images: Vec<u8>, labels: Vec<u8>, plan: Plan) -> Promise {
        future_to_promise(async move {
            let all = mnist::parse_pair(&images, &labels, "MNIST IDX files").map_err(js)?;
            let cut = all.len().min(8000);
            let train = all.select(&(0..cut).collect::<Vec<_>>());
            let test = all.select(&(cut..all.len()).collect::<Vec<_>>());
            Self::open(train, test, plan).await.map(JsValue::from)
        })
    }

    /// A trainer on the built-in procedural faces (28 x 28 grey, 10 identities of 120
    /// images; 20 more images of each identity test). Resolves to a `Trainer`.
    pub fn faces(plan: Plan) -> Promise {
        future_to_promise(async move {
            let faces = FaceSetConfig {
                train_identities: CLASSES,
                test_identities: 0,
                images_per_identity: 140,
                resolution: 28,
                rgb: false,
                ..Default::default()
            };
            let all = faces.generate(0, CLASSES);
            let per = faces.images_per_identity;
            let (train, test): (Vec<usize>, Vec<usize>) = (0..all.len()).partition(|i| i % per < 120);
            Self::open(all.select(&train), all.select(&test), plan).await.map(JsValue::from)
        })
    }

    async fn open(train: Dataset, test: Dataset, plan: Plan) -> Result<Trainer, JsValue> {
        let Plan { lambda, alpha, steps, batch, test_images } = plan;
        let ctx = context().await?;
        let test = test.select(&(0..test.len().min(test_images.max(1))).collect::<Vec<_>>());
        let sgd = SgdConfig {
            lr: 0.1,
            schedule: MultiStep::at_fractions(steps as u64, &[0.6, 0.85], 0.1),
            clip_grad_norm: Some(1.0),
            ..Default::default()
        };
        let cfg = TrainConfig {
            batch,
            sgd,
            center: CenterLossConfig { lambda, alpha, update: UpdateMode::Atomic, ..Default::default() },
            seed: 1,
            ..Default::default()
        };
        let net = Network::new(&ctx, NetworkSpec::lenet_plus_plus(), cfg).map_err(js)?;
        let per: usize = train.shape.iter().product();
        let state = State {
            net,
            order: (0..train.len()).collect(),
            cursor: train.len(),
            train,
            test,
            rng: StdRng::seed_from_u64(1),
            batch,
            images: vec![0.0; batch * per],
            labels: vec![0; batch],
            features: Vec::new(),
            test_accuracy: 0.0,
        };
        Ok(Trainer { state: Rc::new(RefCell::new(state)), adapter: ctx.adapter_summary() })
    }

    /// The adapter, backend and kernel variants the trainer runs on.
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Trains `steps` steps; resolves to the last step's `[softmax loss, batch accuracy,
    /// center loss, steps so far]`.
    pub fn train(&self, steps: u32) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let mut s = state.try_borrow_mut().map_err(|_| JsError::new("the trainer is busy"))?;
            for _ in 1..steps.max(1) {
                s.next_batch();
                let State { net, images, labels, .. } = &mut *s;
                net.train_step(images, labels, false).map_err(js)?;
            }
            s.next_batch();
            let State { net, images, labels, .. } = &mut *s;
            let m = net.train_step_async(images, labels).await.map_err(js)?;
            let step = net.step_count() as f32;
            Ok(Float32Array::from(&[m.softmax_loss, m.accuracy, m.center_loss, step][..]).into())
        })
    }

    /// The test images' 2-D features (`2 n` values); also sets [`Trainer::test_accuracy`]
    /// and what [`Trainer::centers`] averages with λ = 0.
    pub fn features(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let mut s = state.try_borrow_mut().map_err(|_| JsError::new("the trainer is busy"))?;
            let out = s.net.infer_async(&s.test.images).await.map_err(js)?;
            let right = out.predictions(CLASSES).iter().zip(&s.test.labels).filter(|(p, y)| p == y).count();
            s.test_accuracy = right as f64 / s.test.len().max(1) as f64;
            s.features = out.embeddings;
            Ok(Float32Array::from(&s.features[..]).into())
        })
    }

    /// The class centers (`2 · 10` values): the center loss's, or with λ = 0 the means of
    /// the test features the last `features` call returned.
    pub fn centers(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let s = state.try_borrow().map_err(|_| JsError::new("the trainer is busy"))?;
            let centers = match s.net.center_loss() {
                Some(cl) => cl.centers_async().await.map_err(js)?,
                None => eval::class_means(&s.features, DIM, &s.test.labels)
                    .values()
                    .flat_map(|m| m.iter().map(|&v| v as f32))
                    .collect(),
            };
            Ok(Float32Array::from(&centers[..]).into())
        })
    }

    /// The test images' labels.
    #[wasm_bindgen(js_name = testLabels)]
    pub fn test_labels(&self) -> Uint32Array {
        Uint32Array::from(&self.state.borrow().test.labels[..])
    }

    /// The test accuracy of the last `features` call.
    #[wasm_bindgen(js_name = testAccuracy)]
    pub fn test_accuracy(&self) -> f64 {
        self.state.borrow().test_accuracy
    }

    /// Images per step.
    #[wasm_bindgen(js_name = batchSize)]
    pub fn batch_size(&self) -> usize {
        self.state.borrow().batch
    }
}
