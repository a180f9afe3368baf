//! A streaming generator of flat player-match rows,
//! `{"match_id","player_id","champion","ts","kills","deaths","assists","gold","cs","win"}`,
//! the record shape of the reference windowed-aggregation job and its benchmark.
//!
//! Rows are produced lazily (millions without holding them in memory), ten per
//! match, with event times advancing at `rows_per_second` and delivered out of
//! order by up to `jitter_ms` through a bounded reorder buffer.

use super::champions::CHAMPIONS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One player's line in one match, keyed by `player_id` on `ts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerRow {
    /// Match id.
    pub match_id: String,
    /// Player id.
    pub player_id: String,
    /// Champion played.
    pub champion: String,
    /// Event time, UTC ms.
    pub ts: i64,
    /// Kills.
    pub kills: i64,
    /// Deaths.
    pub deaths: i64,
    /// Assists.
    pub assists: i64,
    /// Gold earned.
    pub gold: i64,
    /// Creep score.
    pub cs: i64,
    /// 1 if the player's team won, else 0.
    pub win: i64,
}

/// Settings of [`player_rows`].
#[derive(Debug, Clone)]
pub struct RowsConfig {
    /// RNG seed.
    pub seed: u64,
    /// Number of rows.
    pub rows: u64,
    /// Distinct players.
    pub players: u32,
    /// Event-time rate: rows per second of event time.
    pub rows_per_second: f64,
    /// Maximum delivery delay (out-of-orderness), ms.
    pub jitter_ms: i64,
    /// Event time of the first row, UTC ms.
    pub start_ms: i64,
}

impl Default for RowsConfig {
    fn default() -> Self {
        RowsConfig {
            seed: 7,
            rows: 1_000_000,
            players: 10_000,
            rows_per_second: 500.0,
            jitter_ms: 4_000,
            start_ms: 1_767_225_600_000,
        }
    }
}

/// Rows in delivery order (event time plus a random delay below `jitter_ms`).
pub fn player_rows(cfg: RowsConfig) -> impl Iterator<Item = PlayerRow> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let players = cfg.players.max(10);
    let skills: Vec<f64> = (0..players).map(|_| rng.sample(StandardNormal)).collect();
    let mut heap: BinaryHeap<Reverse<(i64, u64, HeapRow)>> = BinaryHeap::new();
    let mut produced = 0u64;
    let mut match_no = 0u64;
    let mut seq = 0u64;
    let ms_per_match = 10_000.0 / cfg.rows_per_second.max(1e-3);
    std::iter::from_fn(move || loop {
        // Emit the earliest buffered row once no future row can precede it.
        let horizon = cfg.start_ms + (match_no as f64 * ms_per_match) as i64;
        if let Some(Reverse((deliver_at, _, _))) = heap.peek() {
            if *deliver_at <= horizon || produced >= cfg.rows {
                return heap.pop().map(|Reverse((_, _, row))| row.0);
            }
        } else if produced >= cfg.rows {
            return None;
        }
        // Simulate the next match: ten distinct players, outcome from skill.
        let ts = cfg.start_ms + (match_no as f64 * ms_per_match) as i64;
        let mut ten: Vec<u32> = Vec::with_capacity(10);
        while ten.len() < 10 {
            let p = rng.gen_range(0..players);
            if !ten.contains(&p) {
                ten.push(p);
            }
        }
        let diff: f64 = ten[..5].iter().map(|p| skills[*p as usize]).sum::<f64>()
            - ten[5..].iter().map(|p| skills[*p as usize]).sum::<f64>();
        let blue_wins = rng.gen::<f64>() < 1.0 / (1.0 + (-0.35 * diff).exp());
        for (slot, p) in ten.iter().enumerate() {
            if produced >= cfg.rows {
                break;
            }
            let win = (slot < 5) == blue_wins;
            let tilt = if win { 1.25 } else { 0.8 };
            let kills = Poisson::new(4.0 * tilt).map(|d| d.sample(&mut rng) as i64).unwrap_or(0);
            let deaths = Poisson::new(4.0 / tilt).map(|d| d.sample(&mut rng) as i64).unwrap_or(0);
            let assists = Poisson::new(6.0 * tilt).map(|d| d.sample(&mut rng) as i64).unwrap_or(0);
            let gold = (11_000.0 * tilt + 1_500.0 * rng.sample::<f64, _>(StandardNormal)).max(2_000.0) as i64;
            let cs = (170.0 * tilt + 40.0 * rng.sample::<f64, _>(StandardNormal)).max(0.0) as i64;
            let row_ts = ts + slot as i64;
            let delay = if cfg.jitter_ms > 0 {
                rng.gen_range(0..cfg.jitter_ms)
            } else {
                0
            };
            seq += 1;
            heap.push(Reverse((
                row_ts + delay,
                seq,
                HeapRow(PlayerRow {
                    match_id: format!("M{match_no:09}"),
                    player_id: format!("p{p:06}"),
                    champion: CHAMPIONS[(*p as usize * 7 + match_no as usize) % CHAMPIONS.len()]
                        .0
                        .to_string(),
                    ts: row_ts,
                    kills,
                    deaths,
                    assists,
                    gold,
                    cs,
                    win: win as i64,
                }),
            )));
            produced += 1;
        }
        match_no += 1;
    })
}

/// A row ordered only by the heap key around it.
#[derive(Debug, Clone)]
struct HeapRow(PlayerRow);

impl PartialEq for HeapRow {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeapRow {}
impl PartialOrd for HeapRow {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapRow {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_jitter_is_bounded() {
        let cfg = RowsConfig {
            rows: 5_000,
            players: 200,
            jitter_ms: 3_000,
            ..Default::default()
        };
        let a: Vec<PlayerRow> = player_rows(cfg.clone()).collect();
        let b: Vec<PlayerRow> = player_rows(cfg).collect();
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, b);
        let mut max_seen = i64::MIN;
        let mut out_of_order = 0;
        for r in &a {
            if r.ts < max_seen {
                out_of_order += 1;
                assert!(max_seen - r.ts < 3_000, "jitter exceeded: {} behind", max_seen - r.ts);
            }
            max_seen = max_seen.max(r.ts);
        }
        assert!(out_of_order > 100, "expected out-of-order delivery, got {out_of_order}");
    }
}
