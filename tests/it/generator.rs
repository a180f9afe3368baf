//! The simulator: deterministic for a seed, realistic in shape, and its
//! outputs pass the same validation as any input.

use riftstream::events::{Event, GameEventKind, Team};
use riftstream::generator::{simulate, GeneratorConfig};

fn cfg(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        players: 400,
        matches: 1_500,
        live_games: 30,
        finish_live_games: true,
        ..Default::default()
    }
}

#[test]
fn same_seed_same_data_different_seed_different_data() {
    let a = simulate(&cfg(7));
    let b = simulate(&cfg(7));
    let c = simulate(&cfg(8));
    let json = |s: &riftstream::generator::Simulation| {
        (
            serde_json::to_string(&s.matches).unwrap(),
            serde_json::to_string(&s.game_events).unwrap(),
            serde_json::to_string(&s.player_stats).unwrap(),
            serde_json::to_string(&s.requests).unwrap(),
        )
    };
    assert_eq!(json(&a), json(&b));
    assert_ne!(json(&a).0, json(&c).0);
}

#[test]
fn every_generated_record_is_valid() {
    let s = simulate(&cfg(3));
    let now = riftstream::util::now_ms();
    assert!(s.matches.len() >= 1_500);
    for m in &s.matches {
        m.validate(now).unwrap_or_else(|e| panic!("{}: {e}", m.match_id));
    }
    for e in &s.game_events {
        e.validate(now)
            .unwrap_or_else(|err| panic!("{} #{}: {err}", e.match_id, e.seq));
    }
    for p in &s.player_stats {
        p.validate(now).unwrap();
    }
    for r in &s.requests {
        r.validate(now).unwrap();
    }
}

#[test]
fn outcomes_follow_the_simulators_own_probability() {
    let s = simulate(&GeneratorConfig {
        players: 1_000,
        matches: 6_000,
        live_games: 0,
        ..Default::default()
    });
    // Calibration: blue's win rate in each probability band matches the band.
    let mut bands = [(0u32, 0u32, 0f64); 4];
    for m in &s.matches {
        let p = m.simulated_blue_win_probability.unwrap();
        let b = ((p * 4.0) as usize).min(3);
        bands[b].0 += 1;
        bands[b].1 += (m.winning_team == Team::Blue) as u32;
        bands[b].2 += p;
    }
    for (n, wins, psum) in bands.iter().filter(|b| b.0 > 300) {
        let observed = *wins as f64 / *n as f64;
        let expected = psum / *n as f64;
        assert!(
            (observed - expected).abs() < 0.06,
            "band: observed {observed:.3} vs expected {expected:.3} over {n}"
        );
    }
    // Skill matters: the best model's accuracy is clearly above a coin flip.
    let best = s
        .matches
        .iter()
        .filter(|m| (m.simulated_blue_win_probability.unwrap() > 0.5) == (m.winning_team == Team::Blue))
        .count() as f64
        / s.matches.len() as f64;
    assert!(best > 0.56 && best < 0.8, "simulator accuracy {best}");
    // Winners kill more.
    let (mut win_kills, mut loss_kills) = (0i64, 0i64);
    for m in &s.matches {
        for p in &m.participants {
            if p.win {
                win_kills += p.kills as i64
            } else {
                loss_kills += p.kills as i64
            }
        }
    }
    assert!(
        win_kills as f64 > 1.2 * loss_kills as f64,
        "{win_kills} vs {loss_kills}"
    );
}

#[test]
fn live_games_have_ordered_timelines_and_minute_frames_shaped_like_the_kaggle_data() {
    let s = simulate(&GeneratorConfig {
        players: 600,
        matches: 200,
        live_games: 60,
        ..Default::default()
    });
    let mut frames_at_10 = Vec::new();
    for (id, _, _) in &s.live_outcomes {
        let events: Vec<_> = s.game_events.iter().filter(|e| &e.match_id == id).collect();
        assert_eq!(events.first().unwrap().kind, GameEventKind::GameStart);
        assert_eq!(events.last().unwrap().kind, GameEventKind::GameEnd);
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..events.len() as i64).collect::<Vec<_>>());
        assert!(events.windows(2).all(|w| w[0].game_time_ms <= w[1].game_time_ms));
        assert!(events.iter().filter(|e| e.kind == GameEventKind::FirstBlood).count() <= 1);
        if let Some(f) = events
            .iter()
            .find(|e| e.kind == GameEventKind::Frame && e.game_time_ms == 600_000)
        {
            frames_at_10.push(f.blue.unwrap());
        }
    }
    assert!(frames_at_10.len() >= 50);
    let n = frames_at_10.len() as f64;
    let gold = frames_at_10.iter().map(|f| f.total_gold as f64).sum::<f64>() / n;
    let level = frames_at_10.iter().map(|f| f.avg_level).sum::<f64>() / n;
    let cs = frames_at_10.iter().map(|f| f.total_cs as f64).sum::<f64>() / n;
    // The real Diamond data at minute 10: ~16.5k gold, level ~6.9, ~217 cs per team.
    assert!((13_000.0..20_000.0).contains(&gold), "gold {gold}");
    assert!((6.0..8.0).contains(&level), "level {level}");
    assert!((170.0..260.0).contains(&cs), "cs {cs}");
}
