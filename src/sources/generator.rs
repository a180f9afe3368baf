//! The `generator` source: the simulator of ranked play as a source.
//!
//! Every worker runs the same deterministic simulation and keeps the records
//! of its partitions (`stable_hash(key) % PARTITIONS`), so the union over
//! workers is exactly the simulation's output, in delivery order per
//! partition, whatever the worker count. Records are encoded as JSON and go
//! through the same decoding and validation as any other source.

use super::{PollStatus, Source, SourceReader};
use crate::config::RecordSchema;
use crate::error::{Result, RiftError};
use crate::events::Event;
use crate::events::RawRecord;
use crate::generator::{simulate, GeneratorConfig};
use crate::util::now_us;
use crate::util::stable_hash as spec_hash;
use std::collections::VecDeque;

/// A partition's queue: (partition, next offset, records left as (key, value)).
type PartitionQueue = (u32, u64, VecDeque<(String, Vec<u8>)>);

/// Number of generator partitions.
pub const PARTITIONS: u32 = 4;

/// The simulator, yielding one of its topics.
#[derive(Debug, Clone)]
pub struct GeneratorSource {
    cfg: GeneratorConfig,
    schema: RecordSchema,
}

impl GeneratorSource {
    /// A generator source for `schema`'s records.
    pub fn new(cfg: GeneratorConfig, schema: RecordSchema) -> Result<GeneratorSource> {
        if schema.topic().is_none() || schema == RecordSchema::ModelUpdates {
            return Err(RiftError::Usage(format!(
                "the generator does not produce {schema:?} records"
            )));
        }
        Ok(GeneratorSource { cfg, schema })
    }
}

impl Source for GeneratorSource {
    fn topic(&self) -> &str {
        self.schema.topic().map(|t| t.kafka_name()).unwrap_or("generator")
    }

    fn partitions(&self) -> Result<Vec<u32>> {
        Ok((0..PARTITIONS).collect())
    }

    fn open(&self, partitions: &[u32], start: &[(u32, u64)]) -> Result<Box<dyn SourceReader>> {
        let sim = simulate(&self.cfg);
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        fn encode<E: Event>(items: &[E], out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
            for e in items {
                let bytes = serde_json::to_vec(e).map_err(|e| RiftError::Internal(e.to_string()))?;
                out.push((e.key().to_string(), bytes));
            }
            Ok(())
        }
        match self.schema {
            RecordSchema::Matches => encode(&sim.matches, &mut records)?,
            RecordSchema::PlayerStats => encode(&sim.player_stats, &mut records)?,
            RecordSchema::GameEvents => encode(&sim.game_events, &mut records)?,
            RecordSchema::PredictionRequests => encode(&sim.requests, &mut records)?,
            _ => {}
        }
        let mut queues: Vec<PartitionQueue> = partitions.iter().map(|p| (*p, 0u64, VecDeque::new())).collect();
        for (key, value) in records {
            let p = (spec_hash(key.as_bytes()) % PARTITIONS as u64) as u32;
            if let Some(q) = queues.iter_mut().find(|(qp, _, _)| *qp == p) {
                q.2.push_back((key, value));
            }
        }
        // Resume: skip records before the checkpointed offset.
        for (p, offset, queue) in queues.iter_mut() {
            if let Some((_, o)) = start.iter().find(|(q, _)| q == p) {
                let skip = (*o as usize).min(queue.len());
                queue.drain(..skip);
                *offset = skip as u64;
            }
        }
        Ok(Box::new(GeneratorReader {
            partitions: partitions.to_vec(),
            queues,
            finished_reported: false,
        }))
    }

    fn is_bounded(&self) -> bool {
        true
    }
}

struct GeneratorReader {
    partitions: Vec<u32>,
    queues: Vec<PartitionQueue>,
    finished_reported: bool,
}

impl SourceReader for GeneratorReader {
    fn poll(&mut self, max: usize, out: &mut Vec<RawRecord>) -> Result<PollStatus> {
        let mut status = PollStatus::default();
        let received_at_us = now_us();
        let per = (max / self.queues.len().max(1)).max(1);
        let mut any = false;
        for (p, offset, queue) in self.queues.iter_mut() {
            for _ in 0..per {
                let Some((key, value)) = queue.pop_front() else {
                    break;
                };
                out.push(RawRecord {
                    partition: *p,
                    offset: *offset,
                    key: Some(key.into_bytes()),
                    value,
                    timestamp: None,
                    received_at_us,
                });
                *offset += 1;
                any = true;
            }
        }
        if self.queues.iter().all(|(_, _, q)| q.is_empty()) && !self.finished_reported {
            self.finished_reported = true;
            status.finished = self.partitions.clone();
        }
        status.idle = !any;
        Ok(status)
    }

    fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    fn positions(&self) -> Vec<(u32, u64)> {
        self.queues.iter().map(|(p, o, _)| (*p, *o)).collect()
    }
}
