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

use crate::features::{Accumulator, FeatureRow, FeatureSpec, WindowResult, WindowSpec};
use hashbrown::HashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The per-worker state machine of a window operator (see the module docs).
pub trait WindowCore: 'static {
    /// Buffers rows stamped `time`.
    fn push(&mut self, time: u64, rows: impl IntoIterator<Item = FeatureRow>);

    /// Processes every buffered stamp before `frontier` (`None`: input complete)
    /// and fires what became due; late rows go to `late`.
    fn advance(
        &mut self,
        frontier: Option<u64>,
        out: &mut Vec<WindowResult>,
        late: &mut Vec<LateRow>,
    );

    /// Number of (window, key) states held.
    fn state_len(&self) -> usize;
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
        }
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
        let starts: Vec<i64> = self
            .windows
            .range(self.fire_cursor..=last_start)
            .map(|(s, _)| *s)
            .collect();
        for start in starts {
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
            let Some(entry) = self.windows.get_mut(start).and_then(|m| m.get_mut(key)) else {
                continue;
            };
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
        let bound = limit
            .saturating_sub(self.size)
            .saturating_sub(self.lateness);
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() > bound {
                break;
            }
            for (key, _) in entry.remove() {
                self.keys.release(key);
            }
        }
    }
}

impl WindowCore for AlignedWindowState {
    fn push(&mut self, time: u64, rows: impl IntoIterator<Item = FeatureRow>) {
        self.pending.entry(time).or_default().extend(rows);
    }

    fn advance(
        &mut self,
        frontier: Option<u64>,
        out: &mut Vec<WindowResult>,
        late: &mut Vec<LateRow>,
    ) {
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
        }
        self.fire_until(limit, out);
        self.purge(limit);
    }

    fn state_len(&self) -> usize {
        self.windows.values().map(|m| m.len()).sum()
    }
}

/// Runs a window state machine as a timely operator: rows are exchanged by
/// key, buffered by stamp, and results (`Ok`) and late rows (`Err`) are
/// emitted at the operator's capability, which follows the input frontier.
pub fn window_operator<'s, W: WindowCore>(
    rows: timely::dataflow::StreamVec<'s, u64, FeatureRow>,
    name: &str,
    mut core: W,
) -> (
    timely::dataflow::StreamVec<'s, u64, WindowResult>,
    timely::dataflow::StreamVec<'s, u64, LateRow>,
) {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::generic::Operator;
    use timely::dataflow::operators::OkErr;

    let both = rows
        .unary_frontier::<CapacityContainerBuilder<Vec<Result<WindowResult, LateRow>>>, _, _, _>(
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
    let (ok, err) = both.ok_err(|x| x);
    (
        ok.container::<Vec<WindowResult>>(),
        err.container::<Vec<LateRow>>(),
    )
}
