//! Silver: decoded, validated, deduplicated records of the input topics.

use super::*;

fn participant_struct() -> DataType {
    DataType::Struct(Fields::from(vec![
        utf8("player_id"),
        utf8("player_name"),
        utf8("team"),
        utf8("role"),
        utf8("champion"),
        Field::new("kills", DataType::Int32, false),
        Field::new("deaths", DataType::Int32, false),
        Field::new("assists", DataType::Int32, false),
        Field::new("gold", DataType::Int64, false),
        Field::new("cs", DataType::Int32, false),
        Field::new("vision_score", DataType::Int32, false),
        Field::new("damage", DataType::Int64, false),
        Field::new("win", DataType::Boolean, false),
    ]))
}

impl LakeRow for Match {
    fn table(&self) -> String {
        "silver/matches".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.end_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            utf8("platform"),
            utf8("queue"),
            utf8("patch"),
            ts_ms("start_time", false),
            ts_ms("end_time", false),
            utf8("winning_team"),
            list_of("participants", participant_struct()),
            list_of("bans", DataType::Utf8),
            Field::new("simulated_blue_win_probability", DataType::Float64, true),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

/// One player's line of a match, flattened for SQL (`silver/match_participants`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ParticipantRow {
    /// Match id.
    pub match_id: String,
    /// Queue / game mode.
    pub queue: String,
    /// Patch.
    pub patch: String,
    /// Match end, UTC ms.
    pub end_time: i64,
    /// Player id.
    pub player_id: String,
    /// Display name.
    pub player_name: String,
    /// `blue` / `red`.
    pub team: String,
    /// Role.
    pub role: String,
    /// Champion.
    pub champion: String,
    /// Kills.
    pub kills: i32,
    /// Deaths.
    pub deaths: i32,
    /// Assists.
    pub assists: i32,
    /// Gold.
    pub gold: i64,
    /// Creep score.
    pub cs: i32,
    /// Vision score.
    pub vision_score: i32,
    /// Damage to champions.
    pub damage: i64,
    /// Won.
    pub win: bool,
}

impl ParticipantRow {
    /// The ten rows of a match.
    pub fn of(m: &Match) -> impl Iterator<Item = ParticipantRow> + '_ {
        m.participants.iter().map(move |p| ParticipantRow {
            match_id: m.match_id.clone(),
            queue: m.queue.clone(),
            patch: m.patch.clone(),
            end_time: m.end_time,
            player_id: p.player_id.clone(),
            player_name: p.player_name.clone(),
            team: p.team.as_str().into(),
            role: p.role.as_str().into(),
            champion: p.champion.clone(),
            kills: p.kills,
            deaths: p.deaths,
            assists: p.assists,
            gold: p.gold,
            cs: p.cs,
            vision_score: p.vision_score,
            damage: p.damage,
            win: p.win,
        })
    }
}

impl LakeRow for ParticipantRow {
    fn table(&self) -> String {
        "silver/match_participants".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.end_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            utf8("queue"),
            utf8("patch"),
            ts_ms("end_time", false),
            utf8("player_id"),
            utf8("player_name"),
            utf8("team"),
            utf8("role"),
            utf8("champion"),
            Field::new("kills", DataType::Int32, false),
            Field::new("deaths", DataType::Int32, false),
            Field::new("assists", DataType::Int32, false),
            Field::new("gold", DataType::Int64, false),
            Field::new("cs", DataType::Int32, false),
            Field::new("vision_score", DataType::Int32, false),
            Field::new("damage", DataType::Int64, false),
            Field::new("win", DataType::Boolean, false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

fn team_frame() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("total_gold", DataType::Int64, false),
        Field::new("total_xp", DataType::Int64, false),
        Field::new("avg_level", DataType::Float64, false),
        Field::new("total_cs", DataType::Int32, false),
        Field::new("total_jungle_cs", DataType::Int32, false),
    ]))
}

impl LakeRow for GameEvent {
    fn table(&self) -> String {
        "silver/game_events".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.event_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("match_id"),
            Field::new("seq", DataType::Int64, false),
            ts_ms("event_time", false),
            Field::new("game_time_ms", DataType::Int64, false),
            utf8("queue"),
            utf8("kind"),
            utf8_null("team"),
            utf8_null("killer_id"),
            utf8_null("victim_id"),
            Field::new("assists", DataType::Int32, true),
            utf8_null("monster"),
            utf8_null("building"),
            Field::new("blue", team_frame(), true),
            Field::new("red", team_frame(), true),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

impl LakeRow for PlayerStats {
    fn table(&self) -> String {
        "silver/player_stats".into()
    }

    fn partition(&self) -> String {
        format!("date={}/game_mode=ranked_solo", date_of(self.time))
    }

    fn schema() -> SchemaRef {
        cached_schema!(vec![
            utf8("player_id"),
            utf8("tier"),
            utf8("rank"),
            Field::new("league_points", DataType::Int32, false),
            Field::new("wins", DataType::Int32, false),
            Field::new("losses", DataType::Int32, false),
            ts_ms("time", false),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}

impl LakeRow for PredictionRequest {
    fn table(&self) -> String {
        "silver/prediction_requests".into()
    }

    fn partition(&self) -> String {
        format!(
            "date={}/game_mode={}",
            date_of(self.request_time),
            partition_value(&self.queue)
        )
    }

    fn schema() -> SchemaRef {
        let slot = DataType::Struct(Fields::from(vec![
            utf8("player_id"),
            utf8("team"),
            utf8("role"),
            utf8("champion"),
        ]));
        cached_schema!(vec![
            utf8("match_id"),
            ts_ms("request_time", false),
            utf8("queue"),
            utf8("patch"),
            list_of("participants", slot.clone()),
        ])
    }

    fn to_batch(rows: &[Self]) -> Result<RecordBatch> {
        serde_batch(Self::schema(), rows)
    }
}
