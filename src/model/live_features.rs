//! The live model's features: the single source of truth.
//!
//! [`TeamTotals`] is the running per-team state of a live match. A streaming
//! job builds it from game events (kills, wards, buildings, elite monsters,
//! first blood) and per-minute team frames (gold, xp, level, cs); the Kaggle
//! 10-minute CSV's per-team columns map onto it one to one. Both paths then
//! call [`live_features`], so the model is trained on exactly the features it
//! is served with.
//!
//! Guarantees:
//! - Every feature is a blue-minus-red difference (first blood: +1 blue,
//!   -1 red, 0 neither yet), so swapping the teams negates every feature
//!   exactly (`live_features(r, b) == -live_features(b, r)`), and the output
//!   order is [`LIVE_FEATURE_NAMES`].
//! - Pure and total: no allocation, no panics, any counts (u64 gold/xp are
//!   differenced in f64 before narrowing to f32, so nothing overflows).

use serde::{Deserialize, Serialize};

/// Running totals of one team in a live match (or at the 10-minute mark of a
/// finished one). Counts only go up during a match; `avg_level` is the mean
/// champion level of the team's five players.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TeamTotals {
    /// Champion kills scored by this team.
    pub kills: u32,
    /// Deaths suffered by this team (≈ the other team's kills; kept for
    /// display and consistency checks, not a model feature).
    pub deaths: u32,
    /// Assists by this team's players.
    pub assists: u32,
    /// Wards placed by this team.
    pub wards_placed: u32,
    /// Enemy wards this team destroyed.
    pub wards_destroyed: u32,
    /// Whether this team drew first blood.
    pub first_blood: bool,
    /// Dragons slain.
    pub dragons: u32,
    /// Rift Heralds slain.
    pub heralds: u32,
    /// Towers destroyed (enemy towers taken by this team).
    pub towers: u32,
    /// Total gold earned by the team.
    pub total_gold: u64,
    /// Total experience of the team.
    pub total_xp: u64,
    /// Mean champion level of the team.
    pub avg_level: f32,
    /// Lane minions killed (creep score).
    pub total_cs: u32,
    /// Jungle monsters killed.
    pub total_jungle_cs: u32,
}

/// Number of live features.
pub const LIVE_FEATURE_COUNT: usize = 13;

/// Names of the live features, in the order [`live_features`] returns them.
/// Stored in every registered model's metadata and checked when a model is
/// loaded for live scoring.
pub const LIVE_FEATURE_NAMES: &[&str] = &[
    "gold_diff",
    "xp_diff",
    "kills_diff",
    "assists_diff",
    "cs_diff",
    "jungle_cs_diff",
    "avg_level_diff",
    "dragons_diff",
    "heralds_diff",
    "towers_diff",
    "wards_placed_diff",
    "wards_destroyed_diff",
    "first_blood",
];

// The names and the feature vector must never disagree in length.
const _: () = assert!(LIVE_FEATURE_NAMES.len() == LIVE_FEATURE_COUNT);

/// `a - b` for counts, computed without overflow.
fn diff32(a: u32, b: u32) -> f32 {
    (f64::from(a) - f64::from(b)) as f32
}

/// `a - b` for large totals (gold, xp), computed in f64 then narrowed.
fn diff64(a: u64, b: u64) -> f32 {
    (a as f64 - b as f64) as f32
}

/// The live model's feature vector for one match state, blue minus red, in
/// the order of [`LIVE_FEATURE_NAMES`].
pub fn live_features(blue: &TeamTotals, red: &TeamTotals) -> [f32; LIVE_FEATURE_COUNT] {
    [
        diff64(blue.total_gold, red.total_gold),
        diff64(blue.total_xp, red.total_xp),
        diff32(blue.kills, red.kills),
        diff32(blue.assists, red.assists),
        diff32(blue.total_cs, red.total_cs),
        diff32(blue.total_jungle_cs, red.total_jungle_cs),
        blue.avg_level - red.avg_level,
        diff32(blue.dragons, red.dragons),
        diff32(blue.heralds, red.heralds),
        diff32(blue.towers, red.towers),
        diff32(blue.wards_placed, red.wards_placed),
        diff32(blue.wards_destroyed, red.wards_destroyed),
        // +1 blue drew first blood, -1 red did, 0 neither yet.
        diff32(u32::from(blue.first_blood), u32::from(red.first_blood)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_team(rng: &mut ChaCha8Rng) -> TeamTotals {
        TeamTotals {
            kills: rng.gen_range(0..40),
            deaths: rng.gen_range(0..40),
            assists: rng.gen_range(0..80),
            wards_placed: rng.gen_range(0..250),
            wards_destroyed: rng.gen_range(0..30),
            first_blood: rng.gen_bool(0.5),
            dragons: rng.gen_range(0..3),
            heralds: rng.gen_range(0..2),
            towers: rng.gen_range(0..5),
            total_gold: rng.gen_range(10_000..30_000),
            total_xp: rng.gen_range(10_000..30_000),
            avg_level: rng.gen_range(4.0..10.0),
            total_cs: rng.gen_range(0..400),
            total_jungle_cs: rng.gen_range(0..120),
        }
    }

    #[test]
    fn swapping_teams_negates_every_feature() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..1000 {
            let blue = random_team(&mut rng);
            let red = random_team(&mut rng);
            let fwd = live_features(&blue, &red);
            let back = live_features(&red, &blue);
            for (i, (f, b)) in fwd.iter().zip(back.iter()).enumerate() {
                assert_eq!(*f, -*b, "feature {} not antisymmetric", LIVE_FEATURE_NAMES[i]);
            }
        }
    }

    #[test]
    fn first_blood_is_plus_minus_one_or_zero() {
        let fb = LIVE_FEATURE_COUNT - 1;
        assert_eq!(LIVE_FEATURE_NAMES[fb], "first_blood");
        let none = TeamTotals::default();
        let with = TeamTotals {
            first_blood: true,
            ..TeamTotals::default()
        };
        assert_eq!(live_features(&with, &none)[fb], 1.0);
        assert_eq!(live_features(&none, &with)[fb], -1.0);
        assert_eq!(live_features(&none, &none)[fb], 0.0);
        // Identical teams: every difference is zero.
        assert!(live_features(&with, &with).iter().all(|v| *v == 0.0));
    }

    #[test]
    fn huge_totals_do_not_overflow() {
        let blue = TeamTotals {
            total_gold: u64::MAX,
            kills: u32::MAX,
            ..TeamTotals::default()
        };
        let f = live_features(&blue, &TeamTotals::default());
        assert!(f[0] > 1e19 && f[2] > 4e9);
        let g = live_features(&TeamTotals::default(), &blue);
        assert_eq!(f[0], -g[0]);
    }
}
