//! RocksDB: the one place that opens databases for state, and checkpointed
//! operator state ([`checkpoint`]).
//!
//! Dedup keys, spilled window state and the embedded feature store live in
//! RocksDB databases under the state directory. A database is opened once
//! per process and shared by its worker threads ([`shared_db`]): RocksDB
//! allows one open handle per directory, and a second `open` of the same
//! path fails with a lock error instead of sharing it.
//!
//! Keys that order by time use [`time_key`]: big-endian with the sign bit
//! flipped, so byte order is numeric order for negative times too.

pub mod checkpoint;
pub mod keyed;

pub use checkpoint::{key_group, owns, JobState, OperatorState, KEY_GROUPS};
pub use keyed::KeyedState;

use crate::error::{Result, RiftError};
use rocksdb::{Options, DB};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The databases this process opened, by canonical path.
static DBS: OnceLock<Mutex<HashMap<PathBuf, Arc<DB>>>> = OnceLock::new();

/// Stops every open database's background work (flushes, compactions) and
/// waits for it. Call before the process exits: the databases live in a
/// process-wide registry and are never dropped, and a RocksDB background
/// thread still running while the process tears down its C++ statics can
/// crash the exit (SIGSEGV after a successful run). Written data is
/// already durable (write-ahead log); nothing is lost by stopping.
pub fn stop_background_work() {
    let Some(registry) = DBS.get() else { return };
    // A poisoned or busy registry (a panicking thread) must not block an exit.
    let Ok(dbs) = registry.try_lock() else { return };
    for db in dbs.values() {
        db.cancel_all_background_work(true);
    }
}

/// Bytes of one memtable of a state database.
const WRITE_BUFFER_BYTES: usize = 16 << 20;

/// Opens (once per process) the RocksDB database at `path`.
pub fn shared_db(path: &Path) -> Result<Arc<DB>> {
    let mut dbs = DBS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .map_err(|_| RiftError::Internal("db registry poisoned".into()))?;
    std::fs::create_dir_all(path).map_err(|e| RiftError::io(path, e))?;
    let canonical = path.canonicalize().map_err(|e| RiftError::io(path, e))?;
    if let Some(db) = dbs.get(&canonical) {
        return Ok(db.clone());
    }
    let mut opts = Options::default();
    opts.create_if_missing(true);
    // Memtables bounded per database (RocksDB's default, 64 MiB × 2, is
    // reached only by long runs and made peak RSS grow with run length).
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    opts.set_max_write_buffer_number(2);
    let db = Arc::new(DB::open(&opts, &canonical)?);
    dbs.insert(canonical, db.clone());
    Ok(db)
}

/// A time (or any `i64`) as 8 bytes whose byte order is numeric order.
#[inline]
pub fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [i64::MIN, -86_400_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<[u8; 8]> = times.iter().map(|t| time_key(*t)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn one_handle_per_directory_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let a = shared_db(dir.path()).unwrap();
        let b = shared_db(&dir.path().join(".")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
