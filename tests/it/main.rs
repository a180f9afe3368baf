//! riftstream's integration tests: one test binary (one link of the
//! dependency set), one module per area.

mod cli;
mod cluster;
mod delta;
mod generator;
mod gold;
mod jobs;
mod kafka;
mod kafka_exactly_once;
mod lake_tools;
mod layering;
mod models;
mod outage;
mod pregame;
mod recovery;
mod redis;
mod registry_stub;
mod replay;
mod service;
mod support;
mod validation;
mod windows_oracle;
