//! Dataflow time: an *epoch* (checkpoint) and an event-time *stamp*,
//! ordered as a product.
//!
//! A record read in checkpoint epoch `e` and stamped with its partition's
//! watermark `t` travels at `Time { outer: e, inner: t }`. The product
//! order (`(e1, t1) ≤ (e2, t2)` iff `e1 ≤ e2` and `t1 ≤ t2`) makes a
//! frontier say two independent things, both cluster-wide through timely's
//! progress tracking:
//!
//! * the **watermark**, the least stamp of the frontier: no record stamped
//!   below it will arrive (windows fire on it, as before epochs existed);
//! * the **epoch frontier**, the least epoch of the frontier: every record of
//!   an earlier epoch has arrived (checkpoints complete on it).
//!
//! Sources move to the next epoch every checkpoint interval (keeping their
//! stamp), so epochs cut the streams at consistent points without touching
//! event-time semantics.

use timely::order::Product;
use timely::progress::frontier::AntichainRef;

/// The timestamp of every job dataflow: (epoch, event-time stamp).
pub type Time = Product<u64, u64>;

/// The time of a record of epoch `epoch` stamped `stamp`.
#[inline]
pub fn time(epoch: u64, stamp: u64) -> Time {
    Product::new(epoch, stamp)
}

/// The watermark of a frontier: its least stamp (`None` when it is empty,
/// i.e. the input is complete).
#[inline]
pub fn watermark(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    frontier.iter().map(|t| t.inner).min()
}

/// The epoch frontier: the least epoch still open (`None` when complete).
#[inline]
pub fn epoch_frontier(frontier: AntichainRef<'_, Time>) -> Option<u64> {
    frontier.iter().map(|t| t.outer).min()
}

/// The greatest time below every element of `frontier` (its meet), or
/// `None` when it is empty: where an operator's capability may stand while
/// it still holds outputs for every time it may yet receive.
#[inline]
pub fn meet(frontier: AntichainRef<'_, Time>) -> Option<Time> {
    Some(time(epoch_frontier(frontier)?, watermark(frontier)?))
}

/// The time of a message: its stamp's single element (records are sent
/// under one capability), or the meet of its elements; `None` for a message
/// sent under no capability (it claims no progress).
#[inline]
pub fn message_time<'a>(stamp: impl IntoIterator<Item = &'a Time>) -> Option<Time> {
    stamp
        .into_iter()
        .copied()
        .reduce(|a, b| time(a.outer.min(b.outer), a.inner.min(b.inner)))
}

/// Whether every epoch up to and including `epoch` is complete at `frontier`.
#[inline]
pub fn epoch_complete(frontier: AntichainRef<'_, Time>, epoch: u64) -> bool {
    epoch_frontier(frontier).is_none_or(|e| e > epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::progress::Antichain;

    #[test]
    fn a_frontier_gives_its_watermark_and_its_epoch_independently() {
        let mut f = Antichain::new();
        f.insert(time(3, 500));
        f.insert(time(4, 200));
        assert_eq!(watermark(f.borrow()), Some(200));
        assert_eq!(epoch_frontier(f.borrow()), Some(3));
        assert_eq!(meet(f.borrow()), Some(time(3, 200)));
        assert!(epoch_complete(f.borrow(), 2));
        assert!(!epoch_complete(f.borrow(), 3));
        let empty: Antichain<Time> = Antichain::new();
        assert_eq!(watermark(empty.borrow()), None);
        assert!(epoch_complete(empty.borrow(), u64::MAX));
    }
}
