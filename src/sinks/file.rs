//! The `file` sink: JSON lines, one file per output stream and worker.
//!
//! A stream `name` is written to `{dir}/{name}.jsonl` when the job runs on a
//! single worker and to `{dir}/{name}-{worker}.jsonl` otherwise. The file is
//! truncated when the sink starts; `pre_commit` flushes and syncs it.

use super::SinkWriter;
use crate::error::{Result, RiftError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Encodes one record as one JSON line (without the newline).
pub type LineEncoder<T> = Box<dyn Fn(&T, &mut Vec<u8>) -> Result<()>>;

/// JSON-lines writer.
pub struct JsonLinesWriter<T> {
    path: PathBuf,
    out: BufWriter<File>,
    encode: LineEncoder<T>,
    line: Vec<u8>,
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

    /// Opens (truncates) the file of stream `name`.
    pub fn create(dir: &Path, name: &str, worker: usize, peers: usize, encode: LineEncoder<T>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| RiftError::io(dir, e))?;
        let path = Self::path_for(dir, name, worker, peers);
        let file = File::create(&path).map_err(|e| RiftError::io(&path, e))?;
        Ok(JsonLinesWriter {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
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
}

impl<T: 'static> SinkWriter<T> for JsonLinesWriter<T> {
    fn write(&mut self, records: &mut Vec<T>) -> Result<()> {
        let mut done = 0;
        let mut result = Ok(());
        for r in records.iter() {
            self.line.clear();
            if let Err(e) = (self.encode)(r, &mut self.line) {
                result = Err(e);
                break;
            }
            self.line.push(b'\n');
            if let Err(e) = self.out.write_all(&self.line) {
                result = Err(RiftError::io(&self.path, e));
                break;
            }
            done += 1;
        }
        records.drain(..done);
        result
    }

    fn pre_commit(&mut self, _epoch: u64) -> Result<()> {
        self.out.flush().map_err(|e| RiftError::io(&self.path, e))?;
        self.out.get_ref().sync_data().map_err(|e| RiftError::io(&self.path, e))
    }

    fn commit(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }
}
