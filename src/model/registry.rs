//! A model registry on the local filesystem, and loading models to score.
//!
//! Layout under the registry root (the lake root in riftstream):
//!
//! ```text
//! models/{name}/v1/model.safetensors   weights (candle VarMap keys)
//! models/{name}/v1/metadata.json       ModelMetadata: kind, features,
//!                                      normalization, data, metrics, seed…
//! models/{name}/v2/…
//! ```
//!
//! Guarantees:
//! - Versions are `v1, v2, …` per name and immutable. [`ModelRegistry::register`]
//!   writes both files into a hidden temporary directory beside the versions,
//!   fsyncs them, claims the next version number with an exclusive `mkdir`
//!   (so two concurrent registrations never get the same number), and
//!   atomically renames the temporary directory onto that still-empty claim.
//!   A version directory is therefore either absent, empty (a claim in
//!   flight or abandoned by a crash: ignored by readers), or complete; an
//!   existing version is never overwritten.
//! - [`LoadedModel::predict_batch`] standardizes raw features with the stored
//!   normalization and scores the whole batch as one tensor, through the same
//!   code as the in-memory [`TrainedModel`], so a reloaded model gives the
//!   same probabilities bit for bit.
//! - Nothing here panics on bad files: a damaged or foreign version is an
//!   error naming its path.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, Normalization};
use super::eval::{evaluate, Evaluation};
use super::train::{check_features, ModelKind, TrainConfig, TrainedModel};
use super::{build_classifier, ModelError, Result, Scorer, DEVICE, DTYPE};

/// File holding the weights inside a version directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File holding the [`ModelMetadata`] inside a version directory.
pub const METADATA_FILE: &str = "metadata.json";
/// The metadata layout this code writes and reads.
pub const METADATA_FORMAT: u32 = 1;

/// What a model was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    /// Where the rows came from (a file path or a lake table).
    pub source: String,
    /// Rows given to training (training + validation parts).
    pub rows: usize,
    /// Rows used for gradient steps (and for the normalization).
    pub train_rows: usize,
    /// Rows held out for early stopping and `metrics`.
    pub validation_rows: usize,
}

/// Contents of `metadata.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Layout version of this file ([`METADATA_FORMAT`]).
    pub format: u32,
    /// Registry name, e.g. `live`.
    pub name: String,
    /// Version, `v1`, `v2`, …
    pub version: String,
    /// Network kind (decides the parameter names in the weights file).
    pub kind: ModelKind,
    /// Input features, in order; callers must supply exactly these.
    pub feature_names: Vec<String>,
    /// Standardization applied to raw features before the network.
    pub normalization: Normalization,
    /// The data it was trained on.
    pub training: TrainingData,
    /// Validation metrics of the registered weights.
    pub metrics: Evaluation,
    /// Full training settings.
    pub config: TrainConfig,
    /// Seed used for split, initialization and shuffling.
    pub seed: u64,
    /// Epoch whose weights were kept, and epochs run.
    pub best_epoch: usize,
    pub epochs_run: usize,
    /// Registration time, RFC 3339 (UTC).
    pub created_at: String,
}

/// One registered version, as listed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelVersionInfo {
    /// Registry name.
    pub name: String,
    /// `v{number}`.
    pub version: String,
    /// The version number, for ordering.
    pub number: u64,
    /// The version directory (pass it to [`LoadedModel::load`]).
    pub path: PathBuf,
    /// The version's `metadata.json`.
    pub metadata: ModelMetadata,
}

/// Versioned models under `root/models/`.
#[derive(Clone, Debug)]
pub struct ModelRegistry {
    root: PathBuf,
}

/// Distinguishes temporary directories made by one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Names become directory names: keep them short and path-safe.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidConfig(format!(
            "model name `{name}`: use 1-64 of [A-Za-z0-9_.-], not starting with `.`"
        )))
    }
}

/// `v12` → 12; anything else (`v012`, `v`, `.tmp-…`) → None.
fn parse_version(dir_name: &str) -> Option<u64> {
    let n: u64 = dir_name.strip_prefix('v')?.parse().ok()?;
    (format!("v{n}") == dir_name).then_some(n)
}

/// Writes `bytes` to `path` and flushes them to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(ModelError::io(path))?;
    f.write_all(bytes).map_err(ModelError::io(path))?;
    f.sync_all().map_err(ModelError::io(path))
}

/// Flushes a file or directory's metadata (directory entries) to disk.
fn sync_path(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(ModelError::io(path))
}

/// Removes a temporary directory unless disarmed (on every error path).
struct TmpDirGuard(Option<PathBuf>);

impl Drop for TmpDirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl ModelRegistry {
    /// Opens (creating if needed) the registry rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let models = root.join("models");
        fs::create_dir_all(&models).map_err(ModelError::io(&models))?;
        Ok(Self { root })
    }

    /// The registry root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Version numbers present under `name` (complete or not), ascending.
    fn version_numbers(&self, name: &str) -> Result<Vec<u64>> {
        let dir = self.models_dir().join(name);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ModelError::io(&dir)(e)),
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ModelError::io(&dir))?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_version) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Registers `model` as the next version of `name` and returns the new
    /// version directory. `training_source` says what it was trained on.
    pub fn register(&self, name: &str, model: &TrainedModel, training_source: &str) -> Result<PathBuf> {
        check_name(name)?;
        let name_dir = self.models_dir().join(name);
        fs::create_dir_all(&name_dir).map_err(ModelError::io(&name_dir))?;

        // 1. Weights into a private temporary directory beside the versions.
        let tmp = name_dir.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&tmp).map_err(ModelError::io(&tmp))?;
        let mut guard = TmpDirGuard(Some(tmp.clone()));
        let weights = tmp.join(WEIGHTS_FILE);
        model.varmap().save(&weights)?;
        sync_path(&weights)?;

        // 2. Claim the next free version number with an exclusive mkdir.
        let mut number = self.version_numbers(name)?.last().copied().unwrap_or(0) + 1;
        let target = loop {
            let candidate = name_dir.join(format!("v{number}"));
            match fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => number += 1,
                Err(e) => return Err(ModelError::io(&candidate)(e)),
            }
        };
        let version = format!("v{number}");

        // 3. Metadata (it names the version), then the atomic rename onto the
        //    empty claimed directory.
        let metadata = ModelMetadata {
            format: METADATA_FORMAT,
            name: name.to_string(),
            version: version.clone(),
            kind: model.kind().clone(),
            feature_names: model.feature_names().to_vec(),
            normalization: model.normalization().clone(),
            training: TrainingData {
                source: training_source.to_string(),
                rows: model.train_rows() + model.validation_rows(),
                train_rows: model.train_rows(),
                validation_rows: model.validation_rows(),
            },
            metrics: model.validation().clone(),
            config: model.config().clone(),
            seed: model.config().seed,
            best_epoch: model.best_epoch(),
            epochs_run: model.epochs_run(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let meta_path = tmp.join(METADATA_FILE);
        let written = serde_json::to_vec_pretty(&metadata)
            .map_err(ModelError::from)
            .and_then(|json| write_synced(&meta_path, &json))
            .and_then(|()| sync_path(&tmp))
            .and_then(|()| fs::rename(&tmp, &target).map_err(ModelError::io(&target)));
        if let Err(e) = written {
            // Give the claim back only if it is still our empty directory.
            let _ = fs::remove_dir(&target);
            return Err(e);
        }
        guard.0 = None;
        sync_path(&name_dir)?;
        Ok(target)
    }

    /// Every complete version of every model, by name then version number.
    pub fn list(&self) -> Result<Vec<ModelVersionInfo>> {
        let dir = self.models_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ModelError::io(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ModelError::io(&dir))?;
            if let Some(name) = entry.file_name().to_str() {
                if check_name(name).is_ok() && entry.path().is_dir() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        let mut all = Vec::new();
        for name in names {
            all.extend(self.versions(&name)?);
        }
        Ok(all)
    }

    /// Complete versions of `name`, oldest first (empty if unknown).
    pub fn versions(&self, name: &str) -> Result<Vec<ModelVersionInfo>> {
        check_name(name)?;
        let mut out = Vec::new();
        for number in self.version_numbers(name)? {
            let version = format!("v{number}");
            let path = self.models_dir().join(name).join(&version);
            if !path.join(METADATA_FILE).is_file() {
                continue; // a claim in flight, or abandoned by a crash
            }
            let metadata = read_metadata(&path)?;
            out.push(ModelVersionInfo {
                name: name.to_string(),
                version,
                number,
                path,
                metadata,
            });
        }
        Ok(out)
    }

    /// The newest complete version of `name`, if any.
    pub fn latest(&self, name: &str) -> Result<Option<ModelVersionInfo>> {
        Ok(self.versions(name)?.pop())
    }

    /// Loads `name` at `version` (`v3`), or its latest version if `None`.
    pub fn load(&self, name: &str, version: Option<&str>) -> Result<LoadedModel> {
        check_name(name)?;
        let dir = match version {
            Some(v) => {
                if parse_version(v).is_none() {
                    return Err(ModelError::InvalidConfig(format!("version `{v}`: expected v1, v2, …")));
                }
                self.models_dir().join(name).join(v)
            }
            None => {
                self.latest(name)?
                    .ok_or_else(|| ModelError::NotFound(format!("model `{name}` has no versions")))?
                    .path
            }
        };
        if !dir.join(METADATA_FILE).is_file() {
            return Err(ModelError::NotFound(format!(
                "model `{name}` version {} ({})",
                version.unwrap_or("latest"),
                dir.display()
            )));
        }
        LoadedModel::load(dir)
    }
}

fn read_metadata(version_dir: &Path) -> Result<ModelMetadata> {
    let path = version_dir.join(METADATA_FILE);
    let bytes = fs::read(&path).map_err(ModelError::io(&path))?;
    let meta: ModelMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| ModelError::InvalidData(format!("{}: not a model metadata file: {e}", path.display())))?;
    if meta.format != METADATA_FORMAT {
        return Err(ModelError::InvalidData(format!(
            "{}: metadata format {} (this build reads {METADATA_FORMAT})",
            path.display(),
            meta.format
        )));
    }
    Ok(meta)
}

/// A registered version loaded for scoring. Cheap to share across threads
/// (`Send + Sync`); to hot-swap, load the new version and replace the old.
pub struct LoadedModel {
    metadata: ModelMetadata,
    path: PathBuf,
    scorer: Scorer,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.metadata.name)
            .field("version", &self.metadata.version)
            .field("kind", &self.metadata.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Loads the version stored in `version_dir`.
    pub fn load(version_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = version_dir.as_ref();
        let metadata = read_metadata(dir)?;
        let d = metadata.feature_names.len();
        if d == 0 || metadata.normalization.mean.len() != d {
            return Err(ModelError::InvalidData(format!(
                "{}: {} features but {} normalization means",
                dir.display(),
                d,
                metadata.normalization.mean.len()
            )));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = fs::read(&weights_path).map_err(ModelError::io(&weights_path))?;
        let damaged = |e: candle_core::Error| ModelError::InvalidData(format!("{}: {e}", weights_path.display()));
        let tensors = candle_core::safetensors::load_buffer(&bytes, &DEVICE).map_err(damaged)?;
        let vb = VarBuilder::from_tensors(tensors, DTYPE, &DEVICE);
        let net = build_classifier(&metadata.kind, d, vb).map_err(damaged)?;
        let scorer = Scorer::new(net, &metadata.normalization)?;
        Ok(Self {
            metadata,
            path: dir.to_path_buf(),
            scorer,
        })
    }

    /// Registry name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
    /// Version (`v1`, …).
    pub fn version(&self) -> &str {
        &self.metadata.version
    }
    /// Input features, in order.
    pub fn feature_names(&self) -> &[String] {
        &self.metadata.feature_names
    }
    /// Everything in `metadata.json`.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }
    /// The version directory it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Errors unless the model takes exactly `expected` features in that
    /// order (e.g. `LIVE_FEATURE_NAMES` before live scoring).
    pub fn check_features(&self, expected: &[&str]) -> Result<()> {
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        check_features(&self.metadata.feature_names, &expected)
    }

    /// Blue-win probabilities for `rows`: `n * d` raw (unnormalized) features,
    /// row-major, scored as one `(n, d)` tensor.
    pub fn predict_batch(&self, rows: &[f32]) -> Result<Vec<f32>> {
        self.scorer.predict_batch(rows)
    }

    /// Blue-win probability for one row of raw features.
    pub fn predict_one(&self, features: &[f32]) -> Result<f32> {
        if features.len() != self.scorer.d() {
            return Err(ModelError::InvalidData(format!(
                "{} features given, model `{}` {} takes {}",
                features.len(),
                self.name(),
                self.version(),
                self.scorer.d()
            )));
        }
        self.predict_batch(features)?
            .first()
            .copied()
            .ok_or_else(|| ModelError::InvalidData("empty prediction".into()))
    }

    /// Scores every row of `data` and evaluates against its labels.
    pub fn evaluate_on(&self, data: &Dataset) -> Result<Evaluation> {
        check_features(&self.metadata.feature_names, &data.feature_names)?;
        evaluate(&self.predict_batch(&data.x)?, &data.y)
    }
}

/// The registry root a topology implies: the root of its first lake sink
/// (versions live under `models/` there). A topology without a lake sink is
/// a configuration error naming `sinks`: give the registry explicitly.
pub fn registry_root(topology: &crate::config::Topology) -> crate::error::Result<PathBuf> {
    topology.lake_root().map(PathBuf::from).ok_or_else(|| {
        crate::error::RiftError::config(
            &topology.file,
            "sinks",
            "no lake sink to keep the model registry under; name a registry explicitly",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{synthetic, temp_dir};
    use crate::model::train::train;

    fn quick_model(kind: ModelKind) -> (Dataset, TrainedModel) {
        let data = synthetic(400, 5);
        let cfg = TrainConfig {
            kind,
            max_epochs: 10,
            ..TrainConfig::default()
        };
        let model = train(&data, &cfg, &mut |_| {}).expect("train");
        (data, model)
    }

    fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).expect("read file"),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn models_can_be_shared_across_worker_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<LoadedModel>();
        shareable::<TrainedModel>();
        shareable::<ModelRegistry>();
    }

    #[test]
    fn register_list_load_round_trip() {
        let root = temp_dir("registry");
        let registry = ModelRegistry::open(&root).expect("open");
        assert!(registry.list().expect("list").is_empty());
        assert!(registry.latest("live").expect("latest").is_none());

        for kind in [ModelKind::Logistic, ModelKind::Mlp2 { hidden1: 8, hidden2: 4 }] {
            let name = if kind == ModelKind::Logistic {
                "live"
            } else {
                "live-mlp"
            };
            let (data, model) = quick_model(kind.clone());
            let v1 = registry.register(name, &model, "synthetic://400").expect("register v1");
            assert_eq!(v1, root.join("models").join(name).join("v1"));
            let v1_files = read_all(&v1);
            assert_eq!(
                v1_files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
                vec![METADATA_FILE, WEIGHTS_FILE]
            );

            let loaded = LoadedModel::load(&v1).expect("load");
            assert_eq!((loaded.name(), loaded.version()), (name, "v1"));
            assert_eq!(loaded.feature_names(), model.feature_names());
            assert_eq!(loaded.metadata().kind, kind);
            assert_eq!(loaded.metadata().training.rows, 400);
            assert_eq!(loaded.metadata().training.source, "synthetic://400");
            assert_eq!(&loaded.metadata().metrics, model.validation());
            assert!(chrono::DateTime::parse_from_rfc3339(&loaded.metadata().created_at).is_ok());
            // Same probabilities, bit for bit, from the whole batch at once.
            let in_memory = model.predict_batch(&data.x).expect("predict");
            let reloaded = loaded.predict_batch(&data.x).expect("predict");
            assert_eq!(in_memory, reloaded);
            assert_eq!(reloaded.len(), data.n());
            assert_eq!(loaded.predict_one(data.row(7)).expect("one"), reloaded[7]);

            // A second registration is v2 and leaves v1 byte-for-byte alone.
            let v2 = registry.register(name, &model, "synthetic://400").expect("register v2");
            assert_eq!(v2.file_name().and_then(|s| s.to_str()), Some("v2"));
            assert_eq!(read_all(&v1), v1_files);
            let latest = registry.latest(name).expect("latest").expect("some");
            assert_eq!((latest.version.as_str(), latest.number), ("v2", 2));
            assert_eq!(registry.load(name, None).expect("load latest").version(), "v2");
            assert_eq!(registry.load(name, Some("v1")).expect("load v1").version(), "v1");
        }
        let listed: Vec<(String, String)> = registry
            .list()
            .expect("list")
            .into_iter()
            .map(|i| (i.name, i.version))
            .collect();
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            listed,
            vec![
                s("live", "v1"),
                s("live", "v2"),
                s("live-mlp", "v1"),
                s("live-mlp", "v2")
            ]
        );
        // No temporary directories are left behind.
        for entry in fs::read_dir(root.join("models/live")).expect("dir") {
            let name = entry.expect("entry").file_name();
            assert!(parse_version(&name.to_string_lossy()).is_some(), "{name:?}");
        }
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn incomplete_and_damaged_versions() {
        let root = temp_dir("registry-damaged");
        let registry = ModelRegistry::open(&root).expect("open");
        let (_, model) = quick_model(ModelKind::Logistic);
        registry.register("live", &model, "synthetic").expect("v1");
        // An abandoned claim (empty v2) and a stray temp dir are ignored by
        // readers and skipped by the next registration.
        fs::create_dir(root.join("models/live/v2")).expect("claim");
        fs::create_dir(root.join("models/live/.tmp-crashed")).expect("tmp");
        assert_eq!(registry.list().expect("list").len(), 1);
        let v3 = registry.register("live", &model, "synthetic").expect("v3");
        assert!(v3.ends_with("v3"));
        assert!(matches!(
            registry.load("live", Some("v2")),
            Err(ModelError::NotFound(_))
        ));
        assert!(matches!(
            registry.load("live", Some("latest")),
            Err(ModelError::InvalidConfig(_))
        ));
        assert!(matches!(registry.load("nope", None), Err(ModelError::NotFound(_))));

        // Bad names never become paths.
        for bad in ["", "../x", ".hidden", "a/b", "sp ace"] {
            assert!(registry.register(bad, &model, "x").is_err(), "{bad:?}");
        }

        // Truncated weights and garbage metadata are errors, not panics.
        let weights = v3.join(WEIGHTS_FILE);
        let bytes = fs::read(&weights).expect("read");
        fs::write(&weights, &bytes[..bytes.len() / 2]).expect("truncate");
        assert!(LoadedModel::load(&v3).is_err());
        fs::write(v3.join(METADATA_FILE), b"{\"format\": 1}").expect("garbage");
        assert!(LoadedModel::load(&v3).is_err());
        assert!(LoadedModel::load(root.join("models/live/v9")).is_err());

        // Wrong feature count at scoring time.
        let v1 = LoadedModel::load(root.join("models/live/v1")).expect("v1 intact");
        assert!(v1.predict_one(&[1.0, 2.0]).is_err());
        assert!(v1.predict_batch(&[1.0, 2.0, 3.0, 4.0]).is_err());
        assert!(v1.predict_batch(&[1.0, f32::NAN, 3.0]).is_err());
        assert_eq!(v1.predict_batch(&[]).expect("empty"), Vec::<f32>::new());
        assert!(v1.check_features(&["a", "b", "c"]).is_ok());
        assert!(v1.check_features(crate::model::LIVE_FEATURE_NAMES).is_err());
        let _ = fs::remove_dir_all(&root);
    }
}
