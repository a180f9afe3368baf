//! Event-time windows: the window operator and the state machines it runs.
//!
//! * [`operator`] — one timely operator per group of feature sets reading the
//!   same rows: exchanges rows by key and runs every set's state machine;
//! * [`core`] — the state machine contract ([`WindowCore`]), late rows, and
//!   what a state machine needs from its job;
//! * [`aligned`] — tumbling and sliding state: panes ([`panes`]), interned
//!   keys ([`interner`]) and the RocksDB spill ([`spill`]);
//! * [`tumbling`], [`sliding`], [`session`] — the three window kinds.
//!
//! What follows is the semantics of aligned (tumbling and sliding) windows;
//! session windows are described in [`session`].
//!
//! # Time
//! Rows arrive stamped with a dataflow time `t`: the (quantized) watermark of
//! the source partition that read them, which is never later than the row's
//! own event time unless the row broke its partition's out-of-orderness bound.
//! The input frontier `F` is the job's watermark (the minimum over
//! partitions). Rows are buffered by `t` and applied in `t` order once `F`
//! passes `t`, interleaved with firings, so which windows fire, when, with
//! which rows and revisions depends only on the rows and their stamps —
//! never on scheduling, arrival order or worker count (for the rounding of
//! fractional sums, see State). A batch whose rows are all stamped before
//! the end of every window holding them (the usual case: within the
//! out-of-orderness bound) is applied on arrival instead: none of those
//! windows can fire before `F` passes `t`, so the outcome is the same.
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
//! Panes, not windows: time is tiled by panes of `gcd(size, slide)` ms, and
//! each key keeps one accumulator per pane it has rows in, so a row updates
//! exactly one accumulator however many sliding windows hold it. A window's
//! result merges its `size / pane` panes when it fires. Keys are interned
//! (reference-counted per pane) and each window firing looks only at the
//! keys listed under its panes. A pane is purged once the last window
//! holding it is final (`F ≥ e + allowed_lateness`); a row for a purged
//! window is late by its stamp alone, so purging changes nothing. A row that
//! is too late for some of its windows but not all still updates its pane:
//! the windows it is too late for are final and never read the pane again.
//! With allowed lateness, each key also keeps how many times each of its
//! windows has fired (the next revision).
//!
//! Memory is a write-back cache over RocksDB: when more than
//! `state_memory_entries` pane accumulators are held, all of them (and the
//! firing counts) are merged into RocksDB, keyed by (operator, pane start,
//! key), and memory starts over. A window's spilled panes are folded back
//! when it fires, a key's when a late row re-fires it, and purging deletes
//! the key ranges of final panes. So memory stays bounded however many keys
//! are active, and results are identical with or without spilling.
//!
//! "Identical" is exact for counts, minimums, maximums, `last` and distinct
//! counts, and for sums and averages of integer-valued fields (exact in
//! `f64` below 2^53). Sums of fractional values are added in an order that
//! depends on arrival within a stamp, on panes and on spills, so they can
//! differ in the last bits from one run or worker count to another.

pub mod aligned;
pub mod checkpoint;
pub mod core;
pub mod interner;
pub mod operator;
pub mod panes;
pub mod session;
pub mod sliding;
pub mod spill;
pub mod tumbling;

pub use aligned::AlignedWindowState;
pub use core::{LateRow, WindowCore, WindowEnv};
pub use operator::window_operator;
pub use session::{session_core, SessionState};
pub use sliding::sliding_core;
pub use spill::SpillConfig;
pub use tumbling::tumbling_core;
