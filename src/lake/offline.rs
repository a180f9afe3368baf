//! The offline feature store: point-in-time correct training tables.
//!
//! Every fired window of the `player_features` job lands in
//! `gold/player_features` with its `window_end`, the event time its values
//! are valid at (they cover events strictly before it). A training row for a
//! match that starts at `T` takes, per feature set, the player's vector of
//! the latest window with `window_end <= T` (its highest revision): every
//! event behind it happened before the match began. A naive "latest vector
//! per player" join would instead hand the model results of the match itself
//! and of later matches.
//!
//! `riftstream features export --as-of-matches FILE` builds such a table:
//! one row per match and participant, with the label (`win`), the
//! simulator's own blue win probability for generated matches, the as-of
//! time, each set's `window_end` (so the cut is auditable) and every feature
//! (null where the player had no closed window yet). Feature sets keyed by
//! champion, role or team, or by a composite such as `player_id+champion`
//! (the player's history on this champion), join on the participant's
//! values the same way.

use super::tables::FeatureVectorRow;
use super::Lake;
use crate::error::{Result, RiftError};
use crate::events::Match;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

/// One feature vector of an entity, valid at `window_end`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector {
    /// Window start, UTC ms.
    pub window_start: i64,
    /// Window end, UTC ms: the values cover events strictly before it.
    pub window_end: i64,
    /// Re-fire count of the window.
    pub revision: i32,
    /// Features by name.
    pub features: BTreeMap<String, f64>,
}

/// Every feature vector of the offline store, by feature set and entity id.
#[derive(Debug, Default)]
pub struct FeatureHistory {
    /// set → its entity type (`player`, `champion`, …).
    entities: BTreeMap<String, String>,
    /// set → entity id → vectors sorted by (window_end, revision, window_start).
    sets: BTreeMap<String, HashMap<String, Vec<FeatureVector>>>,
    /// set → feature names seen.
    names: BTreeMap<String, BTreeSet<String>>,
}

impl FeatureHistory {
    /// Builds the history from rows of `gold/player_features`.
    pub fn from_rows(rows: impl IntoIterator<Item = FeatureVectorRow>) -> FeatureHistory {
        let mut h = FeatureHistory::default();
        for r in rows {
            h.entities
                .entry(r.feature_set.clone())
                .or_insert_with(|| r.entity.clone());
            h.names
                .entry(r.feature_set.clone())
                .or_default()
                .extend(r.features.keys().cloned());
            h.sets
                .entry(r.feature_set)
                .or_default()
                .entry(r.entity_id)
                .or_default()
                .push(FeatureVector {
                    window_start: r.window_start,
                    window_end: r.window_end,
                    revision: r.revision,
                    features: r.features,
                });
        }
        for by_id in h.sets.values_mut() {
            for v in by_id.values_mut() {
                v.sort_by_key(|f| (f.window_end, f.revision, f.window_start));
            }
        }
        h
    }

    /// Reads `gold/player_features` of `lake`.
    pub fn load(lake: &Lake) -> Result<FeatureHistory> {
        let mut rows = Vec::new();
        for path in super::delta::data_files(lake, "gold/player_features")? {
            for batch in lake.read_parquet(&path)? {
                rows.extend(feature_rows(&batch).map_err(|e| match e {
                    RiftError::Usage(m) => RiftError::Usage(format!("{path}: {m}")),
                    other => other,
                })?);
            }
        }
        Ok(FeatureHistory::from_rows(rows))
    }

    /// The vector of `set` for `id` as of `t`: the latest window ending at or before `t`.
    pub fn as_of(&self, set: &str, id: &str, t: i64) -> Option<&FeatureVector> {
        let v = self.sets.get(set)?.get(id)?;
        let n = v.partition_point(|f| f.window_end <= t);
        n.checked_sub(1).and_then(|i| v.get(i))
    }

    /// The entity type of feature set `set`.
    pub fn entity(&self, set: &str) -> Option<&str> {
        self.entities.get(set).map(String::as_str)
    }

    /// Feature sets, with their feature names, in a stable order.
    pub fn feature_names(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.names
    }

    /// Number of vectors held.
    pub fn len(&self) -> usize {
        self.sets.values().flat_map(|m| m.values()).map(Vec::len).sum()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| RiftError::Usage(format!("not a gold/player_features file: no column `{name}`")))
}

/// Decodes a `gold/player_features` batch.
fn feature_rows(batch: &RecordBatch) -> Result<Vec<FeatureVectorRow>> {
    let wrong = |name: &str| RiftError::Usage(format!("column `{name}` has an unexpected type"));
    let set = column(batch, "feature_set")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("feature_set"))?;
    let entity = column(batch, "entity")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("entity"))?;
    let id = column(batch, "entity_id")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("entity_id"))?;
    let start = column(batch, "window_start")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| wrong("window_start"))?;
    let end = column(batch, "window_end")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| wrong("window_end"))?;
    let revision = column(batch, "revision")?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| wrong("revision"))?;
    let features = column(batch, "features")?
        .as_map_opt()
        .ok_or_else(|| wrong("features"))?;
    let keys = features
        .keys()
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("features.key"))?;
    let values = features
        .values()
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| wrong("features.value"))?;
    let offsets = features.value_offsets();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut map = BTreeMap::new();
        for j in offsets[i] as usize..offsets[i + 1] as usize {
            if values.is_valid(j) {
                map.insert(keys.value(j).to_string(), values.value(j));
            }
        }
        rows.push(FeatureVectorRow {
            feature_set: set.value(i).to_string(),
            entity: entity.value(i).to_string(),
            entity_id: id.value(i).to_string(),
            window_start: start.value(i),
            window_end: end.value(i),
            revision: revision.value(i),
            features: map,
        });
    }
    Ok(rows)
}

/// Reads finished matches from a JSON-lines file (the `esports.matches` JSON shape).
pub fn read_matches(path: &Path) -> Result<Vec<Match>> {
    let text = std::fs::read_to_string(path).map_err(|e| RiftError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let m: Match = serde_json::from_str(line)
            .map_err(|e| RiftError::Usage(format!("{}:{}: not a match: {e}", path.display(), n + 1)))?;
        out.push(m);
    }
    Ok(out)
}

/// The id a lineup slot has as entity `entity` (`player`, `champion`,
/// `role`, `team` or a composite such as `player+champion`, whose parts are
/// joined like composite key values), or `None` for another entity type.
pub fn lineup_entity_id(entity: &str, player_id: &str, champion: &str, role: &str, team: &str) -> Option<String> {
    let mut id = String::new();
    for (i, part) in entity.split('+').enumerate() {
        if i > 0 {
            id.push(crate::util::KEY_SEPARATOR);
        }
        match part {
            "player" => id.push_str(player_id),
            "champion" => id.push_str(champion),
            "role" => id.push_str(role),
            "team" => id.push_str(team),
            _ => return None,
        }
    }
    Some(id)
}

/// Whether sets of entity type `entity` can be joined with a lineup (see [`lineup_entity_id`]).
pub fn joins_lineups(entity: &str) -> bool {
    entity
        .split('+')
        .all(|p| matches!(p, "player" | "champion" | "role" | "team"))
}

fn participant_id(entity: &str, p: &crate::events::Participant) -> Option<String> {
    lineup_entity_id(entity, &p.player_id, &p.champion, p.role.as_str(), p.team.as_str())
}

/// The point-in-time training table: one row per match and participant,
/// joined with every feature set keyed by player or by champion.
pub fn training_table(history: &FeatureHistory, matches: &[Match]) -> Result<RecordBatch> {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()));
    let joinable: BTreeMap<&String, &BTreeSet<String>> = history
        .feature_names()
        .iter()
        .filter(|(set, _)| history.entity(set).is_some_and(joins_lineups))
        .collect();
    // Feature columns: plain names unless two sets share one.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for names in joinable.values() {
        for n in names.iter() {
            *seen.entry(n.as_str()).or_default() += 1;
        }
    }
    let mut fields = vec![
        Field::new("match_id", DataType::Utf8, false),
        Field::new("as_of", ts(), false),
        Field::new("player_id", DataType::Utf8, false),
        Field::new("team", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("champion", DataType::Utf8, false),
        Field::new("win", DataType::Boolean, false),
        Field::new("simulated_blue_win_probability", DataType::Float64, true),
    ];
    let mut columns: Vec<(String, String)> = Vec::new(); // (set, feature)
    for (set, names) in &joinable {
        fields.push(Field::new(format!("{set}_window_end"), ts(), true));
        for n in names.iter() {
            let column = if seen.get(n.as_str()).copied().unwrap_or(0) > 1 {
                format!("{set}.{n}")
            } else {
                n.clone()
            };
            fields.push(Field::new(column, DataType::Float64, true));
            columns.push(((*set).clone(), n.clone()));
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let mut match_id = StringBuilder::new();
    let mut as_of = TimestampMillisecondBuilder::new().with_timezone("+00:00");
    let mut player = StringBuilder::new();
    let mut team = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut champion = StringBuilder::new();
    let mut win = BooleanBuilder::new();
    let mut simulated = Float64Builder::new();
    let sets: Vec<&String> = joinable.keys().copied().collect();
    let mut ends: Vec<TimestampMillisecondBuilder> = sets
        .iter()
        .map(|_| TimestampMillisecondBuilder::new().with_timezone("+00:00"))
        .collect();
    let mut values: Vec<Float64Builder> = columns.iter().map(|_| Float64Builder::new()).collect();
    for m in matches {
        for p in &m.participants {
            match_id.append_value(&m.match_id);
            as_of.append_value(m.start_time);
            player.append_value(&p.player_id);
            team.append_value(p.team.as_str());
            role.append_value(p.role.as_str());
            champion.append_value(&p.champion);
            win.append_value(p.win);
            simulated.append_option(m.simulated_blue_win_probability);
            let vectors: BTreeMap<&str, &FeatureVector> = sets
                .iter()
                .filter_map(|s| {
                    let id = participant_id(history.entity(s)?, p)?;
                    history.as_of(s, &id, m.start_time).map(|v| (s.as_str(), v))
                })
                .collect();
            for (b, s) in ends.iter_mut().zip(&sets) {
                b.append_option(vectors.get(s.as_str()).map(|v| v.window_end));
            }
            for (b, (s, n)) in values.iter_mut().zip(&columns) {
                b.append_option(vectors.get(s.as_str()).and_then(|v| v.features.get(n)).copied());
            }
        }
    }
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(match_id.finish()),
        Arc::new(as_of.finish()),
        Arc::new(player.finish()),
        Arc::new(team.finish()),
        Arc::new(role.finish()),
        Arc::new(champion.finish()),
        Arc::new(win.finish()),
        Arc::new(simulated.finish()),
    ];
    // Columns in schema order: per set, its window_end then its features.
    let mut values = values.into_iter();
    for (set_index, (_, names)) in joinable.iter().enumerate() {
        arrays.push(Arc::new(ends[set_index].finish()));
        for _ in names.iter() {
            if let Some(mut b) = values.next() {
                arrays.push(Arc::new(b.finish()));
            }
        }
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// Writes a batch as one zstd Parquet file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    use parquet::basic::{Compression, ZstdLevel};
    let file = std::fs::File::create(path).map_err(|e| RiftError::io(path, e))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, start: i64, end: i64, revision: i32, games: f64) -> FeatureVectorRow {
        FeatureVectorRow {
            feature_set: "daily".into(),
            entity: "player".into(),
            entity_id: id.into(),
            window_start: start,
            window_end: end,
            revision,
            features: BTreeMap::from([("games".to_string(), games)]),
        }
    }

    #[test]
    fn as_of_takes_the_latest_closed_window_and_its_last_revision() {
        let h = FeatureHistory::from_rows(vec![
            row("p", 100, 200, 0, 1.0),
            row("p", 200, 300, 0, 2.0),
            row("p", 100, 200, 1, 5.0),
            row("q", 100, 200, 0, 9.0),
        ]);
        assert_eq!(h.as_of("daily", "p", 199), None);
        assert_eq!(h.as_of("daily", "p", 200).map(|v| v.features["games"]), Some(5.0));
        assert_eq!(h.as_of("daily", "p", 299).map(|v| v.features["games"]), Some(5.0));
        assert_eq!(h.as_of("daily", "p", 300).map(|v| v.features["games"]), Some(2.0));
        assert_eq!(h.as_of("daily", "q", 10_000).map(|v| v.features["games"]), Some(9.0));
        assert_eq!(h.as_of("daily", "r", 10_000), None);
        assert_eq!(h.len(), 4);
    }
}
