//! The geometry of aligned windows: panes of `gcd(size, slide)` ms tile
//! time from the epoch, and every tumbling or sliding window is a run of them.

/// Where an aligned window's panes lie: panes of `pane` ms tile time from the
/// epoch, and a window `[s, s + size)` (`s` a multiple of `slide`) is the
/// union of `size / pane` of them, `pane` being the greatest common divisor
/// of `size` and `slide` (a tumbling window is one pane).
#[derive(Debug, Clone, Copy)]
pub(super) struct Panes {
    pub(super) size: i64,
    pub(super) slide: i64,
    pub(super) pane: i64,
}

impl Panes {
    pub(super) fn new(size: i64, slide: i64) -> Panes {
        let (mut a, mut b) = (size, slide);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        Panes { size, slide, pane: a }
    }

    /// The pane holding time `ts`.
    pub(super) fn pane_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.pane) * self.pane
    }

    /// Start of the last window holding time `ts`.
    pub(super) fn last_start(&self, ts: i64) -> i64 {
        ts.div_euclid(self.slide) * self.slide
    }

    /// The first window start at or after `x`.
    pub(super) fn start_at_or_after(&self, x: i64) -> i64 {
        let s = self.last_start(x);
        if s < x {
            s.saturating_add(self.slide)
        } else {
            s
        }
    }

    /// Starts of the windows holding time `ts`, earliest first.
    pub(super) fn starts_holding(&self, ts: i64) -> impl Iterator<Item = i64> {
        let (first, last, slide) = (
            self.start_at_or_after(ts - self.size + 1),
            self.last_start(ts),
            self.slide,
        );
        (0..).map(move |i| first + i * slide).take_while(move |s| *s <= last)
    }
}
