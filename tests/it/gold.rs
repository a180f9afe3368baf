//! Gold tables (differential dataflow) against SQL recomputations over silver.

use super::support::{duckdb, run_bounded, write_jsonl};
use riftstream::generator::{simulate, GeneratorConfig};

#[test]
fn gold_tables_equal_sql_over_silver_even_when_old_matches_arrive_late() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let sim = simulate(&GeneratorConfig {
        players: 250,
        matches: 900,
        live_games: 0,
        days: 8,
        seed: 4,
        ..Default::default()
    });
    let mut lines: Vec<serde_json::Value> = sim.matches.iter().map(|m| serde_json::to_value(m).unwrap()).collect();
    // Replays of ten early matches (duplicates) and five early matches held back to the end (late):
    // their days have long closed when they arrive, so gold must retract and rewrite those days.
    let held: Vec<serde_json::Value> = lines.drain(20..25).collect();
    let dupes: Vec<serde_json::Value> = lines[..10].to_vec();
    lines.extend(dupes);
    lines.extend(held);
    write_jsonl(&dir.path().join("matches.jsonl"), &lines);
    let topo = format!(
        r#"
[runtime]
workers = 2
state_dir = "{d}/state"
[sources.matches]
kind = "file"
path = "{d}/matches.jsonl"
schema = "matches"
[sinks.lake]
kind = "lake"
root = "{d}/lake"
[jobs.gold_lake]
kind = "lake"
sources = ["matches"]
lake = "lake"
"#
    );
    run_bounded(&topo, 2);
    let lake = format!("{d}/lake");
    let silver_matches = format!("read_parquet('{lake}/silver/matches/**/*.parquet', hive_partitioning=1)");
    let silver_players = format!("read_parquet('{lake}/silver/match_participants/**/*.parquet', hive_partitioning=1)");
    let gold = |t: &str| format!("read_parquet('{lake}/gold/{t}/**/*.parquet', hive_partitioning=1)");
    assert_eq!(duckdb(&format!("select count(*) from {silver_matches}"))[0][0], 900);

    // Champion stats: games, wins, win rate, pick and ban rates per day, patch, champion.
    let mismatches = duckdb(&format!(
        "with picks as (select date, patch, champion, count(*) games, sum(win::int) wins from {silver_players} group by all),
              bans as (select date, patch, champion, count(*) bans from (select date, patch, unnest(bans) champion from {silver_matches}) group by all),
              n as (select date, patch, count(*) matches from {silver_matches} group by all),
              want as (select coalesce(p.date, b.date) date, coalesce(p.patch, b.patch) patch, coalesce(p.champion, b.champion) champion,
                              coalesce(games, 0) games, coalesce(wins, 0) wins, coalesce(bans, 0) bans
                       from picks p full join bans b using (date, patch, champion))
         select count(*) from want w join n using (date, patch)
         full join {g} g using (date, patch, champion)
         where g.games is distinct from w.games or g.wins is distinct from w.wins or g.bans is distinct from w.bans
            or g.matches is distinct from n.matches
            or abs(g.win_rate - (case when w.games = 0 then 0 else w.wins / w.games end)) > 1e-9
            or abs(g.pick_rate - w.games / n.matches) > 1e-9 or abs(g.ban_rate - w.bans / n.matches) > 1e-9",
        g = gold("champion_stats")
    ));
    assert_eq!(mismatches[0][0], 0, "gold champion stats differ from SQL over silver");
    let rows = duckdb(&format!(
        "select count(*), count(distinct date) from {}",
        gold("champion_stats")
    ));
    assert!(
        rows[0][0].as_i64().unwrap() > 200 && rows[0][1].as_i64().unwrap() >= 8,
        "{rows:?}"
    );

    // Player daily statistics.
    let mismatches = duckdb(&format!(
        "with want as (select date, player_id, count(*) games, sum(win::int) wins, sum(kills) kills, sum(deaths) deaths, sum(assists) assists
                       from {silver_players} group by all)
         select count(*) from want w full join {g} g using (date, player_id)
         where g.games is distinct from w.games or g.wins is distinct from w.wins or g.kills is distinct from w.kills
            or g.deaths is distinct from w.deaths or g.assists is distinct from w.assists",
        g = gold("player_daily")
    ));
    assert_eq!(mismatches[0][0], 0, "gold player daily differs from SQL over silver");

    // Leaderboard as of the last day: top 100 by (wins + 5) / (games + 10) over all history.
    let got = duckdb(&format!(
        "select player_id from {} where date = (select max(date) from {}) order by rank",
        gold("leaderboard"),
        gold("leaderboard")
    ));
    let want = duckdb(&format!(
        "select player_id from (select player_id, count(*) games, sum(win::int) wins from {silver_players} group by 1)
         where games >= 5 order by ((wins + 5) * 1000000) // (games + 10) desc, player_id desc limit 100"
    ));
    assert_eq!(got.len(), 100);
    assert_eq!(got, want);
}
