//! The epoch gate of a stateful operator: what lets its state at the end of
//! each checkpoint epoch hold exactly the records of that epoch and the
//! earlier ones, without changing event-time semantics.
//!
//! # Time
//! Input arrives at [`Time`] `(epoch, stamp)`. An operator works on one
//! epoch at a time, its *admitted* epoch: batches of later epochs are held,
//! untouched, until every earlier epoch is complete at the operator's inputs
//! (the epoch frontier has passed it). When that happens the operator has
//! seen all of the epoch: it checkpoints, and the next epoch's held batches
//! are released to it in arrival order.
//!
//! Event time goes on as before epochs existed, with one rule: the
//! operator's *effective watermark* — how far it may fire windows, answer
//! lookups or drop duplicates — is the frontier's watermark, lowered to the
//! least stamp of any held batch. A held record is never missed by a firing
//! it belongs to; it is only applied later, in the same order relative to
//! firings as without the gate, so outputs do not depend on epochs. Holding
//! lasts as long as records of the previous epoch are in flight, so the
//! gate delays nothing measurable.
//!
//! # State
//! The held batches, by epoch. They belong to epochs not yet checkpointed:
//! after a restart they are read again from the sources.

use crate::util::Time;
use std::collections::BTreeMap;

/// What [`EpochGate::next_boundary`] returns: the epoch completed (`None`
/// at the first boundary) and the newly admitted epoch's items with their stamps.
pub type Boundary<T> = (Option<u64>, Vec<(u64, T)>);

/// Holds input of epochs after the admitted one (see the module docs).
#[derive(Debug)]
pub struct EpochGate<T> {
    /// The epoch being processed; `None` before the first boundary is known.
    admitted: Option<u64>,
    /// Held items by epoch, each with its stamp, in arrival order.
    held: BTreeMap<u64, Vec<(u64, T)>>,
    /// The least stamp held.
    least_held: Option<u64>,
}

impl<T> Default for EpochGate<T> {
    fn default() -> Self {
        EpochGate {
            admitted: None,
            held: BTreeMap::new(),
            least_held: None,
        }
    }
}

impl<T> EpochGate<T> {
    /// A gate that admits epoch `epoch` first (after a restore: the one
    /// after the checkpoint restored).
    pub fn starting_at(epoch: u64) -> EpochGate<T> {
        EpochGate {
            admitted: Some(epoch),
            ..Default::default()
        }
    }

    /// The epoch being processed.
    pub fn admitted(&self) -> Option<u64> {
        self.admitted
    }

    /// Takes an item that arrived at `time`: returns it when its epoch is
    /// the admitted one (process it now), holds it otherwise.
    pub fn offer(&mut self, time: Time, item: T) -> Option<T> {
        match self.admitted {
            Some(a) if time.outer <= a => Some(item),
            _ => {
                self.least_held = Some(self.least_held.map_or(time.inner, |l| l.min(time.inner)));
                self.held.entry(time.outer).or_default().push((time.inner, item));
                None
            }
        }
    }

    /// The effective watermark given the inputs' watermark (`None`: input
    /// complete): never past a held stamp.
    pub fn watermark(&self, frontier: Option<u64>) -> Option<u64> {
        match (frontier, self.least_held) {
            (Some(f), Some(h)) => Some(f.min(h)),
            (None, Some(h)) => Some(h),
            (f, None) => f,
        }
    }

    /// Given the inputs' epoch frontier (`None`: complete), moves to the next
    /// epoch if the admitted one is complete: returns the epoch completed and
    /// the items of the newly admitted epoch, with their stamps. `None` while
    /// the admitted epoch is still open (call again after processing what it
    /// returned: several epochs may complete at once).
    pub fn next_boundary(&mut self, epoch_frontier: Option<u64>) -> Option<Boundary<T>> {
        let open = epoch_frontier.unwrap_or(u64::MAX);
        let first_held = self.held.keys().next().copied();
        if self.admitted.is_some_and(|a| a >= open) {
            return None;
        }
        // The admitted epoch (if any) is complete. Next: the earliest held
        // epoch, or the open one (or the end, `u64::MAX`).
        let next = first_held.map_or(open, |h| h.min(open));
        if self.admitted == Some(next) {
            return None;
        }
        let completed = self.admitted;
        self.admitted = Some(next);
        let released = self.held.remove(&next).unwrap_or_default();
        self.least_held = self.held.values().flatten().map(|(s, _)| *s).min();
        Some((completed, released))
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::time::time;

    #[test]
    fn later_epochs_wait_and_cap_the_watermark() {
        let mut g = EpochGate::default();
        // The first boundary admits the open epoch.
        assert_eq!(g.next_boundary(Some(7)), Some((None, vec![])));
        assert_eq!(g.admitted(), Some(7));
        assert_eq!(g.offer(time(7, 100), "a"), Some("a"));
        assert_eq!(g.offer(time(8, 40), "b"), None, "epoch 8 is held");
        assert_eq!(g.offer(time(8, 90), "c"), None);
        // The frontier's watermark is 120, but a held record is stamped 40.
        assert_eq!(g.watermark(Some(120)), Some(40));
        assert_eq!(g.next_boundary(Some(7)), None, "epoch 7 still open");
        // Epoch 7 completes: its checkpoint, then epoch 8's records, in order.
        assert_eq!(g.next_boundary(Some(8)), Some((Some(7), vec![(40, "b"), (90, "c")])));
        assert_eq!(g.watermark(Some(120)), Some(120));
        assert_eq!(g.next_boundary(Some(8)), None);
        assert!(g.is_empty());
    }

    #[test]
    fn the_end_of_input_completes_every_held_epoch_in_order() {
        let mut g = EpochGate::starting_at(3);
        assert_eq!(g.offer(time(3, 10), 1), Some(1));
        assert_eq!(g.offer(time(5, 30), 3), None);
        assert_eq!(g.offer(time(4, 20), 2), None);
        assert_eq!(g.watermark(None), Some(20));
        assert_eq!(g.next_boundary(None), Some((Some(3), vec![(20, 2)])));
        assert_eq!(g.next_boundary(None), Some((Some(4), vec![(30, 3)])));
        assert_eq!(g.next_boundary(None), Some((Some(5), vec![])));
        assert_eq!(g.admitted(), Some(u64::MAX));
        assert_eq!(g.next_boundary(None), None);
        assert_eq!(g.watermark(None), None);
    }

    #[test]
    fn epochs_without_data_are_skipped_in_one_step() {
        let mut g: EpochGate<()> = EpochGate::starting_at(10);
        assert_eq!(g.next_boundary(Some(1_000_000)), Some((Some(10), vec![])));
        assert_eq!(g.admitted(), Some(1_000_000));
    }
}
