//! The `lake` job: bronze and silver tables from the raw topics.
//!
//! ```text
//! source ──raw──────────────────────────────► bronze/{topic}        (every record as read)
//!    │
//!    ├──decoded, valid──► dedup by business key ──► silver/{table}   (+ silver/match_participants)
//!    │                                               └─► (matches) differential reduce/join ─► gold/{champion_stats, player_daily, leaderboard}
//!    │
//!    └──dead letters──────────────────────────► dlq sink
//! ```

use super::{Job, JobContext};
use crate::codec::EventDecoder;
use crate::config::RecordSchema;
use crate::error::{Result, RiftError};
use crate::events::BronzeRecord;
use crate::events::{DeadLetter, Event, GameEvent, Match, PlayerStats, PredictionRequest};
use crate::lake::tables::{LakeRow, ParticipantRow};
use crate::operators::dedup::{DedupByKey, SeenKeys};
use crate::operators::replay_log::replay_log;
use crate::operators::source::read_source;
use crate::util::Time;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, StreamVec};

/// Bronze and silver from `sources` into the lake sink `lake`.
#[derive(Debug, Clone)]
pub struct LakeJob {
    /// Sources ingested.
    pub sources: Vec<String>,
    /// Lake sink.
    pub lake: String,
    /// Dead-letter sink.
    pub dlq: Option<String>,
}

type Branches<'s, E> = (
    StreamVec<'s, Time, BronzeRecord>,
    StreamVec<'s, Time, DeadLetter>,
    StreamVec<'s, Time, E>,
);

fn silver<'s, E>(scope: Scope<'s, Time>, ctx: &JobContext, source: &str) -> Result<Branches<'s, E>>
where
    E: Event + LakeRow + timely::ExchangeData,
{
    let settings = ctx.source(source, true)?;
    let streams = read_source(
        scope,
        settings,
        EventDecoder::<E>::new(ctx.format(source)?),
        ctx.source_metrics(source),
        ctx.health.clone(),
    );
    let table = E::TOPIC.short_name();
    let seen = SeenKeys::new(ctx.operator_state(&format!("dedup/{table}")));
    let duplicates = ctx.metrics.duplicates(&ctx.job, table);
    let events = streams
        .records
        .map(|a| a.event)
        .dedup_by_key(seen, duplicates, ctx.health.clone());
    Ok((streams.raw, streams.dead_letters, events))
}

impl Job for LakeJob {
    fn install<'s>(&self, scope: Scope<'s, Time>, ctx: &JobContext) -> Result<()> {
        let mut bronze = Vec::new();
        let mut dead = Vec::new();
        for source in &self.sources {
            let schema = ctx.topology.sources.get(source).and_then(|s| s.schema());
            match schema {
                Some(RecordSchema::Matches) => {
                    let (raw, dlq, matches) = silver::<Match>(scope, ctx, source)?;
                    let participants = matches.clone().flat_map(|m| ParticipantRow::of(&m).collect::<Vec<_>>());
                    // Gold's differential state is rebuilt after a restart from its logged input.
                    let gold_input = replay_log(
                        matches.clone(),
                        ctx.operator_state(&format!("gold/{source}")),
                        |m: &Match| m.business_key(),
                        &ctx.probes.checkpointed,
                        ctx.health.clone(),
                    );
                    super::gold::build_gold(
                        gold_input,
                        ctx.lake(&self.lake)?,
                        ctx.health.clone(),
                        // Gold holds `GOLD_EPOCH`: it must not hold back the job's commits.
                        Default::default(),
                    );
                    ctx.write(matches, &self.lake, ctx.lake_writer::<Match>(&self.lake, "matches")?);
                    ctx.write(
                        participants,
                        &self.lake,
                        ctx.lake_writer::<ParticipantRow>(&self.lake, "participants")?,
                    );
                    bronze.push(raw);
                    dead.push(dlq);
                }
                Some(RecordSchema::GameEvents) => {
                    let (raw, dlq, events) = silver::<GameEvent>(scope, ctx, source)?;
                    ctx.write(
                        events,
                        &self.lake,
                        ctx.lake_writer::<GameEvent>(&self.lake, "game_events")?,
                    );
                    bronze.push(raw);
                    dead.push(dlq);
                }
                Some(RecordSchema::PlayerStats) => {
                    let (raw, dlq, stats) = silver::<PlayerStats>(scope, ctx, source)?;
                    ctx.write(
                        stats,
                        &self.lake,
                        ctx.lake_writer::<PlayerStats>(&self.lake, "player_stats")?,
                    );
                    bronze.push(raw);
                    dead.push(dlq);
                }
                Some(RecordSchema::PredictionRequests) => {
                    let (raw, dlq, requests) = silver::<PredictionRequest>(scope, ctx, source)?;
                    ctx.write(
                        requests,
                        &self.lake,
                        ctx.lake_writer::<PredictionRequest>(&self.lake, "requests")?,
                    );
                    bronze.push(raw);
                    dead.push(dlq);
                }
                other => {
                    return Err(RiftError::config(
                        &ctx.topology.file,
                        format!("jobs.{}.sources", ctx.job),
                        format!("source `{source}` has schema {other:?}; the lake job ingests SPEC's input topics"),
                    ))
                }
            }
        }
        let bronze = scope.concatenate(bronze);
        ctx.write(
            bronze,
            &self.lake,
            ctx.lake_writer::<BronzeRecord>(&self.lake, "bronze")?,
        );
        ctx.dead_letters(scope.concatenate(dead), self.dlq.as_deref())?;
        Ok(())
    }
}
