//! Typed, validated configuration: the topology file, as pure data.
//!
//! A topology names *sources* (where records come from), *sinks* (where they
//! go), *feature sets* (declarative windowed aggregations) and *jobs* (which
//! dataflows run, wired to sources and sinks by name). It is read in three
//! steps, each failing with an error that names the file and the key:
//!
//! 1. parse the TOML;
//! 2. expand `${VAR}` and `${VAR:-default}` in every string value from the
//!    environment (comments are never expanded);
//! 3. deserialize into the types below (`deny_unknown_fields`: a typo is an
//!    error, not a silently ignored key) and [`Topology::validate`] the
//!    cross-references and values.
//!
//! This module only reads and checks: it compiles nothing and opens nothing.
//! Feature-set expressions are compiled (and their errors reported with the
//! same file and key) by `features::compile_sets`; lakes and stores are
//! opened by the connectors.
//!
//! One file per section: [`runtime`], [`kafka`], [`sources`], [`sinks`],
//! [`feature_sets`], [`jobs`], the generator's settings in [`generator`], and
//! the cross-reference checks in `validate`.

mod expand;
mod feature_sets;
mod generator;
mod job_file;
mod jobs;
mod kafka;
mod runtime;
mod sinks;
mod sources;
mod validate;

pub use expand::expand_env;
pub use feature_sets::{FeatureSetConfig, WindowConfig, WindowKind};
pub use generator::GeneratorConfig;
pub use jobs::JobConfig;
pub use kafka::{Encoding, KafkaConfig};
pub use runtime::RuntimeConfig;
pub use sinks::{LakeFormat, SinkConfig};
pub use sources::{RecordSchema, SourceConfig, WatermarkConfig};

use crate::error::{Result, RiftError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A whole topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Where this topology was read from (for error messages); not in the file.
    #[serde(skip)]
    pub file: String,
    /// The text it was parsed from (what a job started from it carries to
    /// every worker of a cluster); not in the file.
    #[serde(skip)]
    pub text: String,
    /// Worker process settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Connection settings shared by every `kafka` source and sink.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// Named sources.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Named declarative feature sets (windowed aggregations).
    #[serde(default)]
    pub feature_sets: BTreeMap<String, FeatureSetConfig>,
    /// Named jobs: the dataflows a worker runs.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,
}

impl Topology {
    /// Reads, expands and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path).map_err(|e| RiftError::io(path, e))?;
        Topology::parse(&text, &path.display().to_string())
    }

    /// Parses, expands and validates topology text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Topology> {
        let mut doc: toml::Value = parse_toml(text, file)?;
        expand_env(&mut doc, file)?;
        let mut topology: Topology = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
            let message = e.inner().message().to_string();
            let key = refine_key(&doc, &e.path().to_string(), &message);
            RiftError::config(file, key, message)
        })?;
        topology.file = file.to_string();
        topology.text = text.to_string();
        topology.validate()?;
        Ok(topology)
    }

    /// The lake root of the first `lake` sink, if any.
    pub fn lake_root(&self) -> Option<&str> {
        self.sinks.values().find_map(|s| match s {
            SinkConfig::Lake { root, .. } => Some(root.as_str()),
            _ => None,
        })
    }
}

/// Parses TOML `text` read from `file`; a syntax error names its line.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        RiftError::config(file, format!("line {line}"), e.message().to_string())
    })
}

/// The key of a deserialization error. Inside a tagged section (`kind =
/// …`) serde reports only the section's path; when the message quotes the
/// offending string (`invalid value: string "soon"`) and exactly one key of
/// the section holds it, that key is named instead.
fn refine_key(doc: &toml::Value, path: &str, message: &str) -> String {
    let quoted = message
        .split_once("string \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value);
    let section = path.split('.').try_fold(doc, |v, part| v.get(part));
    let (Some(value), Some(toml::Value::Table(table))) = (quoted, section) else {
        return path.to_string();
    };
    let holders: Vec<&String> = table
        .iter()
        .filter(|(_, v)| v.as_str() == Some(value))
        .map(|(k, _)| k)
        .collect();
    match holders.as_slice() {
        [only] => format!("{path}.{only}"),
        _ => path.to_string(),
    }
}
