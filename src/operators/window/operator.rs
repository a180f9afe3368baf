//! The window operator: one timely operator running the window state
//! machines of every feature set that reads one row stream.

use super::core::{LateRow, WindowCore};
use crate::features::{FeatureRow, WindowResult};
use crate::util::JobHealth;

/// Runs the window state machines of the feature sets that read one row
/// stream as one timely operator: rows (tagged with their group) are
/// exchanged by [`FeatureRow::key_hash`], so the windows of a key are on one
/// worker; each state machine reads every row in place (a row is cloned
/// only where a state machine keeps rows that others read too); results
/// and late rows of all of them are emitted at the operator's capability,
/// which follows the input frontier.
pub fn window_operator<'s>(
    rows: timely::dataflow::StreamVec<'s, u64, (usize, FeatureRow)>,
    name: &str,
    mut cores: Vec<Box<dyn WindowCore>>,
    health: JobHealth,
) -> (
    timely::dataflow::StreamVec<'s, u64, WindowResult>,
    timely::dataflow::StreamVec<'s, u64, LateRow>,
) {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
    use timely::dataflow::operators::generic::OutputBuilder;

    let mut builder = OperatorBuilder::new(name.to_string(), rows.scope());
    let mut input = builder.new_input(rows, Exchange::new(|(_, row): &(usize, FeatureRow)| row.key_hash()));
    let (results_out, results) = builder.new_output::<Vec<WindowResult>>();
    let (late_out, late_rows) = builder.new_output::<Vec<LateRow>>();
    let mut results_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<WindowResult>>>::from(results_out);
    let mut late_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<LateRow>>>::from(late_out);
    builder.build(move |capabilities| {
        // One capability per output, both following the input frontier.
        let mut capabilities = Some(capabilities);
        let mut fired = Vec::new();
        let mut late = Vec::new();
        move |frontiers| {
            input.for_each_stamp(|stamp, data| {
                let t = stamp.least().copied().unwrap_or(0);
                for batch in data {
                    // Every state machine but the last reads the batch in
                    // place; the last takes it, so nothing is cloned for it.
                    if let Some((last, others)) = cores.split_last_mut() {
                        for core in others {
                            core.push_shared(t, batch);
                        }
                        last.push_owned(t, std::mem::take(batch));
                    }
                }
            });
            let f = frontiers[0].frontier().iter().min().copied();
            for core in cores.iter_mut() {
                core.advance(f, &mut fired, &mut late);
                if let Some(e) = core.take_error() {
                    health.report("window state", e);
                }
            }
            let Some(caps) = capabilities.as_mut() else {
                return;
            };
            // Whole vectors are handed on, not copied record by record.
            // A given container may come back with contents: clear it before reuse.
            if !fired.is_empty() {
                let handed = fired.len();
                results_out.activate().session(&caps[0]).give_container(&mut fired);
                fired.clear();
                // What comes back may have no capacity: size it like the last
                // batch, instead of regrowing (and copying) it step by step.
                fired.reserve(handed.min(1 << 16));
            }
            if !late.is_empty() {
                late_out.activate().session(&caps[1]).give_container(&mut late);
                late.clear();
            }
            match f {
                Some(t) => {
                    for cap in caps.iter_mut() {
                        if t > *cap.time() {
                            cap.downgrade(&t);
                        }
                    }
                }
                None => capabilities = None,
            }
        }
    });
    (results, late_rows)
}
