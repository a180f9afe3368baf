//! Typed, validated configuration: the topology file.
//!
//! A topology names *sources* (where records come from), *sinks* (where they
//! go), *feature sets* (declarative windowed aggregations) and *jobs* (which
//! dataflows run, wired to sources and sinks by name). It is read in three
//! steps, each failing with an error that names the file and the key:
//!
//! 1. parse the TOML;
//! 2. expand `${VAR}` and `${VAR:-default}` in every string value from the
//!    environment (comments are never expanded);
//! 3. deserialize into the types below (`deny_unknown_fields`: a typo is an
//!    error, not a silently ignored key) and [`Topology::validate`] the
//!    cross-references and values.

mod expand;
mod topology;

pub use expand::expand_env;
pub use topology::*;
