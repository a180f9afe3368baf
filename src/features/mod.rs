//! Declarative feature sets: what `[feature_sets.NAME]` in `topology.toml`
//! compiles to, and the pure (dataflow-free) logic the window operators run.
//!
//! * [`FeatureSpec`] — a compiled feature set: key and time fields, window,
//!   aggregates (`count`, `sum`, `avg`, `min`, `max`, `last`,
//!   `count_distinct`) and derived features (expressions over aggregates).
//! * [`FeatureRow`] — one input row reduced to what the aggregates need: key,
//!   event time and the input field values. Rows are what workers exchange.
//! * [`Accumulator`] — the per-(key, window) state; it is mergeable and
//!   order-insensitive (`last` breaks event-time ties by value), so results
//!   never depend on arrival order or worker count.
//! * [`RowExtractor`] — JSON (bytes or a decoded value, with `explode` of a
//!   list field) to rows, rejecting records that lack a field with a reason.

mod expr;
mod extract;
mod spec;

pub use expr::Expr;
pub use extract::RowExtractor;
pub use spec::{
    stable_hash, Accumulator, AggFunc, AggregateSpec, FeatureRow, FeatureSpec, WindowResult, WindowSpec, KEY_SEPARATOR,
};
