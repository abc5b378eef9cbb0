//! The exported ONNX models, run by tract (an ONNX implementation this crate did not
//! write), give the embeddings the GPU gives: the face network and LeNet++, with trained-
//! looking random weights, on random inputs and on real photographs read with the
//! model's recorded preprocessing (`data/yalefaces`); max abs error <= 1e-4. And a model
//! opens as its forward pass alone (no gradient, momentum or backward dispatch).
#![cfg(feature = "experiments")]

mod common;

use std::path::{Path, PathBuf};

use centerloss::checkpoint;
use centerloss::data::{ImageSource, Preprocessing};
use centerloss::model::Model;
use centerloss::nn::{Network, NetworkSpec};
use centerloss::GpuContext;
use rand::{rngs::StdRng, Rng, SeedableRng};
use tract_onnx::prelude::*;

/// A model file of `spec` whose every parameter (the zero-initialised residual branches'
/// included) is perturbed at random, with the preprocessing of its input.
fn model_file(ctx: &GpuContext, spec: NetworkSpec, dir: &Path) -> PathBuf {
    let input = spec.input;
    let mut net = Network::new(ctx, spec, Default::default()).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    for (i, values) in net.param_values().unwrap().into_iter().enumerate() {
        let noisy: Vec<f32> = values.iter().map(|v| v + rng.random_range(-0.05f32..0.05)).collect();
        net.set_param(i, &noisy).unwrap();
    }
    let path = dir.join("model.safetensors");
    let preprocessing = Preprocessing::centre_square(input).unwrap().to_json();
    checkpoint::save_with(&net, &path, &[(checkpoint::PREPROCESSING, preprocessing)]).unwrap();
    path
}

/// tract's embeddings of `images` (n x C x H x W values).
fn tract_embeddings(onnx: &[u8], images: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let n = images.len() / shape.iter().product::<usize>();
    let [c, h, w] = shape;
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact([n, c, h, w]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input: Tensor = tract_ndarray::Array4::from_shape_vec((n, c, h, w), images.to_vec()).unwrap().into();
    let mut outputs = plan.run(tvec!(input.into())).unwrap();
    outputs.remove(0).into_tensor().to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn exported_models_give_the_gpus_embeddings_in_tract() {
    let Some(ctx) = common::gpu() else { return };
    let yale = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/yalefaces");
    let ImageSource::Files(yale) = ImageSource::open(&yale).unwrap() else { panic!("a folder lists files") };
    let photos: Vec<PathBuf> = yale.into_iter().step_by(11).map(|(p, _)| p).collect();
    for (name, spec) in
        [("face network", NetworkSpec::face_resnet(1, 64, 128, 15)), ("LeNet++", NetworkSpec::lenet_plus_plus())]
    {
        let dir = std::env::temp_dir().join(format!("centerloss-onnx-{}-{}", name.len(), std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = Model::open(&ctx, &model_file(&ctx, spec, &dir)).unwrap();
        let onnx = centerloss::onnx::export(&model).unwrap();
        let shape = model.preprocessing().input;
        let mut rng = StdRng::seed_from_u64(9);
        let random: Vec<f32> =
            (0..5 * shape.iter().product::<usize>()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let real: Vec<f32> = photos.iter().flat_map(|p| model.preprocessing().load(p).unwrap()).collect();
        for (what, images) in [("random inputs", random), ("yalefaces", real)] {
            let gpu = model.embed_pixels(&images).unwrap();
            let tract = tract_embeddings(&onnx, &images, shape);
            let err = max_abs_difference(&tract, &gpu);
            eprintln!("{name}, {what}: max abs difference {err:.2e}");
            assert!(err <= 1e-4, "{name}, {what}: {err}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// A model opens as its forward pass alone: the trunk's parameter values in one page (no
/// classifier, no gradient or momentum buffer), no backward dispatch; and it embeds as
/// the training network it was saved from does.
#[test]
fn a_model_holds_its_forward_pass_alone() {
    let Some(ctx) = common::gpu() else { return };
    let spec = NetworkSpec::face_resnet(1, 64, 128, 15);
    let dir = std::env::temp_dir().join(format!("centerloss-model-alone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = model_file(&ctx, spec.clone(), &dir);
    let model = Model::open(&ctx, &path).unwrap();
    let graph = model.network().graph();
    assert!(!graph.trains());
    assert_eq!(graph.backward_dispatches(), 0);
    let pages = graph.param_pages();
    assert_eq!(pages.len(), 1);
    assert!(pages[0].grad.is_none() && pages[0].velocity.is_none());
    assert_eq!(pages[0].bytes(), 4 * spec.param_values(false) as u64);
    assert!(graph.params().iter().all(|p| p.grad.is_none() && p.velocity.is_none()));

    let mut net = Network::new(&ctx, spec.clone(), Default::default()).unwrap();
    checkpoint::load(&mut net, &path).unwrap();
    assert_eq!(net.graph().param_pages()[0].bytes(), 3 * 4 * spec.arena_values() as u64);
    let mut rng = StdRng::seed_from_u64(3);
    let images: Vec<f32> = (0..5 * model.network().input_len()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let mut trained = net.infer(&images).unwrap().embeddings;
    centerloss::model::normalize_rows(&mut trained, model.dim());
    let used = model.embed_pixels(&images).unwrap();
    let err = max_abs_difference(&used, &trained);
    assert!(err < 1e-5, "the model's embeddings differ from the training network's by {err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// An inference network asked for its classifier gives the training network's logits,
/// under a linear head and a normalised (margin) one, with its weights read by
/// `checkpoint::load_values`.
#[test]
fn an_inference_network_with_its_classifier_gives_the_training_logits() {
    use centerloss::nn::{Head, InferenceNetwork};
    let Some(ctx) = common::gpu() else { return };
    let dir = std::env::temp_dir().join(format!("centerloss-inference-logits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let linear = NetworkSpec::lenet_plus_plus();
    let arcface = NetworkSpec { head: Head::arcface(16.0, 0.5), classifier_bias: false, ..linear.clone() };
    for (name, spec) in [("linear", linear), ("arcface", arcface)] {
        let path = model_file(&ctx, spec.clone(), &dir);
        let mut net = Network::new(&ctx, spec.clone(), Default::default()).unwrap();
        checkpoint::load(&mut net, &path).unwrap();
        let inference = InferenceNetwork::new(&ctx, spec, 32, true).unwrap();
        checkpoint::load_values(&inference, &std::fs::read(&path).unwrap(), &path).unwrap();
        assert_eq!(inference.graph().backward_dispatches(), 0, "{name}");
        let mut rng = StdRng::seed_from_u64(4);
        let images: Vec<f32> = (0..7 * inference.input_len()).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let (trained, used) = (net.infer(&images).unwrap(), inference.infer(&images).unwrap());
        assert_eq!(used.logits.len(), trained.logits.len(), "{name}");
        let err = max_abs_difference(&used.logits, &trained.logits);
        assert!(err < 1e-4, "{name}: logits differ by {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
