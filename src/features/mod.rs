//! Declarative feature sets: what `[feature_sets.NAME]` in `topology.toml`
//! compiles to, and the pure (dataflow-free) logic the window operators run.
//!
//! * [`FeatureSpec`] — a compiled feature set: key and time fields, window,
//!   aggregates (`count`, `sum`, `avg`, `min`, `max`, `last`,
//!   `count_distinct`) and derived features (expressions over aggregates).
//! * [`FeatureRow`] — one input row reduced to what the aggregates need: key,
//!   event time and the input field values. Rows are what workers exchange.
//! * [`Accumulator`] — the per-(key, window) state; it is mergeable and
//!   order-insensitive (`last` breaks event-time ties by value), so results
//!   never depend on arrival order or worker count.
//! * [`RowExtractor`] — JSON (bytes or a decoded value, with `explode` of a
//!   list field) to rows, rejecting records that lack a field with a reason.

mod decode;
mod expr;
mod extract;
mod spec;

pub use decode::RowDecoder;
pub use expr::Expr;
pub use extract::RowExtractor;
pub use spec::{Accumulator, AggFunc, AggregateSpec, FeatureRow, FeatureSpec, WindowResult, WindowSpec};

use crate::config::Topology;
use crate::error::{Result, RiftError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Compiles feature set `name` of `topology`; `referenced_at` is the key
/// that names it (for the error when it is not defined). An error in the set
/// names the file and the set's key, as configuration errors do.
pub fn compile_set(topology: &Topology, name: &str, referenced_at: &str) -> Result<Arc<FeatureSpec>> {
    let cfg = topology
        .feature_sets
        .get(name)
        .ok_or_else(|| RiftError::config(&topology.file, referenced_at, format!("unknown feature set `{name}`")))?;
    FeatureSpec::compile(name, cfg)
        .map(Arc::new)
        .map_err(|(field, message)| RiftError::config(&topology.file, format!("feature_sets.{name}.{field}"), message))
}

/// Compiles every feature set of `topology` (what `Topology::validate`
/// cannot check: expressions, aggregate functions and their fields).
pub fn compile_sets(topology: &Topology) -> Result<BTreeMap<String, Arc<FeatureSpec>>> {
    topology
        .feature_sets
        .keys()
        .map(|name| {
            Ok((
                name.clone(),
                compile_set(topology, name, &format!("feature_sets.{name}"))?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_set_expressions_are_checked_with_the_key_named() {
        let text = r#"
[sources.m]
kind = "file"
path = "m.jsonl"
schema = "matches"
[feature_sets.f]
source = "m"
key = "player_id"
time = "end_time"
window = { kind = "tumbling", size = "1d" }
aggregates = { n = "count", k = "sum(kills)" }
features = { ratio = "k / (n" }
"#;
        let topology = Topology::parse(text, "topo.toml").expect("structurally valid");
        match compile_sets(&topology) {
            Err(RiftError::Config { file, key, message }) => {
                assert_eq!(file, "topo.toml");
                assert_eq!(key, "feature_sets.f.features.ratio", "{message}");
            }
            other => panic!("{other:?}"),
        }
        let fixed = Topology::parse(&text.replace("(n\"", "n\""), "topo.toml").unwrap();
        assert_eq!(compile_sets(&fixed).unwrap().len(), 1);
        let missing = compile_set(&fixed, "g", "jobs.j.feature_sets[0]").unwrap_err();
        assert!(
            matches!(missing, RiftError::Config { ref key, .. } if key == "jobs.j.feature_sets[0]"),
            "{missing}"
        );
    }
}
