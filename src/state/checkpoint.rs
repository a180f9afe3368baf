//! Checkpointed operator state of one job, in the process's RocksDB.
//!
//! # Model
//! Operators write their state changes of checkpoint epoch `N` as *staged*
//! entries of `N` (one write batch per operator and epoch, incremental:
//! only keys that changed). When every worker of every process has staged
//! `N` (the job's completion probe has passed it), [`JobState::complete`]
//! applies the staged entries of `N` and earlier to the *committed* state
//! and records `N` as complete, in one atomic write. A crash before that
//! leaves `N` staged: on restart, [`JobState::recover`] rolls it forward if
//! the cluster agrees `N` is complete (another process recorded it), and
//! discards it otherwise. Committed state is always exactly one complete
//! checkpoint.
//!
//! Reads during processing ([`JobState::get`], [`JobState::scan`]) see the
//! latest writes: the staged epochs not yet complete, newest first, over the
//! committed state.
//!
//! # Keys
//! An entry is `(operator, section, key group, key)`. The operator id is
//! stable (it comes from configuration names, never from a position in the
//! dataflow), the section groups entries an operator scans together (a
//! pane, a kind of entry), and the key group ([`key_group`]) lets a
//! checkpoint taken with N workers restore on M: worker `w` of `n` owns the
//! groups `g` with `g % n == w` ([`owns`]).
//!
//! # Failure
//! Writes are not synced: a checkpoint survives the process being killed
//! (RocksDB's log is in the page cache), not the machine losing power. A
//! failed write is an error of the job (the checkpoint it belongs to never
//! completes; the previous one stays).

use crate::error::{Result, RiftError};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// State is partitioned into this many key groups (Flink's max parallelism).
pub const KEY_GROUPS: u64 = 256;

/// The key group of a key with (stable) hash `hash`.
#[inline]
pub fn key_group(hash: u64) -> u16 {
    (hash % KEY_GROUPS) as u16
}

/// Whether worker `worker` of `peers` owns key group `group`.
#[inline]
pub fn owns(group: u16, worker: usize, peers: usize) -> bool {
    group as usize % peers.max(1) == worker
}

const COMMITTED: u8 = b'c';
const STAGED: u8 = b's';
const META: u8 = b'm';
const PUT: u8 = 1;
const DELETE: u8 = 0;

/// Records of complete checkpoints kept for `riftstream checkpoints list`.
pub const HISTORY_KEPT: usize = 20;

/// One change to stage: `None` deletes the entry.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// A checkpoint's record, kept for `riftstream checkpoints list`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointInfo {
    /// The checkpoint epoch.
    pub epoch: u64,
    /// Wall-clock time it completed, UTC ms.
    pub completed_at: i64,
    /// Bytes of state staged for it (changes only: checkpoints are incremental).
    pub bytes: u64,
    /// Entries staged for it.
    pub entries: u64,
}

#[derive(Debug, Default)]
struct Meta {
    /// The latest complete checkpoint.
    complete: Option<u64>,
    /// Staged epochs later than `complete`.
    pending: BTreeSet<u64>,
    /// Bytes and entries staged per pending epoch.
    staged_size: BTreeMap<u64, (u64, u64)>,
    /// (run, checkpoint it restored), once the run recovered.
    recovered: Option<(u64, Option<u64>)>,
    /// The latest epoch anything of the job (state or a sink) was written in.
    latest: Option<u64>,
    /// Entry key → the latest pending epoch that staged it: a read looks at
    /// that one staged entry (or the committed one), never at every pending epoch.
    overlay: HashMap<Vec<u8>, u64>,
    /// Per pending epoch, the entry keys it staged (to clear `overlay` on completion).
    staged_keys: BTreeMap<u64, Vec<Vec<u8>>>,
}

/// The checkpointed state of one job in this process (see the module docs).
pub struct JobState {
    db: Arc<DB>,
    job: String,
    meta: Mutex<Meta>,
}

impl std::fmt::Debug for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobState").field("job", &self.job).finish()
    }
}

fn poisoned() -> RiftError {
    RiftError::Internal("checkpoint state lock poisoned".into())
}

/// `job \0`, the prefix of every key of a job within a kind.
fn job_prefix(kind: u8, job: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(job.len() + 2);
    k.push(kind);
    k.extend_from_slice(job.as_bytes());
    k.push(0);
    k
}

/// `op \0 len(section) section`: the prefix of an operator's section.
fn section_prefix(op: &str, section: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(op.len() + section.len() + 2);
    k.extend_from_slice(op.as_bytes());
    k.push(0);
    k.push(section.len() as u8);
    k.extend_from_slice(section);
    k
}

/// The encoded entry key (after the job and epoch prefixes).
pub fn entry_key(op: &str, section: &[u8], group: u16, key: &[u8]) -> Vec<u8> {
    let mut k = section_prefix(op, section);
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Splits an entry key (after the section prefix) into (group, key).
fn split_entry(rest: &[u8]) -> Option<(u16, &[u8])> {
    let (g, key) = (rest.get(..2)?, rest.get(2..)?);
    Some((u16::from_be_bytes([g[0], g[1]]), key))
}

/// An entry returned by a scan: (key group, key, value).
pub type Entry = (u16, Vec<u8>, Vec<u8>);

/// An entry of a whole-operator scan: (section, key group, key, value).
pub type SectionEntry = (Vec<u8>, u16, Vec<u8>, Vec<u8>);

impl JobState {
    /// The checkpoint state of `job` under `state_dir`, shared by the
    /// process's workers (one instance per directory and job).
    pub fn open(state_dir: &Path, job: &str) -> Result<Arc<JobState>> {
        type Registry = Mutex<HashMap<(PathBuf, String), Arc<JobState>>>;
        static OPEN: OnceLock<Registry> = OnceLock::new();
        let db = super::shared_db(&state_dir.join("checkpoints"))?;
        let dir = state_dir
            .join("checkpoints")
            .canonicalize()
            .map_err(|e| RiftError::io(state_dir, e))?;
        let mut open = OPEN.get_or_init(Default::default).lock().map_err(|_| poisoned())?;
        if let Some(s) = open.get(&(dir.clone(), job.to_string())) {
            return Ok(s.clone());
        }
        let state = Arc::new(JobState {
            db,
            job: job.to_string(),
            meta: Mutex::new(Meta::default()),
        });
        {
            let mut meta = state.meta.lock().map_err(|_| poisoned())?;
            meta.complete = state.read_complete()?;
            meta.pending = state.staged_epochs()?;
        }
        open.insert((dir, job.to_string()), state.clone());
        Ok(state)
    }

    fn meta_key(&self, name: &[u8]) -> Vec<u8> {
        let mut k = job_prefix(META, &self.job);
        k.extend_from_slice(name);
        k
    }

    fn staged_prefix(&self, epoch: u64) -> Vec<u8> {
        let mut k = job_prefix(STAGED, &self.job);
        k.extend_from_slice(&epoch.to_be_bytes());
        k
    }

    fn read_complete(&self) -> Result<Option<u64>> {
        Ok(match self.db.get(self.meta_key(b"complete"))? {
            Some(v) => {
                Some(u64::from_be_bytes(v.as_slice().try_into().map_err(|_| {
                    RiftError::Internal("a checkpoint record is not 8 bytes".into())
                })?))
            }
            None => None,
        })
    }

    /// Epochs with staged entries, found by seeking from one to the next.
    fn staged_epochs(&self) -> Result<BTreeSet<u64>> {
        let prefix = job_prefix(STAGED, &self.job);
        let mut epochs = BTreeSet::new();
        let mut from = prefix.clone();
        loop {
            let mut it = self.db.iterator(IteratorMode::From(&from, Direction::Forward));
            let Some(item) = it.next() else { break };
            let (k, _) = item?;
            if !k.starts_with(&prefix) || k.len() < prefix.len() + 8 {
                break;
            }
            let mut e = [0u8; 8];
            e.copy_from_slice(&k[prefix.len()..prefix.len() + 8]);
            let epoch = u64::from_be_bytes(e);
            epochs.insert(epoch);
            match epoch.checked_add(1) {
                Some(next) => from = self.staged_prefix(next),
                None => break,
            }
        }
        Ok(epochs)
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The latest complete checkpoint recorded by this process.
    pub fn complete_epoch(&self) -> Option<u64> {
        self.meta.lock().ok().and_then(|m| m.complete)
    }

    /// Stages `changes` (entry keys from [`entry_key`]) for checkpoint `epoch`, atomically.
    pub fn stage(&self, epoch: u64, changes: impl IntoIterator<Item = Change>) -> Result<()> {
        crate::util::crash_point!("checkpoint-stage");
        let prefix = self.staged_prefix(epoch);
        let mut batch = WriteBatch::default();
        let (mut bytes, mut entries) = (0u64, 0u64);
        let mut keys = Vec::new();
        for (key, value) in changes {
            let mut k = prefix.clone();
            k.extend_from_slice(&key);
            keys.push(key);
            let v = match value {
                Some(mut v) => {
                    v.insert(0, PUT);
                    v
                }
                None => vec![DELETE],
            };
            bytes += (k.len() + v.len()) as u64;
            entries += 1;
            batch.put(k, v);
        }
        if entries == 0 {
            return Ok(());
        }
        let mut meta = self.meta.lock().map_err(|_| poisoned())?;
        if meta.complete.is_some_and(|c| epoch <= c) {
            return Err(RiftError::Internal(format!(
                "state staged for epoch {epoch}, already complete (job {})",
                self.job
            )));
        }
        self.db.write(batch)?;
        meta.pending.insert(epoch);
        let size = meta.staged_size.entry(epoch).or_default();
        size.0 += bytes;
        size.1 += entries;
        for key in &keys {
            let e = meta.overlay.entry(key.clone()).or_insert(epoch);
            *e = (*e).max(epoch);
        }
        meta.staged_keys.entry(epoch).or_default().extend(keys);
        Ok(())
    }

    /// The latest value of an entry: staged epochs newest first, then committed.
    pub fn get(&self, op: &str, section: &[u8], group: u16, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let entry = entry_key(op, section, group, key);
        let staged_in = self.meta.lock().map_err(|_| poisoned())?.overlay.get(&entry).copied();
        if let Some(epoch) = staged_in {
            let mut k = self.staged_prefix(epoch);
            k.extend_from_slice(&entry);
            if let Some(v) = self.db.get(&k)? {
                return Ok(match v.first() {
                    Some(&PUT) => Some(v[1..].to_vec()),
                    _ => None,
                });
            }
        }
        let mut k = job_prefix(COMMITTED, &self.job);
        k.extend_from_slice(&entry);
        Ok(self.db.get(&k)?)
    }

    /// Every latest entry of `op` under `section`, over staged and committed state.
    pub fn scan(&self, op: &str, section: &[u8]) -> Result<Vec<Entry>> {
        self.scan_prefix(&section_prefix(op, section))
    }

    /// Every latest entry of `op`, all sections: `(section, group, key, value)`.
    pub fn scan_operator(&self, op: &str) -> Result<Vec<SectionEntry>> {
        let mut op_prefix = op.as_bytes().to_vec();
        op_prefix.push(0);
        let merged = self.merged(&op_prefix)?;
        let mut out = Vec::with_capacity(merged.len());
        for (k, v) in merged {
            let rest = &k[op_prefix.len()..];
            let Some((&len, rest)) = rest.split_first() else {
                continue;
            };
            let len = len as usize;
            if rest.len() < len {
                continue;
            }
            let (section, rest) = rest.split_at(len);
            if let Some((group, key)) = split_entry(rest) {
                out.push((section.to_vec(), group, key.to_vec(), v));
            }
        }
        Ok(out)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>> {
        let merged = self.merged(prefix)?;
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| split_entry(&k[prefix.len()..]).map(|(g, key)| (g, key.to_vec(), v)))
            .collect())
    }

    /// Entry key (after job/epoch prefixes) → latest value, for keys under `prefix`.
    fn merged(&self, prefix: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut committed = job_prefix(COMMITTED, &self.job);
        let base = committed.len();
        committed.extend_from_slice(prefix);
        for item in self.db.prefix_iterator(&committed) {
            let (k, v) = item?;
            if !k.starts_with(&committed) {
                break;
            }
            out.insert(k[base..].to_vec(), v.to_vec());
        }
        let pending: Vec<u64> = self
            .meta
            .lock()
            .map_err(|_| poisoned())?
            .pending
            .iter()
            .copied()
            .collect();
        for epoch in pending {
            let mut staged = self.staged_prefix(epoch);
            let base = staged.len();
            staged.extend_from_slice(prefix);
            for item in self.db.prefix_iterator(&staged) {
                let (k, v) = item?;
                if !k.starts_with(&staged) {
                    break;
                }
                match v.first() {
                    Some(&PUT) => out.insert(k[base..].to_vec(), v[1..].to_vec()),
                    _ => out.remove(&k[base..]),
                };
            }
        }
        Ok(out)
    }

    /// Writes (or with `None` deletes) committed entries directly, atomically,
    /// outside any checkpoint: for bookkeeping of work done on behalf of
    /// checkpoints already complete (a sink's commit), which every later
    /// restore must see.
    pub fn write_committed(&self, changes: impl IntoIterator<Item = Change>) -> Result<()> {
        let prefix = job_prefix(COMMITTED, &self.job);
        let mut batch = WriteBatch::default();
        for (key, value) in changes {
            let mut k = prefix.clone();
            k.extend_from_slice(&key);
            match value {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        Ok(self.db.write(batch)?)
    }

    /// Applies the staged entries of `epoch` and earlier to the committed
    /// state and records `epoch` complete, atomically. Idempotent: an epoch
    /// at or before the recorded one is a no-op. Returns whether it did anything.
    pub fn complete(&self, epoch: u64) -> Result<bool> {
        let mut meta = self.meta.lock().map_err(|_| poisoned())?;
        if meta.complete.is_some_and(|c| epoch <= c) {
            return Ok(false);
        }
        crate::util::crash_point!("checkpoint-complete-before");
        let mut batch = WriteBatch::default();
        let committed = job_prefix(COMMITTED, &self.job);
        let (mut bytes, mut entries) = (0u64, 0u64);
        let applied: Vec<u64> = meta.pending.range(..=epoch).copied().collect();
        for e in &applied {
            let staged = self.staged_prefix(*e);
            for item in self.db.prefix_iterator(&staged) {
                let (k, v) = item?;
                if !k.starts_with(&staged) {
                    break;
                }
                let mut target = committed.clone();
                target.extend_from_slice(&k[staged.len()..]);
                match v.first() {
                    Some(&PUT) => batch.put(&target, &v[1..]),
                    _ => batch.delete(&target),
                }
            }
            // One range tombstone for the epoch's staged entries: the batch
            // holds the state once (as puts), not once more as deletes.
            batch.delete_range(&staged, &self.staged_prefix(e.saturating_add(1)));
            if let Some((b, n)) = meta.staged_size.remove(e) {
                bytes += b;
                entries += n;
            }
        }
        batch.put(self.meta_key(b"complete"), epoch.to_be_bytes());
        let info = CheckpointInfo {
            epoch,
            completed_at: crate::util::now_ms(),
            bytes,
            entries,
        };
        let mut info_key = self.meta_key(b"info/");
        info_key.extend_from_slice(&epoch.to_be_bytes());
        batch.put(
            info_key,
            serde_json::to_vec(&info).map_err(|e| RiftError::Internal(e.to_string()))?,
        );
        self.db.write(batch)?;
        for e in applied {
            meta.pending.remove(&e);
            for key in meta.staged_keys.remove(&e).unwrap_or_default() {
                if meta.overlay.get(&key).is_some_and(|latest| *latest <= epoch) {
                    meta.overlay.remove(&key);
                }
            }
        }
        meta.complete = Some(epoch);
        drop(meta);
        crate::util::crash_point!("checkpoint-complete-after");
        self.prune_history(HISTORY_KEPT)?;
        Ok(true)
    }

    /// [`recover`](Self::recover), once per run (`run` identifies it in the
    /// process): the first worker recovers, the others find it done.
    /// Returns the checkpoint restored.
    pub fn recover_once(&self, run: u64, agreed: Option<u64>) -> Result<Option<u64>> {
        if let Some((r, done)) = self.meta.lock().map_err(|_| poisoned())?.recovered {
            if r == run {
                return Ok(done);
            }
        }
        self.recover(agreed)?;
        let mut meta = self.meta.lock().map_err(|_| poisoned())?;
        meta.recovered = Some((run, agreed));
        meta.latest = None;
        Ok(agreed)
    }

    /// The latest epoch staged, noted or complete: what the end of a bounded run completes.
    pub fn latest_epoch(&self) -> Option<u64> {
        let meta = self.meta.lock().ok()?;
        meta.pending
            .iter()
            .next_back()
            .copied()
            .max(meta.complete)
            .max(meta.latest)
    }

    /// Notes that something of the job (a sink's output) belongs to `epoch`.
    pub fn note_epoch(&self, epoch: u64) {
        if let Ok(mut meta) = self.meta.lock() {
            meta.latest = meta.latest.max(Some(epoch));
        }
    }

    /// After a restart: makes the committed state that of checkpoint `agreed`
    /// (the latest complete one in the cluster, `None` for none): staged
    /// epochs up to it are rolled forward, later ones discarded.
    pub fn recover(&self, agreed: Option<u64>) -> Result<()> {
        crate::util::crash_point!("restore");
        if let Some(n) = agreed {
            self.complete(n)?;
        }
        let mut meta = self.meta.lock().map_err(|_| poisoned())?;
        let discard: Vec<u64> = meta.pending.iter().copied().collect();
        for e in discard {
            let from = self.staged_prefix(e);
            let to = self.staged_prefix(e.saturating_add(1));
            let mut batch = WriteBatch::default();
            batch.delete_range(&from, &to);
            self.db.write(batch)?;
            meta.pending.remove(&e);
            meta.staged_size.remove(&e);
        }
        meta.overlay.clear();
        meta.staged_keys.clear();
        Ok(())
    }

    /// The records of the complete checkpoints this process kept, oldest first.
    pub fn history(&self) -> Result<Vec<CheckpointInfo>> {
        let prefix = self.meta_key(b"info/");
        let mut out = Vec::new();
        for item in self.db.prefix_iterator(&prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if let Ok(info) = serde_json::from_slice::<CheckpointInfo>(&v) {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Forgets the records of checkpoints before the latest `keep`.
    pub fn prune_history(&self, keep: usize) -> Result<()> {
        let history = self.history()?;
        if history.len() <= keep {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for info in &history[..history.len() - keep] {
            let mut k = self.meta_key(b"info/");
            k.extend_from_slice(&info.epoch.to_be_bytes());
            batch.delete(k);
        }
        Ok(self.db.write(batch)?)
    }
}

/// One operator's view of its job's checkpoint state: its stable id and
/// the checkpoint the run restored.
#[derive(Clone, Debug)]
pub struct OperatorState {
    /// The job's checkpoint state.
    pub state: Arc<JobState>,
    /// The operator's stable id.
    pub op: String,
    /// The checkpoint the run restored (`None`: a fresh start).
    pub restored: Option<u64>,
}

impl OperatorState {
    /// The first epoch of this run: state restored from the checkpoint is
    /// placed in it (earlier epochs are complete and cannot change).
    pub fn first_epoch(&self) -> u64 {
        self.restored.map_or(0, |r| r.saturating_add(1))
    }

    /// The entry key of `key` (key group from `hash`) in `section`.
    pub fn key(&self, section: &[u8], hash: u64, key: &[u8]) -> Vec<u8> {
        entry_key(&self.op, section, key_group(hash), key)
    }

    /// The latest value of `key` in `section`.
    pub fn get(&self, section: &[u8], hash: u64, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.state.get(&self.op, section, key_group(hash), key)
    }

    /// Stages `changes` for checkpoint `epoch`.
    pub fn stage(&self, epoch: u64, changes: impl IntoIterator<Item = Change>) -> Result<()> {
        self.state.stage(epoch, changes)
    }

    /// The restored entries of `section` in key groups `worker` owns of
    /// `peers` (nothing on a fresh start): (key, value).
    pub fn restore(&self, section: &[u8], worker: usize, peers: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.restored.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .state
            .scan(&self.op, section)?
            .into_iter()
            .filter(|(g, _, _)| owns(*g, worker, peers))
            .map(|(_, k, v)| (k, v))
            .collect())
    }

    /// Every restored entry of `section`, whatever its key group (nothing on
    /// a fresh start): (group, key, value). For state a worker regroups itself.
    pub fn restore_all(&self, section: &[u8]) -> Result<Vec<Entry>> {
        if self.restored.is_none() {
            return Ok(Vec::new());
        }
        self.state.scan(&self.op, section)
    }

    /// The entry key of `key` in key group `group` of `section`.
    pub fn key_in_group(&self, section: &[u8], group: u16, key: &[u8]) -> Vec<u8> {
        entry_key(&self.op, section, group, key)
    }
}

/// What `riftstream checkpoints list` shows of one job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobCheckpoints {
    /// The job.
    pub job: String,
    /// The latest complete checkpoint.
    pub latest: Option<u64>,
    /// Records of the complete checkpoints kept, oldest first.
    pub history: Vec<CheckpointInfo>,
    /// Source positions in the latest complete checkpoint: (source, partition, next offset).
    pub positions: Vec<(String, u32, u64)>,
}

/// The checkpoints of every job under `state_dir`, read without taking the
/// database's lock (a running cluster may hold it).
pub fn list_checkpoints(state_dir: &Path) -> Result<Vec<JobCheckpoints>> {
    let dir = state_dir.join("checkpoints");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let db = DB::open_for_read_only(&rocksdb::Options::default(), &dir, false)?;
    let mut jobs = BTreeSet::new();
    for item in db.prefix_iterator([META]) {
        let (k, _) = item?;
        if k.first() != Some(&META) {
            break;
        }
        if let Some(end) = k[1..].iter().position(|b| *b == 0) {
            jobs.insert(String::from_utf8_lossy(&k[1..1 + end]).into_owned());
        }
    }
    let mut out = Vec::new();
    for job in jobs {
        let meta = job_prefix(META, &job);
        let mut latest = None;
        let mut history = Vec::new();
        for item in db.prefix_iterator(&meta) {
            let (k, v) = item?;
            if !k.starts_with(&meta) {
                break;
            }
            let name = &k[meta.len()..];
            if name == b"complete" {
                latest = <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_be_bytes);
            } else if name.starts_with(b"info/") {
                if let Ok(info) = serde_json::from_slice::<CheckpointInfo>(&v) {
                    history.push(info);
                }
            }
        }
        let mut positions = Vec::new();
        let committed = job_prefix(COMMITTED, &job);
        let mut sources = committed.clone();
        sources.extend_from_slice(b"source/");
        for item in db.prefix_iterator(&sources) {
            let (k, v) = item?;
            if !k.starts_with(&sources) {
                break;
            }
            let rest = &k[committed.len()..];
            let Some(nul) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let op = String::from_utf8_lossy(&rest[..nul]).into_owned();
            let name = op
                .strip_prefix("source/")
                .and_then(|o| o.split('/').next())
                .unwrap_or(&op)
                .to_string();
            // op \0 len section group(2) partition(4)
            let tail = &rest[nul + 1..];
            let Some((&len, tail)) = tail.split_first() else {
                continue;
            };
            let Some(p) = tail.get(len as usize + 2..len as usize + 6) else {
                continue;
            };
            let partition = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let next = bincode::deserialize::<(u64, Option<i64>)>(&v)
                .map(|(n, _)| n)
                .unwrap_or(0);
            positions.push((name, partition, next));
        }
        out.push(JobCheckpoints {
            job,
            latest,
            history,
            positions,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(op: &str, key: &str, value: Option<&str>) -> Change {
        (
            entry_key(
                op,
                b"s",
                key_group(crate::util::stable_hash(key.as_bytes())),
                key.as_bytes(),
            ),
            value.map(|v| v.as_bytes().to_vec()),
        )
    }

    fn get(s: &JobState, key: &str) -> Option<String> {
        let g = key_group(crate::util::stable_hash(key.as_bytes()));
        s.get("op", b"s", g, key.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn staged_epochs_are_read_through_and_applied_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let s = JobState::open(dir.path(), "j").unwrap();
        s.stage(10, [change("op", "a", Some("1")), change("op", "b", Some("1"))])
            .unwrap();
        s.stage(11, [change("op", "a", Some("2")), change("op", "b", None)])
            .unwrap();
        // Reads see the latest staged writes.
        assert_eq!(get(&s, "a").as_deref(), Some("2"));
        assert_eq!(get(&s, "b"), None);
        assert_eq!(s.scan("op", b"s").unwrap().len(), 1);
        // Checkpoint 10 completes: committed holds epoch 10's state, 11 is still staged.
        assert!(s.complete(10).unwrap());
        assert!(!s.complete(10).unwrap(), "idempotent");
        assert_eq!(s.complete_epoch(), Some(10));
        assert_eq!(get(&s, "a").as_deref(), Some("2"));
        // A crash now, and the cluster agrees on 10: epoch 11 is discarded.
        s.recover(Some(10)).unwrap();
        assert_eq!(get(&s, "a").as_deref(), Some("1"));
        assert_eq!(get(&s, "b").as_deref(), Some("1"));
        let history = s.history().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].epoch, history[0].entries), (10, 2));
        assert!(
            s.stage(9, [change("op", "c", Some("x"))]).is_err(),
            "an epoch already complete"
        );
    }

    #[test]
    fn a_checkpoint_another_process_completed_is_rolled_forward() {
        let dir = tempfile::tempdir().unwrap();
        let s = JobState::open(dir.path(), "roll").unwrap();
        s.stage(5, [change("op", "k", Some("v5"))]).unwrap();
        s.stage(6, [change("op", "k", Some("v6"))]).unwrap();
        // This process never recorded 5 complete; the cluster agrees it is.
        s.recover(Some(5)).unwrap();
        assert_eq!(s.complete_epoch(), Some(5));
        assert_eq!(get(&s, "k").as_deref(), Some("v5"));
        // No agreement at all: nothing staged survives.
        let t = JobState::open(dir.path(), "none").unwrap();
        t.stage(3, [change("op", "k", Some("x"))]).unwrap();
        t.recover(None).unwrap();
        assert_eq!(get(&t, "k"), None);
        assert_eq!(t.history().unwrap().len(), 0);
    }

    #[test]
    fn key_groups_spread_over_any_number_of_workers() {
        for peers in 1..=5 {
            let owners: Vec<usize> = (0..KEY_GROUPS as u16)
                .map(|g| (0..peers).filter(|w| owns(g, *w, peers)).count())
                .collect();
            assert!(owners.iter().all(|n| *n == 1), "each group has one owner");
        }
    }
}
