//! Replays of the real data files as topic records.
//!
//! * [`oracles_elixir_matches`]: Oracle's Elixir rows (one per player and
//!   team per game) grouped into [`Match`] records — professional World
//!   Championship games, `queue = "worlds"`, `platform` = the league.
//! * [`ten_minute_games`]: each row of the Kaggle 10-minute CSV becomes a
//!   live game: `game_start`, the row's kills, wards, first blood, dragons,
//!   heralds and towers as events spread over the first ten minutes, a frame
//!   at minute 10 with the row's gold, xp, level and cs, and `game_end` with
//!   the result. Streamed through the live job, the state at minute 10 is
//!   exactly the row, so in-stream predictions equal the offline model's.
//!
//! Rows that cannot form a valid record are counted and reported, never
//! silently used: the caller gets them back with the reason.

use crate::error::{Result, RiftError};
use crate::events::{Building, GameEvent, GameEventKind, Match, Monster, Participant, Role, Team, TeamFrame};
use crate::model::read_ten_minute_rows;
use std::collections::BTreeMap;
use std::path::Path;

/// A timeline entry before numbering: (game time, kind, team, monster, building, assists).
type Planned = (
    i64,
    GameEventKind,
    Option<Team>,
    Option<Monster>,
    Option<Building>,
    Option<i32>,
);

/// Replayed live games: their events, and each game's (match id, winner).
pub type LiveReplay = (Vec<GameEvent>, Vec<(String, Team)>);

/// Matches and the games that could not be turned into one (game id, reason).
pub type Replay<T> = (Vec<T>, Vec<(String, String)>);

fn parse_date(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%m/%d/%Y %H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S"))
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

fn role(position: &str) -> Option<Role> {
    Some(match position {
        "top" => Role::Top,
        "jng" => Role::Jungle,
        "mid" => Role::Mid,
        "bot" => Role::Bottom,
        "sup" => Role::Support,
        _ => return None,
    })
}

/// Reads an Oracle's Elixir CSV into matches, in start-time order.
pub fn oracles_elixir_matches(path: &Path) -> Result<Replay<Match>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| RiftError::Usage(format!("{}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| RiftError::Usage(format!("{}: {e}", path.display())))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = [
        "gameid",
        "league",
        "date",
        "patch",
        "side",
        "position",
        "playername",
        "playerid",
        "champion",
        "gamelength",
        "result",
        "kills",
        "deaths",
        "assists",
        "totalgold",
        "total cs",
        "visionscore",
        "damagetochampions",
    ];
    let mut idx = BTreeMap::new();
    for n in need {
        idx.insert(
            n,
            col(n).ok_or_else(|| RiftError::Usage(format!("{}: missing column `{n}`", path.display())))?,
        );
    }
    let bans: Vec<usize> = (1..=5).filter_map(|i| col(&format!("ban{i}"))).collect();
    let mut games: BTreeMap<String, Vec<csv::StringRecord>> = BTreeMap::new();
    for (line, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| RiftError::Usage(format!("{} line {}: {e}", path.display(), line + 2)))?;
        games.entry(rec[idx["gameid"]].to_string()).or_default().push(rec);
    }
    let mut matches = Vec::new();
    let mut rejected = Vec::new();
    for (game_id, rows) in games {
        match game_to_match(&game_id, &rows, &idx, &bans) {
            Ok(m) => matches.push(m),
            Err(why) => rejected.push((game_id, why)),
        }
    }
    matches.sort_by_key(|m| (m.start_time, m.match_id.clone()));
    Ok((matches, rejected))
}

fn game_to_match(
    game_id: &str,
    rows: &[csv::StringRecord],
    idx: &BTreeMap<&str, usize>,
    bans: &[usize],
) -> std::result::Result<Match, String> {
    let get = |r: &csv::StringRecord, c: &str| r.get(idx[c]).unwrap_or("").trim().to_string();
    let num = |r: &csv::StringRecord, c: &str| -> std::result::Result<i64, String> {
        let v = get(r, c);
        v.parse::<f64>().map(|f| f as i64).map_err(|_| format!("{c} is `{v}`"))
    };
    let first = rows.first().ok_or("no rows")?;
    let start = parse_date(&get(first, "date")).ok_or_else(|| format!("unparseable date `{}`", get(first, "date")))?;
    let length = num(first, "gamelength")?;
    let mut participants = Vec::new();
    let mut winner = None;
    let mut ban_list = Vec::new();
    for r in rows {
        let team = match get(r, "side").as_str() {
            "Blue" => Team::Blue,
            "Red" => Team::Red,
            other => return Err(format!("unknown side `{other}`")),
        };
        let position = get(r, "position");
        if position == "team" {
            if num(r, "result")? == 1 {
                winner = Some(team);
            }
            ban_list.extend(
                bans.iter()
                    .filter_map(|b| r.get(*b))
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(String::from),
            );
            continue;
        }
        let role = role(&position).ok_or_else(|| format!("unknown position `{position}`"))?;
        let name = get(r, "playername");
        let id = match get(r, "playerid") {
            id if !id.is_empty() => id,
            _ => format!("oe:name:{name}"),
        };
        participants.push(Participant {
            player_id: id,
            player_name: name,
            team,
            role,
            champion: get(r, "champion"),
            kills: num(r, "kills")? as i32,
            deaths: num(r, "deaths")? as i32,
            assists: num(r, "assists")? as i32,
            gold: num(r, "totalgold")?,
            cs: num(r, "total cs").unwrap_or(0) as i32,
            vision_score: num(r, "visionscore").unwrap_or(0) as i32,
            damage: num(r, "damagetochampions").unwrap_or(0),
            win: num(r, "result")? == 1,
        });
    }
    let winning_team = winner.ok_or("no team row with the result")?;
    Ok(Match {
        match_id: game_id.to_string(),
        platform: get(first, "league"),
        queue: "worlds".into(),
        patch: get(first, "patch"),
        start_time: start,
        end_time: start + length * 1000,
        winning_team,
        participants,
        bans: ban_list,
        simulated_blue_win_probability: None,
    })
}

/// Turns each row of the Kaggle 10-minute CSV into a live game's events,
/// games starting every `spacing_ms` from `start_ms`. Returns the events and
/// each game's (match id, winner).
pub fn ten_minute_games(path: &Path, start_ms: i64, spacing_ms: i64) -> Result<LiveReplay> {
    let rows = read_ten_minute_rows(path)?;
    let mut events = Vec::new();
    let mut outcomes = Vec::new();
    for (g, row) in rows.iter().enumerate() {
        let match_id = format!("KAGGLE_{}", row.game_id);
        let start = start_ms + g as i64 * spacing_ms;
        let mut timeline: Vec<Planned> = Vec::new();
        let spread = |n: u32, offset: i64| -> Vec<i64> {
            (0..n as i64)
                .map(|i| 60_000 + (i * 540_000 + offset) / n.max(1) as i64)
                .collect()
        };
        for (team, totals) in [(Team::Blue, &row.blue), (Team::Red, &row.red)] {
            let o = if team == Team::Blue { 0 } else { 7_000 };
            let per_kill_assists: Vec<i32> = (0..totals.kills)
                .map(|k| {
                    let base = totals.assists / totals.kills.max(1);
                    let extra = (k < totals.assists % totals.kills.max(1)) as u32;
                    (base + extra).min(4) as i32
                })
                .collect();
            for (t, a) in spread(totals.kills, o).into_iter().zip(per_kill_assists) {
                timeline.push((t, GameEventKind::ChampionKill, Some(team), None, None, Some(a)));
            }
            for t in spread(totals.wards_placed, o + 1_000) {
                timeline.push((t, GameEventKind::WardPlaced, Some(team), None, None, None));
            }
            for t in spread(totals.wards_destroyed, o + 2_000) {
                timeline.push((t, GameEventKind::WardKilled, Some(team), None, None, None));
            }
            for t in spread(totals.dragons, o + 3_000) {
                timeline.push((
                    t.max(300_000),
                    GameEventKind::EliteMonsterKill,
                    Some(team),
                    Some(Monster::Dragon),
                    None,
                    None,
                ));
            }
            for t in spread(totals.heralds, o + 4_000) {
                timeline.push((
                    t.max(480_000),
                    GameEventKind::EliteMonsterKill,
                    Some(team),
                    Some(Monster::Herald),
                    None,
                    None,
                ));
            }
            for t in spread(totals.towers, o + 5_000) {
                timeline.push((
                    t,
                    GameEventKind::BuildingKill,
                    Some(team),
                    None,
                    Some(Building::Tower),
                    None,
                ));
            }
            if totals.first_blood {
                timeline.push((59_000, GameEventKind::FirstBlood, Some(team), None, None, None));
            }
        }
        timeline.sort_by_key(|e| e.0);
        let mut push = |game_time: i64,
                        kind,
                        team,
                        monster,
                        building,
                        assists,
                        blue: Option<TeamFrame>,
                        red: Option<TeamFrame>| {
            events.push(GameEvent {
                match_id: match_id.clone(),
                seq: 0,
                event_time: start + game_time,
                game_time_ms: game_time,
                queue: "ranked_solo".into(),
                kind,
                team,
                killer_id: None,
                victim_id: None,
                assists,
                monster,
                building,
                blue,
                red,
            });
        };
        push(0, GameEventKind::GameStart, None, None, None, None, None, None);
        for (t, kind, team, monster, building, assists) in timeline {
            push(t.min(599_000), kind, team, monster, building, assists, None, None);
        }
        let frame = |t: &crate::model::TeamTotals| TeamFrame {
            total_gold: t.total_gold as i64,
            total_xp: t.total_xp as i64,
            avg_level: t.avg_level as f64,
            total_cs: t.total_cs as i32,
            total_jungle_cs: t.total_jungle_cs as i32,
        };
        push(
            600_000,
            GameEventKind::Frame,
            None,
            None,
            None,
            None,
            Some(frame(&row.blue)),
            Some(frame(&row.red)),
        );
        let winner = if row.blue_wins { Team::Blue } else { Team::Red };
        push(
            600_001,
            GameEventKind::GameEnd,
            Some(winner),
            None,
            None,
            None,
            None,
            None,
        );
        outcomes.push((match_id, winner));
    }
    // Number each game's events in order.
    let mut seq: BTreeMap<String, i64> = BTreeMap::new();
    for e in events.iter_mut() {
        let s = seq.entry(e.match_id.clone()).or_insert(0);
        e.seq = *s;
        *s += 1;
    }
    Ok((events, outcomes))
}
