//! The state machine of one tumbling or sliding feature set on one worker:
//! pane accumulators per key, firing, lateness, purging and spilling (see the
//! module docs of [`super`]).

use super::checkpoint::{decode, encode, CoreChanges, CoreRestore, PendingLog};
use super::core::{LateRow, WindowCore, WindowEnv};
use super::interner::KeyInterner;
use super::panes::Panes;
use super::spill::{Spill, SpillConfig};
use crate::error::{Result, RiftError};
use crate::features::{Accumulator, FeatureRow, FeatureSpec, WindowResult, WindowSpec};
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

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
    /// Per key id: changed since the last checkpoint.
    changed: Vec<bool>,
    /// Key ids marked in `changed`.
    changed_ids: Vec<u32>,
    /// Keys changed since the last checkpoint whose id was freed (spilled or purged).
    changed_names: BTreeSet<Box<str>>,
    /// Stamps of waiting rows that changed since the last checkpoint.
    pending_log: PendingLog,
}

/// One key's state in a checkpoint: pane accumulators and firing counts.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyCheckpoint {
    panes: Vec<(i64, Accumulator)>,
    fired: Vec<(i64, u32)>,
}

/// The checkpoint entry of the fire cursor.
const CURSOR: &[u8] = b"fire_cursor";

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
            changed: Vec::new(),
            changed_ids: Vec::new(),
            changed_names: BTreeSet::new(),
            pending_log: PendingLog::default(),
        }
    }

    /// Notes that `key`'s state changed since the last checkpoint.
    #[inline]
    fn mark(&mut self, key: u32) {
        let i = key as usize;
        if i >= self.changed.len() {
            self.changed.resize(i + 1, false);
        }
        if !self.changed[i] {
            self.changed[i] = true;
            self.changed_ids.push(key);
        }
    }

    /// Before `key`'s id is freed: a change it carries is kept by name.
    fn unmark_freed(&mut self, key: u32) {
        if let Some(flag) = self.changed.get_mut(key as usize) {
            if *flag {
                *flag = false;
                self.changed_names.insert(self.keys.name(key).into());
            }
        }
    }

    /// `name`'s whole state, in memory and spilled; `None` when it has none.
    fn key_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let mut panes: BTreeMap<i64, Accumulator> = BTreeMap::new();
        let mut fired: BTreeMap<i64, u32> = BTreeMap::new();
        if let Some(id) = self.keys.get(name) {
            let state = &self.states[id as usize];
            for (pane, acc) in &state.panes {
                panes.insert(*pane, acc.clone());
            }
            for (start, n) in &state.fired {
                fired.insert(*start, *n);
            }
        }
        if let Some(spill) = &self.spill {
            let spilled = spill.peek_key(name)?;
            for (pane, acc) in spilled.panes {
                match panes.get_mut(&pane) {
                    Some(a) => self.spec.merge(a, &acc),
                    None => {
                        panes.insert(pane, acc);
                    }
                }
            }
            for (start, n) in spilled.fired {
                let m = fired.entry(start).or_insert(0);
                *m = (*m).max(n);
            }
        }
        if panes.is_empty() && fired.is_empty() {
            return Ok(None);
        }
        encode(&KeyCheckpoint {
            panes: panes.into_iter().collect(),
            fired: fired.into_iter().collect(),
        })
        .map(Some)
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
            if let Some(flag) = self.changed.get_mut(key) {
                if *flag {
                    *flag = false;
                    self.changed_names.insert(name.as_str().into());
                }
            }
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
        self.mark(key);
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
                self.mark(key);
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
            self.mark(key);
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
                self.mark(key);
                if self.keys.refs(key) == 1 {
                    self.unmark_freed(key);
                }
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
            self.pending_log.touch(time);
        }
    }

    fn push_shared(&mut self, time: u64, rows: &[(usize, FeatureRow)]) {
        let rows = rows.iter().map(|(_, row)| row);
        if !self.apply_on_arrival(time, rows.clone()) {
            self.pending.entry(time).or_default().push(rows.cloned().collect());
            self.pending_log.touch(time);
        }
    }

    fn push_owned(&mut self, time: u64, rows: Vec<(usize, FeatureRow)>) {
        if !self.apply_on_arrival(time, rows.iter().map(|(_, row)| row)) {
            let rows = rows.into_iter().map(|(_, row)| row).collect();
            self.pending.entry(time).or_default().push(rows);
            self.pending_log.touch(time);
        }
    }

    fn checkpoint(&mut self) -> Result<CoreChanges> {
        let mut names = std::mem::take(&mut self.changed_names);
        for id in std::mem::take(&mut self.changed_ids) {
            if let Some(flag) = self.changed.get_mut(id as usize) {
                if *flag {
                    *flag = false;
                    names.insert(self.keys.name(id).into());
                }
            }
        }
        let mut keys = Vec::with_capacity(names.len());
        for name in names {
            let value = self.key_checkpoint(&name)?;
            keys.push((name.into_string(), value));
        }
        let pending = &self.pending;
        let pending = self
            .pending_log
            .changes(|stamp| pending.get(&stamp).map(|batches| batches.iter().flatten().collect()))?;
        Ok(CoreChanges {
            keys,
            pending,
            meta: vec![(CURSOR.to_vec(), self.fire_cursor.to_be_bytes().to_vec())],
        })
    }

    fn restore(&mut self, restored: CoreRestore) -> Result<()> {
        for (name, bytes) in restored.keys {
            let k: KeyCheckpoint = decode(&bytes)?;
            let key = self.intern(&name);
            for (pane, acc) in &k.panes {
                self.restore_pane(key, *pane, acc);
            }
            self.states[key as usize].fired.extend(k.fired);
        }
        for (stamp, bytes) in restored.pending {
            let rows: Vec<FeatureRow> = decode(&bytes)?;
            self.pending_log.restored(stamp, &rows);
            self.pending.entry(stamp).or_default().push(rows);
        }
        if let Some(cursor) = restored.meta.get(CURSOR) {
            let bytes: [u8; 8] = cursor
                .as_slice()
                .try_into()
                .map_err(|_| RiftError::Internal("window checkpoint: a fire cursor is not 8 bytes".into()))?;
            self.fire_cursor = i64::from_be_bytes(bytes);
        }
        self.maybe_spill()
    }

    fn advance(&mut self, frontier: Option<u64>, out: &mut Vec<WindowResult>, late: &mut Vec<LateRow>) {
        let limit = frontier.map(|f| f as i64).unwrap_or(i64::MAX);
        while let Some(entry) = self.pending.first_entry() {
            let t = *entry.key() as i64;
            if t >= limit {
                break;
            }
            let batches = entry.remove();
            self.pending_log.touch(t as u64);
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
        let db = crate::state::shared_db(dir.path()).unwrap();
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

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::operators::window::checkpoint::test_store::Store;

    fn spec() -> Arc<FeatureSpec> {
        super::tests_support::spec()
    }

    /// The results of 200 rows, restarting from a checkpoint every `every` steps.
    fn run(make: &dyn Fn() -> AlignedWindowState, every: Option<i64>) -> Vec<WindowResult> {
        let mut state = make();
        let mut store = Store::default();
        let (mut out, mut late) = (Vec::new(), Vec::new());
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
            state.advance(Some(t.saturating_sub(2_000)), &mut out, &mut late);
            if every.is_some_and(|n| step % n == n - 1) {
                store.apply(state.checkpoint().unwrap());
                // A restart: a new state machine from the checkpoint alone.
                state = make();
                state.restore(store.restore()).unwrap();
            }
        }
        state.advance(None, &mut out, &mut late);
        out.sort_by(|a, b| (a.start, &a.key, a.revision).cmp(&(b.start, &b.key, b.revision)));
        out
    }

    #[test]
    fn restarting_from_checkpoints_changes_no_result() {
        let plain = || AlignedWindowState::new(spec(), 0);
        let reference = run(&plain, None);
        assert!(reference.iter().any(|r| r.revision > 0), "the input re-fires windows");
        assert_eq!(run(&plain, Some(17)), reference);
        assert_eq!(run(&plain, Some(1)), reference);
        let dir = tempfile::tempdir().unwrap();
        let db = crate::state::shared_db(dir.path()).unwrap();
        let spilling = move || {
            AlignedWindowState::new(spec(), 0)
                .with_spill(SpillConfig {
                    db: db.clone(),
                    prefix: b"ck\x01".to_vec(),
                    max_entries: 5,
                })
                .unwrap()
        };
        assert_eq!(
            run(&spilling, Some(11)),
            reference,
            "spilled state is part of checkpoints"
        );
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::config::{FeatureSetConfig, WindowConfig, WindowKind};
    use std::time::Duration;

    /// A sliding set (30 s every 10 s, 20 s lateness) with a count, a sum and a distinct count.
    pub(super) fn spec() -> Arc<FeatureSpec> {
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
}
