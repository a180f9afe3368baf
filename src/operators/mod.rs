//! Dataflow operators, one per file, each exposed as an extension trait (or a
//! builder function) on timely streams. Every file opens with its semantics:
//! what it does with time, frontiers and state, and what it guarantees.
//!
//! * [`source`] — read, decode, validate, stamp with partition watermarks, dead-letter.
//! * [`window`] — event-time windows: the window operator, which runs the state machines of
//!   every feature set sharing a row stream, and the tumbling, sliding and session kinds.
//! * [`dedup`] — first record per business key, across history (RocksDB).
//! * [`live_state`] — running per-team state of live matches.
//! * [`score`] — batched candle inference of live state, hot reload, champion/challenger.
//! * [`pregame`] — prediction requests joined with players' current features, scored pre-game.
//! * [`route`] — splits `(index, record)` pairs into one stream per index.
//! * [`sink`] — drives a sink through write / pre-commit / commit.
//! * [`snapshot`] — materializes differential gold collections into lake partitions.

pub mod dedup;
pub mod epoch_gate;
pub mod live_state;
pub mod pregame;
pub mod replay_log;
pub mod route;
pub mod score;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod window;

pub use dedup::DedupByKey;
pub use live_state::LiveMatchState;
pub use route::RouteByIndex;
pub use score::ScoreLive;
pub use window::{session_core, sliding_core, tumbling_core, window_operator};
