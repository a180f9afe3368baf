//! Decoding and validation reject bad values with a reason.

use riftstream::codec::decode_json;
use riftstream::events::{GameEvent, Match, PlayerStats, PredictionRequest};
use riftstream::generator::{simulate, GeneratorConfig};

fn sample() -> riftstream::generator::Simulation {
    simulate(&GeneratorConfig {
        players: 100,
        matches: 5,
        live_games: 1,
        ..Default::default()
    })
}

fn now() -> i64 {
    riftstream::util::now_ms()
}

fn reject<E: riftstream::events::Event>(v: &serde_json::Value) -> (String, String) {
    let r = decode_json::<E>(v.to_string().as_bytes(), now()).expect_err("should be rejected");
    (r.stage.to_string(), r.reason)
}

#[test]
fn a_valid_match_round_trips() {
    let m = &sample().matches[0];
    let back: Match = decode_json(serde_json::to_vec(m).unwrap().as_slice(), now()).unwrap();
    assert_eq!(&back, m);
}

#[test]
fn bad_matches_are_rejected_with_a_reason() {
    let m = serde_json::to_value(&sample().matches[0]).unwrap();
    let mut negative = m.clone();
    negative["participants"][3]["deaths"] = (-1).into();
    assert_eq!(
        reject::<Match>(&negative),
        ("validate".into(), "participants[3].deaths is negative (-1)".into())
    );

    let mut team = m.clone();
    team["participants"][0]["team"] = "green".into();
    let (stage, reason) = reject::<Match>(&team);
    assert_eq!(stage, "decode");
    assert!(reason.contains("unknown variant `green`"), "{reason}");

    let mut missing = m.clone();
    missing["match_id"] = "  ".into();
    assert_eq!(reject::<Match>(&missing).1, "missing match_id");

    let mut no_field = m.clone();
    no_field.as_object_mut().unwrap().remove("patch");
    assert!(reject::<Match>(&no_field).1.contains("missing field `patch`"));

    let mut future = m.clone();
    let far = now() + 3 * 24 * 3600 * 1000;
    future["start_time"] = (far - 1_800_000).into();
    future["end_time"] = far.into();
    assert!(reject::<Match>(&future).1.contains("in the future"));

    let mut ancient = m.clone();
    ancient["start_time"] = 1_000.into();
    ancient["end_time"] = 2_000_000.into();
    assert!(reject::<Match>(&ancient).1.contains("before 2009-10-27"));

    let mut nine = m.clone();
    nine["participants"].as_array_mut().unwrap().pop();
    assert!(reject::<Match>(&nine).1.contains("10 participants"));

    let mut wrong_winner = m.clone();
    let w = wrong_winner["winning_team"].as_str().unwrap().to_string();
    wrong_winner["winning_team"] = if w == "blue" { "red" } else { "blue" }.into();
    assert!(reject::<Match>(&wrong_winner).1.contains("win is"));

    let r = decode_json::<Match>(b"{\"match_id\": ", now()).unwrap_err();
    assert_eq!(r.stage, "decode");
    assert!(r.reason.starts_with("invalid matches JSON"), "{}", r.reason);
}

#[test]
fn bad_events_stats_and_requests_are_rejected() {
    let s = sample();
    let frame = s
        .game_events
        .iter()
        .find(|e| e.kind == riftstream::events::GameEventKind::Frame)
        .unwrap();
    let mut v = serde_json::to_value(frame).unwrap();
    v["red"] = serde_json::Value::Null;
    assert_eq!(reject::<GameEvent>(&v).1, "frame without both blue and red totals");
    let mut v = serde_json::to_value(frame).unwrap();
    v["blue"]["total_gold"] = (-5).into();
    assert_eq!(reject::<GameEvent>(&v).1, "blue.total_gold is negative (-5)");

    let kill = s
        .game_events
        .iter()
        .find(|e| e.kind == riftstream::events::GameEventKind::ChampionKill)
        .unwrap();
    let mut v = serde_json::to_value(kill).unwrap();
    v["team"] = serde_json::Value::Null;
    assert!(reject::<GameEvent>(&v).1.contains("without a team"));

    let stats = serde_json::json!({"player_id": "p1", "tier": "WOOD", "rank": "I", "league_points": 1, "wins": 1, "losses": 1, "time": riftstream::events::EARLIEST_EVENT_TIME_MS + 1});
    assert!(reject::<PlayerStats>(&stats).1.contains("unknown tier `WOOD`"));

    let mut req = serde_json::to_value(&s.requests[0]).unwrap();
    let first = req["participants"][0].clone();
    req["participants"][1] = first;
    let (_, reason) = reject::<PredictionRequest>(&req);
    assert!(reason.contains("twice") || reason.contains("5 players"), "{reason}");
}

#[test]
fn a_json_reader_ignores_fields_it_does_not_know_and_still_checks_the_rest() {
    // A producer that adds a field (the most common compatible change) must
    // not send every record to the dead-letter topic.
    let s = sample();
    let m = &s.matches[0];
    let mut newer = serde_json::to_value(m).unwrap();
    newer["tournament_stage"] = "groups".into();
    newer["participants"][0]["pings"] = 42.into();
    let read: Match = decode_json(newer.to_string().as_bytes(), now()).expect("unknown fields are ignored");
    assert_eq!(&read, m, "the known fields are read as before");

    let frame = s
        .game_events
        .iter()
        .find(|e| e.kind == riftstream::events::GameEventKind::Frame)
        .unwrap();
    let mut newer = serde_json::to_value(frame).unwrap();
    newer["blue"]["plates"] = 3.into();
    newer["server_region"] = "EUW".into();
    let read: GameEvent = decode_json(newer.to_string().as_bytes(), now()).expect("unknown fields are ignored");
    assert_eq!(&read, frame);

    let mut req = serde_json::to_value(&s.requests[0]).unwrap();
    req["client"] = "web".into();
    let read: PredictionRequest = decode_json(req.to_string().as_bytes(), now()).expect("unknown fields are ignored");
    assert_eq!(read, s.requests[0]);

    // Wrong types and missing required fields are still rejected, with a reason.
    let mut wrong_type = serde_json::to_value(m).unwrap();
    wrong_type["extra"] = 1.into();
    wrong_type["start_time"] = "long".into();
    let (stage, reason) = reject::<Match>(&wrong_type);
    assert_eq!(stage, "decode");
    assert!(reason.contains("invalid type"), "{reason}");
    let mut missing = serde_json::to_value(m).unwrap();
    missing["extra"] = 1.into();
    missing.as_object_mut().unwrap().remove("winning_team");
    assert!(reject::<Match>(&missing).1.contains("missing field `winning_team`"));
}
