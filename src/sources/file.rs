//! The `file` source: JSON lines from a file or a directory of files.
//!
//! Each file is cut into a fixed number of byte-range splits (the partitions);
//! a split owns every line that *starts* inside its range, so splits never
//! share or lose a line. Offsets are byte offsets of line starts. The split
//! count is fixed by configuration, not by the number of workers, so a run's
//! results (which depend on per-partition watermarks) are the same at any
//! worker count. Blank lines are skipped; the source is always bounded.

use super::{now_us, PollStatus, RawRecord, Source, SourceReader};
use crate::error::{Result, RiftError};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// JSON-lines files read in splits.
#[derive(Debug, Clone)]
pub struct FileSource {
    name: String,
    files: Vec<(PathBuf, u64)>,
    splits: u32,
}

impl FileSource {
    /// A source over `path` (a file, or every `*.json`/`*.jsonl` file of a directory).
    pub fn new(path: &str, splits: usize) -> Result<FileSource> {
        let p = Path::new(path);
        let meta = std::fs::metadata(p).map_err(|e| RiftError::io(p, e))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| RiftError::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    matches!(
                        f.extension().and_then(|x| x.to_str()),
                        Some("json" | "jsonl")
                    )
                })
                .collect();
            entries.sort();
            for f in entries {
                let len = std::fs::metadata(&f)
                    .map_err(|e| RiftError::io(&f, e))?
                    .len();
                files.push((f, len));
            }
        } else {
            files.push((p.to_path_buf(), meta.len()));
        }
        Ok(FileSource {
            name: path.to_string(),
            files,
            splits: splits.max(1) as u32,
        })
    }

    fn range(&self, partition: u32) -> Option<(&Path, u64, u64)> {
        let file = (partition / self.splits) as usize;
        let split = (partition % self.splits) as u64;
        let (path, len) = self.files.get(file)?;
        let n = self.splits as u64;
        Some((path, len * split / n, len * (split + 1) / n))
    }
}

impl Source for FileSource {
    fn topic(&self) -> &str {
        &self.name
    }

    fn partitions(&self) -> Result<Vec<u32>> {
        Ok((0..self.files.len() as u32 * self.splits).collect())
    }

    fn open(&self, partitions: &[u32], start: &[(u32, u64)]) -> Result<Box<dyn SourceReader>> {
        let mut splits = Vec::new();
        for p in partitions {
            let (path, lo, hi) = self
                .range(*p)
                .ok_or_else(|| RiftError::Internal(format!("file source has no partition {p}")))?;
            let resume = start.iter().find(|(q, _)| q == p).map(|(_, o)| *o);
            splits.push(Split::open(*p, path, lo, hi, resume)?);
        }
        Ok(Box::new(FileReader {
            partitions: partitions.to_vec(),
            splits,
            current: 0,
        }))
    }

    fn is_bounded(&self) -> bool {
        true
    }
}

struct Split {
    partition: u32,
    path: PathBuf,
    reader: BufReader<File>,
    /// Byte offset of the next line to read.
    pos: u64,
    /// Lines starting at or after this belong to the next split.
    end: u64,
    done: bool,
    /// Whether `done` has been reported to the caller.
    reported: bool,
    line: Vec<u8>,
}

impl Split {
    fn open(partition: u32, path: &Path, lo: u64, hi: u64, resume: Option<u64>) -> Result<Split> {
        let mut file = File::open(path).map_err(|e| RiftError::io(path, e))?;
        let mut pos = lo;
        if let Some(r) = resume {
            pos = r;
            file.seek(SeekFrom::Start(pos))
                .map_err(|e| RiftError::io(path, e))?;
        } else if lo > 0 {
            // Skip the line that straddles `lo`: it belongs to the previous split.
            file.seek(SeekFrom::Start(lo - 1))
                .map_err(|e| RiftError::io(path, e))?;
            let mut reader = BufReader::new(&mut file);
            let mut skipped = Vec::new();
            let n = reader
                .read_until(b'\n', &mut skipped)
                .map_err(|e| RiftError::io(path, e))?;
            pos = lo - 1 + n as u64;
            file.seek(SeekFrom::Start(pos))
                .map_err(|e| RiftError::io(path, e))?;
        }
        Ok(Split {
            partition,
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            done: pos >= hi,
            reported: false,
            pos,
            end: hi,
            line: Vec::with_capacity(256),
        })
    }
}

struct FileReader {
    partitions: Vec<u32>,
    splits: Vec<Split>,
    /// Round-robin position over splits.
    current: usize,
}

impl SourceReader for FileReader {
    fn poll(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<PollStatus> {
        let mut status = PollStatus::default();
        let received_at_us = now_us();
        // Read one split's batch per poll, rotating, so partitions progress together.
        // Splits that were empty from the start finish without ever being read.
        for split in self.splits.iter_mut().filter(|s| s.done && !s.reported) {
            split.reported = true;
            status.finished.push(split.partition);
        }
        let n = self.splits.len();
        for _ in 0..n {
            let idx = self.current % n.max(1);
            self.current = self.current.wrapping_add(1);
            let split = &mut self.splits[idx];
            if split.done {
                continue;
            }
            let mut read = 0;
            while read < max && split.pos < split.end {
                split.line.clear();
                let len = split
                    .reader
                    .read_until(b'\n', &mut split.line)
                    .map_err(|e| RiftError::io(&split.path, e))?;
                if len == 0 {
                    break;
                }
                let offset = split.pos;
                split.pos += len as u64;
                let text = trim_line(&split.line);
                if text.is_empty() {
                    continue;
                }
                out.push(RawRecord {
                    partition: split.partition,
                    offset,
                    key: None,
                    value: text.to_vec(),
                    timestamp: None,
                    received_at_us,
                });
                read += 1;
            }
            if split.pos >= split.end || read < max {
                split.done = true;
                split.reported = true;
                status.finished.push(split.partition);
            }
            return Ok(status);
        }
        status.idle = true;
        Ok(status)
    }

    fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    fn positions(&self) -> Vec<(u32, u64)> {
        self.splits.iter().map(|s| (s.partition, s.pos)).collect()
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && matches!(line[start], b' ' | b'\t') {
        start += 1;
    }
    &line[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(src: &FileSource, parts: &[u32]) -> Vec<RawRecord> {
        let mut r = src.open(parts, &[]).unwrap();
        let mut out = Vec::new();
        let mut finished = 0;
        while finished < parts.len() {
            let st = r.poll(3, &mut out).unwrap();
            finished += st.finished.len();
            if st.idle {
                break;
            }
        }
        out
    }

    #[test]
    fn splits_cover_every_line_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let mut f = File::create(&path).unwrap();
        let lines: Vec<String> = (0..500)
            .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37)))
            .collect();
        for (i, l) in lines.iter().enumerate() {
            write!(f, "{l}\n{}", if i % 50 == 0 { "\n" } else { "" }).unwrap();
        }
        drop(f);
        for splits in [1, 2, 3, 7, 64] {
            let src = FileSource::new(path.to_str().unwrap(), splits).unwrap();
            let parts = src.partitions().unwrap();
            let mut got: Vec<String> = Vec::new();
            for p in &parts {
                got.extend(
                    read_all(&src, &[*p])
                        .into_iter()
                        .map(|r| String::from_utf8(r.value).unwrap()),
                );
            }
            got.sort();
            let mut want = lines.clone();
            want.sort();
            assert_eq!(got, want, "splits = {splits}");
        }
    }

    #[test]
    fn resumes_from_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n").unwrap();
        let src = FileSource::new(path.to_str().unwrap(), 1).unwrap();
        let mut r = src.open(&[0], &[]).unwrap();
        let mut out = Vec::new();
        r.poll(1, &mut out).unwrap();
        let pos = r.positions();
        assert_eq!(pos, vec![(0, 8)]);
        let rest = {
            let mut r2 = src.open(&[0], &pos).unwrap();
            let mut o = Vec::new();
            r2.poll(10, &mut o).unwrap();
            o
        };
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].value, b"{\"a\":2}");
    }
}

#[cfg(test)]
mod empty_tests {
    use super::*;

    #[test]
    fn an_empty_file_reports_its_splits_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.jsonl");
        std::fs::write(&path, "").unwrap();
        let src = FileSource::new(path.to_str().unwrap(), 3).unwrap();
        let mut r = src.open(&src.partitions().unwrap(), &[]).unwrap();
        let mut out = Vec::new();
        let st = r.poll(10, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(st.finished, vec![0, 1, 2]);
    }
}
