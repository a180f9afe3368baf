//! Small utilities every layer shares: stable hashing, the composite-key
//! separator, wall clocks, hive partition values, the dataflow time
//! (epoch × event-time stamp), the I/O runtime that synchronous timely
//! workers `block_on`, and per-job health.
//!
//! Nothing here knows about dataflows, records or connectors; it is the
//! bottom layer with [`crate::error`], [`crate::events`] and
//! [`crate::metrics`].

mod health;
mod io;
pub mod time;

pub use health::JobHealth;
pub use io::{block_on, io_runtime};
pub use time::Time;

/// A named crash point for the crash tests: with the `failpoints` feature
/// and `FAILPOINTS="{name}=return"` in the environment (the `fail` crate's
/// syntax: `"{name}=2*off->return"` crashes at the third pass), the process
/// aborts there, as abruptly as `kill -9`. Without the feature it is nothing.
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| {
            eprintln!("crash point {}: aborting", $name);
            std::process::abort()
        })
    };
}
pub(crate) use crash_point;

/// Joins the parts of a composite key (`player+champion` → `p1/Ahri`).
pub const KEY_SEPARATOR: char = '/';

/// A hash that is the same in every process, run and platform (FNV-1a with
/// a murmur3 finalizer): exchanges, key groups and file names use it, so
/// routing never depends on a per-process random seed.
#[inline]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    // Final avalanche (murmur3 fmix64): exchange routes on the low bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ceb9fe1a85ec53);
    h ^ (h >> 33)
}

/// The wall clock in UTC milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The wall clock in µs since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A value made safe for a hive partition directory (`key=value`): ASCII
/// letters, digits, `_`, `-` and `.` are kept, anything else becomes `_`.
pub fn partition_value(v: &str) -> String {
    let cleaned: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".into()
    } else {
        cleaned
    }
}
