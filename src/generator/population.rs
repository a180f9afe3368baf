//! The simulated player population: hidden skill, main role, champion pool,
//! activity, and a ranked ladder position derived from skill and results.

use super::champions::{of_role, CHAMPIONS};
use crate::events::Role;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};

const NAME_HEADS: &[&str] = &[
    "Silent", "Crimson", "Void", "Shadow", "Iron", "Frost", "Storm", "Lucky", "Wild", "Golden", "Rift", "Baron",
    "Arcane", "Night", "Solar", "Lunar", "Blood", "Swift", "Grim", "Noble",
];
const NAME_TAILS: &[&str] = &[
    "Blade", "Fox", "Wolf", "Dragon", "Herald", "Sage", "Queen", "King", "Ward", "Smite", "Flash", "Minion", "Poro",
    "Tower", "Ace", "Carry", "Gank", "Crit", "Ult", "Nexus",
];

/// A simulated player.
#[derive(Debug, Clone)]
pub struct Player {
    /// Stable id, `p000123`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Hidden skill, standard normal across the population.
    pub skill: f64,
    /// Preferred role.
    pub main_role: Role,
    /// Indices into `CHAMPIONS` the player likes, with mastery weights.
    pub pool: Vec<(usize, f64)>,
    /// Relative play frequency.
    pub activity: f64,
    /// Ranked wins so far.
    pub wins: i32,
    /// Ranked losses so far.
    pub losses: i32,
    /// League points within the current division.
    pub league_points: i32,
    /// Simulation time (ms) until which the player is in a match.
    pub busy_until: i64,
}

impl Player {
    /// The mastery bonus of playing champion `c` (negative off-pool).
    pub fn mastery(&self, c: usize) -> f64 {
        self.pool
            .iter()
            .find(|(pc, _)| *pc == c)
            .map(|(_, m)| *m)
            .unwrap_or(-0.15)
    }

    /// Tier and division implied by skill (a ladder that tracks true skill).
    pub fn tier_and_rank(&self) -> (&'static str, &'static str) {
        // Cut points on the standard normal give a realistic tier distribution.
        const CUTS: [f64; 9] = [-1.5, -0.8, -0.2, 0.35, 0.85, 1.3, 1.75, 2.1, 2.4];
        let tiers = crate::events::player_stats::TIERS;
        let idx = CUTS.iter().filter(|c| self.skill >= **c).count();
        let tier = tiers[idx];
        if idx >= 7 {
            return (tier, "I");
        }
        let lo = if idx == 0 { -3.5 } else { CUTS[idx - 1] };
        let hi = CUTS[idx];
        let frac = ((self.skill - lo) / (hi - lo)).clamp(0.0, 0.999);
        (tier, ["IV", "III", "II", "I"][(frac * 4.0) as usize])
    }
}

/// All players, plus an index sorted by skill for matchmaking.
#[derive(Debug, Clone)]
pub struct Population {
    /// Players by index.
    pub players: Vec<Player>,
    /// Player indices sorted by skill.
    pub by_skill: Vec<usize>,
    /// Cumulative activity over `by_skill`, for weighted sampling of anchors.
    cumulative_activity: Vec<f64>,
}

impl Population {
    /// Draws `n` players.
    pub fn generate<R: Rng>(n: usize, rng: &mut R) -> Population {
        let activity = LogNormal::new(0.0, 0.6).expect("valid lognormal");
        let players: Vec<Player> = (0..n)
            .map(|i| {
                let skill: f64 = rng.sample(StandardNormal);
                let main_role = Role::ALL[rng.gen_range(0..5)];
                let mut candidates: Vec<usize> = of_role(main_role).collect();
                candidates.shuffle(rng);
                let pool_size = rng.gen_range(2..=4);
                let pool = candidates
                    .into_iter()
                    .take(pool_size)
                    .enumerate()
                    .map(|(rank, c)| (c, 0.25 - 0.06 * rank as f64))
                    .collect();
                let name = format!(
                    "{}{}{}",
                    NAME_HEADS[rng.gen_range(0..NAME_HEADS.len())],
                    NAME_TAILS[rng.gen_range(0..NAME_TAILS.len())],
                    rng.gen_range(1..1000)
                );
                Player {
                    id: format!("p{i:06}"),
                    name,
                    skill,
                    main_role,
                    pool,
                    activity: activity.sample(rng),
                    wins: 0,
                    losses: 0,
                    league_points: rng.gen_range(0..100),
                    busy_until: i64::MIN,
                }
            })
            .collect();
        let mut by_skill: Vec<usize> = (0..n).collect();
        by_skill.sort_by(|a, b| players[*a].skill.total_cmp(&players[*b].skill));
        let mut total = 0.0;
        let cumulative_activity = by_skill
            .iter()
            .map(|i| {
                total += players[*i].activity;
                total
            })
            .collect();
        Population {
            players,
            by_skill,
            cumulative_activity,
        }
    }

    /// Picks ten free players of similar skill at time `now`, or `None` if the
    /// neighbourhood of the sampled anchor is too busy.
    pub fn matchmake<R: Rng>(&self, now: i64, rng: &mut R) -> Option<Vec<usize>> {
        let total = *self.cumulative_activity.last()?;
        let target = rng.gen::<f64>() * total;
        let anchor = self.cumulative_activity.partition_point(|c| *c < target);
        let half_width = 60.min(self.by_skill.len() / 2).max(5);
        let lo = anchor.saturating_sub(half_width);
        let hi = (anchor + half_width).min(self.by_skill.len());
        let mut candidates: Vec<usize> = self.by_skill[lo..hi]
            .iter()
            .copied()
            .filter(|i| self.players[*i].busy_until <= now)
            .collect();
        if candidates.len() < 10 {
            return None;
        }
        // Prefer active players: weighted sampling without replacement.
        let mut chosen = Vec::with_capacity(10);
        while chosen.len() < 10 {
            let weights: f64 = candidates.iter().map(|i| self.players[*i].activity).sum();
            let mut x = rng.gen::<f64>() * weights;
            let mut pick = candidates.len() - 1;
            for (k, i) in candidates.iter().enumerate() {
                x -= self.players[*i].activity;
                if x <= 0.0 {
                    pick = k;
                    break;
                }
            }
            chosen.push(candidates.swap_remove(pick));
        }
        Some(chosen)
    }

    /// Assigns roles (two per role, main roles first) and teams (one of each
    /// role per team) to ten players. Returns `(player, role, is_blue)`.
    pub fn assign_roles<R: Rng>(&self, ten: &[usize], rng: &mut R) -> Vec<(usize, Role, bool)> {
        let mut remaining: Vec<usize> = ten.to_vec();
        remaining.shuffle(rng);
        let mut out = Vec::with_capacity(10);
        for role in Role::ALL {
            let mut picked = Vec::with_capacity(2);
            while picked.len() < 2 {
                let pos = remaining
                    .iter()
                    .position(|i| self.players[*i].main_role == role)
                    .unwrap_or(0);
                picked.push(remaining.remove(pos));
            }
            let blue_first = rng.gen_bool(0.5);
            out.push((picked[0], role, blue_first));
            out.push((picked[1], role, !blue_first));
        }
        out
    }

    /// Picks a champion for a player in a role, avoiding `taken`.
    pub fn pick_champion<R: Rng>(&self, player: usize, role: Role, taken: &[usize], rng: &mut R) -> usize {
        let p = &self.players[player];
        if p.main_role == role && rng.gen_bool(0.85) {
            let free: Vec<usize> = p.pool.iter().map(|(c, _)| *c).filter(|c| !taken.contains(c)).collect();
            if let Some(c) = free.first() {
                // Favour the first (most mastered) pool champion.
                return if free.len() > 1 && rng.gen_bool(0.35) {
                    free[1]
                } else {
                    *c
                };
            }
        }
        let options: Vec<usize> = of_role(role).filter(|c| !taken.contains(c)).collect();
        options[rng.gen_range(0..options.len())]
    }

    /// Number of champions.
    pub fn champion_count() -> usize {
        CHAMPIONS.len()
    }
}
