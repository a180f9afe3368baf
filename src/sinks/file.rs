//! The `file` sink: JSON lines, one file per output stream and worker,
//! written exactly once per checkpoint.
//!
//! A stream `name` goes to `{dir}/{name}.jsonl` when the job runs on a
//! single worker and to `{dir}/{name}-{worker}.jsonl` otherwise. The lines
//! of checkpoint epoch `N` are first written to a hidden staging file
//! (`.{file}.e{N}.pending`, synced at `pre_commit`); once the checkpoint is
//! complete, `commit` appends them to the visible file and records the
//! committed epoch and length in `.{file}.committed` (written atomically).
//! On start, `recover` cuts the visible file back to that length (undoing an
//! append a crash interrupted), appends the staged epochs of the restored
//! checkpoint that were not committed yet, and deletes staged epochs after
//! it. A run without a commit record starts the file afresh.

use super::SinkWriter;
use crate::error::{Result, RiftError};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Encodes one record as one JSON line (without the newline).
pub type LineEncoder<T> = Box<dyn Fn(&T, &mut Vec<u8>) -> Result<()>>;

/// JSON-lines writer.
pub struct JsonLinesWriter<T> {
    /// The visible file.
    path: PathBuf,
    /// The stream's name, worker and workers (for the files of other worker counts).
    stream: (String, usize, usize),
    /// The epoch records are written to.
    epoch: Option<u64>,
    /// The epoch being written and its staging file.
    current: Option<(u64, BufWriter<File>)>,
    /// Staged epochs, pre-committed and not yet committed.
    staged: BTreeMap<u64, PathBuf>,
    encode: LineEncoder<T>,
    line: Vec<u8>,
}

/// What `.{file}.committed` records.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Committed {
    epoch: u64,
    len: u64,
}

fn hidden(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{suffix}"))
}

impl<T: 'static> JsonLinesWriter<T> {
    /// The file of stream `name` for `worker` of `peers` under `dir`.
    pub fn path_for(dir: &Path, name: &str, worker: usize, peers: usize) -> PathBuf {
        if peers == 1 {
            dir.join(format!("{name}.jsonl"))
        } else {
            dir.join(format!("{name}-{worker}.jsonl"))
        }
    }

    /// A writer of stream `name` (nothing is opened until the first epoch).
    pub fn create(dir: &Path, name: &str, worker: usize, peers: usize, encode: LineEncoder<T>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| RiftError::io(dir, e))?;
        Ok(JsonLinesWriter {
            path: Self::path_for(dir, name, worker, peers),
            stream: (name.to_string(), worker, peers.max(1)),
            epoch: None,
            current: None,
            staged: BTreeMap::new(),
            encode,
            line: Vec::with_capacity(512),
        })
    }

    /// A writer that serializes records with serde.
    pub fn serde(dir: &Path, name: &str, worker: usize, peers: usize) -> Result<Self>
    where
        T: serde::Serialize,
    {
        Self::create(
            dir,
            name,
            worker,
            peers,
            Box::new(|r: &T, buf: &mut Vec<u8>| {
                serde_json::to_writer(buf, r).map_err(|e| RiftError::Internal(format!("json: {e}")))
            }),
        )
    }

    fn staging(&self, epoch: u64) -> PathBuf {
        hidden(&self.path, &format!(".e{epoch:020}.pending"))
    }

    fn record_path(&self) -> PathBuf {
        hidden(&self.path, ".committed")
    }

    fn read_record(&self) -> Result<Option<Committed>> {
        let path = self.record_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut parts = text.split_whitespace().map(str::parse::<u64>);
                match (parts.next(), parts.next()) {
                    (Some(Ok(epoch)), Some(Ok(len))) => Ok(Some(Committed { epoch, len })),
                    _ => Err(RiftError::Internal(format!(
                        "{}: unreadable commit record",
                        path.display()
                    ))),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RiftError::io(&path, e)),
        }
    }

    fn write_record(&self, record: Committed) -> Result<()> {
        let path = self.record_path();
        let tmp = hidden(&self.path, ".committed.tmp");
        let mut f = File::create(&tmp).map_err(|e| RiftError::io(&tmp, e))?;
        writeln!(f, "{} {}", record.epoch, record.len).map_err(|e| RiftError::io(&tmp, e))?;
        f.sync_all().map_err(|e| RiftError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| RiftError::io(&path, e))
    }

    /// Appends staged epoch `epoch` to the visible file and records it.
    fn append(&self, epoch: u64, staged: &Path) -> Result<()> {
        let mut visible = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| RiftError::io(&self.path, e))?;
        let mut src = File::open(staged).map_err(|e| RiftError::io(staged, e))?;
        // A kernel-side copy (`copy_file_range` on Linux): an epoch's output
        // never passes through memory, however large it is.
        std::io::copy(&mut src, &mut visible).map_err(|e| RiftError::io(&self.path, e))?;
        visible.sync_data().map_err(|e| RiftError::io(&self.path, e))?;
        let len = visible
            .seek(SeekFrom::End(0))
            .map_err(|e| RiftError::io(&self.path, e))?;
        self.write_record(Committed { epoch, len })?;
        std::fs::remove_file(staged).map_err(|e| RiftError::io(staged, e))
    }

    /// Staging files of this stream in its directory, by epoch.
    fn staged_files(&self) -> Result<BTreeMap<u64, PathBuf>> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let prefix = hidden(&self.path, ".e")
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| RiftError::io(dir, e))? {
            let path = entry.map_err(|e| RiftError::io(dir, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if let Some(epoch) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".pending"))
                .and_then(|e| e.parse::<u64>().ok())
            {
                out.insert(epoch, path);
            }
        }
        Ok(out)
    }
}

impl<T: 'static> SinkWriter<T> for JsonLinesWriter<T> {
    fn begin_epoch(&mut self, epoch: u64) {
        self.epoch = Some(epoch);
    }

    fn write(&mut self, records: &mut Vec<T>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let epoch = self
            .epoch
            .ok_or_else(|| RiftError::Internal(format!("{}: write before an epoch began", self.path.display())))?;
        self.ensure_open(epoch)?;
        let Some((_, out)) = self.current.as_mut() else {
            return Ok(());
        };
        let mut done = 0;
        let mut result = Ok(());
        for r in records.iter() {
            self.line.clear();
            if let Err(e) = (self.encode)(r, &mut self.line) {
                result = Err(e);
                break;
            }
            self.line.push(b'\n');
            if let Err(e) = out.write_all(&self.line) {
                result = Err(RiftError::io(&self.path, e));
                break;
            }
            done += 1;
        }
        records.drain(..done);
        result
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        if let Some((e, mut out)) = self.current.take() {
            let staging = self.staging(e);
            out.flush().map_err(|err| RiftError::io(&staging, err))?;
            out.get_ref().sync_data().map_err(|err| RiftError::io(&staging, err))?;
            self.staged.insert(epoch.max(e), staging);
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<bool> {
        let due: Vec<u64> = self.staged.range(..=epoch).map(|(e, _)| *e).collect();
        for e in due {
            if let Some(path) = self.staged.get(&e).cloned() {
                self.append(e, &path)?;
                self.staged.remove(&e);
            }
        }
        Ok(true)
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<()> {
        self.recover_file(restored)?;
        // Files of this stream written by a run with another worker count: each is
        // recovered (rolled forward to the restored checkpoint) by one worker of this run.
        for path in self.other_files()? {
            let mut other = JsonLinesWriter::<T> {
                path,
                stream: self.stream.clone(),
                epoch: None,
                current: None,
                staged: BTreeMap::new(),
                encode: Box::new(|_, _| Ok(())),
                line: Vec::new(),
            };
            other.recover_file(restored)?;
        }
        Ok(())
    }
}

impl<T: 'static> JsonLinesWriter<T> {
    /// Recovers this writer's file (see the module docs).
    fn recover_file(&mut self, restored: Option<u64>) -> Result<()> {
        let record = self.read_record()?;
        // Cut the visible file back to what was committed (all of it afresh without a record).
        let len = record.map_or(0, |r| r.len);
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f.set_len(len).map_err(|e| RiftError::io(&self.path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RiftError::io(&self.path, e)),
        }
        let committed = record.map(|r| r.epoch);
        for (epoch, path) in self.staged_files()? {
            let roll_forward = restored.is_some_and(|r| epoch <= r) && committed.is_none_or(|c| epoch > c);
            if roll_forward {
                self.append(epoch, &path)?;
            } else {
                std::fs::remove_file(&path).map_err(|e| RiftError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// The files of this stream other than this worker's that this worker
    /// recovers: `{name}-{k}.jsonl` with `k % peers == worker`, and
    /// `{name}.jsonl` (a one-worker run's) on worker 0 — found by the file,
    /// its commit record or its staged epochs (a file is created by its first commit).
    fn other_files(&self) -> Result<Vec<PathBuf>> {
        let (name, worker, peers) = &self.stream;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut out = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(|e| RiftError::io(dir, e))? {
            let path = entry.map_err(|e| RiftError::io(dir, e))?.path();
            let Some(file) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
                continue;
            };
            let visible = match file.strip_prefix('.') {
                None => Some(file.as_str()),
                Some(hidden) => hidden.strip_suffix(".committed").or_else(|| {
                    hidden
                        .strip_suffix(".pending")
                        .and_then(|r| r.rsplit_once(".e"))
                        .map(|(v, _)| v)
                }),
            };
            let Some(visible) = visible else { continue };
            let Some(rest) = visible
                .strip_prefix(name.as_str())
                .and_then(|r| r.strip_suffix(".jsonl"))
            else {
                continue;
            };
            let owner = if rest.is_empty() {
                Some(0)
            } else {
                rest.strip_prefix('-')
                    .and_then(|k| k.parse::<usize>().ok())
                    .map(|k| k % peers)
            };
            let candidate = dir.join(visible);
            if owner == Some(*worker) && candidate != self.path {
                out.insert(candidate);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Opens the staging file of `epoch` if the epoch just began.
    fn ensure_open(&mut self, epoch: u64) -> Result<()> {
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let staging = self.staging(epoch);
            let file = File::create(&staging).map_err(|e| RiftError::io(&staging, e))?;
            self.current = Some((epoch, BufWriter::with_capacity(1 << 20, file)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn writer(dir: &Path) -> JsonLinesWriter<u32> {
        JsonLinesWriter::<u32>::serde(dir, "out", 0, 1).unwrap()
    }

    fn write_epoch(w: &mut JsonLinesWriter<u32>, epoch: u64, values: &[u32]) {
        w.begin_epoch(epoch);
        w.write(&mut values.to_vec()).unwrap();
        w.pre_commit(epoch).unwrap();
    }

    #[test]
    fn lines_appear_once_their_checkpoint_completes_and_recovery_rolls_forward() {
        let dir = tempfile::tempdir().unwrap();
        let visible = dir.path().join("out.jsonl");
        let mut w = writer(dir.path());
        w.recover(None).unwrap();
        write_epoch(&mut w, 10, &[1, 2]);
        assert!(lines(&visible).is_empty(), "pre-committed is not visible");
        w.commit(10).unwrap();
        write_epoch(&mut w, 11, &[3]);
        write_epoch(&mut w, 12, &[4]);
        // A crash here: checkpoint 11 completed (but 11 was not committed), 12 did not.
        drop(w);
        let mut again = writer(dir.path());
        again.recover(Some(11)).unwrap();
        assert_eq!(lines(&visible), ["1", "2", "3"]);
        // Epoch 12's lines are read again and written under a new epoch.
        write_epoch(&mut again, 13, &[4]);
        again.commit(13).unwrap();
        assert_eq!(lines(&visible), ["1", "2", "3", "4"]);
        // Recovering the same checkpoint again changes nothing.
        let mut third = writer(dir.path());
        third.recover(Some(13)).unwrap();
        assert_eq!(lines(&visible), ["1", "2", "3", "4"]);
    }

    #[test]
    fn an_append_a_crash_interrupted_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let visible = dir.path().join("out.jsonl");
        let mut w = writer(dir.path());
        w.recover(None).unwrap();
        write_epoch(&mut w, 5, &[7]);
        w.commit(5).unwrap();
        // Half an append after the record was written.
        let mut f = OpenOptions::new().append(true).open(&visible).unwrap();
        f.write_all(b"8\n9").unwrap();
        let mut again = writer(dir.path());
        again.recover(Some(5)).unwrap();
        assert_eq!(lines(&visible), ["7"]);
        // Without a record (a fresh state), the file starts afresh.
        std::fs::remove_file(dir.path().join(".out.jsonl.committed")).unwrap();
        writer(dir.path()).recover(None).unwrap();
        assert!(lines(&visible).is_empty());
    }

    #[test]
    fn a_run_with_fewer_workers_recovers_the_files_of_the_workers_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let of = |worker| JsonLinesWriter::<u32>::serde(dir.path(), "out", worker, 2).unwrap();
        let (mut w0, mut w1) = (of(0), of(1));
        w0.recover(None).unwrap();
        w1.recover(None).unwrap();
        write_epoch(&mut w0, 10, &[1]);
        write_epoch(&mut w1, 10, &[2]);
        w0.commit(10).unwrap();
        // Worker 1 crashed before its first commit (its file does not exist yet).
        write_epoch(&mut w0, 11, &[3]);
        write_epoch(&mut w1, 11, &[4]);
        write_epoch(&mut w1, 12, &[5]);
        drop((w0, w1));
        // Checkpoint 11 is restored by one worker: it rolls both logs forward to 11.
        writer(dir.path()).recover(Some(11)).unwrap();
        let mut all: Vec<String> = ["out-0.jsonl", "out-1.jsonl", "out.jsonl"]
            .iter()
            .flat_map(|f| lines(&dir.path().join(f)))
            .collect();
        all.sort();
        assert_eq!(all, ["1", "2", "3", "4"]);
        let pending = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pending"))
            .count();
        assert_eq!(pending, 0, "epoch 12, after the checkpoint, is discarded");
    }
}
