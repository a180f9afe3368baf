//! The `player_features` job: declarative event-time windowed features.
//!
//! ```text
//! source ─► rows (one per group of sets reading the same fields) ─► exchange by key ─► tumbling | sliding | session windows
//!                                                          │ fired / re-fired windows
//!                                                          ├─► online store (redis | embedded)
//!                                                          ├─► offline store: gold/player_features
//!                                                          └─► files: {feature_set}.jsonl
//!                                                          │ late rows
//!                                                          └─► silver/late_events (or late_events.jsonl)
//! ```
//! Feature sets that read the same source share one source operator.

use super::{Job, JobContext};
use crate::config::{JobConfig, SinkConfig, Topology};
use crate::error::{Result, RiftError};
use crate::features::RowDecoder;
use crate::features::{FeatureSpec, WindowResult, WindowSpec};
use crate::lake::tables::{FeatureVectorRow, LateEventRow};
use crate::operators::route::RouteByIndex;
use crate::operators::source::read_source;
use crate::operators::window::{
    session_core, sliding_core, tumbling_core, window_operator, LateRow, SpillConfig, WindowEnv,
};
use crate::sinks::embedded::{EmbeddedStore, FeatureStore, FeatureStoreWriter};
use crate::sinks::file::JsonLinesWriter;
use crate::sinks::SinkWriter;
use crate::util::Time;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, Inspect};
use timely::dataflow::Scope;

/// The compiled job.
pub struct FeaturesJob {
    sets: Vec<Arc<FeatureSpec>>,
    /// Entity type of each set's key, for the online store (`player` unless the key is not a player).
    entities: Vec<String>,
    online: Option<String>,
    offline: Option<String>,
    output: Option<String>,
    dlq: Option<String>,
}

impl FeaturesJob {
    /// Compiles `[jobs.NAME]` of kind `player_features`.
    pub fn from_config(name: &str, cfg: &JobConfig, topology: &Topology) -> Result<FeaturesJob> {
        let JobConfig::PlayerFeatures {
            feature_sets,
            online,
            offline,
            output,
            dlq,
        } = cfg
        else {
            return Err(RiftError::Internal(format!("job {name} is not a player_features job")));
        };
        let mut sets = Vec::new();
        let mut entities = Vec::new();
        for set in feature_sets {
            let spec = crate::features::compile_set(topology, set, &format!("jobs.{name}.feature_sets"))?;
            entities.push(spec.entity());
            sets.push(spec);
        }
        Ok(FeaturesJob {
            sets,
            entities,
            online: online.clone(),
            offline: offline.clone(),
            output: output.clone(),
            dlq: dlq.clone(),
        })
    }
}

/// Formats window results as the JSON lines of one feature set; the field
/// names are escaped once, not once per line.
pub struct WindowJson {
    /// `,"<key field>":`
    key_prefix: Vec<u8>,
    /// `,"<output name>":` per aggregate then feature.
    value_prefixes: Vec<Vec<u8>>,
}

impl WindowJson {
    /// The format of `spec`'s lines.
    pub fn new(spec: &FeatureSpec) -> WindowJson {
        let prefix = |name: &str| {
            let mut p = b",".to_vec();
            let _ = serde_json::to_writer(&mut p, name);
            p.push(b':');
            p
        };
        WindowJson {
            key_prefix: prefix(&spec.key_field),
            value_prefixes: spec.output_names().map(prefix).collect(),
        }
    }

    /// Appends `r` as one JSON object to `buf`.
    pub fn write(&self, r: &WindowResult, buf: &mut Vec<u8>) {
        let mut int = itoa::Buffer::new();
        buf.extend_from_slice(b"{\"window_start\":");
        buf.extend_from_slice(int.format(r.start).as_bytes());
        buf.extend_from_slice(b",\"window_end\":");
        buf.extend_from_slice(int.format(r.end).as_bytes());
        buf.extend_from_slice(&self.key_prefix);
        let _ = serde_json::to_writer(&mut *buf, &r.key);
        buf.extend_from_slice(b",\"revision\":");
        buf.extend_from_slice(int.format(r.revision).as_bytes());
        for (prefix, value) in self.value_prefixes.iter().zip(&r.values) {
            buf.extend_from_slice(prefix);
            match value {
                // Integral (checked without a libm call) and exact in i64.
                Some(v) if v.abs() < 9.0e15 && (*v as i64) as f64 == *v => {
                    buf.extend_from_slice(int.format(*v as i64).as_bytes());
                }
                Some(v) => {
                    let _ = serde_json::to_writer(&mut *buf, v);
                }
                None => buf.extend_from_slice(b"null"),
            }
        }
        buf.push(b'}');
    }
}

/// Writes each feature set's results to its own JSON-lines file.
struct PerSetFiles {
    files: Vec<JsonLinesWriter<WindowResult>>,
    routed: Vec<Vec<WindowResult>>,
}

impl SinkWriter<WindowResult> for PerSetFiles {
    fn begin_epoch(&mut self, epoch: u64) {
        self.files.iter_mut().for_each(|f| f.begin_epoch(epoch));
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<()> {
        self.files.iter_mut().try_for_each(|f| f.recover(restored))
    }

    fn write(&mut self, records: &mut Vec<WindowResult>) -> Result<()> {
        for r in records.drain(..) {
            if let Some(v) = self.routed.get_mut(r.set) {
                v.push(r);
            }
        }
        for (file, batch) in self.files.iter_mut().zip(self.routed.iter_mut()) {
            file.write(batch)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        self.files.iter_mut().try_for_each(|f| f.pre_commit(epoch))
    }

    fn commit(&mut self, epoch: u64) -> Result<bool> {
        let mut done = true;
        for f in &mut self.files {
            done &= f.commit(epoch)?;
        }
        Ok(done)
    }
}

fn late_row(sets: &[Arc<FeatureSpec>], late: &LateRow) -> LateEventRow {
    let spec = &sets[late.set];
    LateEventRow {
        feature_set: spec.name.clone(),
        key: late.row.key.clone(),
        event_time: late.row.ts,
        watermark: late.watermark,
        values: spec
            .inputs
            .iter()
            .cloned()
            .zip(late.row.values.iter().copied())
            .collect(),
    }
}

/// Adds a batch's records to the counters of their feature sets (`(set,
/// counter)` pairs): one update per set and batch, not per record, as the
/// counters are shared by every worker.
fn count_by_set(sets: impl Iterator<Item = usize>, counters: &[(usize, prometheus::IntCounter)]) {
    let mut counts: smallvec::SmallVec<[u64; 4]> = smallvec::smallvec![0; counters.len()];
    for set in sets {
        if let Some(k) = counters.iter().position(|(s, _)| *s == set) {
            counts[k] += 1;
        }
    }
    for ((_, counter), n) in counters.iter().zip(counts) {
        if n > 0 {
            counter.inc_by(n);
        }
    }
}

/// Fired windows, late rows and dead letters of a job's feature sets.
pub type FeatureStreams<'s> = (
    timely::dataflow::StreamVec<'s, Time, WindowResult>,
    timely::dataflow::StreamVec<'s, Time, LateRow>,
    timely::dataflow::StreamVec<'s, Time, crate::events::DeadLetter>,
);

/// The windowed results, late rows and dead letters of feature sets `sets`
/// (indexed as given) over their sources: one source operator per source,
/// one window operator per set, state spilling to RocksDB under the job.
pub fn feature_windows<'s>(
    scope: Scope<'s, Time>,
    ctx: &JobContext,
    sets: &[Arc<FeatureSpec>],
) -> Result<FeatureStreams<'s>> {
    // Group feature sets by source: one source operator per source.
    let mut by_source: BTreeMap<String, Vec<(usize, Arc<FeatureSpec>)>> = BTreeMap::new();
    for (i, s) in sets.iter().enumerate() {
        by_source.entry(s.source.clone()).or_default().push((i, s.clone()));
    }
    let mut results = Vec::new();
    let mut lates = Vec::new();
    let mut dead = Vec::new();
    for (source, sets) in by_source {
        let schema = ctx
            .topology
            .sources
            .get(&source)
            .and_then(|s| s.schema())
            .ok_or_else(|| {
                RiftError::config(
                    &ctx.topology.file,
                    format!("sources.{source}.schema"),
                    "unknown record schema",
                )
            })?;
        // Rows are tagged with the set's position among this source's sets;
        // sets reading the same fields share one row up to the exchange.
        let decoder = RowDecoder::new(
            schema,
            sets.iter()
                .enumerate()
                .map(|(k, (_, spec))| (k, spec.clone()))
                .collect(),
            ctx.format(&source)?,
        );
        let groups = decoder.groups();
        let streams = read_source(
            scope,
            ctx.source(&source, false)?,
            decoder,
            ctx.source_metrics(&source),
            ctx.health.clone(),
        );
        dead.push(streams.dead_letters);
        // One window operator per group of sets sharing rows: a row crosses
        // workers once and each set's state machine reads it in place.
        let per_group = if groups.len() == 1 {
            vec![streams.records]
        } else {
            streams.records.route_by_index(groups.len(), ctx.health.clone())
        };
        for (members, rows) in groups.iter().zip(per_group) {
            let mut cores = Vec::new();
            let mut states = Vec::new();
            let mut names = Vec::new();
            let mut result_counters = Vec::new();
            let mut late_counters = Vec::new();
            for &k in members {
                let (i, spec) = &sets[k];
                let env = WindowEnv {
                    health: ctx.health.clone(),
                    spill: Some(SpillConfig {
                        db: crate::state::shared_db(&PathBuf::from(&ctx.topology.runtime.state_dir).join("windows"))?,
                        prefix: format!("{}\u{1}{}\u{1}{}\u{1}", ctx.job, spec.name, ctx.worker).into_bytes(),
                        max_entries: ctx.topology.runtime.state_memory_entries,
                    }),
                };
                cores.push(match spec.window {
                    WindowSpec::Tumbling { .. } => tumbling_core(spec.clone(), *i, &env),
                    WindowSpec::Sliding { .. } => sliding_core(spec.clone(), *i, &env),
                    WindowSpec::Session { .. } => session_core(spec.clone(), *i),
                });
                names.push(spec.name.clone());
                states.push(ctx.operator_state(&format!("windows/{}", spec.name)));
                let m = ctx.metrics.window(&ctx.job, &spec.name);
                result_counters.push((*i, m.results));
                late_counters.push((*i, m.late_rows));
            }
            let name = format!("Windows({})", names.join(", "));
            let (fired, late) = window_operator(rows, &name, cores, states, ctx.health.clone());
            results.push(fired.inspect_core(move |event| {
                if let Ok((_, batch)) = event {
                    count_by_set(batch.iter().map(|r| r.set), &result_counters);
                }
            }));
            lates.push(late.inspect_core(move |event| {
                if let Ok((_, batch)) = event {
                    count_by_set(batch.iter().map(|l| l.set), &late_counters);
                }
            }));
        }
    }
    Ok((
        scope.concatenate(results),
        scope.concatenate(lates),
        scope.concatenate(dead),
    ))
}

impl Job for FeaturesJob {
    fn install<'s>(&self, scope: Scope<'s, Time>, ctx: &JobContext) -> Result<()> {
        let (results, lates, dead) = feature_windows(scope, ctx, &self.sets)?;
        ctx.dead_letters(dead, self.dlq.as_deref())?;

        if let Some(online) = &self.online {
            let store: Arc<dyn FeatureStore> = match ctx.topology.sinks.get(online) {
                Some(SinkConfig::Embedded { path }) => Arc::new(EmbeddedStore::open(&PathBuf::from(path), 0)?),
                Some(SinkConfig::Redis { url, ttl }) => Arc::new(crate::sinks::redis::RedisStore::open(url, *ttl)?),
                _ => {
                    return Err(RiftError::config(
                        &ctx.topology.file,
                        format!("sinks.{online}"),
                        "expected an online store",
                    ))
                }
            };
            let sets = self.sets.iter().cloned().zip(self.entities.iter().cloned()).collect();
            ctx.write(
                results.clone(),
                online,
                FeatureStoreWriter::new(store, sets, ctx.metrics.feature_store(online)),
            );
        }
        let mut late_written = false;
        if let Some(offline) = &self.offline {
            let sets = self.sets.clone();
            let entities = self.entities.clone();
            let vectors = results.clone().map(move |r| {
                let spec = &sets[r.set];
                FeatureVectorRow {
                    feature_set: spec.name.clone(),
                    entity: entities[r.set].clone(),
                    entity_id: r.key.clone(),
                    window_start: r.start,
                    window_end: r.end,
                    revision: r.revision as i32,
                    features: spec
                        .output_names()
                        .zip(&r.values)
                        .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
                        .collect(),
                }
            });
            ctx.write(
                vectors,
                offline,
                ctx.lake_writer::<FeatureVectorRow>(offline, "features")?,
            );
            let sets = self.sets.clone();
            let late_rows = lates.clone().map(move |l| late_row(&sets, &l));
            ctx.write(late_rows, offline, ctx.lake_writer::<LateEventRow>(offline, "late")?);
            late_written = true;
        }
        if let Some(output) = &self.output {
            let dir = ctx.file_dir(output)?;
            let mut files = Vec::new();
            for spec in &self.sets {
                let format = WindowJson::new(spec);
                files.push(JsonLinesWriter::create(
                    &dir,
                    &spec.name,
                    ctx.worker,
                    ctx.peers,
                    Box::new(move |r: &WindowResult, buf: &mut Vec<u8>| {
                        format.write(r, buf);
                        Ok(())
                    }),
                )?);
            }
            let writer = PerSetFiles {
                routed: vec![Vec::new(); self.sets.len()],
                files,
            };
            ctx.write(results, output, writer);
            if !late_written {
                let sets = self.sets.clone();
                let late_rows = lates.map(move |l| late_row(&sets, &l));
                ctx.write(
                    late_rows,
                    output,
                    JsonLinesWriter::<LateEventRow>::serde(&dir, "late_events", ctx.worker, ctx.peers)?,
                );
            }
        }
        Ok(())
    }
}
