//! Choosing among a kernel's tile configurations by measuring them: the first time a shape
//! is seen on an adapter, every candidate is timed with GPU timestamps and the fastest is
//! kept, in memory and in a file per user (so the next run on the same adapter, driver and
//! crate version measures nothing). Candidates compute the same sums in the same order, so
//! the choice changes speed, never results.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::context::env_choice;
use crate::{Error, Result};

/// How a kernel with several tile configurations picks one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tiling {
    /// Measure the candidates on GPUs with timestamps; the fixed rule on CPU drivers
    /// (`wgpu::DeviceType::Cpu`), whose rule was chosen by measurement
    /// (docs/cpu-experiments.md), and on adapters that cannot time their work.
    #[default]
    Auto,
    /// The fixed rule of each kernel (reproducible benchmarks, no measuring).
    Fixed,
    /// Measure the candidates on any adapter that has timestamps (the fixed rule on one
    /// without).
    Tune,
    /// Candidate `i` of every kernel that has candidates (`i` modulo their number): for
    /// tests that check every candidate.
    Candidate(usize),
}

impl Tiling {
    /// The tiling named by `CENTERLOSS_TUNE` (`auto`, `off`, `on`); `Auto` when unset.
    pub fn from_env() -> Result<Self> {
        let names = [
            ("auto", Self::Auto),
            ("off", Self::Fixed),
            ("fixed", Self::Fixed),
            ("on", Self::Tune),
            ("tune", Self::Tune),
        ];
        env_choice("CENTERLOSS_TUNE", &names, Self::Auto, "auto, on or off")
    }
}

/// One shape's measured choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedChoice {
    /// The chosen candidate's index.
    pub index: usize,
    /// The chosen candidate, in words (its pipeline constants).
    pub label: String,
    /// Median GPU microseconds of each candidate, in candidate order.
    pub micros: Vec<f64>,
}

/// The time a candidate that failed to build or run is filed with (JSON has no infinity).
pub const FAILED_MICROS: f64 = f64::MAX;

/// The choices measured on one adapter, keyed by kernel and shape, backed by a JSON file
/// that holds every adapter's choices under its [`Tuner::adapter_key`].
pub struct Tuner {
    adapter_key: String,
    path: Option<PathBuf>,
    choices: Mutex<BTreeMap<String, TunedChoice>>,
    measured: AtomicUsize,
}

type CacheFile = BTreeMap<String, BTreeMap<String, TunedChoice>>;

impl Tuner {
    /// The tuner of the adapter `adapter_key` with the choices `path` holds for it (none when
    /// the file is missing or unreadable: a broken cache is measured again, not an error).
    pub fn new(adapter_key: String, path: Option<PathBuf>) -> Self {
        let choices = path.as_deref().map(read_cache).unwrap_or_default().remove(&adapter_key).unwrap_or_default();
        Self { adapter_key, path, choices: Mutex::new(choices), measured: AtomicUsize::new(0) }
    }

    /// The cache file: `CENTERLOSS_TUNE_CACHE` (empty: none), else
    /// `$XDG_CACHE_HOME/centerloss/tuning.json`, else `$HOME/.cache/centerloss/tuning.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("CENTERLOSS_TUNE_CACHE") {
            return (!path.is_empty()).then(|| PathBuf::from(path));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("centerloss").join("tuning.json"))
    }

    /// What the choices are filed under: adapter, driver, backend and crate version.
    pub fn adapter_key(&self) -> &str {
        &self.adapter_key
    }

    /// The cache file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How many shapes this tuner has measured (not found recorded).
    pub fn measured(&self) -> usize {
        self.measured.load(Ordering::Relaxed)
    }

    /// Every choice known on this adapter, by shape key.
    pub fn choices(&self) -> BTreeMap<String, TunedChoice> {
        self.choices.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The candidate for `key`: the recorded one, or the fastest of `labels` by `measure`
    /// (median GPU seconds of candidate i), recorded in memory and in the cache file. A
    /// candidate whose measuring fails (a driver that cannot build it) is logged and passed
    /// over ([`FAILED_MICROS`]); only when every one fails is the first error returned.
    pub fn choose(&self, key: &str, labels: &[String], measure: &mut dyn FnMut(usize) -> Result<f64>) -> Result<usize> {
        if let Some(known) = self.choices.lock().map_err(|_| poisoned())?.get(key) {
            if known.index < labels.len() && known.label == labels[known.index] {
                return Ok(known.index);
            }
        }
        if self.measured.fetch_add(1, Ordering::Relaxed) == 0 {
            let cache = self.path.as_ref().map_or("memory only".to_string(), |p| p.display().to_string());
            log::info!("measuring kernel tile configurations on {} (once per shape; cache: {cache})", self.adapter_key);
        }
        let mut micros = Vec::with_capacity(labels.len());
        let mut first_error = None;
        for (i, label) in labels.iter().enumerate() {
            match measure(i) {
                Ok(seconds) => micros.push(1e6 * seconds),
                Err(e) => {
                    log::warn!("tile configuration {label} failed on {} for {key}: {e}; passed over", self.adapter_key);
                    micros.push(FAILED_MICROS);
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error.filter(|_| micros.iter().all(|&t| t == FAILED_MICROS)) {
            return Err(e);
        }
        let index = (0..micros.len()).min_by(|&a, &b| micros[a].total_cmp(&micros[b])).unwrap_or(0);
        let choice = TunedChoice { index, label: labels.get(index).cloned().unwrap_or_default(), micros };
        log::debug!("tuned {key}: {} ({:?} us)", choice.label, choice.micros);
        self.choices.lock().map_err(|_| poisoned())?.insert(key.to_string(), choice);
        self.save();
        Ok(index)
    }

    /// Writes this adapter's choices into the cache file beside other adapters' (a temporary
    /// file renamed into place, so a reader never sees half a file). A failure is logged:
    /// the choices stay in memory.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut file = read_cache(path);
        file.insert(self.adapter_key.clone(), self.choices());
        let written = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec_pretty(&file)?)?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            log::warn!("could not write the tuning cache {}: {e}", path.display());
        }
    }
}

fn read_cache(path: &Path) -> CacheFile {
    std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

fn poisoned() -> Error {
    Error::Internal("tuning cache poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[test]
    fn choices_are_measured_once_kept_on_disk_beside_other_adapters_and_a_broken_file_is_measured_again() {
        let dir = std::env::temp_dir().join(format!("centerloss-tuner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache").join("tuning.json");
        let times = [3e-6, 1e-6, 2e-6];
        let mut calls = 0;
        let mut measure = |i: usize| {
            calls += 1;
            Ok(times[i])
        };
        let first = Tuner::new("adapter A".into(), Some(path.clone()));
        assert_eq!(first.choose("gemm m 8", &labels(), &mut measure).unwrap(), 1);
        assert_eq!(first.choose("gemm m 8", &labels(), &mut measure).unwrap(), 1);
        assert_eq!((calls, first.measured()), (3, 1));
        let other = Tuner::new("adapter B".into(), Some(path.clone()));
        assert!(other.choices().is_empty(), "another adapter's choices were read");
        other.choose("gemm m 8", &labels(), &mut |i| Ok([1e-6, 2e-6, 3e-6][i])).unwrap();
        let reread = Tuner::new("adapter A".into(), Some(path.clone()));
        assert_eq!(reread.choose("gemm m 8", &labels(), &mut |_| panic!("measured again")).unwrap(), 1);
        assert_eq!(Tuner::new("adapter B".into(), Some(path.clone())).choices()["gemm m 8"].index, 0);
        // Candidates that changed since the file was written are measured again.
        let renamed: Vec<String> = ["a", "x", "c"].map(String::from).to_vec();
        assert_eq!(reread.choose("gemm m 8", &renamed, &mut |i| Ok(times[i])).unwrap(), 1);
        assert_eq!(reread.measured(), 1);
        std::fs::write(&path, b"{ not json").unwrap();
        let broken = Tuner::new("adapter A".into(), Some(path.clone()));
        assert!(broken.choices().is_empty());
        assert_eq!(broken.choose("gemm m 8", &labels(), &mut |i| Ok(times[i])).unwrap(), 1);
        assert_eq!(Tuner::new("adapter A".into(), Some(path)).choices()["gemm m 8"].label, "b");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_candidate_that_fails_is_passed_over_and_only_all_failing_is_an_error() {
        let tuner = Tuner::new("adapter".into(), None);
        let mut fails_the_fastest = |i: usize| match i {
            1 => Err(crate::Error::Gpu("cannot build it".into())),
            _ => Ok([3e-6, 1e-6, 2e-6][i]),
        };
        assert_eq!(tuner.choose("gemm m 8", &labels(), &mut fails_the_fastest).unwrap(), 2);
        let choice = &tuner.choices()["gemm m 8"];
        assert_eq!((choice.label.as_str(), choice.micros[1]), ("c", FAILED_MICROS));
        let mut all_fail = |_: usize| -> Result<f64> { Err(crate::Error::Gpu("cannot build it".into())) };
        assert!(matches!(tuner.choose("gemm m 9", &labels(), &mut all_fail), Err(crate::Error::Gpu(_))));
        assert!(!tuner.choices().contains_key("gemm m 9"));
    }
}
