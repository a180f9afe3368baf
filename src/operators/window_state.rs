//! The state machine shared by the tumbling and sliding window operators.
//!
//! # Time
//! Rows arrive stamped with a dataflow time `t`: the (quantized) watermark of
//! the source partition that read them, which is never later than the row's
//! own event time unless the row broke its partition's out-of-orderness bound.
//! The input frontier `F` is the job's watermark (the minimum over
//! partitions). Rows are buffered by `t` and applied in `t` order once `F`
//! passes `t`, interleaved with firings, so every output depends only on the
//! rows and their stamps — never on scheduling, arrival order or worker count.
//!
//! # Firing and lateness
//! A window `[s, e)` fires (revision 0) once `F ≥ e`, i.e. after every row
//! stamped before `e` is in. A row stamped `t ≥ e` for that window is late:
//! while `t < e + allowed_lateness` it updates the window, which re-fires at
//! `t` with the next revision; from `e + allowed_lateness` on it is dropped
//! for that window. A row dropped for *every* window it belongs to is
//! returned as a late row (counted and stored by the caller, never lost).
//! A window created by a row that is already past its end fires at that
//! row's stamp with revision 0.
//!
//! # State
//! One accumulator per (window start, key), keys interned with reference
//! counts. A window's state is purged once `F ≥ e + allowed_lateness`; a row
//! for it after that is late by its stamp alone, so purging changes nothing.
//!
//! Memory is a write-back cache over RocksDB: when more than
//! `state_memory_entries` accumulators are held, all of them are merged into
//! RocksDB (accumulators are mergeable), keyed by (operator, window start,
//! key), and memory starts over. A window's spilled entries are folded back
//! when it fires, a spilled entry when a late row re-fires it, and purging a
//! window deletes its key range. So memory stays bounded however many keys
//! are active, and results are identical with or without spilling.

use crate::error::{Result, RiftError};
use crate::features::{Accumulator, FeatureRow, FeatureSpec, WindowResult, WindowSpec};
use hashbrown::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What a window operator needs from its job besides the feature set.
#[derive(Clone, Default)]
pub struct WindowEnv {
    /// The job's health, for state-backend failures.
    pub health: crate::runtime::JobHealth,
    /// Overflow of state to RocksDB (tumbling and sliding windows).
    pub spill: Option<SpillConfig>,
}

/// Where window state overflows when memory is over budget.
#[derive(Clone)]
pub struct SpillConfig {
    /// The RocksDB database (shared by the process's workers).
    pub db: Arc<rocksdb::DB>,
    /// Key prefix unique to this operator instance (job, feature set, worker).
    pub prefix: Vec<u8>,
    /// Accumulators held in memory before spilling.
    pub max_entries: usize,
}

/// The RocksDB side of a window operator's state.
struct Spill {
    cfg: SpillConfig,
    /// Window starts with entries in RocksDB.
    starts: BTreeSet<i64>,
    /// Number of spills so far.
    spills: u64,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("windows", &self.starts.len())
            .field("spills", &self.spills)
            .finish()
    }
}

impl Spill {
    fn new(cfg: SpillConfig) -> Result<Spill> {
        let spill = Spill {
            cfg,
            starts: BTreeSet::new(),
            spills: 0,
        };
        // Without checkpoints to restore from, state left by an earlier run is stale.
        spill.delete_between(&spill.cfg.prefix, &spill.upper(&spill.cfg.prefix))?;
        Ok(spill)
    }

    fn upper(&self, prefix: &[u8]) -> Vec<u8> {
        let mut end = prefix.to_vec();
        end.push(0xFF);
        end
    }

    fn window_prefix(&self, start: i64) -> Vec<u8> {
        let mut k = self.cfg.prefix.clone();
        k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
        k
    }

    fn entry_key(&self, start: i64, key: &str) -> Vec<u8> {
        let mut k = self.window_prefix(start);
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn delete_between(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range(from, to);
        Ok(self.cfg.db.write(batch)?)
    }

    fn decode(bytes: &[u8]) -> Result<(Accumulator, u32)> {
        bincode::deserialize(bytes).map_err(|e| RiftError::Internal(format!("window state: {e}")))
    }

    /// Merges entries into RocksDB.
    fn put(&mut self, spec: &FeatureSpec, entries: Vec<(i64, String, Accumulator, u32)>) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (start, key, mut acc, mut fired) in entries {
            let k = self.entry_key(start, &key);
            if let Some(old) = self.cfg.db.get_pinned(&k)? {
                let (old_acc, old_fired) = Self::decode(&old)?;
                spec.merge(&mut acc, &old_acc);
                fired = fired.max(old_fired);
            }
            let v = bincode::serialize(&(acc, fired)).map_err(|e| RiftError::Internal(format!("window state: {e}")))?;
            batch.put(k, v);
            self.starts.insert(start);
        }
        self.spills += 1;
        Ok(self.cfg.db.write(batch)?)
    }

    /// Removes and returns every spilled entry of a window.
    fn take_window(&mut self, start: i64) -> Result<Vec<(String, Accumulator, u32)>> {
        if !self.starts.remove(&start) {
            return Ok(Vec::new());
        }
        let prefix = self.window_prefix(start);
        let mut out = Vec::new();
        for item in self.cfg.db.prefix_iterator(&prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let (acc, fired) = Self::decode(&v)?;
            out.push((key, acc, fired));
        }
        self.delete_between(&prefix, &self.upper(&prefix))?;
        Ok(out)
    }

    /// Removes and returns one spilled entry.
    fn take(&mut self, start: i64, key: &str) -> Result<Option<(Accumulator, u32)>> {
        if !self.starts.contains(&start) {
            return Ok(None);
        }
        let k = self.entry_key(start, key);
        let Some(v) = self.cfg.db.get_pinned(&k)? else {
            return Ok(None);
        };
        let entry = Self::decode(&v)?;
        self.cfg.db.delete(&k)?;
        Ok(Some(entry))
    }

    /// Deletes every window with start at or before `bound`.
    fn purge(&mut self, bound: i64) -> Result<()> {
        let gone: Vec<i64> = self.starts.range(..=bound).copied().collect();
        if let (Some(first), Some(last)) = (gone.first(), gone.last()) {
            let from = self.window_prefix(*first);
            let to = self.window_prefix(last.saturating_add(1));
            self.delete_between(&from, &to)?;
            for s in gone {
                self.starts.remove(&s);
            }
        }
        Ok(())
    }
}

/// The per-worker state machine of a window operator (see the module docs).
pub trait WindowCore: 'static {
    /// Buffers rows stamped `time`.
    fn push(&mut self, time: u64, rows: impl IntoIterator<Item = FeatureRow>);

    /// Processes every buffered stamp before `frontier` (`None`: input complete)
    /// and fires what became due; late rows go to `late`.
    fn advance(&mut self, frontier: Option<u64>, out: &mut Vec<WindowResult>, late: &mut Vec<LateRow>);

    /// Number of (window, key) states held in memory.
    fn state_len(&self) -> usize;

    /// A state-backend failure since the last call (the operator reports it).
    fn take_error(&mut self) -> Option<RiftError> {
        None
    }
}

/// A row that was too late for every window it belongs to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LateRow {
    /// Index of the feature set in its job.
    pub set: usize,
    /// The row.
    pub row: FeatureRow,
    /// The dataflow time (partition watermark) it arrived with.
    pub watermark: i64,
}

/// Interned keys with reference counts, so purged keys free their memory.
#[derive(Debug, Default)]
pub(crate) struct KeyInterner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    refs: Vec<u32>,
    free: Vec<u32>,
}

impl KeyInterner {
    #[inline]
    pub(crate) fn id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = key.into();
                id
            }
            None => {
                self.names.push(key.into());
                self.refs.push(0);
                (self.names.len() - 1) as u32
            }
        };
        self.ids.insert(key.into(), id);
        id
    }

    #[inline]
    pub(crate) fn retain(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    pub(crate) fn release(&mut self, id: u32) {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
        }
    }

    #[inline]
    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub(crate) fn live(&self) -> usize {
        self.ids.len()
    }
}

#[derive(Debug)]
struct Entry {
    acc: Accumulator,
    /// Number of times the window has fired for this key.
    fired: u32,
    /// Updated at the current stamp after its first firing was due.
    dirty: bool,
}

/// State of one tumbling or sliding feature set on one worker.
#[derive(Debug)]
pub struct AlignedWindowState {
    spec: Arc<FeatureSpec>,
    set: usize,
    size: i64,
    lateness: i64,
    keys: KeyInterner,
    /// Window start -> key -> entry.
    windows: BTreeMap<i64, HashMap<u32, Entry>>,
    /// Rows by stamp, waiting for the frontier to pass it.
    pending: BTreeMap<u64, Vec<FeatureRow>>,
    /// Every window with start < this has had its first firing considered.
    fire_cursor: i64,
    dirty: Vec<(i64, u32)>,
    /// Keys in the most recently opened window: the capacity a new window's map starts with.
    last_window_keys: usize,
    /// Accumulators held in memory.
    in_memory: usize,
    /// Overflow to RocksDB, if configured.
    spill: Option<Spill>,
    /// A state-backend failure not yet reported.
    error: Option<RiftError>,
}

impl AlignedWindowState {
    /// State for feature set `set` (a tumbling or sliding `spec`).
    pub fn new(spec: Arc<FeatureSpec>, set: usize) -> AlignedWindowState {
        let size = match spec.window {
            WindowSpec::Tumbling { size } | WindowSpec::Sliding { size, .. } => size,
            WindowSpec::Session { .. } => {
                panic!("AlignedWindowState is for tumbling and sliding windows")
            }
        };
        AlignedWindowState {
            lateness: spec.allowed_lateness,
            spec,
            set,
            size,
            keys: KeyInterner::default(),
            windows: BTreeMap::new(),
            pending: BTreeMap::new(),
            fire_cursor: i64::MIN,
            dirty: Vec::new(),
            last_window_keys: 0,
            in_memory: 0,
            spill: None,
            error: None,
        }
    }

    /// Spills to RocksDB beyond `cfg.max_entries` accumulators in memory.
    pub fn with_spill(mut self, cfg: SpillConfig) -> Result<Self> {
        self.spill = Some(Spill::new(cfg)?);
        Ok(self)
    }

    /// Number of times state was spilled to RocksDB.
    pub fn spills(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.spills)
    }

    fn record(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// Moves every in-memory accumulator to RocksDB if over budget.
    fn maybe_spill(&mut self) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        if self.in_memory <= spill.cfg.max_entries {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(self.in_memory);
        for (start, map) in std::mem::take(&mut self.windows) {
            for (key, e) in map {
                entries.push((start, self.keys.name(key).to_string(), e.acc, e.fired));
                self.keys.release(key);
            }
        }
        self.in_memory = 0;
        spill.put(&self.spec, entries)
    }

    /// Folds a window's spilled entries back into memory before it fires.
    fn unspill_window(&mut self, start: i64) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        for (name, acc, fired) in spill.take_window(start)? {
            let id = self.keys.id(&name);
            let map = self.windows.entry(start).or_default();
            match map.get_mut(&id) {
                Some(e) => {
                    self.spec.merge(&mut e.acc, &acc);
                    e.fired = e.fired.max(fired);
                }
                None => {
                    self.keys.retain(id);
                    self.in_memory += 1;
                    map.insert(
                        id,
                        Entry {
                            acc,
                            fired,
                            dirty: false,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Number of distinct live keys.
    pub fn live_keys(&self) -> usize {
        self.keys.live()
    }

    #[inline]
    fn apply(&mut self, row: FeatureRow, t: i64, late: &mut Vec<LateRow>) {
        let mut accepted = false;
        let key = self.keys.id(&row.key);
        let (spec, lateness) = (&self.spec, self.lateness);
        let windows = &mut self.windows;
        let keys = &mut self.keys;
        let dirty = &mut self.dirty;
        let capacity = &mut self.last_window_keys;
        let in_memory = &mut self.in_memory;
        spec.window.for_each_window(row.ts, |start, end| {
            if end.saturating_add(lateness) <= t {
                return;
            }
            accepted = true;
            let window = windows
                .entry(start)
                .or_insert_with(|| HashMap::with_capacity(*capacity));
            if window.len() > *capacity {
                *capacity = window.len();
            }
            let entry = window.entry(key).or_insert_with(|| {
                keys.retain(key);
                *in_memory += 1;
                Entry {
                    acc: spec.new_accumulator(),
                    fired: 0,
                    dirty: false,
                }
            });
            spec.update(&mut entry.acc, &row);
            if end <= t && !entry.dirty {
                entry.dirty = true;
                dirty.push((start, key));
            }
        });
        if !accepted {
            if self.keys.refs[key as usize] == 0 {
                // Interned only for this lookup: release it again.
                self.keys.retain(key);
                self.keys.release(key);
            }
            late.push(LateRow {
                set: self.set,
                row,
                watermark: t,
            });
        }
    }

    fn result(&self, start: i64, key: u32, entry: &Entry, revision: u32) -> WindowResult {
        WindowResult {
            set: self.set,
            key: self.keys.name(key).to_string(),
            start,
            end: start + self.size,
            revision,
            values: self.spec.finish(&entry.acc),
        }
    }

    /// First firings of windows whose end is at or before `x`.
    fn fire_until(&mut self, x: i64, out: &mut Vec<WindowResult>) {
        let last_start = x.saturating_sub(self.size);
        if last_start < self.fire_cursor {
            return;
        }
        let mut starts: Vec<i64> = self
            .windows
            .range(self.fire_cursor..=last_start)
            .map(|(s, _)| *s)
            .collect();
        if let Some(spill) = &self.spill {
            starts.extend(spill.starts.range(self.fire_cursor..=last_start));
            starts.sort_unstable();
            starts.dedup();
        }
        for start in starts {
            let r = self.unspill_window(start);
            self.record(r);
            let mut fired = Vec::new();
            if let Some(map) = self.windows.get_mut(&start) {
                for (key, entry) in map.iter_mut() {
                    if entry.fired == 0 && !entry.dirty {
                        entry.fired = 1;
                        fired.push(*key);
                    }
                }
            }
            for key in fired {
                let entry = &self.windows[&start][&key];
                out.push(self.result(start, key, entry, 0));
            }
        }
        self.fire_cursor = last_start.saturating_add(1);
    }

    fn emit_dirty(&mut self, out: &mut Vec<WindowResult>) {
        let dirty = std::mem::take(&mut self.dirty);
        for (start, key) in &dirty {
            let spilled = match self.spill.as_mut() {
                Some(spill) => spill.take(*start, self.keys.name(*key)),
                None => Ok(None),
            };
            let spilled = match spilled {
                Ok(s) => s,
                Err(e) => {
                    self.error.get_or_insert(e);
                    None
                }
            };
            let Some(entry) = self.windows.get_mut(start).and_then(|m| m.get_mut(key)) else {
                continue;
            };
            if let Some((acc, fired)) = spilled {
                self.spec.merge(&mut entry.acc, &acc);
                entry.fired = entry.fired.max(fired);
            }
            entry.dirty = false;
            let revision = entry.fired;
            entry.fired += 1;
            let entry = &self.windows[start][key];
            out.push(self.result(*start, *key, entry, revision));
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn purge(&mut self, limit: i64) {
        // A window [s, s+size) is final once limit >= s + size + lateness.
        let bound = limit.saturating_sub(self.size).saturating_sub(self.lateness);
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() > bound {
                break;
            }
            let map = entry.remove();
            self.in_memory -= map.len();
            for (key, _) in map {
                self.keys.release(key);
            }
        }
        if let Some(spill) = self.spill.as_mut() {
            let r = spill.purge(bound);
            self.record(r);
        }
    }
}

impl WindowCore for AlignedWindowState {
    fn push(&mut self, time: u64, rows: impl IntoIterator<Item = FeatureRow>) {
        self.pending.entry(time).or_default().extend(rows);
    }

    fn advance(&mut self, frontier: Option<u64>, out: &mut Vec<WindowResult>, late: &mut Vec<LateRow>) {
        let limit = frontier.map(|f| f as i64).unwrap_or(i64::MAX);
        while let Some(entry) = self.pending.first_entry() {
            let t = *entry.key() as i64;
            if t >= limit {
                break;
            }
            let rows = entry.remove();
            self.fire_until(t, out);
            for row in rows {
                self.apply(row, t, late);
            }
            self.emit_dirty(out);
            let r = self.maybe_spill();
            self.record(r);
        }
        self.fire_until(limit, out);
        self.purge(limit);
    }

    fn state_len(&self) -> usize {
        self.in_memory
    }

    fn take_error(&mut self) -> Option<RiftError> {
        self.error.take()
    }
}

/// Runs a window state machine as a timely operator: rows are exchanged by
/// key, buffered by stamp, and results (`Ok`) and late rows (`Err`) are
/// emitted at the operator's capability, which follows the input frontier.
pub fn window_operator<'s, W: WindowCore>(
    rows: timely::dataflow::StreamVec<'s, u64, FeatureRow>,
    name: &str,
    mut core: W,
    health: crate::runtime::JobHealth,
) -> (
    timely::dataflow::StreamVec<'s, u64, WindowResult>,
    timely::dataflow::StreamVec<'s, u64, LateRow>,
) {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::generic::Operator;
    use timely::dataflow::operators::OkErr;

    let both = rows.unary_frontier::<CapacityContainerBuilder<Vec<Result<WindowResult, LateRow>>>, _, _, _>(
        Exchange::new(|r: &FeatureRow| r.key_hash()),
        name,
        |cap, _info| {
            let mut cap = Some(cap);
            let mut results = Vec::new();
            let mut late = Vec::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|stamp, data| {
                    let t = stamp.least().copied().unwrap_or(0);
                    for batch in data {
                        core.push(t, batch.drain(..));
                    }
                });
                let f = frontier.frontier().as_option().copied();
                core.advance(f, &mut results, &mut late);
                if let Some(e) = core.take_error() {
                    health.report("window state", e);
                }
                if let Some(c) = cap.as_mut() {
                    if !results.is_empty() || !late.is_empty() {
                        let mut session = output.session(c);
                        session.give_iterator(results.drain(..).map(Ok));
                        session.give_iterator(late.drain(..).map(Err));
                    }
                    match f {
                        Some(t) if t > *c.time() => c.downgrade(&t),
                        Some(_) => {}
                        None => cap = None,
                    }
                }
            }
        },
    );
    // `Err` routes late rows to their own stream here; it is not an error path.
    #[allow(clippy::result_large_err)]
    let (ok, err) = both.ok_err(|x| x);
    (ok.container::<Vec<WindowResult>>(), err.container::<Vec<LateRow>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FeatureSetConfig, WindowConfig, WindowKind};
    use std::time::Duration;

    fn spec() -> Arc<FeatureSpec> {
        let cfg = FeatureSetConfig {
            source: "s".into(),
            explode: None,
            key: "k".into(),
            time: "ts".into(),
            window: WindowConfig {
                kind: WindowKind::Sliding,
                size: Some(Duration::from_secs(30)),
                slide: Some(Duration::from_secs(10)),
                gap: None,
                allowed_lateness: Some(Duration::from_secs(20)),
            },
            aggregates: [("n", "count"), ("s", "sum(v)"), ("d", "count_distinct(c)")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            features: Default::default(),
            online: None,
            lookups: Default::default(),
        };
        Arc::new(FeatureSpec::compile("t", &cfg).unwrap())
    }

    fn run(state: &mut AlignedWindowState) -> (Vec<WindowResult>, usize) {
        let mut out = Vec::new();
        let mut late = Vec::new();
        for step in 0..200i64 {
            let ts = step * 700 - if step % 9 == 0 { 25_000 } else { 0 };
            let row = FeatureRow {
                key: format!("k{}", step % 13),
                ts,
                values: smallvec::smallvec![step as f64],
                distinct: smallvec::smallvec![(step % 4) as u64],
            };
            let t = ((step * 700 - 3_000).max(0) / 1000 * 1000) as u64;
            state.push(t, [row]);
            state.advance(Some(t), &mut out, &mut late);
        }
        state.advance(None, &mut out, &mut late);
        out.sort_by(|a, b| (a.start, &a.key, a.revision).cmp(&(b.start, &b.key, b.revision)));
        (out, late.len())
    }

    #[test]
    fn spilling_to_rocksdb_changes_no_result() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::sinks::embedded::shared_db(dir.path()).unwrap();
        let mut plain = AlignedWindowState::new(spec(), 0);
        let mut spilling = AlignedWindowState::new(spec(), 0)
            .with_spill(SpillConfig {
                db,
                prefix: b"test\x01".to_vec(),
                max_entries: 5,
            })
            .unwrap();
        let (a, late_a) = run(&mut plain);
        let (b, late_b) = run(&mut spilling);
        assert!(spilling.spills() > 10, "spilled {} times", spilling.spills());
        assert!(a.iter().any(|r| r.revision > 0), "the input re-fires windows");
        assert_eq!(a, b);
        assert_eq!(late_a, late_b);
        assert!(spilling.state_len() <= 5 + 13 * 3);
    }
}
