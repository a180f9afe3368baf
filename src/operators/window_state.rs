//! The state machine shared by the tumbling and sliding window operators.
//!
//! # Time
//! Rows arrive stamped with a dataflow time `t`: the (quantized) watermark of
//! the source partition that read them, which is never later than the row's
//! own event time unless the row broke its partition's out-of-orderness bound.
//! The input frontier `F` is the job's watermark (the minimum over
//! partitions). Rows are buffered by `t` and applied in `t` order once `F`
//! passes `t`, interleaved with firings, so which windows fire, when, with
//! which rows and revisions depends only on the rows and their stamps —
//! never on scheduling, arrival order or worker count (for the rounding of
//! fractional sums, see State). A batch whose rows are all stamped before
//! the end of every window holding them (the usual case: within the
//! out-of-orderness bound) is applied on arrival instead: none of those
//! windows can fire before `F` passes `t`, so the outcome is the same.
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
//! Panes, not windows: time is tiled by panes of `gcd(size, slide)` ms, and
//! each key keeps one accumulator per pane it has rows in, so a row updates
//! exactly one accumulator however many sliding windows hold it. A window's
//! result merges its `size / pane` panes when it fires. Keys are interned
//! (reference-counted per pane) and each window firing looks only at the
//! keys listed under its panes. A pane is purged once the last window
//! holding it is final (`F ≥ e + allowed_lateness`); a row for a purged
//! window is late by its stamp alone, so purging changes nothing. A row that
//! is too late for some of its windows but not all still updates its pane:
//! the windows it is too late for are final and never read the pane again.
//! With allowed lateness, each key also keeps how many times each of its
//! windows has fired (the next revision).
//!
//! Memory is a write-back cache over RocksDB: when more than
//! `state_memory_entries` pane accumulators are held, all of them (and the
//! firing counts) are merged into RocksDB, keyed by (operator, pane start,
//! key), and memory starts over. A window's spilled panes are folded back
//! when it fires, a key's when a late row re-fires it, and purging deletes
//! the key ranges of final panes. So memory stays bounded however many keys
//! are active, and results are identical with or without spilling.
//!
//! "Identical" is exact for counts, minimums, maximums, `last` and distinct
//! counts, and for sums and averages of integer-valued fields (exact in
//! `f64` below 2^53). Sums of fractional values are added in an order that
//! depends on arrival within a stamp, on panes and on spills, so they can
//! differ in the last bits from one run or worker count to another.

use crate::error::{Result, RiftError};
use crate::features::{Accumulator, FeatureRow, FeatureSpec, WindowResult, WindowSpec};
use hashbrown::HashMap;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
///
/// Two kinds of entries, each keyed by (operator, kind, start, key): a pane's
/// accumulator, merged on write, and how many times a window has fired for a
/// key (with `allowed_lateness` only), the larger count kept on write.
struct Spill {
    cfg: SpillConfig,
    /// Pane starts with accumulators in RocksDB.
    panes: BTreeSet<i64>,
    /// Window starts with firing counts in RocksDB.
    fired: BTreeSet<i64>,
    /// Number of spills so far.
    spills: u64,
}

/// Entry kinds in RocksDB.
const PANE_ENTRY: u8 = 0;
const FIRED_ENTRY: u8 = 1;

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("panes", &self.panes.len())
            .field("spills", &self.spills)
            .finish()
    }
}

fn state_error(e: impl std::fmt::Display) -> RiftError {
    RiftError::Internal(format!("window state: {e}"))
}

impl Spill {
    fn new(cfg: SpillConfig) -> Result<Spill> {
        let spill = Spill {
            cfg,
            panes: BTreeSet::new(),
            fired: BTreeSet::new(),
            spills: 0,
        };
        // Without checkpoints to restore from, state left by an earlier run is stale.
        let mut end = spill.cfg.prefix.clone();
        end.push(0xFF);
        spill.delete_between(&spill.cfg.prefix, &end)?;
        Ok(spill)
    }

    /// The first key of entries of `kind` starting at `start`.
    fn section(&self, kind: u8, start: i64) -> Vec<u8> {
        let mut k = self.cfg.prefix.clone();
        k.push(kind);
        k.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
        k
    }

    fn entry_key(&self, kind: u8, start: i64, key: &str) -> Vec<u8> {
        let mut k = self.section(kind, start);
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn delete_between(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range(from, to);
        Ok(self.cfg.db.write(batch)?)
    }

    /// Merges pane accumulators and firing counts into RocksDB.
    fn put(
        &mut self,
        spec: &FeatureSpec,
        panes: Vec<(i64, String, Accumulator)>,
        fired: Vec<(i64, String, u32)>,
    ) -> Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (pane, key, mut acc) in panes {
            let k = self.entry_key(PANE_ENTRY, pane, &key);
            if let Some(old) = self.cfg.db.get_pinned(&k)? {
                let old: Accumulator = bincode::deserialize(&old).map_err(state_error)?;
                spec.merge(&mut acc, &old);
            }
            batch.put(k, bincode::serialize(&acc).map_err(state_error)?);
            self.panes.insert(pane);
        }
        for (start, key, mut count) in fired {
            let k = self.entry_key(FIRED_ENTRY, start, &key);
            if let Some(old) = self.cfg.db.get_pinned(&k)? {
                count = count.max(decode_count(&old)?);
            }
            batch.put(k, count.to_be_bytes());
            self.fired.insert(start);
        }
        self.spills += 1;
        Ok(self.cfg.db.write(batch)?)
    }

    /// Removes and returns every spilled accumulator of a pane.
    fn take_pane(&mut self, pane: i64) -> Result<Vec<(String, Accumulator)>> {
        if !self.panes.remove(&pane) {
            return Ok(Vec::new());
        }
        let from = self.section(PANE_ENTRY, pane);
        let to = self.section(PANE_ENTRY, pane.saturating_add(1));
        let mut out = Vec::new();
        for item in self.cfg.db.prefix_iterator(&from) {
            let (k, v) = item?;
            if !k.starts_with(&from) {
                break;
            }
            let key = String::from_utf8_lossy(&k[from.len()..]).into_owned();
            out.push((key, bincode::deserialize(&v).map_err(state_error)?));
        }
        self.delete_between(&from, &to)?;
        Ok(out)
    }

    /// Removes and returns one spilled value.
    fn take(&mut self, kind: u8, start: i64, key: &str) -> Result<Option<Vec<u8>>> {
        let known = match kind {
            PANE_ENTRY => &self.panes,
            _ => &self.fired,
        };
        if !known.contains(&start) {
            return Ok(None);
        }
        let k = self.entry_key(kind, start, key);
        let Some(v) = self.cfg.db.get(&k)? else {
            return Ok(None);
        };
        self.cfg.db.delete(&k)?;
        Ok(Some(v))
    }

    /// Removes and returns one key's spilled accumulator of a pane.
    fn take_pane_entry(&mut self, pane: i64, key: &str) -> Result<Option<Accumulator>> {
        match self.take(PANE_ENTRY, pane, key)? {
            Some(v) => Ok(Some(bincode::deserialize(&v).map_err(state_error)?)),
            None => Ok(None),
        }
    }

    /// Removes and returns one key's spilled firing count of a window.
    fn take_fired(&mut self, start: i64, key: &str) -> Result<Option<u32>> {
        match self.take(FIRED_ENTRY, start, key)? {
            Some(v) => Ok(Some(decode_count(&v)?)),
            None => Ok(None),
        }
    }

    /// Deletes the panes starting before `pane_limit` and the firing counts
    /// of windows starting at or before `window_bound`.
    fn purge(&mut self, pane_limit: i64, window_bound: i64) -> Result<()> {
        for (kind, limit) in [(PANE_ENTRY, pane_limit), (FIRED_ENTRY, window_bound.saturating_add(1))] {
            let set = match kind {
                PANE_ENTRY => &mut self.panes,
                _ => &mut self.fired,
            };
            let gone: Vec<i64> = set.range(..limit).copied().collect();
            let (Some(first), Some(last)) = (gone.first().copied(), gone.last().copied()) else {
                continue;
            };
            for s in &gone {
                set.remove(s);
            }
            let from = self.section(kind, first);
            let to = self.section(kind, last.saturating_add(1));
            self.delete_between(&from, &to)?;
        }
        Ok(())
    }
}

fn decode_count(bytes: &[u8]) -> Result<u32> {
    let arr: [u8; 4] = bytes
        .try_into()
        .map_err(|_| state_error("a firing count is not 4 bytes"))?;
    Ok(u32::from_be_bytes(arr))
}

/// The per-worker state machine of a window operator (see the module docs).
pub trait WindowCore: 'static {
    /// Buffers a batch of rows stamped `time` (taken whole: no copy).
    fn push(&mut self, time: u64, rows: Vec<FeatureRow>);

    /// Takes a batch stamped `time` that other state machines read too (rows
    /// tagged with their group, which is ignored here): what is kept is
    /// cloned.
    fn push_shared(&mut self, time: u64, rows: &[(usize, FeatureRow)]) {
        self.push(time, rows.iter().map(|(_, row)| row.clone()).collect());
    }

    /// Takes a batch stamped `time` that no other state machine reads (rows
    /// tagged as in [`push_shared`](Self::push_shared)): rows are moved, not cloned.
    fn push_owned(&mut self, time: u64, rows: Vec<(usize, FeatureRow)>) {
        self.push(time, rows.into_iter().map(|(_, row)| row).collect());
    }

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

    /// Drops one reference; true when that was the last and the key is gone.
    pub(crate) fn release(&mut self, id: u32) -> bool {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
            return true;
        }
        false
    }

    #[inline]
    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// Where an aligned window's panes lie: panes of `pane` ms tile time from the
/// epoch, and a window `[s, s + size)` (`s` a multiple of `slide`) is the
/// union of `size / pane` of them, `pane` being the greatest common divisor
/// of `size` and `slide` (a tumbling window is one pane).
#[derive(Debug, Clone, Copy)]
struct Panes {
    size: i64,
    slide: i64,
    pane: i64,
}

impl Panes {
    fn new(size: i64, slide: i64) -> Panes {
        let (mut a, mut b) = (size, slide);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        Panes { size, slide, pane: a }
    }

    /// The pane holding time `ts`.
    fn pane_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.pane) * self.pane
    }

    /// Start of the last window holding time `ts`.
    fn last_start(&self, ts: i64) -> i64 {
        ts.div_euclid(self.slide) * self.slide
    }

    /// The first window start at or after `x`.
    fn start_at_or_after(&self, x: i64) -> i64 {
        let s = self.last_start(x);
        if s < x {
            s.saturating_add(self.slide)
        } else {
            s
        }
    }

    /// Starts of the windows holding time `ts`, earliest first.
    fn starts_holding(&self, ts: i64) -> impl Iterator<Item = i64> {
        let (first, last, slide) = (
            self.start_at_or_after(ts - self.size + 1),
            self.last_start(ts),
            self.slide,
        );
        (0..).map(move |i| first + i * slide).take_while(move |s| *s <= last)
    }
}

/// One key's state on a worker: its panes' accumulators in start order and,
/// with allowed lateness, how many times each of its windows has fired.
#[derive(Debug)]
struct KeyPanes {
    panes: VecDeque<(i64, Accumulator)>,
    fired: SmallVec<[(i64, u32); 2]>,
    /// The window most recently given its first firing for this key: a key
    /// listed in several of a window's panes fires once.
    first_fired: i64,
}

impl Default for KeyPanes {
    fn default() -> KeyPanes {
        KeyPanes {
            panes: VecDeque::new(),
            fired: SmallVec::new(),
            first_fired: i64::MIN,
        }
    }
}

/// State of one tumbling or sliding feature set on one worker.
#[derive(Debug)]
pub struct AlignedWindowState {
    spec: Arc<FeatureSpec>,
    set: usize,
    geometry: Panes,
    lateness: i64,
    keys: KeyInterner,
    /// Per interned key id.
    states: Vec<KeyPanes>,
    /// Pane start -> keys with an accumulator for it in memory.
    pane_keys: BTreeMap<i64, Vec<u32>>,
    /// Batches of rows by stamp, waiting for the frontier to pass it.
    pending: BTreeMap<u64, Vec<Vec<FeatureRow>>>,
    /// Every window with start < this has had its first firing.
    fire_cursor: i64,
    /// (window start, key) updated at the current stamp after its first firing was due.
    dirty: Vec<(i64, u32)>,
    /// Pane accumulators held in memory.
    in_memory: usize,
    /// Overflow to RocksDB, if configured.
    spill: Option<Spill>,
    /// A state-backend failure not yet reported.
    error: Option<RiftError>,
}

impl AlignedWindowState {
    /// State for feature set `set` (a tumbling or sliding `spec`).
    pub fn new(spec: Arc<FeatureSpec>, set: usize) -> AlignedWindowState {
        let geometry = match spec.window {
            WindowSpec::Tumbling { size } => Panes::new(size, size),
            WindowSpec::Sliding { size, slide } => Panes::new(size, slide),
            WindowSpec::Session { .. } => {
                panic!("AlignedWindowState is for tumbling and sliding windows")
            }
        };
        AlignedWindowState {
            lateness: spec.allowed_lateness,
            spec,
            set,
            geometry,
            keys: KeyInterner::default(),
            states: Vec::new(),
            pane_keys: BTreeMap::new(),
            pending: BTreeMap::new(),
            fire_cursor: i64::MIN,
            dirty: Vec::new(),
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

    /// State for `spec` spilling as `env` says; without its state backend
    /// the job cannot keep memory bounded, so a failure to open it is
    /// reported to the job's health (which fails the job).
    pub fn spilling(spec: Arc<FeatureSpec>, set: usize, env: &WindowEnv, kind: &str) -> AlignedWindowState {
        let Some(cfg) = env.spill.clone() else {
            return AlignedWindowState::new(spec, set);
        };
        AlignedWindowState::new(spec.clone(), set)
            .with_spill(cfg)
            .unwrap_or_else(|e| {
                env.health.report(&format!("{kind}({})", spec.name), e);
                AlignedWindowState::new(spec, set)
            })
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

    /// The index of `key`'s accumulator for `pane` in its state, created empty if absent.
    #[inline]
    fn pane_slot(&mut self, key: u32, pane: i64) -> usize {
        let state = &mut self.states[key as usize];
        let after = state.panes.iter().rposition(|(p, _)| *p <= pane);
        if let Some(i) = after {
            if state.panes[i].0 == pane {
                return i;
            }
        }
        let at = after.map_or(0, |i| i + 1);
        state.panes.insert(at, (pane, self.spec.new_accumulator()));
        self.keys.retain(key);
        self.pane_keys.entry(pane).or_default().push(key);
        self.in_memory += 1;
        at
    }

    /// Interns `name` and makes room for its state.
    fn intern(&mut self, name: &str) -> u32 {
        let key = self.keys.id(name);
        if key as usize >= self.states.len() {
            self.states.resize_with(key as usize + 1, KeyPanes::default);
        }
        key
    }

    /// Merges a spilled accumulator back into memory.
    fn restore_pane(&mut self, key: u32, pane: i64, acc: &Accumulator) {
        let i = self.pane_slot(key, pane);
        let spec = &self.spec;
        spec.merge(&mut self.states[key as usize].panes[i].1, acc);
    }

    /// Moves every in-memory accumulator to RocksDB if over budget.
    fn maybe_spill(&mut self) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        if self.in_memory <= spill.cfg.max_entries {
            return Ok(());
        }
        let mut panes = Vec::with_capacity(self.in_memory);
        let mut fired = Vec::new();
        for (key, state) in self.states.iter_mut().enumerate() {
            if state.panes.is_empty() {
                continue;
            }
            let name = self.keys.name(key as u32).to_string();
            fired.extend(state.fired.drain(..).map(|(s, n)| (s, name.clone(), n)));
            for (pane, acc) in std::mem::take(&mut state.panes) {
                panes.push((pane, name.clone(), acc));
                self.keys.release(key as u32);
            }
            *state = KeyPanes::default();
        }
        self.pane_keys.clear();
        self.in_memory = 0;
        spill.put(&self.spec, panes, fired)
    }

    #[inline]
    fn apply(&mut self, row: FeatureRow, t: i64, late: &mut Vec<LateRow>) {
        let geometry = self.geometry;
        let last_end = geometry.last_start(row.ts).saturating_add(geometry.size);
        if last_end <= row.ts || last_end.saturating_add(self.lateness) <= t {
            // In no window, or too late for every window it is in.
            late.push(LateRow {
                set: self.set,
                row,
                watermark: t,
            });
            return;
        }
        let key = self.add(&row);
        if row.ts < t {
            // Windows already given their first firing and still within lateness fire again.
            for start in geometry.starts_holding(row.ts) {
                let end = start + geometry.size;
                if end <= t && end.saturating_add(self.lateness) > t {
                    self.dirty.push((start, key));
                }
            }
        }
    }

    /// Adds `row` to its key's pane; returns the key.
    #[inline]
    fn add(&mut self, row: &FeatureRow) -> u32 {
        let key = self.intern(&row.key);
        let i = self.pane_slot(key, self.geometry.pane_of(row.ts));
        self.spec.update(&mut self.states[key as usize].panes[i].1, row);
        key
    }

    /// Whether a row stamped `t` is in some window and before the end of
    /// every window holding it: none of them can have fired by `t`, so the
    /// row goes into all of them whenever it is applied, and needs neither a
    /// re-fire nor a lateness check.
    #[inline]
    fn on_time(&self, row: &FeatureRow, t: i64) -> bool {
        let g = self.geometry;
        let in_a_window = g.last_start(row.ts).saturating_add(g.size) > row.ts;
        in_a_window
            && t < g
                .start_at_or_after(row.ts.saturating_sub(g.size - 1))
                .saturating_add(g.size)
    }

    /// Applies a batch stamped `time` now, while it is still in cache, if
    /// every row in it is on time (see `on_time`): the outcome is the same
    /// as applying it at its stamp. False (nothing applied) otherwise: the
    /// batch must wait for the frontier to pass its stamp.
    fn apply_on_arrival<'r>(&mut self, time: u64, rows: impl Iterator<Item = &'r FeatureRow> + Clone) -> bool {
        let t = time as i64;
        if !rows.clone().all(|row| self.on_time(row, t)) {
            return false;
        }
        for row in rows {
            self.add(row);
        }
        let r = self.maybe_spill();
        self.record(r);
        true
    }

    /// The result of window `start` for `key`, from its panes in memory.
    fn result(&self, start: i64, key: u32, revision: u32) -> WindowResult {
        let end = start + self.geometry.size;
        let mut inside = self.states[key as usize]
            .panes
            .iter()
            .filter(|(p, _)| *p >= start && *p < end);
        let values = match (inside.next(), inside.next()) {
            (Some((_, only)), None) => self.spec.finish(only),
            (first, second) => {
                let mut acc = self.spec.new_accumulator();
                for (_, a) in first.into_iter().chain(second).chain(inside) {
                    self.spec.merge(&mut acc, a);
                }
                self.spec.finish(&acc)
            }
        };
        WindowResult {
            set: self.set,
            key: self.keys.name(key).to_string(),
            start,
            end,
            revision,
            values,
        }
    }

    /// The lowest pane at or after `from`, in memory or spilled.
    fn next_pane(&self, from: i64) -> Option<i64> {
        let in_memory = self.pane_keys.range(from..).next().map(|(p, _)| *p);
        let spilled = self.spill.as_ref().and_then(|s| s.panes.range(from..).next().copied());
        match (in_memory, spilled) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// First firings of windows whose end is at or before `x`.
    fn fire_until(&mut self, x: i64, out: &mut Vec<WindowResult>) {
        let size = self.geometry.size;
        let last_start = x.saturating_sub(size);
        let mut start = self.fire_cursor;
        while start <= last_start {
            // The next window holding a pane.
            let Some(pane) = self.next_pane(start) else {
                break;
            };
            start = start.max(self.geometry.start_at_or_after(pane - size + 1));
            if start > last_start {
                break;
            }
            self.fire_window(start, out);
            start = start.saturating_add(self.geometry.slide);
        }
        self.fire_cursor = self
            .fire_cursor
            .max(self.geometry.last_start(last_start).saturating_add(self.geometry.slide));
    }

    /// The first firing of window `start`: every key with data in its panes.
    fn fire_window(&mut self, start: i64, out: &mut Vec<WindowResult>) {
        let end = start + self.geometry.size;
        let r = self.restore_spilled_window(start, end);
        self.record(r);
        let mut firing = Vec::new();
        for (_, keys) in self.pane_keys.range(start..end) {
            for &key in keys {
                let state = &mut self.states[key as usize];
                if state.first_fired != start {
                    state.first_fired = start;
                    firing.push(key);
                }
            }
        }
        for key in firing {
            out.push(self.result(start, key, 0));
            if self.lateness > 0 {
                self.states[key as usize].fired.push((start, 1));
            }
        }
    }

    /// Re-fires the windows late rows of the current stamp updated.
    fn emit_dirty(&mut self, out: &mut Vec<WindowResult>) {
        if self.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &(start, key) in &dirty {
            if let Err(e) = self.restore_spilled(start, key) {
                self.error.get_or_insert(e);
            }
            let state = &mut self.states[key as usize];
            let revision = match state.fired.iter_mut().find(|(s, _)| *s == start) {
                Some((_, n)) => {
                    *n += 1;
                    *n - 1
                }
                None => {
                    state.fired.push((start, 1));
                    0
                }
            };
            out.push(self.result(start, key, revision));
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Brings `key`'s spilled panes of window `start` and its firing count back to memory.
    fn restore_spilled(&mut self, start: i64, key: u32) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let name = self.keys.name(key).to_string();
        let end = start + self.geometry.size;
        let panes: Vec<i64> = spill.panes.range(start..end).copied().collect();
        let mut restored = Vec::new();
        // What was taken out of RocksDB is merged back even if a later read fails.
        let taken = panes.into_iter().try_for_each(|pane| {
            restored.extend(spill.take_pane_entry(pane, &name)?.map(|acc| (pane, acc)));
            Ok(())
        });
        let fired = match taken {
            Ok(()) => spill.take_fired(start, &name),
            Err(e) => Err(e),
        };
        for (pane, acc) in restored {
            self.restore_pane(key, pane, &acc);
        }
        if let Ok(Some(n)) = fired {
            let state = &mut self.states[key as usize];
            match state.fired.iter_mut().find(|(s, _)| *s == start) {
                Some((_, m)) => *m = (*m).max(n),
                None => state.fired.push((start, n)),
            }
        }
        fired.map(|_| ())
    }

    /// Folds every spilled accumulator of the panes in `[start, end)` back
    /// into memory (what was taken is merged even if a later read fails).
    fn restore_spilled_window(&mut self, start: i64, end: i64) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let panes: Vec<i64> = spill.panes.range(start..end).copied().collect();
        let mut restored = Vec::new();
        let taken = panes.into_iter().try_for_each(|pane| {
            restored.extend(spill.take_pane(pane)?.into_iter().map(|(name, acc)| (pane, name, acc)));
            Ok(())
        });
        for (pane, name, acc) in restored {
            let key = self.intern(&name);
            self.restore_pane(key, pane, &acc);
        }
        taken
    }

    fn purge(&mut self, limit: i64) {
        let geometry = self.geometry;
        // A window [s, s+size) is final once limit >= s + size + lateness.
        let bound = limit.saturating_sub(geometry.size).saturating_sub(self.lateness);
        // A pane is final once the last window holding it is.
        let pane_limit = geometry.last_start(bound).saturating_add(geometry.slide);
        while let Some(entry) = self.pane_keys.first_entry() {
            let pane = *entry.key();
            if pane >= pane_limit {
                break;
            }
            for key in entry.remove() {
                let state = &mut self.states[key as usize];
                if let Some(i) = state.panes.iter().position(|(p, _)| *p == pane) {
                    state.panes.remove(i);
                    self.in_memory -= 1;
                }
                state.fired.retain(|(s, _)| *s > bound);
                if self.keys.release(key) {
                    self.states[key as usize] = KeyPanes::default();
                }
            }
        }
        if let Some(spill) = self.spill.as_mut() {
            let r = spill.purge(pane_limit, bound);
            self.record(r);
        }
    }
}

impl WindowCore for AlignedWindowState {
    fn push(&mut self, time: u64, rows: Vec<FeatureRow>) {
        if !self.apply_on_arrival(time, rows.iter()) {
            self.pending.entry(time).or_default().push(rows);
        }
    }

    fn push_shared(&mut self, time: u64, rows: &[(usize, FeatureRow)]) {
        let rows = rows.iter().map(|(_, row)| row);
        if !self.apply_on_arrival(time, rows.clone()) {
            self.pending.entry(time).or_default().push(rows.cloned().collect());
        }
    }

    fn push_owned(&mut self, time: u64, rows: Vec<(usize, FeatureRow)>) {
        if !self.apply_on_arrival(time, rows.iter().map(|(_, row)| row)) {
            let rows = rows.into_iter().map(|(_, row)| row).collect();
            self.pending.entry(time).or_default().push(rows);
        }
    }

    fn advance(&mut self, frontier: Option<u64>, out: &mut Vec<WindowResult>, late: &mut Vec<LateRow>) {
        let limit = frontier.map(|f| f as i64).unwrap_or(i64::MAX);
        while let Some(entry) = self.pending.first_entry() {
            let t = *entry.key() as i64;
            if t >= limit {
                break;
            }
            let batches = entry.remove();
            self.fire_until(t, out);
            for row in batches.into_iter().flatten() {
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

/// Runs the window state machines of the feature sets that read one row
/// stream as one timely operator: rows (tagged with their group) are
/// exchanged by [`FeatureRow::key_hash`], so the windows of a key are on one
/// worker; each state machine reads every row in place (a row is cloned
/// only where a state machine keeps rows that others read too); results
/// and late rows of all of them are emitted at the operator's capability,
/// which follows the input frontier.
pub fn window_operator<'s>(
    rows: timely::dataflow::StreamVec<'s, u64, (usize, FeatureRow)>,
    name: &str,
    mut cores: Vec<Box<dyn WindowCore>>,
    health: crate::runtime::JobHealth,
) -> (
    timely::dataflow::StreamVec<'s, u64, WindowResult>,
    timely::dataflow::StreamVec<'s, u64, LateRow>,
) {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
    use timely::dataflow::operators::generic::OutputBuilder;

    let mut builder = OperatorBuilder::new(name.to_string(), rows.scope());
    let mut input = builder.new_input(rows, Exchange::new(|(_, row): &(usize, FeatureRow)| row.key_hash()));
    let (results_out, results) = builder.new_output::<Vec<WindowResult>>();
    let (late_out, late_rows) = builder.new_output::<Vec<LateRow>>();
    let mut results_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<WindowResult>>>::from(results_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<LateRow>>>::from(late_out);
    builder.build(move |capabilities| {
        // One capability per output, both following the input frontier.
        let mut capabilities = Some(capabilities);
        let mut fired = Vec::new();
        let mut late = Vec::new();
        move |frontiers| {
            input.for_each_stamp(|stamp, data| {
                let t = stamp.least().copied().unwrap_or(0);
                for batch in data {
                    // Every state machine but the last reads the batch in
                    // place; the last takes it, so nothing is cloned for it.
                    if let Some((last, others)) = cores.split_last_mut() {
                        for core in others {
                            core.push_shared(t, batch);
                        }
                        last.push_owned(t, std::mem::take(batch));
                    }
                }
            });
            let f = frontiers[0].frontier().iter().min().copied();
            for core in cores.iter_mut() {
                core.advance(f, &mut fired, &mut late);
                if let Some(e) = core.take_error() {
                    health.report("window state", e);
                }
            }
            let Some(caps) = capabilities.as_mut() else {
                return;
            };
            // Whole vectors are handed on, not copied record by record.
            // A given container may come back with contents: clear it before reuse.
            if !fired.is_empty() {
                let handed = fired.len();
                results_out.activate().session(&caps[0]).give_container(&mut fired);
                fired.clear();
                // What comes back may have no capacity: size it like the last
                // batch, instead of regrowing (and copying) it step by step.
                fired.reserve(handed.min(1 << 16));
            }
            if !late.is_empty() {
                late_out.activate().session(&caps[1]).give_container(&mut late);
                late.clear();
            }
            match f {
                Some(t) => {
                    for cap in caps.iter_mut() {
                        if t > *cap.time() {
                            cap.downgrade(&t);
                        }
                    }
                }
                None => capabilities = None,
            }
        }
    });
    (results, late_rows)
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
            state.push(t, vec![row]);
            state.advance(Some(t), &mut out, &mut late);
        }
        state.advance(None, &mut out, &mut late);
        out.sort_by(|a, b| (a.start, &a.key, a.revision).cmp(&(b.start, &b.key, b.revision)));
        (out, late.len())
    }

    #[test]
    fn a_row_stamped_at_a_windows_end_misses_its_first_firing() {
        // Windows of 30 s every 10 s; the row at 5 s is in [-20 s, 10 s),
        // [-10 s, 20 s) and [0, 30 s). Stamped 10 s, it arrives as the first
        // of them fires: that firing must not include it (it is not on time),
        // and the row re-fires the window within the allowed lateness.
        let row = |ts: i64| FeatureRow {
            key: "a".into(),
            ts,
            values: smallvec::smallvec![1.0],
            distinct: smallvec::smallvec![0],
        };
        let count = spec().output_names().position(|n| n == "n").expect("a count");
        let mut state = AlignedWindowState::new(spec(), 0);
        let (mut out, mut late) = (Vec::new(), Vec::new());
        state.push(0, vec![row(1_000)]);
        state.push(10_000, vec![row(5_000)]);
        state.advance(None, &mut out, &mut late);
        let first: Vec<(u32, Option<f64>)> = out
            .iter()
            .filter(|r| r.start == -20_000)
            .map(|r| (r.revision, r.values[count]))
            .collect();
        assert_eq!(first, vec![(0, Some(1.0)), (1, Some(2.0))]);
        let later: Vec<(i64, u32, Option<f64>)> = out
            .iter()
            .filter(|r| r.start > -20_000)
            .map(|r| (r.start, r.revision, r.values[count]))
            .collect();
        assert_eq!(later, vec![(-10_000, 0, Some(2.0)), (0, 0, Some(2.0))]);
        assert!(late.is_empty());
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
