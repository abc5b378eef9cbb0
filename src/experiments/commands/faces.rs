//! `centerloss faces`: train a face-embedding network (softmax, margin heads, center loss)
//! on the built-in faces, a folder, a list or a pack, and evaluate it on held-out
//! identities. Its option groups (the built-in set, the training) are flattened into every
//! command that trains on faces.

use std::path::PathBuf;

use clap::Args;

use super::super::faces::{FaceNetwork, FaceOptions, FaceSource, Loss, DEFAULT_TEST_IDENTITIES};
use super::super::values::{self, MAX_SIDE};
use super::{launched, write_json};
use crate::data::faces::FaceSetConfig;
use crate::data::Prefetch;
use crate::nn::CenterFeatures;

/// The built-in procedural face set.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct FaceSetArgs {
    /// Built-in set: training identities.
    #[arg(long, default_value_t = FaceSetConfig::default().train_identities, value_parser = values::count(2..=10_000_000))]
    pub identities: usize,
    /// Built-in set: held-out identities (at least 2: impostor pairs need two).
    #[arg(long, default_value_t = FaceSetConfig::default().test_identities, value_parser = values::count(2..=10_000_000))]
    pub eval_identities: usize,
    /// Built-in set: images per identity (at least 2: genuine pairs need two).
    #[arg(long, default_value_t = FaceSetConfig::default().images_per_identity, value_parser = values::count(2..=100_000))]
    pub images_per_identity: usize,
    /// Built-in set: scale of every nuisance (pose, light, expression, noise, occlusion).
    #[arg(long, default_value_t = FaceSetConfig::default().difficulty, value_parser = values::non_negative)]
    pub difficulty: f32,
    /// Input resolution (square).
    #[arg(long, default_value_t = FaceOptions::default().resolution, value_parser = values::count(1..=MAX_SIDE))]
    pub resolution: usize,
}

impl FaceSetArgs {
    /// The built-in set these options describe, with `seed` and grey or colour images.
    pub fn config(&self, seed: u64, rgb: bool) -> FaceSetConfig {
        FaceSetConfig {
            train_identities: self.identities,
            test_identities: self.eval_identities,
            images_per_identity: self.images_per_identity,
            difficulty: self.difficulty,
            seed,
            resolution: self.resolution,
            rgb,
        }
    }
}

/// How a face network is trained: budget, optimiser, center loss, validation, seed.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct FaceTrainingArgs {
    /// Passes over the training set (default: sized by the data, at least 600 steps and
    /// 10 epochs; the plan is printed before training).
    #[arg(long, value_parser = values::count(1..=1_000_000_000))]
    pub epochs: Option<usize>,
    /// Optimisation steps (overrides --epochs).
    #[arg(long, value_parser = values::count_u64(1..=u64::MAX))]
    pub steps: Option<u64>,
    /// Past the budget, train on at the last learning rate until validation accuracy has
    /// not improved over the last 3 validations (validating as often as before).
    #[arg(long)]
    pub until_converged: bool,
    /// With --until-converged: the most steps in all (default: twice the budget).
    #[arg(long, requires = "until_converged", value_parser = values::count_u64(1..=u64::MAX))]
    pub max_steps: Option<u64>,
    /// Batch size.
    #[arg(long, default_value_t = FaceOptions::default().batch, value_parser = values::count(1..=65_535))]
    pub batch: usize,
    /// Learning rate (linear warm-up over the first 5% of the steps, divided by 10 at 60%
    /// and 85%).
    #[arg(long, default_value_t = FaceOptions::default().lr, value_parser = values::positive)]
    pub lr: f32,
    /// Fraction of each training identity's images held out for validation (which picks
    /// the checkpoint that is evaluated).
    #[arg(long, default_value_t = FaceOptions::default().validation_fraction, value_parser = values::fraction)]
    pub validation: f64,
    /// Center-loss weight.
    #[arg(long, default_value_t = FaceOptions::default().lambda, value_parser = values::non_negative)]
    pub lambda: f32,
    /// Center learning rate.
    #[arg(long, default_value_t = FaceOptions::default().alpha, value_parser = values::alpha)]
    pub alpha: f32,
    /// Embedding size.
    #[arg(long, default_value_t = FaceOptions::default().embed_dim, value_parser = values::count(1..=65_536))]
    pub embed_dim: usize,
    /// Seed of data, initialisation, shuffling, augmentation and evaluation pairs.
    #[arg(long, default_value_t = FaceOptions::default().seed)]
    pub seed: u64,
    /// What to train, comma-separated: softmax, center (softmax + center loss), arcface,
    /// arcface+center, cosface, cosface+center.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = FaceOptions::default().losses)]
    pub loss: Vec<Loss>,
    /// Also train each loss without center loss (softmax for center, arcface for
    /// arcface+center...) with the same seed, data and budget.
    #[arg(long)]
    pub compare: bool,
    /// Train all six losses (each head alone and with center loss): --loss with all of them.
    #[arg(long, conflicts_with = "loss")]
    pub all_losses: bool,
    /// s of the ArcFace and CosFace heads (logits s cos theta).
    #[arg(long, default_value_t = FaceOptions::default().margin_scale, value_parser = values::positive)]
    pub margin_scale: f32,
    /// ArcFace's additive angular margin m (radians).
    #[arg(long, default_value_t = FaceOptions::default().arcface_margin, value_parser = values::non_negative)]
    pub arcface_margin: f32,
    /// CosFace's additive cosine margin m.
    #[arg(long, default_value_t = FaceOptions::default().cosface_margin, value_parser = values::non_negative)]
    pub cosface_margin: f32,
    /// Where center loss applies under an ArcFace or CosFace head: `raw`, the embedding (the
    /// paper's form), or `normalized`, the unit embedding the head's cosines use.
    #[arg(long, value_enum, default_value_t = FaceOptions::default().center_features)]
    pub center_features: CenterFeatures,
}

/// The face job: train on the built-in faces, a folder or a list; evaluate on held-out
/// identities.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct FaceArgs {
    /// An image folder ROOT/<identity>/<image> (PGM, PNG, JPEG), or a RecordIO pack as
    /// insightface ships them (a folder holding train.rec and train.idx, or a .rec file).
    /// Default: the built-in faces.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A list file of `path label` lines instead of a folder.
    #[arg(long, conflicts_with = "data")]
    pub list: Option<PathBuf>,
    /// An LFW-style pairs.txt for verification on a real folder (default: all genuine pairs
    /// of the held-out identities and as many seeded impostor pairs).
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Fraction of a real folder's identities held out for evaluation.
    #[arg(long, default_value_t = DEFAULT_TEST_IDENTITIES, value_parser = values::open_fraction)]
    pub test_identities: f64,
    /// Decode a folder, list or pack up front when its decoded images take at most this
    /// many MiB; stream it from disk in bounded memory otherwise (0: always stream).
    #[arg(long, value_name = "MIB", default_value_t = FaceOptions::default().in_memory_max >> 20, value_parser = values::mebibytes())]
    pub in_memory_max: u64,
    /// Threads reading and augmenting a streamed set's batches (0: one per core).
    #[arg(long, default_value_t = FaceOptions::default().prefetch.workers, value_parser = values::count(0..=1024))]
    pub data_workers: usize,
    /// Batches of a streamed set prepared ahead of the GPU.
    #[arg(long, default_value_t = FaceOptions::default().prefetch.batches, value_parser = values::count(1..=Prefetch::MAX_BATCHES as u64))]
    pub prefetch_batches: usize,
    /// The built-in set.
    #[command(flatten)]
    pub set: FaceSetArgs,
    /// Colour input (3 channels) instead of grey.
    #[arg(long)]
    pub rgb: bool,
    /// Input width of a folder, list or pack when not --resolution (the paper's 112 x 96:
    /// --resolution 112 --width 96); images are centre-cropped to the input's aspect.
    #[arg(long, value_parser = values::count(1..=MAX_SIDE))]
    pub width: Option<usize>,
    /// The network: `small` (about 10 MFLOP per 64 x 64 image, for CPU drivers), `paper`
    /// (the paper's residual network, about 7 GFLOP per 112 x 112 image; use
    /// --embed-dim 512 as the paper), `auto` (paper from 96 pixels).
    #[arg(long, value_enum, default_value_t = FaceOptions::default().network)]
    pub network: FaceNetwork,
    /// How the network is trained.
    #[command(flatten)]
    pub training: FaceTrainingArgs,
    /// Scale the gradients down to this L2 norm (all parameters together) when they exceed
    /// it (off by default).
    #[arg(long, value_parser = values::positive)]
    pub clip_grad_norm: Option<f32>,
    /// Train on the images as they are: no random flips and 2-pixel crops.
    #[arg(long)]
    pub no_augment: bool,
    /// Stop with an error when an image of a folder, list or pack does not decode
    /// (otherwise it is skipped, and the run says how many were).
    #[arg(long)]
    pub strict: bool,
    /// Continue a stopped or killed run with the same options from OUT/<variant>-last.safetensors.
    #[arg(long)]
    pub resume: bool,
    /// Where checkpoints, plots and the report go.
    #[arg(long, default_value_os_t = FaceOptions::default().out)]
    pub out: PathBuf,
    /// Train on this many devices in this process (data-parallel: each takes batch / N rows
    /// of every batch; the result equals a one-device run). Devices are opened over the
    /// adapters found, round-robin.
    #[arg(long, default_value_t = FaceOptions::default().devices, value_parser = values::count(1..=256))]
    pub devices: usize,
    /// Write the numbers as JSON here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write the built-in set (training and held-out identities) as an image folder
    /// DIR/<identity>/<n>.png, to try the --data workflow, and exit.
    #[arg(long, value_name = "DIR")]
    pub write_folder: Option<PathBuf>,
    /// Write the built-in set as a RecordIO pack DIR/train.rec + train.idx (PNG records,
    /// laid out as insightface's packs), to try --data on a pack, and exit.
    #[arg(long, value_name = "DIR")]
    pub write_rec: Option<PathBuf>,
    /// Write verification pairs of the built-in set's held-out identities as an insightface
    /// .bin benchmark, to try --eval-bin, and exit.
    #[arg(long, value_name = "FILE")]
    pub write_bin: Option<PathBuf>,
    /// Also score each variant on these verification benchmarks (insightface .bin files:
    /// lfw.bin,cfp_fp.bin,agedb_30.bin, or a folder of them) with the standard protocol
    /// (10 folds, each image's embedding plus its flip's).
    #[arg(long, value_name = "BIN", value_delimiter = ',')]
    pub eval_bin: Vec<PathBuf>,
}

impl FaceArgs {
    /// The face job's options.
    pub fn options(&self) -> FaceOptions {
        let t = &self.training;
        let source = match (&self.data, &self.list) {
            (Some(root), _) => FaceSource::Folder { root: root.clone(), test_identities: self.test_identities },
            (_, Some(list)) => FaceSource::List { list: list.clone(), test_identities: self.test_identities },
            // The loader takes resolution and channels from the options; the source keeps
            // the set's default resolution, so that a run's key (which records the source)
            // does not depend on where the resolution was given.
            _ => FaceSource::BuiltIn(FaceSetConfig {
                resolution: FaceSetConfig::default().resolution,
                ..self.set.config(t.seed, false)
            }),
        };
        FaceOptions {
            source,
            channels: if self.rgb { 3 } else { 1 },
            resolution: self.set.resolution,
            width: self.width,
            network: self.network,
            pairs: self.pairs.clone(),
            eval_bins: self.eval_bin.clone(),
            in_memory_max: self.in_memory_max.saturating_mul(1 << 20),
            prefetch: Prefetch { workers: self.data_workers, batches: self.prefetch_batches },
            epochs: t.epochs,
            steps: t.steps,
            until_converged: t.until_converged,
            max_steps: t.max_steps,
            batch: t.batch,
            lr: t.lr,
            clip_grad_norm: self.clip_grad_norm,
            augment: !self.no_augment,
            validation_fraction: t.validation,
            lambda: t.lambda,
            alpha: t.alpha,
            embed_dim: t.embed_dim,
            seed: t.seed,
            resume: self.resume,
            out: self.out.clone(),
            losses: if t.all_losses { Loss::ALL.to_vec() } else { t.loss.clone() },
            compare: t.compare,
            margin_scale: t.margin_scale,
            arcface_margin: t.arcface_margin,
            cosface_margin: t.cosface_margin,
            center_features: t.center_features,
            progress: true,
            devices: self.devices,
            strict: self.strict,
            ..Default::default()
        }
    }

    /// The files this job reads: what it must never write over.
    fn inputs(&self) -> Vec<&std::path::Path> {
        let files = [&self.data, &self.list, &self.pairs].into_iter().flatten().chain(&self.eval_bin);
        files.map(PathBuf::as_path).collect()
    }

    /// Checks, before anything is trained or generated, that every output can be written
    /// and none of them is an input.
    fn check_outputs(&self) -> crate::Result<()> {
        use crate::files::{check_folder, check_output};
        let inputs = self.inputs();
        if let Some(path) = &self.report_json {
            check_output(path, "--report-json", &inputs, true)?;
        }
        if let Some(path) = &self.write_bin {
            check_output(path, "--write-bin", &inputs, true)?;
        }
        for (dir, option) in [(&self.write_folder, "--write-folder"), (&self.write_rec, "--write-rec")] {
            if let Some(dir) = dir {
                if inputs.iter().any(|input| input == dir) {
                    return Err(crate::Error::Config(format!(
                        "{option} {} is an input of this command",
                        dir.display()
                    )));
                }
                check_folder(dir, option)?;
            }
        }
        if self.write_folder.is_none() && self.write_rec.is_none() && self.write_bin.is_none() {
            check_folder(&self.out, "--out")?;
        }
        Ok(())
    }
}

/// Runs the face job as a command does: writes the built-in set as a folder and stops
/// (`--write-folder`), or trains (as a rank under an MPI launcher, rank 0 alone
/// reporting), prints the table and which checkpoints were evaluated, and writes the JSON
/// report.
pub fn run(args: &FaceArgs) -> crate::Result<()> {
    args.check_outputs()?;
    if write_built_in(args)? {
        return Ok(());
    }
    args.options().validate()?;
    let opts = args.options();
    let Some(report) = launched(|ctx, comm| match comm {
        Some(comm) => super::super::faces::run_collective(ctx, &opts, comm),
        None => super::super::faces::run(ctx, &opts).map(Some),
    })?
    else {
        return Ok(());
    };
    println!("\nHeld-out identities ({}):\n{}", report.data, report.table());
    for v in &report.variants {
        eprintln!(
            "{}: evaluated checkpoint {} (step {} of {}; {})",
            v.name,
            v.checkpoint.display(),
            v.evaluated_step,
            v.steps,
            match (v.converged, opts.until_converged) {
                (true, _) => "converged",
                (false, false) => "validation still improving: the budget ran out first (--until-converged trains on)",
                (false, true) => "validation still improving at --max-steps",
            }
        );
    }
    eprintln!("plots: {} and the PCA plots in {}", report.roc_plot.display(), opts.out.display());
    match &args.report_json {
        Some(path) => write_json(path, &report.to_json()),
        None => Ok(()),
    }
}

/// `--write-folder`, `--write-rec`, `--write-bin`: writes the built-in set in that form
/// (generated a few identities at a time, so that any size fits in memory); whether it did.
fn write_built_in(args: &FaceArgs) -> crate::Result<bool> {
    use crate::data::folder::{encode_png, write_folder};
    if args.write_folder.is_none() && args.write_rec.is_none() && args.write_bin.is_none() {
        return Ok(false);
    }
    let cfg = args.set.config(args.training.seed, args.rgb);
    let identities = args.set.identities + args.set.eval_identities;
    // Written 64 identities at a time: any number of them fits in memory.
    cfg.validate(identities.min(64))?;
    let chunks = (0..identities).step_by(64).map(|first| (first, 64.min(identities - first)));
    if let Some(dir) = &args.write_folder {
        for (first, count) in chunks.clone() {
            write_folder(&cfg.generate(first, count), dir, |label| format!("id{:05}", first + label as usize))?;
        }
        eprintln!(
            "wrote {} images of {identities} identities to {}",
            identities * cfg.images_per_identity,
            dir.display()
        );
    }
    if let Some(dir) = &args.write_rec {
        let mut pack = crate::data::recordio::PackWriter::create(dir)?;
        for (first, count) in chunks {
            let set = cfg.generate(first, count);
            for i in 0..set.len() {
                pack.push(first as u32 + set.labels[i], &encode_png(&set, i)?)?;
            }
        }
        let n = pack.finish()?;
        eprintln!("wrote {n} images of {identities} identities to {}", dir.join("train.rec").display());
    }
    if let Some(file) = &args.write_bin {
        // The held-out identities alone, in memory at once.
        cfg.validate(cfg.test_identities)?;
        let test = cfg.generate(cfg.train_identities, cfg.test_identities);
        let pairs = crate::eval::verification_pairs(&test.labels, args.training.seed);
        let mut set = crate::data::bin::VerificationSet::default();
        for p in &pairs {
            set.images.extend([encode_png(&test, p.a)?, encode_png(&test, p.b)?]);
            set.same.push(p.genuine);
        }
        set.write(file)?;
        eprintln!(
            "wrote {} pairs of the {} held-out identities to {}",
            pairs.len(),
            cfg.test_identities,
            file.display()
        );
    }
    Ok(args.write_folder.is_some() || args.write_rec.is_some() || args.write_bin.is_some())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: FaceArgs,
    }

    /// The command's defaults are the library's: a face job run with no option is
    /// `FaceOptions::default()` (on the built-in set with its defaults).
    #[test]
    fn no_option_is_the_library_default() {
        let args = Command::parse_from(["faces"]).args;
        let defaults = FaceOptions::default();
        let FaceSource::BuiltIn(set) = &defaults.source else { panic!("the default source is the built-in set") };
        let options = args.options();
        assert_eq!(
            options,
            FaceOptions { source: FaceSource::BuiltIn(FaceSetConfig { seed: 1, ..set.clone() }), ..defaults }
        );
        assert_eq!(args.test_identities, DEFAULT_TEST_IDENTITIES);
    }
}
