//! Routing a stream of `(index, record)` pairs into one stream per index,
//! the way a job sends each group of decoded rows to the window operator of
//! the feature sets that read it. Pairs keep their index, so nothing is
//! unpacked or repacked on the way.
//!
//! Time: each record keeps its timestamp; the outputs' frontiers follow the
//! input's. State: none. Failure: an index without an output is a bug in the
//! job that built the stream, and fails the job (reported to its health).
//!
//! Unlike timely's `partition`, records are moved straight into the outputs
//! (one copy, no per-batch staging vectors), which matters at a million rows
//! per second.

use crate::error::RiftError;
use crate::util::{JobHealth, Time};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::StreamVec;

/// Splits `(index, record)` pairs into `outputs` streams by index.
pub trait RouteByIndex<'s, D: timely::ExchangeData> {
    /// Stream `i` of the result carries the pairs of index `i`.
    fn route_by_index(self, outputs: usize, health: JobHealth) -> Vec<StreamVec<'s, Time, (usize, D)>>;
}

impl<'s, D: timely::ExchangeData> RouteByIndex<'s, D> for StreamVec<'s, Time, (usize, D)> {
    fn route_by_index(self, outputs: usize, health: JobHealth) -> Vec<StreamVec<'s, Time, (usize, D)>> {
        let mut builder = OperatorBuilder::new("RouteByIndex".to_string(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let mut handles = Vec::with_capacity(outputs);
        let mut streams = Vec::with_capacity(outputs);
        for _ in 0..outputs {
            let (output, stream) = builder.new_output::<Vec<(usize, D)>>();
            handles.push(OutputBuilder::<_, CapacityContainerBuilder<Vec<(usize, D)>>>::from(
                output,
            ));
            streams.push(stream);
        }
        builder.build(move |_capabilities| {
            move |_frontiers| {
                let mut active: Vec<_> = handles.iter_mut().map(|h| h.activate()).collect();
                input.for_each_stamp(|cap, data| {
                    let mut sessions: Vec<_> = active.iter_mut().map(|h| h.session(&cap)).collect();
                    for batch in data {
                        for pair in batch.drain(..) {
                            match sessions.get_mut(pair.0) {
                                Some(session) => session.give(pair),
                                None => health.report(
                                    "RouteByIndex",
                                    RiftError::Internal(format!("index {} has no output (of {outputs})", pair.0)),
                                ),
                            }
                        }
                    }
                });
            }
        });
        streams
    }
}
