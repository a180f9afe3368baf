//! A replay log: keeps every record of a stream in the job's checkpoint
//! state, and after a restart replays what the restored checkpoint holds.
//!
//! It is how state that lives inside differential dataflow operators (the
//! gold layer's reductions and joins) survives a restart: rather than
//! snapshot arrangements, the job keeps their input, and rebuilding them
//! from it gives exactly the state they had.
//!
//! # Time
//! Records pass through at their own time. A record of epoch `N` is staged
//! with `N` before the operator's output passes `N` (its output reports to
//! the job's checkpoint probe), so checkpoint `N` holds it. Replayed
//! records keep their stamp and come in the run's first epoch, before any
//! new record.
//!
//! # State
//! One entry per record, under `key(record)` (which must be unique: the
//! log follows deduplication), in the record's key group.

use crate::error::RiftError;
use crate::state::OperatorState;
use crate::util::stable_hash;
use crate::util::time::{message_time, time};
use crate::util::{JobHealth, Time};
use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, StreamVec};

const LOG: &[u8] = b"l";

/// Logs `stream` and replays it after a restore (see the module docs).
pub fn replay_log<'s, D>(
    stream: StreamVec<'s, Time, D>,
    state: OperatorState,
    key: impl Fn(&D) -> String + 'static,
    checkpointed: &ProbeHandle<Time>,
    health: JobHealth,
) -> StreamVec<'s, Time, D>
where
    D: timely::ExchangeData + Serialize + DeserializeOwned,
{
    let (worker, peers) = (stream.scope().index(), stream.scope().peers());
    let logged =
        stream.unary_frontier::<CapacityContainerBuilder<Vec<D>>, _, _, _>(Pipeline, "ReplayLog", move |cap, _info| {
            // What the restored checkpoint holds, emitted at the first activation.
            let mut replay = Some(cap);
            move |(input, _frontier), output| {
                if let Some(cap) = replay.take() {
                    let first = state.first_epoch();
                    match state.restore(LOG, worker, peers) {
                        Ok(entries) => {
                            for (_, bytes) in entries {
                                match bincode::deserialize::<(u64, D)>(&bytes) {
                                    Ok((stamp, record)) => {
                                        output.session(&cap.delayed(&time(first, stamp))).give(record)
                                    }
                                    Err(e) => health
                                        .report("replay log", RiftError::Internal(format!("a logged record: {e}"))),
                                }
                            }
                        }
                        Err(e) => health.report("replay log", e),
                    }
                }
                input.for_each_stamp(|stamp, data| {
                    let Some(at) = message_time(stamp.stamp().iter()) else {
                        return;
                    };
                    let mut changes = Vec::new();
                    let mut session = output.session(&stamp);
                    for batch in data {
                        for record in batch.drain(..) {
                            let k = key(&record);
                            match bincode::serialize(&(at.inner, &record)) {
                                Ok(bytes) => {
                                    changes.push((state.key(LOG, stable_hash(k.as_bytes()), k.as_bytes()), Some(bytes)))
                                }
                                Err(e) => {
                                    health.report("replay log", RiftError::Internal(format!("logging a record: {e}")))
                                }
                            }
                            session.give(record);
                        }
                    }
                    if let Err(e) = state.stage(at.outer, changes) {
                        health.report("replay log", e);
                    }
                });
            }
        });
    logged.probe_with(checkpointed)
}
