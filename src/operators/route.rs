//! Routing decoded rows to their feature sets' window operators: rows are
//! exchanged between workers by key, then each row goes to every feature set
//! of its group (the sets that read exactly the same fields share one row
//! until here, so it crosses workers once however many sets read it).
//!
//! Time: each record keeps its timestamp; the outputs' frontiers follow the
//! input's. State: none. Failure: a group or output that does not exist is a
//! bug in the job that built the stream, and fails the job (reported to its
//! health).
//!
//! Records are moved straight into the outputs (no per-batch staging
//! vectors) and copied only for the extra sets of a group, which matters at a
//! million rows per second.

use crate::error::RiftError;
use crate::runtime::JobHealth;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::StreamVec;

/// Exchanges `(group, record)` pairs by key and splits them into one stream per output.
pub trait RouteGroups<'s, D: timely::ExchangeData + Clone> {
    /// Sends each record to the worker `key_hash` picks, then to every
    /// output listed for its group in `groups` (of `outputs` streams).
    fn route_groups(
        self,
        groups: Vec<Vec<usize>>,
        outputs: usize,
        key_hash: fn(&D) -> u64,
        health: JobHealth,
    ) -> Vec<StreamVec<'s, u64, D>>;
}

impl<'s, D: timely::ExchangeData + Clone> RouteGroups<'s, D> for StreamVec<'s, u64, (usize, D)> {
    fn route_groups(
        self,
        groups: Vec<Vec<usize>>,
        outputs: usize,
        key_hash: fn(&D) -> u64,
        health: JobHealth,
    ) -> Vec<StreamVec<'s, u64, D>> {
        let mut builder = OperatorBuilder::new("RouteGroups".to_string(), self.scope());
        let mut input = builder.new_input(self, Exchange::new(move |(_, d): &(usize, D)| key_hash(d)));
        let mut handles = Vec::with_capacity(outputs);
        let mut streams = Vec::with_capacity(outputs);
        for _ in 0..outputs {
            let (output, stream) = builder.new_output::<Vec<D>>();
            handles.push(OutputBuilder::<_, CapacityContainerBuilder<Vec<D>>>::from(output));
            streams.push(stream);
        }
        let report = move |what: String| health.report("RouteGroups", RiftError::Internal(what));
        builder.build(move |_capabilities| {
            move |_frontiers| {
                let mut active: Vec<_> = handles.iter_mut().map(|h| h.activate()).collect();
                input.for_each_stamp(|cap, data| {
                    let mut sessions: Vec<_> = active.iter_mut().map(|h| h.session(&cap)).collect();
                    for batch in data {
                        for (group, record) in batch.drain(..) {
                            let Some((&last, others)) = groups.get(group).and_then(|g| g.split_last()) else {
                                report(format!("group {group} has no outputs"));
                                continue;
                            };
                            for &o in others {
                                match sessions.get_mut(o) {
                                    Some(session) => session.give(record.clone()),
                                    None => report(format!("output {o} does not exist (of {outputs})")),
                                }
                            }
                            match sessions.get_mut(last) {
                                Some(session) => session.give(record),
                                None => report(format!("output {last} does not exist (of {outputs})")),
                            }
                        }
                    }
                });
            }
        });
        streams
    }
}
