//! Session windows: per-key activity sessions closed by a gap of inactivity.
//!
//! # Semantics
//! A row at event time `ts` opens the interval `[ts, ts + gap)`; intervals of
//! the same key that overlap merge into one session `[first, last + gap)`, so
//! a row that falls within the gap of two sessions bridges them. A session
//! fires (revision 0) once the frontier reaches its end. Time, stamps and
//! lateness follow [`window`](super): a row stamped `t` is
//! merged first, and is late if the merged session's `end + allowed_lateness`
//! is not after `t`; accepted rows that touch a session whose end is already
//! due re-fire it at `t` (the session may have grown: its `end` in the output
//! changes, its `start` can only move earlier). Rows of one stamp are applied
//! in (key, event time) order, so merges never depend on arrival order.
//!
//! Lateness is judged on the row's *own* gap window: a row stamped `t` is late
//! when `ts + gap + allowed_lateness ≤ t` (as in Spark's session windows), not
//! on the session it would merge into. Judging the merged session (Flink's
//! rule) lets an arbitrarily old row bridge into a session still growing
//! today, which makes results depend on when old state was purged; this rule
//! keeps them deterministic.
//!
//! # State
//! Per key, the non-overlapping sessions sorted by start. A session is purged
//! once the frontier reaches `end + gap + allowed_lateness`: from then on any
//! row that could merge with it would be late anyway, so purging never changes
//! an output.

use super::checkpoint::{decode, encode, CoreChanges, CoreRestore, PendingLog};
use super::interner::KeyInterner;
use super::{LateRow, WindowCore};
use crate::error::Result;
use crate::features::{Accumulator, FeatureRow, FeatureSpec, WindowResult, WindowSpec};
use hashbrown::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Session {
    start: i64,
    end: i64,
    acc: Accumulator,
    /// Times this session (or a session merged into it) was emitted.
    fired: u32,
    /// Changed since it was last emitted.
    changed: bool,
}

/// State of one session-window feature set on one worker.
#[derive(Debug)]
pub struct SessionState {
    spec: Arc<FeatureSpec>,
    set: usize,
    gap: i64,
    lateness: i64,
    keys: KeyInterner,
    sessions: HashMap<u32, Vec<Session>>,
    /// (end, key) of sessions awaiting their first firing (stale entries skipped).
    due: BTreeSet<(i64, u32)>,
    /// (purge time, key) (stale entries skipped).
    purge_at: BTreeSet<(i64, u32)>,
    pending: BTreeMap<u64, Vec<FeatureRow>>,
    dirty: Vec<(u32, i64)>,
    /// Keys whose sessions changed since the last checkpoint (by name: ids are reused).
    changed: BTreeSet<Box<str>>,
    /// Stamps of waiting rows that changed since the last checkpoint.
    pending_log: PendingLog,
}

impl SessionState {
    /// State for session feature set `set`.
    pub fn new(spec: Arc<FeatureSpec>, set: usize) -> SessionState {
        let WindowSpec::Session { gap } = spec.window else {
            panic!("SessionState is for session windows");
        };
        SessionState {
            lateness: spec.allowed_lateness,
            spec,
            set,
            gap,
            keys: KeyInterner::default(),
            sessions: HashMap::new(),
            due: BTreeSet::new(),
            purge_at: BTreeSet::new(),
            pending: BTreeMap::new(),
            dirty: Vec::new(),
            changed: BTreeSet::new(),
            pending_log: PendingLog::default(),
        }
    }

    /// Notes that `key`'s sessions changed since the last checkpoint.
    fn mark(&mut self, key: u32) {
        let name = self.keys.name(key);
        if !self.changed.contains(name) {
            self.changed.insert(name.into());
        }
    }

    /// Number of sessions held.
    pub fn state_len(&self) -> usize {
        self.sessions.values().map(|v| v.len()).sum()
    }

    fn result(&self, key: u32, s: &Session, revision: u32) -> WindowResult {
        WindowResult {
            set: self.set,
            key: self.keys.name(key).to_string(),
            start: s.start,
            end: s.end,
            revision,
            values: self.spec.finish(&s.acc),
        }
    }

    fn fire_until(&mut self, x: i64, out: &mut Vec<WindowResult>) {
        while let Some(&(end, key)) = self.due.first() {
            if end > x {
                break;
            }
            self.due.pop_first();
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let Some(s) = list.iter_mut().find(|s| s.end == end && s.changed) else {
                continue;
            };
            let revision = s.fired;
            s.fired += 1;
            s.changed = false;
            let s = self.sessions[&key].iter().find(|s| s.end == end).expect("just found");
            out.push(self.result(key, s, revision));
            self.mark(key);
        }
    }

    fn apply(&mut self, row: FeatureRow, t: i64, late: &mut Vec<LateRow>) {
        let key = self.keys.id(&row.key);
        let list = self.sessions.entry(key).or_default();
        let (lo, hi) = (row.ts, row.ts.saturating_add(self.gap));
        // Sessions overlapping [lo, hi).
        let first = list.partition_point(|s| s.end <= lo);
        let last = list.partition_point(|s| s.start < hi);
        let mut start = lo;
        let mut end = hi;
        for s in &list[first..last] {
            start = start.min(s.start);
            end = end.max(s.end);
        }
        if hi.saturating_add(self.lateness) <= t {
            if list.is_empty() {
                self.sessions.remove(&key);
                self.keys.retain(key);
                self.keys.release(key);
            }
            late.push(LateRow {
                set: self.set,
                row,
                watermark: t,
            });
            return;
        }
        let mut acc = self.spec.new_accumulator();
        let mut fired = 0;
        if list.is_empty() {
            // The key's one reference, held while it has sessions.
            self.keys.retain(key);
        }
        let merged: Vec<Session> = list.drain(first..last).collect();
        let name = self.keys.name(key);
        if !self.changed.contains(name) {
            self.changed.insert(name.into());
        }
        for s in &merged {
            self.spec.merge(&mut acc, &s.acc);
            fired = fired.max(s.fired);
        }
        self.spec.update(&mut acc, &row);
        list.insert(
            first,
            Session {
                start,
                end,
                acc,
                fired,
                changed: true,
            },
        );
        if end <= t {
            self.dirty.push((key, start));
        } else {
            self.due.insert((end, key));
        }
        self.purge_at
            .insert((end.saturating_add(self.gap).saturating_add(self.lateness), key));
    }

    /// Re-fires sessions that changed after their end had passed `t`; a
    /// session a later row of the batch extended past `t` fires when due instead.
    fn emit_dirty(&mut self, t: i64, out: &mut Vec<WindowResult>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for (key, start) in &dirty {
            let Some(list) = self.sessions.get_mut(key) else {
                continue;
            };
            let Some(s) = list.iter_mut().find(|s| s.start == *start && s.changed && s.end <= t) else {
                continue;
            };
            let revision = s.fired;
            s.fired += 1;
            s.changed = false;
            let s = self.sessions[key]
                .iter()
                .find(|s| s.start == *start)
                .expect("just found");
            out.push(self.result(*key, s, revision));
            self.mark(*key);
        }
    }

    fn purge(&mut self, limit: i64) {
        while let Some(&(at, key)) = self.purge_at.first() {
            if at > limit {
                break;
            }
            self.purge_at.pop_first();
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let (gap, lateness) = (self.gap, self.lateness);
            let before = list.len();
            list.retain(|s| s.end.saturating_add(gap).saturating_add(lateness) > limit);
            if list.len() != before {
                let name = self.keys.name(key);
                if !self.changed.contains(name) {
                    self.changed.insert(name.into());
                }
            }
            let Some(list) = self.sessions.get(&key) else {
                continue;
            };
            if list.is_empty() {
                self.sessions.remove(&key);
                self.keys.release(key);
            }
        }
    }
}

impl WindowCore for SessionState {
    fn push(&mut self, time: u64, mut rows: Vec<FeatureRow>) {
        self.pending_log.touch(time);
        let pending = self.pending.entry(time).or_default();
        if pending.is_empty() {
            std::mem::swap(pending, &mut rows);
        } else {
            pending.append(&mut rows);
        }
    }

    fn advance(&mut self, frontier: Option<u64>, out: &mut Vec<WindowResult>, late: &mut Vec<LateRow>) {
        let limit = frontier.map(|f| f as i64).unwrap_or(i64::MAX);
        while let Some(entry) = self.pending.first_entry() {
            let t = *entry.key() as i64;
            if t >= limit {
                break;
            }
            let mut rows = entry.remove();
            self.pending_log.touch(t as u64);
            rows.sort_by(|a, b| a.key.cmp(&b.key).then(a.ts.cmp(&b.ts)));
            self.fire_until(t, out);
            for row in rows {
                self.apply(row, t, late);
            }
            self.emit_dirty(t, out);
        }
        self.fire_until(limit, out);
        self.purge(limit);
    }

    fn state_len(&self) -> usize {
        SessionState::state_len(self)
    }

    fn checkpoint(&mut self) -> Result<CoreChanges> {
        let mut keys = Vec::new();
        for name in std::mem::take(&mut self.changed) {
            let sessions = self
                .keys
                .get(&name)
                .and_then(|id| self.sessions.get(&id))
                .filter(|list| !list.is_empty());
            let value = match sessions {
                Some(list) => Some(encode(list)?),
                None => None,
            };
            keys.push((name.into_string(), value));
        }
        let pending = &self.pending;
        let pending = self
            .pending_log
            .changes(|stamp| pending.get(&stamp).map(|rows| rows.iter().collect()))?;
        Ok(CoreChanges {
            keys,
            pending,
            meta: Vec::new(),
        })
    }

    fn restore(&mut self, restored: CoreRestore) -> Result<()> {
        for (name, bytes) in restored.keys {
            let list: Vec<Session> = decode(&bytes)?;
            if list.is_empty() {
                continue;
            }
            let key = self.keys.id(&name);
            self.keys.retain(key);
            for s in &list {
                if s.changed {
                    self.due.insert((s.end, key));
                }
                self.purge_at
                    .insert((s.end.saturating_add(self.gap).saturating_add(self.lateness), key));
            }
            self.sessions.insert(key, list);
        }
        for (stamp, bytes) in restored.pending {
            let rows: Vec<FeatureRow> = decode(&bytes)?;
            self.pending_log.restored(stamp, &rows);
            self.pending.entry(stamp).or_default().extend(rows);
        }
        Ok(())
    }
}

/// The state machine of session feature set `spec` (index `set` in its job),
/// run by [`window_operator`](super::window_operator).
pub fn session_core(spec: Arc<FeatureSpec>, set: usize) -> Box<dyn WindowCore> {
    Box::new(SessionState::new(spec, set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FeatureSetConfig, WindowConfig, WindowKind};
    use crate::operators::window::checkpoint::test_store::Store;
    use std::time::Duration;

    fn spec() -> Arc<FeatureSpec> {
        let cfg = FeatureSetConfig {
            source: "s".into(),
            explode: None,
            key: "k".into(),
            time: "ts".into(),
            window: WindowConfig {
                kind: WindowKind::Session,
                size: None,
                slide: None,
                gap: Some(Duration::from_secs(3)),
                allowed_lateness: Some(Duration::from_secs(10)),
            },
            aggregates: [("n", "count"), ("s", "sum(v)")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            features: Default::default(),
            online: None,
            lookups: Default::default(),
        };
        Arc::new(FeatureSpec::compile("sessions", &cfg).unwrap())
    }

    /// Sessions of 300 rows of 7 keys, restarting from a checkpoint every `every` steps.
    fn run(every: Option<i64>) -> Vec<WindowResult> {
        let mut state = SessionState::new(spec(), 0);
        let mut store = Store::default();
        let (mut out, mut late) = (Vec::new(), Vec::new());
        for step in 0..300i64 {
            // Bursts with pauses longer than the gap, and some late rows.
            let ts = step * 900 + (step / 10) * 4_000 - if step % 11 == 0 { 8_000 } else { 0 };
            let row = FeatureRow {
                key: format!("k{}", step % 7),
                ts,
                values: smallvec::smallvec![step as f64],
                distinct: smallvec::smallvec![],
            };
            let t = ((step * 900 + (step / 10) * 4_000 - 2_000).max(0) / 1000 * 1000) as u64;
            state.push(t, vec![row]);
            state.advance(Some(t.saturating_sub(1_000)), &mut out, &mut late);
            if every.is_some_and(|n| step % n == n - 1) {
                store.apply(state.checkpoint().unwrap());
                state = SessionState::new(spec(), 0);
                state.restore(store.restore()).unwrap();
            }
        }
        state.advance(None, &mut out, &mut late);
        out.sort_by(|a, b| (a.start, &a.key, a.revision).cmp(&(b.start, &b.key, b.revision)));
        out
    }

    #[test]
    fn restarting_from_checkpoints_changes_no_session() {
        let reference = run(None);
        assert!(reference.len() > 20);
        assert!(reference.iter().any(|r| r.revision > 0), "late rows re-fire sessions");
        assert_eq!(run(Some(13)), reference);
        assert_eq!(run(Some(1)), reference);
    }
}
