//! `[feature_sets.NAME]`: declarative windowed aggregations (window kind and
//! sizes, aggregates, derived features, lookups), as written in the file.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Window kinds of SPEC "Window semantics".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumbling,
    /// Windows of `size` every `slide`.
    Sliding,
    /// Activity sessions closed by a `gap` of inactivity.
    Session,
}

/// A feature set's window.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Tumbling, sliding or session.
    pub kind: WindowKind,
    /// Window length (tumbling, sliding).
    #[serde(default, with = "humantime_serde")]
    pub size: Option<Duration>,
    /// Hop between window starts (sliding).
    #[serde(default, with = "humantime_serde")]
    pub slide: Option<Duration>,
    /// Inactivity gap that closes a session.
    #[serde(default, with = "humantime_serde")]
    pub gap: Option<Duration>,
    /// How long after a window fired late events still update it (re-fire).
    #[serde(default, with = "humantime_serde")]
    pub allowed_lateness: Option<Duration>,
}

/// `[feature_sets.NAME]`: a declarative windowed aggregation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetConfig {
    /// The source (by name) whose records are aggregated.
    pub source: String,
    /// A list field whose elements become the rows (e.g. a match's `participants`).
    #[serde(default)]
    pub explode: Option<String>,
    /// The key field (e.g. `player_id`).
    pub key: String,
    /// The event-time field, UTC ms (e.g. `end_time`, `ts`).
    pub time: String,
    /// The window.
    pub window: WindowConfig,
    /// Aggregates by output name: `count`, `sum(f)`, `avg(f)`, `min(f)`, `max(f)`,
    /// `last(f)`, `count_distinct(f)`.
    pub aggregates: BTreeMap<String, String>,
    /// Derived features by output name: arithmetic over aggregate names,
    /// e.g. `(kills + assists) / max(1, deaths)`.
    #[serde(default)]
    pub features: BTreeMap<String, String>,
    /// Which outputs go to the online feature store (default: all features and aggregates).
    #[serde(default)]
    pub online: Option<Vec<String>>,
    /// Numbers for the values of string fields, so they can be aggregated,
    /// e.g. `{ tier = { IRON = 0, BRONZE = 1, … } }`. A value missing from
    /// its map rejects the record (dead letter) with the known values.
    #[serde(default)]
    pub lookups: BTreeMap<String, BTreeMap<String, f64>>,
}
