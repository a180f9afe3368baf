//! # Win-probability models
//!
//! Everything riftstream knows about its candle models lives here: the one
//! definition of the live model's features, the data set they are trained on,
//! the networks, training, evaluation and the on-disk model registry.
//!
//! ## Layout
//! - [`live_features`]: per-team running totals ([`TeamTotals`]) and the single
//!   function that turns them into model features. Training (CSV rows) and
//!   streaming (state built from game events) both call it, so the two cannot
//!   drift apart.
//! - [`dataset`]: an in-memory, row-major feature matrix with labels, the
//!   Kaggle 10-minute CSV loader, seeded splits and feature standardization.
//! - [`pregame`]: the pre-game model's lineup features (team mean
//!   differences of the players' point-in-time features) and its training
//!   table reader.
//! - [`logistic`], [`mlp`]: the candle networks, both behind [`Classifier`].
//! - [`train`]: seeded, deterministic minibatch AdamW training with early
//!   stopping on a validation split.
//! - [`eval`]: accuracy, log loss, AUC, Brier score and a calibration table.
//! - [`registry`]: immutable, versioned models on the local filesystem
//!   (`models/{name}/{version}/model.safetensors` + `metadata.json`) and the
//!   [`LoadedModel`] that scores batches.
//!
//! ## Usage
//!
//! ```ignore
//! // (`ignore`: the crate path differs between the scratch crate and riftstream)
//! use riftstream::model::*;
//! let data = load_ten_minute_csv("shared/data/high_diamond_ranked_10min.train.csv")?;
//! let model = train(&data, &TrainConfig::default(), &mut |r| eprintln!("{r:?}"))?;
//! let dir = ModelRegistry::open("lake")?.register("live", &model, "shared/data/…")?;
//! let live = LoadedModel::load(&dir)?; // e.g. lake/models/live/v1
//! live.check_features(LIVE_FEATURE_NAMES)?;
//! let p_blue = live.predict_one(&live_features(&blue_totals, &red_totals))?;
//! ```
//!
//! ## Guarantees
//! - Input data never panics: every failure is a [`ModelError`] that names the
//!   file, line or key at fault.
//! - Same data + same [`TrainConfig::seed`] = bit-identical weights.
//! - A model is always scored on raw features: the standardization it was
//!   trained with travels with it (in memory and in `metadata.json`).

pub mod data;
pub mod dataset;
pub mod eval;
pub mod live_features;
pub mod logistic;
pub mod mlp;
pub mod pregame;
pub mod registry;
pub mod train;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use data::{load_labeled, DataFormat, LabeledData};
pub use dataset::{load_ten_minute_csv, read_ten_minute_rows, Dataset, Normalization, TenMinuteRow};
pub use eval::{evaluate, CalibrationBin, Evaluation};
pub use live_features::{live_features, TeamTotals, LIVE_FEATURE_COUNT, LIVE_FEATURE_NAMES};
pub use logistic::LogisticRegression;
pub use mlp::Mlp;
pub use registry::{registry_root, LoadedModel, ModelMetadata, ModelRegistry, ModelVersionInfo, TrainingData};
pub use train::{train, EpochReport, ModelKind, TrainConfig, TrainedModel};

/// Everything that can go wrong in the model module.
///
/// `InvalidData` and `InvalidConfig` are the caller's fault (fix the file or
/// the settings; retrying does not help); `Io` may be transient; `Candle` and
/// `Json` on files this module wrote mean the registry is damaged.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A filesystem operation failed; `path` is the file or directory involved.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The CSV reader failed on `path` (ragged row, bad UTF-8, ...); the
    /// message carries the record and line.
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// A tensor operation or a safetensors read/write failed.
    #[error("candle error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Metadata could not be (de)serialized.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// The input data is wrong; the message names the line/column/field.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A training setting or a registry argument is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A model name or version that is not in the registry.
    #[error("not found: {0}")]
    NotFound(String),
}

impl ModelError {
    /// Whose fault the error is (see [`crate::error::ErrorKind`]).
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ModelError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => ErrorKind::Usage,
                _ => ErrorKind::Unavailable,
            },
            ModelError::InvalidConfig(_) | ModelError::NotFound(_) => ErrorKind::Usage,
            ModelError::Csv { .. } | ModelError::Candle(_) | ModelError::Json(_) | ModelError::InvalidData(_) => {
                ErrorKind::Data
            }
        }
    }

    /// Builds a closure that wraps a `csv::Error` with the file it concerns.
    pub(crate) fn csv(path: &Path) -> impl FnOnce(csv::Error) -> ModelError + '_ {
        move |source| ModelError::Csv {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Builds a closure that wraps an `io::Error` with the path it concerns.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// A binary classifier: maps a standardized batch `(n, d)` to logits `(n,)`
/// (log-odds that blue wins). Implementations hold candle tensors that share
/// storage with their `VarMap`, so training updates them in place.
pub trait Classifier: Send + Sync {
    /// Logits for a `(n, d)` batch, shape `(n,)`.
    fn logits(&self, xs: &Tensor) -> candle_core::Result<Tensor>;
}

/// Builds the network for `kind` over `d` input features, taking (or creating)
/// its parameters from `vb`. Parameter names are stable (`linear.weight`,
/// `fc1.weight`, ...) because they are the keys in `model.safetensors`.
pub(crate) fn build_classifier(kind: &ModelKind, d: usize, vb: VarBuilder) -> candle_core::Result<Box<dyn Classifier>> {
    Ok(match kind {
        ModelKind::Logistic => Box::new(LogisticRegression::new(d, vb)?),
        ModelKind::Mlp { hidden } => Box::new(Mlp::new(d, &[*hidden], vb)?),
        ModelKind::Mlp2 { hidden1, hidden2 } => Box::new(Mlp::new(d, &[*hidden1, *hidden2], vb)?),
    })
}

/// The device every model runs on: riftstream's models are small and CPU-only.
pub(crate) const DEVICE: Device = Device::Cpu;
/// Every parameter and feature tensor is `f32`.
pub(crate) const DTYPE: DType = DType::F32;

/// A network plus the standardization it expects: turns raw feature rows into
/// probabilities. Shared by [`TrainedModel`] and [`LoadedModel`] so in-memory
/// and reloaded models score through exactly the same code.
pub(crate) struct Scorer {
    net: Box<dyn Classifier>,
    /// `(1, d)` per-feature means subtracted before scoring.
    mean: Tensor,
    /// `(1, d)` per-feature standard deviations divided by after centering.
    std: Tensor,
    d: usize,
}

impl Scorer {
    pub(crate) fn new(net: Box<dyn Classifier>, norm: &Normalization) -> Result<Self> {
        let d = norm.mean.len();
        if norm.std.len() != d {
            return Err(ModelError::InvalidData(format!(
                "normalization has {} means but {} standard deviations",
                d,
                norm.std.len()
            )));
        }
        if let Some(i) = norm.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ModelError::InvalidData(format!(
                "normalization std[{i}] = {} is not a positive finite number",
                norm.std[i]
            )));
        }
        if let Some(i) = norm.mean.iter().position(|m| !m.is_finite()) {
            return Err(ModelError::InvalidData(format!(
                "normalization mean[{i}] = {} is not finite",
                norm.mean[i]
            )));
        }
        let mean = Tensor::from_slice(&norm.mean, (1, d), &DEVICE)?;
        let std = Tensor::from_slice(&norm.std, (1, d), &DEVICE)?;
        Ok(Self { net, mean, std, d })
    }

    /// Blue-win probabilities for `rows` (`n * d` raw features, row-major),
    /// normalized and scored as one `(n, d)` tensor.
    pub(crate) fn predict_batch(&self, rows: &[f32]) -> Result<Vec<f32>> {
        if rows.len() % self.d != 0 {
            return Err(ModelError::InvalidData(format!(
                "batch has {} values, not a multiple of the {} features",
                rows.len(),
                self.d
            )));
        }
        let n = rows.len() / self.d;
        if n == 0 {
            return Ok(Vec::new());
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::InvalidData(format!(
                "row {} feature {} is not finite ({})",
                i / self.d,
                i % self.d,
                rows[i]
            )));
        }
        let xs = Tensor::from_slice(rows, (n, self.d), &DEVICE)?
            .broadcast_sub(&self.mean)?
            .broadcast_div(&self.std)?;
        let probs = candle_nn::ops::sigmoid(&self.net.logits(&xs)?)?;
        Ok(probs.to_vec1::<f32>()?)
    }

    /// Logits for an already standardized `(n, d)` tensor (training path).
    pub(crate) fn logits_standardized(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.net.logits(xs)
    }

    pub(crate) fn d(&self) -> usize {
        self.d
    }
}

impl From<ModelError> for crate::error::RiftError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Io { path, source } => crate::error::RiftError::Io { path, source },
            ModelError::InvalidConfig(m) | ModelError::NotFound(m) => crate::error::RiftError::Usage(m),
            other => crate::error::RiftError::Model(other.to_string()),
        }
    }
}

/// Helpers shared by the tests of several files.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::Dataset;

    /// `n` rows of 3 features with a known logistic signal
    /// (`P(y=1) = sigmoid(2·x0 - x1)`, `x2` is noise on another scale).
    pub(crate) fn synthetic(n: usize, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let a: f32 = rng.gen_range(-2.0..2.0);
            let b: f32 = rng.gen_range(-2.0..2.0);
            let c: f32 = rng.gen_range(-500.0..500.0);
            let p = 1.0 / (1.0 + (-(2.0 * a - b)).exp());
            x.extend_from_slice(&[a, b, c]);
            y.push(if rng.gen::<f32>() < p { 1.0 } else { 0.0 });
        }
        Dataset::new(
            vec!["a".into(), "b".into(), "c".into()],
            x,
            y,
            (0..n).map(|i| format!("g{i}")).collect(),
        )
        .expect("synthetic dataset")
    }

    /// The Kaggle 10-minute CSV: `$RIFT_TEN_MINUTE_CSV`, else the copy in `data/`.
    pub(crate) fn ten_minute_csv() -> PathBuf {
        if let Some(p) = std::env::var_os("RIFT_TEN_MINUTE_CSV") {
            return PathBuf::from(p);
        }
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/high_diamond_ranked_10min.train.csv")
    }

    /// A fresh, empty directory under the system temp dir.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "riftstream-model-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }
}
