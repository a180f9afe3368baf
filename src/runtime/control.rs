//! The control dataflow: the one path by which jobs are installed, stopped
//! and reported on in a running cluster.
//!
//! Every worker of every process builds it first, and it lives as long as
//! the run. Worker 0 of process 0 (the *sequencer*) numbers [`Command`]s
//! and sends them to every worker; each worker applies them strictly in
//! sequence order, so every worker installs and drops dataflows in the
//! same order (timely's requirement: dataflows are matched across workers
//! by the order they are built). Any worker can broadcast a [`Notice`]: a
//! job failed there (every worker drops it), or a stop of the whole
//! cluster. Each process reports its jobs' [`JobStats`] to the sequencer,
//! which serves them on the admin API.
//!
//! # Failure
//! Commands are data in a timely dataflow: they are delivered exactly once
//! to every worker while the cluster is up. When a process dies the cluster
//! stops (see `runtime::cluster`); on restart the sequencer issues the job
//! catalog's jobs again and they restore from their checkpoints.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::core::Exchange;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};

/// A job as installed: the topology text that defines it (the running
/// topology, merged with a submitted job file) and the job's name in it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobSpec {
    /// Catalog id.
    pub id: String,
    /// Job name (unique among live jobs; names its checkpoint state).
    pub name: String,
    /// The topology text defining the job, as validated on submission.
    pub topology: String,
    /// Where that text came from, for error messages.
    pub file: String,
}

/// What the sequencer tells every worker, in sequence order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// Restore the job from its latest checkpoint and install it.
    Start(JobSpec),
    /// Stop the job. With `savepoint_epoch`, its sources stop reading in
    /// that epoch and the job goes once the checkpoint before it is
    /// complete and committed; without, it is dropped at once (its last
    /// complete checkpoint stays, and a new submission resumes from it).
    Cancel {
        /// Catalog id.
        id: String,
        /// The epoch the savepoint stops in.
        savepoint_epoch: Option<u64>,
    },
    /// No more commands: a worker leaves once its jobs are gone (the end
    /// of a bounded run, or a stop).
    Seal,
}

/// What any worker tells every worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Notice {
    /// A sequenced command.
    Command {
        /// Its place in the sequence (from 0).
        seq: u64,
        /// What to do.
        command: Command,
    },
    /// Job `id` failed on some worker: every worker drops it.
    Failed {
        /// Catalog id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The cluster stops (a signal reached one of its processes): every job
    /// takes a final checkpoint in `epoch`'s predecessor and the workers exit.
    Stop {
        /// The epoch sources stop in.
        epoch: u64,
    },
}

/// One source of a job, as a process sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceStats {
    /// Source name.
    pub name: String,
    /// Records read.
    pub records_in: u64,
    /// The lowest watermark of the process's readers (ms), if any.
    pub watermark_ms: Option<i64>,
    /// Records behind the end of the input (Kafka), if known.
    pub lag: Option<u64>,
}

/// One sink of a job, as a process sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SinkStats {
    /// Sink name.
    pub name: String,
    /// Records written.
    pub records_out: u64,
    /// Commits.
    pub commits: u64,
}

/// A job's figures in one process.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobStats {
    /// Catalog id.
    pub id: String,
    /// Reporting process.
    pub process: usize,
    /// When measured (Unix ms).
    pub at_ms: i64,
    /// Per source.
    pub sources: Vec<SourceStats>,
    /// Per sink.
    pub sinks: Vec<SinkStats>,
    /// The latest complete checkpoint this process recorded.
    pub checkpoint: Option<u64>,
    /// When it completed (Unix s), if this run saw it.
    pub checkpoint_at_s: Option<i64>,
}

/// A worker's end of the control dataflow.
pub struct Control {
    notices_in: Option<InputHandle<u64, CapacityContainerBuilder<Vec<Notice>>>>,
    stats_in: Option<InputHandle<u64, CapacityContainerBuilder<Vec<JobStats>>>>,
    received: Rc<RefCell<Vec<Notice>>>,
    stats: Rc<RefCell<Vec<JobStats>>>,
    notices_probe: ProbeHandle<u64>,
    stats_probe: ProbeHandle<u64>,
    /// Commands received, not yet applied, by sequence number.
    pending: BTreeMap<u64, Command>,
    /// The next command to apply.
    next: u64,
    /// The next sequence number to issue (the sequencer).
    issued: u64,
}

impl Control {
    /// Builds the control dataflow on `worker` (first, on every worker).
    pub fn build(worker: &mut timely::worker::Worker) -> Control {
        let received = Rc::new(RefCell::new(Vec::new()));
        let stats = Rc::new(RefCell::new(Vec::new()));
        let (sink, stats_sink) = (received.clone(), stats.clone());
        let (notices_in, stats_in, notices_probe, stats_probe) =
            worker.dataflow_named::<u64, _, _>("control", |scope| {
                let (notices_in, notices) = scope.new_input::<Vec<Notice>>();
                let notices_probe = notices
                    .broadcast()
                    .inspect(move |n: &Notice| sink.borrow_mut().push(n.clone()))
                    .probe()
                    .0;
                let (stats_in, reports) = scope.new_input::<Vec<JobStats>>();
                let stats_probe = reports
                    .exchange(|_: &JobStats| 0)
                    .inspect(move |s: &JobStats| stats_sink.borrow_mut().push(s.clone()))
                    .probe()
                    .0;
                (notices_in, stats_in, notices_probe, stats_probe)
            });
        Control {
            notices_in: Some(notices_in),
            stats_in: Some(stats_in),
            received,
            stats,
            notices_probe,
            stats_probe,
            pending: BTreeMap::new(),
            next: 0,
            issued: 0,
        }
    }

    /// Sequences `command` to every worker (the sequencer only).
    pub fn issue(&mut self, command: Command) {
        let seq = self.issued;
        self.issued += 1;
        self.notify(Notice::Command { seq, command });
    }

    /// Tells every worker `notice`.
    pub fn notify(&mut self, notice: Notice) {
        if let Some(input) = self.notices_in.as_mut() {
            input.send(notice);
            // Channels buffer until the time moves on: a notice goes now.
            let next = *input.time() + 1;
            input.advance_to(next);
        }
    }

    /// Reports a process's figures to the sequencer.
    pub fn report(&mut self, stats: JobStats) {
        if let Some(input) = self.stats_in.as_mut() {
            input.send(stats);
            let next = *input.time() + 1;
            input.advance_to(next);
        }
    }

    /// Received notices other than commands, and the commands now due, in
    /// sequence order.
    pub fn receive(&mut self) -> (Vec<Notice>, Vec<Command>) {
        let mut others = Vec::new();
        for notice in self.received.borrow_mut().drain(..) {
            match notice {
                Notice::Command { seq, command } => {
                    self.pending.insert(seq, command);
                }
                other => others.push(other),
            }
        }
        let mut due = Vec::new();
        while let Some(command) = self.pending.remove(&self.next) {
            due.push(command);
            self.next += 1;
        }
        (others, due)
    }

    /// Figures reported to this worker (the sequencer's) since the last call.
    pub fn take_stats(&mut self) -> Vec<JobStats> {
        std::mem::take(&mut *self.stats.borrow_mut())
    }

    /// This worker leaves: no more of anything from it.
    pub fn close(&mut self) {
        self.notices_in = None;
        self.stats_in = None;
    }

    /// Whether every worker left and everything was received.
    pub fn done(&self) -> bool {
        self.notices_probe.done() && self.stats_probe.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> JobSpec {
        JobSpec {
            id: id.into(),
            name: id.into(),
            topology: String::new(),
            file: "t".into(),
        }
    }

    /// Commands reach every worker in sequence order; notices reach every
    /// worker; figures reach worker 0 only.
    #[test]
    fn every_worker_applies_the_commands_in_sequence_and_worker_0_gets_the_figures() {
        let results = timely::execute(timely::Config::process(3), |worker| {
            let mut control = Control::build(worker);
            if worker.index() == 0 {
                for i in 0..5 {
                    control.issue(Command::Start(spec(&format!("j{i}"))));
                }
                control.issue(Command::Cancel {
                    id: "j1".into(),
                    savepoint_epoch: Some(7),
                });
            }
            if worker.index() == 2 {
                control.notify(Notice::Failed {
                    id: "j3".into(),
                    reason: "boom".into(),
                });
            }
            control.report(JobStats {
                id: "j0".into(),
                process: worker.index(),
                ..Default::default()
            });
            control.close();
            let (mut commands, mut notices, mut stats) = (Vec::new(), Vec::new(), Vec::new());
            while !control.done() || !control.pending.is_empty() || !control.received.borrow().is_empty() {
                worker.step();
                let (n, c) = control.receive();
                notices.extend(n);
                commands.extend(c);
                stats.extend(control.take_stats());
            }
            (worker.index(), commands, notices, stats.len())
        })
        .unwrap()
        .join();
        for r in results {
            let (index, commands, notices, stats) = r.unwrap();
            let names: Vec<String> = commands
                .iter()
                .map(|c| match c {
                    Command::Start(s) => s.id.clone(),
                    Command::Cancel { id, .. } => format!("cancel {id}"),
                    Command::Seal => "seal".into(),
                })
                .collect();
            assert_eq!(names, ["j0", "j1", "j2", "j3", "j4", "cancel j1"], "worker {index}");
            assert_eq!(
                notices,
                [Notice::Failed {
                    id: "j3".into(),
                    reason: "boom".into()
                }],
                "worker {index}"
            );
            assert_eq!(stats, if index == 0 { 3 } else { 0 }, "worker {index}");
        }
    }
}
