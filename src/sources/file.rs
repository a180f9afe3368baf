//! The `file` source: JSON lines from a file or a directory of files.
//!
//! Each file is dealt into a fixed number of partitions line by line: line
//! `n` (counting every line, blank ones included) belongs to partition
//! `n % splits` of its file. Every partition therefore spans the file's
//! whole time range, so partition watermarks advance together and windows
//! fire as the file is read (memory stays bounded even for a time-ordered
//! file), and the split count — fixed by configuration, not by the number
//! of workers — makes results independent of the worker count. A worker
//! scans each file once and keeps the lines of its partitions. A partition's
//! position is the byte offset of its next line, which is all a restart
//! needs. Blank lines are skipped; the source is always bounded.
//!
//! A record's timestamp is its file's modification time, the analog of a
//! broker's log-append time: bronze partitions a file by when it was
//! written, not by the event times inside it (a replay of years of history
//! would otherwise spread over one partition per hour).

use super::{PollStatus, Source, SourceReader};
use crate::error::{Result, RiftError};
use crate::events::RawRecord;
use crate::util::now_us;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// JSON-lines files, each dealt into `splits` partitions.
#[derive(Debug, Clone)]
pub struct FileSource {
    name: String,
    files: Vec<PathBuf>,
    splits: u32,
}

impl FileSource {
    /// A source over `path` (a file, or every `*.json`/`*.jsonl` file of a directory).
    pub fn new(path: &str, splits: usize) -> Result<FileSource> {
        let p = Path::new(path);
        let meta = std::fs::metadata(p).map_err(|e| RiftError::io(p, e))?;
        let files = if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| RiftError::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|x| x.to_str()), Some("json" | "jsonl")))
                .collect();
            entries.sort();
            entries
        } else {
            vec![p.to_path_buf()]
        };
        Ok(FileSource {
            name: path.to_string(),
            files,
            splits: splits.max(1) as u32,
        })
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
        let mut scanners = Vec::new();
        for (f, path) in self.files.iter().enumerate() {
            let first = f as u32 * self.splits;
            let owned: Vec<u32> = partitions
                .iter()
                .copied()
                .filter(|p| (first..first + self.splits).contains(p))
                .collect();
            if owned.is_empty() {
                continue;
            }
            scanners.push(Scanner::open(path, first, self.splits, owned, start)?);
        }
        Ok(Box::new(FileReader {
            partitions: partitions.to_vec(),
            scanners,
            current: 0,
            pending_finished: Vec::new(),
        }))
    }

    fn is_bounded(&self) -> bool {
        true
    }
}

/// Reads one file, keeping the lines of the partitions it owns.
struct Scanner {
    path: PathBuf,
    reader: BufReader<File>,
    cursor: Cursor,
    done: bool,
    /// A line that runs past the read buffer, gathered.
    line: Vec<u8>,
    /// The file's modification time, UTC ms: every record's timestamp.
    modified_ms: Option<i64>,
}

impl Scanner {
    fn open(path: &Path, first: u32, splits: u32, owned: Vec<u32>, start: &[(u32, u64)]) -> Result<Scanner> {
        let mut file = File::open(path).map_err(|e| RiftError::io(path, e))?;
        // Resume from the earliest checkpointed partition position; lines are
        // re-dealt from there, skipping those a partition already consumed.
        let owned: Vec<(u32, u64)> = owned
            .into_iter()
            .map(|p| (p, start.iter().find(|(q, _)| *q == p).map(|(_, o)| *o).unwrap_or(0)))
            .collect();
        let resume = owned.iter().map(|(_, o)| *o).min().unwrap_or(0);
        let mut pos = 0;
        let mut line_no = 0;
        if resume > 0 {
            // Count lines up to `resume` to recover the dealing position.
            let mut reader = BufReader::with_capacity(1 << 20, &mut file);
            let mut buf = Vec::new();
            while pos < resume {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).map_err(|e| RiftError::io(path, e))?;
                if n == 0 {
                    break;
                }
                pos += n as u64;
                line_no += 1;
            }
            file.seek(SeekFrom::Start(pos)).map_err(|e| RiftError::io(path, e))?;
        }
        let modified_ms = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        Ok(Scanner {
            modified_ms,
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            cursor: Cursor {
                first,
                splits,
                owned,
                pos,
                line_no,
            },
            done: false,
            line: Vec::with_capacity(256),
        })
    }

    /// Reads up to `max` owned records; true at end of file.
    fn poll(&mut self, max: usize, received_at_us: i64, out: &mut Vec<RawRecord>) -> Result<bool> {
        let mut read = 0;
        while read < max {
            let buf = self.reader.fill_buf().map_err(|e| RiftError::io(&self.path, e))?;
            if buf.is_empty() {
                // End of file: a last line without a newline is still a line.
                if !self.line.is_empty() {
                    read += self.cursor.deal(&self.line, self.modified_ms, received_at_us, out) as usize;
                    self.line.clear();
                    continue;
                }
                self.done = true;
                let end = self.cursor.pos;
                for (_, o) in self.cursor.owned.iter_mut() {
                    *o = end;
                }
                return Ok(true);
            }
            match memchr::memchr(b'\n', buf) {
                Some(end) if self.line.is_empty() => {
                    // The common case: the whole line is in the buffer; it is
                    // copied only if this reader keeps it.
                    let taken = self.cursor.deal(&buf[..=end], self.modified_ms, received_at_us, out);
                    read += taken as usize;
                    self.reader.consume(end + 1);
                }
                Some(end) => {
                    // The end of a gathered line.
                    self.line.extend_from_slice(&buf[..=end]);
                    self.reader.consume(end + 1);
                    read += self.cursor.deal(&self.line, self.modified_ms, received_at_us, out) as usize;
                    self.line.clear();
                }
                None => {
                    // A line running past the buffer: gather it.
                    let n = buf.len();
                    self.line.extend_from_slice(buf);
                    self.reader.consume(n);
                }
            }
        }
        Ok(false)
    }
}

/// Where a scanner is in its file and which partitions it keeps.
struct Cursor {
    /// Partition id of residue 0 of this file.
    first: u32,
    splits: u32,
    /// Owned partitions, with the byte offset of their next line.
    owned: Vec<(u32, u64)>,
    /// Byte offset and line number of the next line to read.
    pos: u64,
    line_no: u64,
}

impl Cursor {
    /// Deals the next line (with its newline, if any) to its partition;
    /// true if it became a record of an owned partition.
    #[inline]
    fn deal(&mut self, line: &[u8], timestamp: Option<i64>, received_at_us: i64, out: &mut Vec<RawRecord>) -> bool {
        let offset = self.pos;
        let partition = self.first + (self.line_no % self.splits as u64) as u32;
        self.pos += line.len() as u64;
        self.line_no += 1;
        let Some(slot) = self.owned.iter_mut().find(|(p, _)| *p == partition) else {
            return false;
        };
        if offset < slot.1 {
            return false; // consumed before the restart
        }
        slot.1 = self.pos;
        let text = trim_line(line);
        if text.is_empty() {
            return false;
        }
        out.push(RawRecord {
            partition,
            offset,
            key: None,
            value: text.to_vec(),
            timestamp,
            received_at_us,
        });
        true
    }
}

struct FileReader {
    partitions: Vec<u32>,
    scanners: Vec<Scanner>,
    /// Round-robin position over files.
    current: usize,
    pending_finished: Vec<u32>,
}

impl SourceReader for FileReader {
    fn poll(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<PollStatus> {
        let mut status = PollStatus {
            finished: std::mem::take(&mut self.pending_finished),
            idle: false,
        };
        let received_at_us = now_us();
        let n = self.scanners.len();
        for _ in 0..n {
            let idx = self.current % n;
            self.current = self.current.wrapping_add(1);
            let scanner = &mut self.scanners[idx];
            if scanner.done {
                continue;
            }
            if scanner.poll(max, received_at_us, out)? {
                status.finished.extend(scanner.cursor.owned.iter().map(|(p, _)| *p));
            }
            return Ok(status);
        }
        status.idle = status.finished.is_empty();
        Ok(status)
    }

    fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    fn positions(&self) -> Vec<(u32, u64)> {
        self.scanners
            .iter()
            .flat_map(|s| s.cursor.owned.iter().copied())
            .collect()
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
    fn lines_across_read_buffer_boundaries_come_whole_with_their_offsets() {
        // Over 3 MiB: lines of every length cross the 1 MiB read buffer, one
        // line is longer than the buffer, and the last has no newline.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let mut lines: Vec<String> = (0..20_000)
            .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat((i * 7919) % 151)))
            .collect();
        lines.insert(7_000, format!("{{\"long\":\"{}\"}}", "y".repeat(1_500_000)));
        let text = lines.join("\n");
        std::fs::write(&path, &text).unwrap();
        let src = FileSource::new(path.to_str().unwrap(), 3).unwrap();
        let mut got: Vec<(u64, Vec<u8>)> = Vec::new();
        for p in src.partitions().unwrap() {
            got.extend(read_all(&src, &[p]).into_iter().map(|r| (r.offset, r.value)));
        }
        got.sort();
        let mut offset = 0u64;
        let want: Vec<(u64, Vec<u8>)> = lines
            .iter()
            .map(|l| {
                let at = offset;
                offset += l.len() as u64 + 1;
                (at, l.as_bytes().to_vec())
            })
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "every line once, whole, at its byte offset");
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
        drop(r);
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
mod more_tests {
    use super::*;

    #[test]
    fn an_empty_file_reports_its_partitions_finished() {
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

    #[test]
    fn lines_are_dealt_round_robin_and_resume_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let text: String = (0..10).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let src = FileSource::new(path.to_str().unwrap(), 3).unwrap();
        let mut r = src.open(&[1], &[]).unwrap();
        let mut out = Vec::new();
        r.poll(2, &mut out).unwrap();
        let got: Vec<String> = out
            .iter()
            .map(|r| String::from_utf8(r.value.clone()).unwrap())
            .collect();
        assert_eq!(got, vec!["{\"i\":1}", "{\"i\":4}"]);
        let pos = r.positions();
        let mut r2 = src.open(&[1], &pos).unwrap();
        let mut rest = Vec::new();
        while r2.poll(10, &mut rest).unwrap().finished.is_empty() {}
        let got: Vec<String> = rest
            .iter()
            .map(|r| String::from_utf8(r.value.clone()).unwrap())
            .collect();
        assert_eq!(got, vec!["{\"i\":7}"]);
    }
}
