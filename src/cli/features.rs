//! `riftstream features get|export`: the online store and point-in-time training tables.

use super::load_topology;
use crate::config::SinkConfig;
use crate::lake::offline;
use crate::sinks::embedded::{EmbeddedStore, FeatureStore};
use crate::sinks::redis::RedisStore;
use anyhow::bail;
use std::path::{Path, PathBuf};

/// Prints the online features of `entity` `id`, from `store` (an embedded
/// store directory) or the topology's online store sink.
pub fn get(id: &str, store: Option<PathBuf>, topology: &Path, entity: &str) -> anyhow::Result<()> {
    let store: Box<dyn FeatureStore> = match store {
        Some(dir) => Box::new(EmbeddedStore::open(&dir, 0)?),
        None => {
            let topo = load_topology(topology)?;
            let online = topo.sinks.values().find_map(|s| match s {
                SinkConfig::Redis { url, ttl } => {
                    Some(RedisStore::open(url, *ttl).map(|r| Box::new(r) as Box<dyn FeatureStore>))
                }
                SinkConfig::Embedded { path } => {
                    Some(EmbeddedStore::open(&PathBuf::from(path), 0).map(|e| Box::new(e) as Box<dyn FeatureStore>))
                }
                _ => None,
            });
            match online {
                Some(s) => s?,
                None => {
                    return Err(crate::error::RiftError::config(
                        &topo.file,
                        "sinks",
                        "no online store sink (redis or embedded); give --store DIR",
                    )
                    .into())
                }
            }
        }
    };
    match store.get(entity, id)? {
        Some(fields) => println!("{}", serde_json::to_string_pretty(&fields)?),
        None => bail!(crate::error::RiftError::Usage(format!(
            "no features for {entity} `{id}`"
        ))),
    }
    Ok(())
}

/// Writes the point-in-time training table for the matches in `as_of_matches` to `out`.
pub fn export(as_of_matches: &Path, out: &Path, lake: Option<&str>, topology: &Path) -> anyhow::Result<()> {
    let lake = super::lake::open_lake(lake, topology)?;
    let history = offline::FeatureHistory::load(&lake)?;
    if history.is_empty() {
        bail!(crate::error::RiftError::Usage(format!(
            "{}: gold/player_features holds no features",
            lake.root
        )));
    }
    let matches = offline::read_matches(as_of_matches)?;
    let table = offline::training_table(&history, &matches)?;
    offline::write_parquet(out, &table)?;
    println!(
        "{} rows ({} matches, {} feature vectors) -> {}",
        table.num_rows(),
        matches.len(),
        history.len(),
        out.display()
    );
    Ok(())
}
