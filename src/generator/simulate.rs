//! The match simulation: matchmaking, drafts, minute-by-minute play, outputs.

use super::champions::CHAMPIONS;
use super::population::Population;
use super::GeneratorConfig;
use crate::events::{
    Building, GameEvent, GameEventKind, LineupSlot, Match, Monster, Participant, PlayerStats, PredictionRequest, Role,
    Team, TeamFrame,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Variance of the hidden swing per minute in the first 10 minutes, and in
/// total over the rest of the game; with the final `η` they sum to 1 so that `P(blue wins) = Φ(g)` exactly.
const SWING_VAR_EARLY: f64 = 0.045;
const SWING_VAR_LATE_TOTAL: f64 = 0.4;
const FINAL_NOISE_VAR: f64 = 1.0 - 10.0 * SWING_VAR_EARLY - SWING_VAR_LATE_TOTAL;
/// Pre-game probit per unit of summed (skill + champion) difference.
const PROBIT_PER_SKILL: f64 = 0.42;
/// Blue side's small structural advantage, in probit units.
const BLUE_SIDE_PROBIT: f64 = 0.04;

/// Everything the simulator produced, each list in delivery order.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    /// Finished matches.
    pub matches: Vec<Match>,
    /// Ranked snapshots.
    pub player_stats: Vec<PlayerStats>,
    /// Events and frames of live games.
    pub game_events: Vec<GameEvent>,
    /// Pre-game prediction requests of live games.
    pub requests: Vec<PredictionRequest>,
    /// Live games: match id, winner and the simulator's pre-game blue win probability.
    pub live_outcomes: Vec<(String, Team, f64)>,
}

/// Runs the simulation described by `cfg`. Deterministic for a seed.
pub fn simulate(cfg: &GeneratorConfig) -> Simulation {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut population = Population::generate(cfg.players.max(20), &mut rng);
    let patches = (cfg.days / cfg.patch_days.max(1)) as usize + 2;
    let strength_dist = Normal::new(0.0, 0.12).expect("valid normal");
    let strengths: Vec<Vec<f64>> = (0..patches)
        .map(|_| (0..CHAMPIONS.len()).map(|_| strength_dist.sample(&mut rng)).collect())
        .collect();
    let span = cfg.days.max(1) as i64 * DAY_MS;
    let mut sim = Simulation::default();
    let total = cfg.matches + cfg.live_games;
    for i in 0..total {
        let live = i >= cfg.matches;
        let start = if live {
            // Live games start after the history, spread over an hour.
            let k = (i - cfg.matches) as i64;
            cfg.start_ms + span + 10 * MINUTE_MS + k * 3_600_000 / cfg.live_games.max(1) as i64
        } else {
            cfg.start_ms + ((i as f64 + rng.gen::<f64>()) / cfg.matches as f64 * span as f64) as i64
        };
        let patch_idx = (((start - cfg.start_ms).max(0) / DAY_MS) as u32 / cfg.patch_days.max(1)) as usize;
        let patch = format!("26.{}", patch_idx + 1);
        let Some(ten) = (0..50).find_map(|_| population.matchmake(start, &mut rng)) else {
            continue;
        };
        let lineup = draft(&population, &ten, &strengths[patch_idx.min(patches - 1)], &mut rng);
        let match_id = format!("SIM_{}_{:07}", cfg.seed, i);
        let game = play(&population, &lineup, start, &match_id, live, &mut rng);
        for slot in &lineup {
            population.players[slot.player].busy_until = game.end_time;
        }
        if live {
            sim.requests.push(PredictionRequest {
                match_id: match_id.clone(),
                request_time: start - 30_000,
                queue: "ranked_solo".into(),
                patch: patch.clone(),
                participants: lineup
                    .iter()
                    .map(|s| LineupSlot {
                        player_id: population.players[s.player].id.clone(),
                        team: s.team,
                        role: s.role,
                        champion: CHAMPIONS[s.champion].0.to_string(),
                    })
                    .collect(),
            });
            sim.live_outcomes.push((match_id.clone(), game.winner, game.p_blue));
            sim.game_events.extend(game.events.iter().cloned());
        }
        if !live || cfg.finish_live_games {
            let m = finished_match(
                &population,
                &lineup,
                &game,
                &match_id,
                &patch,
                &strengths,
                patch_idx,
                &mut rng,
            );
            ranked_updates(
                &mut population,
                &m,
                cfg.player_stats_rate,
                &mut sim.player_stats,
                &mut rng,
            );
            sim.matches.push(m);
        }
    }
    let jitter = cfg.jitter_ms.max(0);
    deliver(&mut sim.matches, |m| m.end_time, jitter, &mut rng);
    deliver(&mut sim.player_stats, |p| p.time, jitter, &mut rng);
    deliver(&mut sim.game_events, |e| e.event_time, jitter, &mut rng);
    deliver(&mut sim.requests, |r| r.request_time, jitter, &mut rng);
    sim
}

/// Sorts records into delivery order: event time plus a random delay of up to `jitter` ms.
fn deliver<T>(records: &mut Vec<T>, time: impl Fn(&T) -> i64, jitter: i64, rng: &mut ChaCha8Rng) {
    let mut keyed: Vec<(i64, usize, T)> = records
        .drain(..)
        .enumerate()
        .map(|(i, r)| {
            let delay = if jitter > 0 { rng.gen_range(0..=jitter) } else { 0 };
            (time(&r) + delay, i, r)
        })
        .collect();
    keyed.sort_by_key(|(t, i, _)| (*t, *i));
    records.extend(keyed.into_iter().map(|(_, _, r)| r));
}

/// One player's place in a drafted match.
#[derive(Debug, Clone, Copy)]
struct Slot {
    player: usize,
    role: Role,
    team: Team,
    champion: usize,
    /// Skill + mastery + champion strength.
    strength: f64,
}

fn draft(pop: &Population, ten: &[usize], strengths: &[f64], rng: &mut ChaCha8Rng) -> Vec<Slot> {
    let roles = pop.assign_roles(ten, rng);
    let mut taken = Vec::with_capacity(10);
    let mut slots = Vec::with_capacity(10);
    for (player, role, blue) in roles {
        let champion = pop.pick_champion(player, role, &taken, rng);
        taken.push(champion);
        let p = &pop.players[player];
        slots.push(Slot {
            player,
            role,
            team: if blue { Team::Blue } else { Team::Red },
            champion,
            strength: p.skill + p.mastery(champion) + strengths[champion],
        });
    }
    // Blue's five first, in role order, then red's.
    slots.sort_by_key(|s| (s.team, s.role));
    slots
}

/// Per-team running totals during a simulated game.
#[derive(Debug, Clone, Copy, Default)]
struct TeamTotals {
    kills: i32,
    assists: i32,
    wards_placed: i32,
    wards_killed: i32,
    dragons: i32,
    heralds: i32,
    barons: i32,
    towers: i32,
    gold: f64,
    xp: f64,
    cs: f64,
    jungle_cs: f64,
}

impl TeamTotals {
    fn frame(&self) -> TeamFrame {
        let per_player_xp = self.xp / 5.0;
        TeamFrame {
            total_gold: self.gold.round() as i64,
            total_xp: self.xp.round() as i64,
            avg_level: ((1.0 + (per_player_xp / 95.0).sqrt()) * 10.0).round().min(180.0) / 10.0,
            total_cs: self.cs.round() as i32,
            total_jungle_cs: self.jungle_cs.round() as i32,
        }
    }
}

/// The result of simulating one game.
struct Game {
    start_time: i64,
    end_time: i64,
    winner: Team,
    p_blue: f64,
    /// Every event (kept only for live games).
    events: Vec<GameEvent>,
    kills: [i32; 10],
    deaths: [i32; 10],
    assists: [i32; 10],
    wards: [i32; 10],
    totals: [TeamTotals; 2],
    first_blood: Option<Team>,
}

fn probit_to_p(g: f64) -> f64 {
    0.5 * (1.0 + erf(g / std::f64::consts::SQRT_2))
}

/// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592)
            * t
            * (-x * x).exp();
    sign * y
}

fn poisson(lambda: f64, rng: &mut ChaCha8Rng) -> i32 {
    if lambda <= 0.0 {
        return 0;
    }
    Poisson::new(lambda).map(|d| d.sample(rng) as i32).unwrap_or(0)
}

fn play(pop: &Population, lineup: &[Slot], start: i64, match_id: &str, live: bool, rng: &mut ChaCha8Rng) -> Game {
    let _ = pop;
    let blue_strength: f64 = lineup.iter().filter(|s| s.team == Team::Blue).map(|s| s.strength).sum();
    let red_strength: f64 = lineup.iter().filter(|s| s.team == Team::Red).map(|s| s.strength).sum();
    let g = PROBIT_PER_SKILL * (blue_strength - red_strength) + BLUE_SIDE_PROBIT;
    let p_blue = probit_to_p(g);
    let unit = Normal::new(0.0, 1.0).expect("valid normal");
    // The game's length is drawn first; the hidden swings of the minutes
    // actually played, plus a small final noise, decide the result.
    let duration_ms = ((22.0 + 18.0 * rng.gen::<f64>()) * MINUTE_MS as f64) as i64;
    let minutes = (duration_ms / MINUTE_MS) as usize;
    let late_var = SWING_VAR_LATE_TOTAL / (minutes.saturating_sub(10).max(1)) as f64;
    let minute_var = |m: usize| if m <= 10 { SWING_VAR_EARLY } else { late_var };
    let swings: Vec<f64> = (1..=minutes).map(|m| minute_var(m).sqrt() * unit.sample(rng)).collect();
    let hidden: f64 = swings.iter().sum::<f64>() + FINAL_NOISE_VAR.sqrt() * unit.sample(rng);
    let winner = if g + hidden > 0.0 { Team::Blue } else { Team::Red };

    let mut game = Game {
        start_time: start,
        end_time: start + duration_ms,
        winner,
        p_blue,
        events: Vec::new(),
        kills: [0; 10],
        deaths: [0; 10],
        assists: [0; 10],
        wards: [0; 10],
        totals: [TeamTotals::default(); 2],
        first_blood: None,
    };
    for t in game.totals.iter_mut() {
        t.gold = 2500.0;
    }
    let mut pending: Vec<(i64, GameEvent)> = Vec::new();
    let push = |pending: &mut Vec<(i64, GameEvent)>, game_time: i64, kind: GameEventKind, team: Option<Team>| {
        if live {
            pending.push((
                game_time,
                GameEvent {
                    match_id: match_id.to_string(),
                    seq: 0,
                    event_time: start + game_time,
                    game_time_ms: game_time,
                    queue: "ranked_solo".into(),
                    kind,
                    team,
                    killer_id: None,
                    victim_id: None,
                    assists: None,
                    monster: None,
                    building: None,
                    blue: None,
                    red: None,
                },
            ));
        }
        pending.len().checked_sub(1)
    };
    push(&mut pending, 0, GameEventKind::GameStart, None);

    let mut cumulative = 0.0;
    let mut first_blood_done = false;
    let mut dragon_up_at = 5 * MINUTE_MS;
    let mut herald_taken = 0;
    let mut baron_up_at = 20 * MINUTE_MS;
    let kill_weight = |role: Role| match role {
        Role::Mid | Role::Bottom => 3.0,
        Role::Jungle => 2.2,
        Role::Top => 2.0,
        Role::Support => 0.8,
    };
    for m in 1..=minutes {
        let minute_start = (m as i64 - 1) * MINUTE_MS;
        let swing = swings.get(m - 1).copied().unwrap_or(0.0);
        // Observable momentum: this minute's swing plus the stronger team's edge.
        let x = swing / minute_var(m).sqrt() * 0.8 + 0.35 * g / 0.5;
        cumulative += x;
        let lead = cumulative / (m as f64).sqrt();
        let early = m <= 10;
        let base_kills = if early { 0.6 } else { 0.85 };
        for (team_idx, team) in [Team::Blue, Team::Red].into_iter().enumerate() {
            let sign = if team == Team::Blue { 1.0 } else { -1.0 };
            let tilt = sign * x;
            let n_kills = poisson(base_kills * (0.8 * tilt).exp(), rng);
            for _ in 0..n_kills {
                let at = minute_start + rng.gen_range(0..MINUTE_MS);
                let killers: Vec<usize> = (0..10).filter(|i| lineup[*i].team == team).collect();
                let victims: Vec<usize> = (0..10).filter(|i| lineup[*i].team != team).collect();
                let weights: Vec<f64> = killers.iter().map(|i| kill_weight(lineup[*i].role)).collect();
                let total: f64 = weights.iter().sum();
                let mut r = rng.gen::<f64>() * total;
                let mut killer = killers[0];
                for (k, w) in killers.iter().zip(&weights) {
                    r -= w;
                    if r <= 0.0 {
                        killer = *k;
                        break;
                    }
                }
                let victim = victims[rng.gen_range(0..5)];
                let n_assists = rng.gen_range(0..=3).min(4);
                game.kills[killer] += 1;
                game.deaths[victim] += 1;
                let mut helpers: Vec<usize> = killers.iter().copied().filter(|k| *k != killer).collect();
                for _ in 0..n_assists {
                    if helpers.is_empty() {
                        break;
                    }
                    let h = helpers.swap_remove(rng.gen_range(0..helpers.len()));
                    game.assists[h] += 1;
                }
                let t = &mut game.totals[team_idx];
                t.kills += 1;
                t.assists += n_assists;
                t.gold += 300.0 + 50.0 * n_assists as f64;
                t.xp += 220.0;
                if let Some(idx) = push(&mut pending, at, GameEventKind::ChampionKill, Some(team)) {
                    let e = &mut pending[idx].1;
                    e.killer_id = Some(pop.players[lineup[killer].player].id.clone());
                    e.victim_id = Some(pop.players[lineup[victim].player].id.clone());
                    e.assists = Some(n_assists);
                }
            }
            // Wards.
            let placed = poisson(if m == 1 { 1.0 } else { 2.3 }, rng);
            for _ in 0..placed {
                let owner = (0..10)
                    .filter(|i| lineup[*i].team == team)
                    .nth(if rng.gen_bool(0.45) { 4 } else { rng.gen_range(0..5) })
                    .unwrap_or(0);
                game.wards[owner] += 1;
                game.totals[team_idx].wards_placed += 1;
                push(
                    &mut pending,
                    minute_start + rng.gen_range(0..MINUTE_MS),
                    GameEventKind::WardPlaced,
                    Some(team),
                );
            }
            let killed = poisson(0.3 * (0.3 * tilt).exp(), rng);
            game.totals[team_idx].wards_killed += killed;
            for _ in 0..killed {
                push(
                    &mut pending,
                    minute_start + rng.gen_range(0..MINUTE_MS),
                    GameEventKind::WardKilled,
                    Some(team),
                );
            }
            // Farm and experience.
            let t = &mut game.totals[team_idx];
            t.gold += 1150.0 + 300.0 * tilt + 60.0 * unit.sample(rng);
            t.xp += 1550.0 + 230.0 * tilt + 60.0 * unit.sample(rng);
            if m >= 2 {
                t.cs += (26.0 + 2.5 * tilt + 2.0 * unit.sample(rng)).max(0.0);
            }
            if m >= 2 {
                t.jungle_cs += (5.6 + 0.7 * tilt + 0.7 * unit.sample(rng)).max(0.0);
            }
            // Towers: rare before 10 minutes, then tilted by the lead.
            let tower_rate = if early { 0.006 } else { 0.16 } * (0.8 * sign * lead).exp();
            if rng.gen::<f64>() < tower_rate.min(0.9) {
                t.towers += 1;
                t.gold += 550.0;
                if let Some(idx) = push(
                    &mut pending,
                    minute_start + rng.gen_range(0..MINUTE_MS),
                    GameEventKind::BuildingKill,
                    Some(team),
                ) {
                    pending[idx].1.building = Some(Building::Tower);
                }
            }
        }
        // First blood goes to the earliest kill.
        if !first_blood_done {
            if let Some((at, team)) = pending
                .iter()
                .filter(|(_, e)| e.kind == GameEventKind::ChampionKill)
                .map(|(at, e)| (*at, e.team))
                .min_by_key(|(at, _)| *at)
            {
                first_blood_done = true;
                push(&mut pending, at, GameEventKind::FirstBlood, team);
                game.first_blood = team;
            } else if !live {
                // History games record first blood without events.
                let blue_kills = game.totals[0].kills;
                let red_kills = game.totals[1].kills;
                if blue_kills + red_kills > 0 {
                    first_blood_done = true;
                    let p_blue = blue_kills as f64 / (blue_kills + red_kills) as f64;
                    game.first_blood = Some(if rng.gen_bool(p_blue) { Team::Blue } else { Team::Red });
                }
            }
        }
        // Objectives: dragon from 5:00 (respawns 5 minutes later), herald 8:00-19:45, baron from 20:00.
        let blue_edge = 1.0 / (1.0 + (-0.9 * lead).exp());
        let minute_end = m as i64 * MINUTE_MS;
        let objective = |kind: Monster, game: &mut Game, pending: &mut Vec<(i64, GameEvent)>, rng: &mut ChaCha8Rng| {
            let team = if rng.gen_bool(blue_edge.clamp(0.02, 0.98)) {
                Team::Blue
            } else {
                Team::Red
            };
            let t = &mut game.totals[if team == Team::Blue { 0 } else { 1 }];
            match kind {
                Monster::Dragon => t.dragons += 1,
                Monster::Herald => t.heralds += 1,
                Monster::Baron => t.barons += 1,
            }
            t.gold += 300.0;
            let at = minute_start + rng.gen_range(0..MINUTE_MS);
            if let Some(idx) = push(pending, at, GameEventKind::EliteMonsterKill, Some(team)) {
                pending[idx].1.monster = Some(kind);
            }
            at
        };
        if minute_end > dragon_up_at && rng.gen::<f64>() < 0.28 {
            let at = objective(Monster::Dragon, &mut game, &mut pending, rng);
            dragon_up_at = at + 5 * MINUTE_MS;
        }
        if (8..20).contains(&m) && herald_taken < 1 && rng.gen::<f64>() < 0.09 {
            objective(Monster::Herald, &mut game, &mut pending, rng);
            herald_taken += 1;
        }
        if minute_end > baron_up_at && rng.gen::<f64>() < 0.15 {
            let at = objective(Monster::Baron, &mut game, &mut pending, rng);
            baron_up_at = at + 6 * MINUTE_MS;
        }
        if live {
            if let Some(idx) = push(&mut pending, minute_end, GameEventKind::Frame, None) {
                pending[idx].1.blue = Some(game.totals[0].frame());
                pending[idx].1.red = Some(game.totals[1].frame());
            }
        }
    }
    if live {
        push(&mut pending, duration_ms, GameEventKind::GameEnd, Some(winner));
        // Order by game time; a frame closes its minute after that minute's events.
        pending.sort_by_key(|(at, e)| (*at, e.kind == GameEventKind::Frame));
        game.events = pending
            .into_iter()
            .enumerate()
            .map(|(seq, (_, mut e))| {
                e.seq = seq as i64;
                e
            })
            .collect();
    }
    game
}

/// Share of a team's gold and cs taken by each role.
fn role_share(role: Role) -> (f64, f64) {
    match role {
        Role::Top => (0.215, 0.27),
        Role::Jungle => (0.195, 0.08),
        Role::Mid => (0.225, 0.30),
        Role::Bottom => (0.235, 0.33),
        Role::Support => (0.13, 0.02),
    }
}

#[allow(clippy::too_many_arguments)]
fn finished_match(
    pop: &Population,
    lineup: &[Slot],
    game: &Game,
    match_id: &str,
    patch: &str,
    strengths: &[Vec<f64>],
    patch_idx: usize,
    rng: &mut ChaCha8Rng,
) -> Match {
    let noise = Normal::new(1.0, 0.08).expect("valid normal");
    let participants = lineup
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = &game.totals[if s.team == Team::Blue { 0 } else { 1 }];
            let (gold_share, cs_share) = role_share(s.role);
            let gold = (t.gold * gold_share * noise.sample(rng)).max(500.0);
            let cs = ((t.cs + t.jungle_cs) * cs_share * noise.sample(rng)).max(0.0);
            let player = &pop.players[s.player];
            Participant {
                player_id: player.id.clone(),
                player_name: player.name.clone(),
                team: s.team,
                role: s.role,
                champion: CHAMPIONS[s.champion].0.to_string(),
                kills: game.kills[i],
                deaths: game.deaths[i],
                assists: game.assists[i],
                gold: gold.round() as i64,
                cs: if s.role == Role::Jungle {
                    (t.jungle_cs * noise.sample(rng)).round() as i32
                } else {
                    cs.round() as i32
                },
                vision_score: (game.wards[i] as f64 * 1.6 + 4.0 * noise.sample(rng)).round() as i32,
                damage: (gold * 1.15 * noise.sample(rng)).round() as i64,
                win: s.team == game.winner,
            }
        })
        .collect();
    // Bans: the strongest champions of the patch not picked, five per team.
    let picked: Vec<usize> = lineup.iter().map(|s| s.champion).collect();
    let table = &strengths[patch_idx.min(strengths.len() - 1)];
    let mut candidates: Vec<(f64, usize)> = (0..CHAMPIONS.len())
        .filter(|c| !picked.contains(c))
        .map(|c| (table[c] + 0.1 * rng.gen::<f64>(), c))
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let bans = candidates
        .into_iter()
        .take(10)
        .map(|(_, c)| CHAMPIONS[c].0.to_string())
        .collect();
    Match {
        match_id: match_id.to_string(),
        platform: "EUW1".into(),
        queue: "ranked_solo".into(),
        patch: patch.to_string(),
        start_time: game.start_time,
        end_time: game.end_time,
        winning_team: game.winner,
        participants,
        bans,
        simulated_blue_win_probability: Some((game.p_blue * 1e6).round() / 1e6),
    }
}

fn ranked_updates(pop: &mut Population, m: &Match, rate: f64, out: &mut Vec<PlayerStats>, rng: &mut ChaCha8Rng) {
    for p in &m.participants {
        let Some(idx) = p.player_id.strip_prefix('p').and_then(|s| s.parse::<usize>().ok()) else {
            continue;
        };
        let player = &mut pop.players[idx];
        if p.win {
            player.wins += 1;
            player.league_points = (player.league_points + rng.gen_range(17..24)) % 100;
        } else {
            player.losses += 1;
            player.league_points = (player.league_points - rng.gen_range(14..20)).rem_euclid(100);
        }
        if rng.gen::<f64>() < rate.clamp(0.0, 1.0) {
            let (tier, rank) = player.tier_and_rank();
            out.push(PlayerStats {
                player_id: player.id.clone(),
                tier: tier.to_string(),
                rank: rank.to_string(),
                league_points: player.league_points,
                wins: player.wins,
                losses: player.losses,
                time: m.end_time + rng.gen_range(1_000..120_000),
            });
        }
    }
}
