//! Seeded, deterministic training of the win-probability models.
//!
//! [`train`] splits off a validation part (`validation_fraction`, seeded
//! shuffle), fits the [`Normalization`] on the remaining training rows only,
//! initializes the network from a ChaCha8 RNG seeded with
//! [`TrainConfig::seed`] (candle's own CPU RNG cannot be seeded), and runs
//! minibatch AdamW on a numerically stable binary cross-entropy with logits.
//! After every epoch it scores the validation part, reports an
//! [`EpochReport`], keeps a copy of the best weights (lowest validation log
//! loss) and stops once `patience` epochs in a row brought no improvement; the
//! best weights are restored before returning.
//!
//! Guarantees:
//! - Same data + same config (seed included) = bit-identical weights, on the
//!   same machine and candle build: the split, the initialization and every
//!   epoch's shuffle come from the seed alone.
//! - The returned [`TrainedModel`] scores raw features (it carries its
//!   normalization), and its `validation` metrics are those of the restored
//!   best weights on the held-out validation rows.
//! - Bad settings or data are [`ModelError`]s, never panics; a loss that turns
//!   non-finite stops training with an error.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, Normalization};
use super::eval::{evaluate, Evaluation};
use super::{build_classifier, ModelError, Result, Scorer, DEVICE, DTYPE};

/// Which network to train.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression.
    Logistic,
    /// MLP with one ReLU hidden layer of `hidden` units.
    Mlp { hidden: usize },
    /// MLP with two ReLU hidden layers.
    Mlp2 { hidden1: usize, hidden2: usize },
}

impl fmt::Display for ModelKind {
    /// `logistic`, `mlp:32` or `mlp:32x16` (what [`FromStr`] parses).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelKind::Logistic => write!(f, "logistic"),
            ModelKind::Mlp { hidden } => write!(f, "mlp:{hidden}"),
            ModelKind::Mlp2 { hidden1, hidden2 } => write!(f, "mlp:{hidden1}x{hidden2}"),
        }
    }
}

impl FromStr for ModelKind {
    type Err = ModelError;

    /// Parses `logistic`, `mlp` (32 hidden units), `mlp:H` or `mlp:H1xH2`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            ModelError::InvalidConfig(format!(
                "model kind `{s}`: expected `logistic`, `mlp`, `mlp:H` or `mlp:H1xH2`"
            ))
        };
        let width = |w: &str| match w.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(bad()),
        };
        match s.trim() {
            "logistic" => Ok(ModelKind::Logistic),
            "mlp" => Ok(ModelKind::Mlp { hidden: 32 }),
            other => {
                let spec = other.strip_prefix("mlp:").ok_or_else(bad)?;
                match spec.split_once('x') {
                    None => Ok(ModelKind::Mlp { hidden: width(spec)? }),
                    Some((a, b)) => Ok(ModelKind::Mlp2 {
                        hidden1: width(a)?,
                        hidden2: width(b)?,
                    }),
                }
            }
        }
    }
}

/// Training settings. `Default` is a good start for the 10-minute data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Network to train.
    pub kind: ModelKind,
    /// Seeds the validation split, the initialization and every shuffle.
    pub seed: u64,
    /// AdamW step size.
    pub learning_rate: f64,
    /// Upper bound on passes over the training rows.
    pub max_epochs: usize,
    /// Rows per AdamW step.
    pub batch_size: usize,
    /// Share of the given rows held out for early stopping, in `(0, 1)`.
    pub validation_fraction: f64,
    /// Stop after this many epochs in a row without a lower validation loss.
    pub patience: usize,
    /// AdamW decoupled weight decay (applies to all parameters).
    pub weight_decay: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Logistic,
            seed: 42,
            learning_rate: 0.01,
            max_epochs: 200,
            batch_size: 64,
            validation_fraction: 0.15,
            patience: 10,
            weight_decay: 0.01,
        }
    }
}

impl TrainConfig {
    /// The default settings for `kind`.
    pub fn for_kind(kind: ModelKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!("learning_rate must be > 0, got {}", self.learning_rate));
        }
        if self.max_epochs == 0 {
            return bad("max_epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad(format!(
                "validation_fraction must be in (0, 1), got {}",
                self.validation_fraction
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight_decay must be >= 0, got {}", self.weight_decay));
        }
        match self.kind {
            ModelKind::Mlp { hidden: 0 } | ModelKind::Mlp2 { hidden1: 0, .. } | ModelKind::Mlp2 { hidden2: 0, .. } => {
                bad("hidden layers need at least one unit".into())
            }
            _ => Ok(()),
        }
    }
}

/// Progress after one epoch, handed to `train`'s callback.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches (weighted by size).
    pub train_loss: f64,
    /// Validation log loss after the epoch.
    pub validation_loss: f64,
    /// Validation accuracy after the epoch.
    pub validation_accuracy: f64,
    /// Whether this epoch set a new best validation loss.
    pub improved: bool,
    /// Epoch whose weights are currently kept as the best.
    pub best_epoch: usize,
}

/// A trained network with everything needed to score raw features and to
/// register it.
pub struct TrainedModel {
    kind: ModelKind,
    feature_names: Vec<String>,
    normalization: Normalization,
    varmap: VarMap,
    config: TrainConfig,
    validation: Evaluation,
    train_rows: usize,
    validation_rows: usize,
    best_epoch: usize,
    epochs_run: usize,
    scorer: Scorer,
}

impl fmt::Debug for TrainedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainedModel")
            .field("kind", &self.kind)
            .field("feature_names", &self.feature_names)
            .field("normalization", &self.normalization)
            .field("validation", &self.validation)
            .field("best_epoch", &self.best_epoch)
            .field("epochs_run", &self.epochs_run)
            .finish_non_exhaustive()
    }
}

impl TrainedModel {
    /// The network kind.
    pub fn kind(&self) -> &ModelKind {
        &self.kind
    }
    /// Feature names, in input order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    /// Standardization fitted on the training rows.
    pub fn normalization(&self) -> &Normalization {
        &self.normalization
    }
    /// The weights (the best epoch's), as saved to `model.safetensors`.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }
    /// The settings it was trained with.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// Metrics of the best weights on the validation rows.
    pub fn validation(&self) -> &Evaluation {
        &self.validation
    }
    /// Rows used for gradient steps.
    pub fn train_rows(&self) -> usize {
        self.train_rows
    }
    /// Rows held out for early stopping.
    pub fn validation_rows(&self) -> usize {
        self.validation_rows
    }
    /// Epoch whose weights were kept (1-based).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
    /// Epochs actually run before stopping.
    pub fn epochs_run(&self) -> usize {
        self.epochs_run
    }

    /// Blue-win probabilities for `rows` (`n * d` raw features, row-major).
    pub fn predict_batch(&self, rows: &[f32]) -> Result<Vec<f32>> {
        self.scorer.predict_batch(rows)
    }

    /// Predicts every row of `data` and evaluates against its labels.
    pub fn evaluate_on(&self, data: &Dataset) -> Result<Evaluation> {
        check_features(&self.feature_names, &data.feature_names)?;
        evaluate(&self.predict_batch(&data.x)?, &data.y)
    }

    /// A copy of every parameter, by name (flattened), for inspection and
    /// determinism checks.
    pub fn weights(&self) -> Result<BTreeMap<String, Vec<f32>>> {
        sorted_vars(&self.varmap)?
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
            .collect()
    }
}

/// Errors unless a model's features and a dataset's are the same, in order.
pub(crate) fn check_features(model: &[String], data: &[String]) -> Result<()> {
    if model == data {
        Ok(())
    } else {
        Err(ModelError::InvalidData(format!(
            "the model expects features {model:?} but the data has {data:?}"
        )))
    }
}

/// The VarMap's variables sorted by name (HashMap order is random, and the
/// seeded initialization must not depend on it).
fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::InvalidConfig("model weights lock poisoned".into()))?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// PyTorch-style init: every `*.weight` (out, in) and its `*.bias` drawn from
/// `U(-1/sqrt(in), 1/sqrt(in))`, in parameter-name order, from `rng`.
fn seeded_init(varmap: &VarMap, rng: &mut ChaCha8Rng) -> Result<()> {
    let vars = sorted_vars(varmap)?;
    let fan_in = |name: &str| -> Result<usize> {
        let prefix = name.rsplit_once('.').map_or("", |(p, _)| p);
        let weight = format!("{prefix}.weight");
        vars.iter()
            .find(|(n, _)| *n == weight)
            .and_then(|(_, v)| v.dims().get(1).copied())
            .ok_or_else(|| ModelError::InvalidConfig(format!("no weight matrix for `{name}`")))
    };
    for (name, var) in &vars {
        let bound = 1.0 / (fan_in(name)?.max(1) as f32).sqrt();
        let values: Vec<f32> = (0..var.elem_count()).map(|_| rng.gen_range(-bound..bound)).collect();
        var.set(&Tensor::from_vec(values, var.dims(), &DEVICE)?)?;
    }
    Ok(())
}

/// Mean binary cross-entropy on logits `z` and 0/1 targets `y`, in the stable
/// form `max(z, 0) - z·y + ln(1 + e^{-|z|})`. (candle-nn's
/// `binary_cross_entropy_with_logit` takes `ln(sigmoid(z))`, which is -inf
/// once a logit saturates.)
fn bce_with_logits(z: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (z.relu()? - (z * y)?)?.add(&softplus)?.mean_all()
}

/// Salt mixed into the seed for the validation split, so it does not reuse
/// the initialization's random stream.
const SPLIT_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

/// Trains a model on `data` (which [`train`] splits into training and
/// validation parts itself); `on_epoch` sees every epoch's report.
pub fn train(data: &Dataset, cfg: &TrainConfig, on_epoch: &mut dyn FnMut(EpochReport)) -> Result<TrainedModel> {
    cfg.validate()?;
    let d = data.d();
    if d == 0 || data.x.len() != data.n() * d || data.y.len() != data.n() {
        return Err(ModelError::InvalidData("dataset shape is inconsistent".into()));
    }
    let (train_part, val_part) = data.split(1.0 - cfg.validation_fraction, cfg.seed ^ SPLIT_SALT);
    if train_part.is_empty() || val_part.is_empty() {
        return Err(ModelError::InvalidData(format!(
            "{} rows are too few to hold out a validation fraction of {}",
            data.n(),
            cfg.validation_fraction
        )));
    }
    let normalization = Normalization::fit(&train_part)?;
    let mut train_x = train_part.x.clone();
    normalization.apply_in_place(&mut train_x);
    let mut val_x = val_part.x.clone();
    normalization.apply_in_place(&mut val_x);
    let val_xs = Tensor::from_vec(val_x, (val_part.n(), d), &DEVICE)?;
    let val_ys = Tensor::from_slice(&val_part.y, val_part.n(), &DEVICE)?;

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DTYPE, &DEVICE);
    let net = build_classifier(&cfg.kind, d, vb)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    seeded_init(&varmap, &mut rng)?;
    let scorer = Scorer::new(net, &normalization)?;

    let vars = sorted_vars(&varmap)?;
    let mut opt = AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        ParamsAdamW {
            lr: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;

    let snapshot = || -> candle_core::Result<Vec<Tensor>> { vars.iter().map(|(_, v)| v.as_tensor().copy()).collect() };
    let mut best = (f64::INFINITY, 0usize, snapshot()?);
    let mut since_best = 0usize;
    let mut epochs_run = 0usize;
    let mut order: Vec<usize> = (0..train_part.n()).collect();
    let mut batch_x = Vec::with_capacity(cfg.batch_size * d);
    let mut batch_y = Vec::with_capacity(cfg.batch_size);

    for epoch in 1..=cfg.max_epochs {
        epochs_run = epoch;
        order.shuffle(&mut rng);
        let mut loss_sum = 0f64;
        for chunk in order.chunks(cfg.batch_size) {
            batch_x.clear();
            batch_y.clear();
            for &i in chunk {
                batch_x.extend_from_slice(&train_x[i * d..(i + 1) * d]);
                batch_y.push(train_part.y[i]);
            }
            let xs = Tensor::from_slice(&batch_x, (chunk.len(), d), &DEVICE)?;
            let ys = Tensor::from_slice(&batch_y, chunk.len(), &DEVICE)?;
            let loss = bce_with_logits(&scorer.logits_standardized(&xs)?, &ys)?;
            opt.backward_step(&loss)?;
            loss_sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
        }
        let train_loss = loss_sum / train_part.n() as f64;

        let val_logits = scorer.logits_standardized(&val_xs)?;
        let validation_loss = f64::from(bce_with_logits(&val_logits, &val_ys)?.to_scalar::<f32>()?);
        if !(train_loss.is_finite() && validation_loss.is_finite()) {
            return Err(ModelError::InvalidData(format!(
                "training diverged at epoch {epoch} (train loss {train_loss}, validation loss \
                 {validation_loss}); lower the learning rate"
            )));
        }
        let val_pred = val_logits.ge(0f32)?.to_dtype(DTYPE)?;
        let correct = val_pred.eq(&val_ys)?.to_dtype(DTYPE)?.sum_all()?.to_scalar::<f32>()?;
        let validation_accuracy = f64::from(correct) / val_part.n() as f64;

        let improved = validation_loss < best.0 - 1e-7;
        if improved {
            best = (validation_loss, epoch, snapshot()?);
            since_best = 0;
        } else {
            since_best += 1;
        }
        on_epoch(EpochReport {
            epoch,
            train_loss,
            validation_loss,
            validation_accuracy,
            improved,
            best_epoch: best.1,
        });
        if !improved && since_best >= cfg.patience {
            break;
        }
    }

    for ((_, var), saved) in vars.iter().zip(&best.2) {
        var.set(saved)?;
    }
    let validation = evaluate(&scorer.predict_batch(&val_part.x)?, &val_part.y)?;
    Ok(TrainedModel {
        kind: cfg.kind.clone(),
        feature_names: data.feature_names.clone(),
        normalization,
        varmap,
        config: cfg.clone(),
        validation,
        train_rows: train_part.n(),
        validation_rows: val_part.n(),
        best_epoch: best.1,
        epochs_run,
        scorer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_ten_minute_csv;
    use crate::model::test_support::{synthetic, ten_minute_csv};
    use std::time::Instant;

    fn quick(kind: ModelKind, seed: u64) -> TrainConfig {
        TrainConfig {
            kind,
            seed,
            max_epochs: 15,
            patience: 3,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn same_seed_same_weights() {
        let data = synthetic(600, 1);
        for kind in [
            ModelKind::Logistic,
            ModelKind::Mlp { hidden: 8 },
            "mlp:6x4".parse().expect("kind"),
        ] {
            let mut epochs_a = Vec::new();
            let a = train(&data, &quick(kind.clone(), 9), &mut |r| epochs_a.push(r)).expect("train a");
            let mut epochs_b = Vec::new();
            let b = train(&data, &quick(kind.clone(), 9), &mut |r| epochs_b.push(r)).expect("train b");
            let c = train(&data, &quick(kind.clone(), 10), &mut |_| {}).expect("train c");
            let wa = a.weights().expect("weights");
            assert!(!wa.is_empty());
            assert_eq!(
                wa,
                b.weights().expect("weights"),
                "{kind}: same seed, different weights"
            );
            assert_ne!(wa, c.weights().expect("weights"), "{kind}: seed is ignored");
            assert_eq!(epochs_a, epochs_b);
            assert_eq!(a.normalization(), b.normalization());
            assert_eq!(a.validation(), b.validation());
        }
    }

    #[test]
    fn early_stopping_restores_the_best_epoch() {
        let data = synthetic(800, 2);
        let cfg = TrainConfig {
            learning_rate: 0.05,
            patience: 2,
            max_epochs: 100,
            ..TrainConfig::default()
        };
        let mut reports = Vec::new();
        let model = train(&data, &cfg, &mut |r| reports.push(r)).expect("train");
        assert_eq!(reports.len(), model.epochs_run());
        let best = &reports[model.best_epoch() - 1];
        assert!(best.improved);
        assert!(reports.iter().all(|r| r.validation_loss >= best.validation_loss));
        // The stored validation metrics are those of the restored weights.
        assert!((model.validation().log_loss - best.validation_loss).abs() < 1e-4);
        assert_eq!(model.train_rows() + model.validation_rows(), data.n());
        // The synthetic signal is strong: the model must have learned it.
        assert!(model.validation().accuracy > 0.75, "{:?}", model.validation());
    }

    #[test]
    fn bad_settings_are_errors() {
        let data = synthetic(50, 3);
        let bad = [
            TrainConfig {
                learning_rate: 0.0,
                ..TrainConfig::default()
            },
            TrainConfig {
                batch_size: 0,
                ..TrainConfig::default()
            },
            TrainConfig {
                max_epochs: 0,
                ..TrainConfig::default()
            },
            TrainConfig {
                validation_fraction: 1.0,
                ..TrainConfig::default()
            },
            TrainConfig {
                kind: ModelKind::Mlp { hidden: 0 },
                ..TrainConfig::default()
            },
        ];
        for cfg in bad {
            assert!(matches!(
                train(&data, &cfg, &mut |_| {}),
                Err(ModelError::InvalidConfig(_))
            ));
        }
        let tiny = synthetic(1, 3);
        assert!(train(&tiny, &TrainConfig::default(), &mut |_| {}).is_err());
        assert!("mlp:0".parse::<ModelKind>().is_err());
        assert!("forest".parse::<ModelKind>().is_err());
        for kind in [
            ModelKind::Logistic,
            ModelKind::Mlp { hidden: 16 },
            ModelKind::Mlp2 { hidden1: 8, hidden2: 4 },
        ] {
            assert_eq!(kind.to_string().parse::<ModelKind>().expect("round trip"), kind);
        }
    }

    /// Trains `kind` on a seeded 80% of the real CSV, evaluates on the other
    /// 20% and prints the numbers (`cargo test -- --nocapture` shows them).
    fn held_out(kind: ModelKind) -> (Evaluation, TrainedModel, f64) {
        let data = load_ten_minute_csv(ten_minute_csv()).expect("load the 10-minute CSV");
        assert_eq!(data.n(), 7895);
        let (train_part, test_part) = data.split(0.8, 2024);
        let cfg = TrainConfig::for_kind(kind.clone());
        let start = Instant::now();
        let model = train(&train_part, &cfg, &mut |_| {}).expect("train");
        let secs = start.elapsed().as_secs_f64();
        let eval = model.evaluate_on(&test_part).expect("evaluate");
        println!(
            "{kind}: held-out n={} accuracy={:.4} log_loss={:.4} auc={:.4} brier={:.4} \
             (epochs {} best {}, {:.2}s)",
            eval.count,
            eval.accuracy,
            eval.log_loss,
            eval.auc.unwrap_or(f64::NAN),
            eval.brier,
            model.epochs_run(),
            model.best_epoch(),
            secs
        );
        (eval, model, secs)
    }

    #[test]
    fn logistic_quality_on_held_out_games() {
        let (eval, _, _) = held_out(ModelKind::Logistic);
        assert!(eval.accuracy >= 0.72, "accuracy {}", eval.accuracy);
        assert!(eval.log_loss <= 0.54, "log loss {}", eval.log_loss);
        assert!(eval.auc.unwrap_or(0.0) >= 0.78, "auc {:?}", eval.auc);
    }

    #[test]
    fn mlp_quality_on_held_out_games() {
        let (eval, _, _) = held_out(ModelKind::Mlp { hidden: 32 });
        assert!(eval.accuracy >= 0.70, "accuracy {}", eval.accuracy);
        assert!(eval.log_loss <= 0.56, "log loss {}", eval.log_loss);
    }
}
