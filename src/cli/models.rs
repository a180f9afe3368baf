//! `riftstream train|evaluate|models list`: candle models and their registry.

use super::load_topology;
use crate::error::RiftError;
use crate::model::{
    evaluate as score, load_labeled, registry_root, train as fit, DataFormat, LoadedModel, ModelKind, ModelRegistry,
    TrainConfig,
};
use std::path::{Path, PathBuf};

/// The registry root: `registry` if given, else the topology's lake root.
fn registry_of(registry: Option<PathBuf>, topology: &Path) -> anyhow::Result<PathBuf> {
    match registry {
        Some(r) => Ok(r),
        None => Ok(registry_root(&load_topology(topology)?)?),
    }
}

/// Trains a `kind` model (`live` or `pre_game`) of family `model` on `data`,
/// registers it, announces it on Kafka when the topology has Kafka, and
/// prints the version's directory last.
pub fn train(
    kind: &str,
    data: &Path,
    model: &str,
    registry: Option<PathBuf>,
    topology: &Path,
    name: Option<String>,
    seed: u64,
) -> anyhow::Result<()> {
    let model_kind: ModelKind = model.parse().map_err(|e| RiftError::Usage(format!("--model: {e}")))?;
    let format = match kind {
        "live" => DataFormat::TenMinute,
        "pre_game" => DataFormat::PreGame { features: None },
        other => {
            return Err(RiftError::Usage(format!("unknown model kind `{other}`; expected `live` or `pre_game`")).into())
        }
    };
    // The topology is read before training, so a broken one fails in seconds,
    // not after; with `--registry` and no topology file, nothing is announced.
    let (root, topo) = match registry {
        Some(r) if !topology.exists() => (r, None),
        Some(r) => (r, Some(load_topology(topology)?)),
        None => {
            let t = load_topology(topology)?;
            (registry_root(&t)?, Some(t))
        }
    };
    let labeled = load_labeled(data, format)?;
    let cfg = TrainConfig {
        seed,
        ..TrainConfig::for_kind(model_kind)
    };
    eprintln!(
        "training {model} on {} rows from {}",
        labeled.dataset.n(),
        data.display()
    );
    // Epochs run up to `max_epochs`; early stopping usually ends sooner.
    let bar = indicatif::ProgressBar::new(cfg.max_epochs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {bar:30} epoch {pos}/{len} (early stopping may end sooner)  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let trained = fit(&labeled.dataset, &cfg, &mut |r| {
        bar.set_position(r.epoch as u64);
        bar.set_message(format!(
            "validation loss {:.4}, accuracy {:.4}, best epoch {}",
            r.validation_loss, r.validation_accuracy, r.best_epoch
        ));
    })?;
    bar.finish_and_clear();
    eprintln!(
        "  stopped after {} epochs; kept epoch {}",
        trained.epochs_run(),
        trained.best_epoch()
    );
    if let Some(best) = labeled.simulator_accuracy {
        eprintln!("the simulator's own probability scores accuracy {best:.4} on these matches (the best possible)");
    }
    let v = trained.validation();
    eprintln!("validation: accuracy {:.4}, log loss {:.4}", v.accuracy, v.log_loss);
    let model_name = name.as_deref().unwrap_or(kind).to_string();
    let dir = ModelRegistry::open(&root)?.register(&model_name, &trained, &data.display().to_string())?;
    if let Some(topo) = &topo {
        match crate::produce::announce_model(topo, &model_name, model, &dir) {
            Ok(Some(u)) => eprintln!("announced {} {} on esports.model_updates", u.model_name, u.version),
            Ok(None) => {}
            // Registered either way: workers also find new versions in the registry.
            Err(e) => eprintln!("warning: registered, but could not announce it on esports.model_updates: {e}"),
        }
    }
    println!("{}", dir.display());
    Ok(())
}

/// Evaluates the model version at `model` on `data` and prints JSON.
pub fn evaluate(model: &Path, data: &Path) -> anyhow::Result<()> {
    let loaded = LoadedModel::load(model)?;
    let pre_game = crate::model::pregame::player_features_of(loaded.feature_names());
    let format = match pre_game.as_deref() {
        None => DataFormat::TenMinute,
        Some(features) => DataFormat::PreGame {
            features: Some(features),
        },
    };
    let labeled = load_labeled(data, format)?;
    let probs = loaded.predict_batch(&labeled.dataset.x)?;
    let eval = score(&probs, &labeled.dataset.y)?;
    let mut json = serde_json::to_value(&eval)?;
    if let (Some(best), Some(obj)) = (labeled.simulator_accuracy, json.as_object_mut()) {
        obj.insert("simulator_accuracy".into(), serde_json::json!(best));
        obj.insert("share_of_best".into(), serde_json::json!(eval.accuracy / best));
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

/// Lists registered model versions.
pub fn list(registry: Option<PathBuf>, topology: &Path) -> anyhow::Result<()> {
    let root = registry_of(registry, topology)?;
    let versions = ModelRegistry::open(&root)?.list()?;
    if versions.is_empty() {
        println!("no models registered under {}", root.display());
    }
    for v in versions {
        let m = &v.metadata;
        println!(
            "{:<10} {:<5} {:<9} accuracy {:.4}  log loss {:.4}  {}  {}",
            v.name,
            v.version,
            m.kind.to_string(),
            m.metrics.accuracy,
            m.metrics.log_loss,
            m.created_at,
            v.path.display()
        );
    }
    Ok(())
}
