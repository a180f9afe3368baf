//! Training data in memory, and the loader for the Kaggle 10-minute CSV.
//!
//! A [`Dataset`] is a row-major `n × d` f32 feature matrix with a 0/1 label
//! (1 = blue won) and an id per row. [`load_ten_minute_csv`] reads
//! `high_diamond_ranked_10min` files by header name (column order does not
//! matter, extra columns are ignored), fills one [`TeamTotals`] per team and
//! calls [`live_features`], the same function the streaming job calls.
//!
//! Guarantees:
//! - Loading never panics: a missing column, an unparsable or out-of-range
//!   value, or a row where both teams claim first blood is an error naming the
//!   file, the line and the column.
//! - [`Dataset::split`] is a pure function of the data, the fraction and the
//!   seed (ChaCha8 shuffle), so the same call always gives the same rows.
//! - [`Normalization::fit`] uses population mean/std in f64; a constant
//!   feature gets std 1 so standardization never divides by zero.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::live_features::{live_features, TeamTotals, LIVE_FEATURE_NAMES};
use super::{ModelError, Result};

/// A labelled feature matrix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Column names, `d` of them; they travel into the model's metadata.
    pub feature_names: Vec<String>,
    /// Features, row-major: row `i` is `x[i*d .. (i+1)*d]`.
    pub x: Vec<f32>,
    /// Labels, one per row: 1.0 = blue won, 0.0 = red won.
    pub y: Vec<f32>,
    /// Row identifiers (the CSV's `gameId`), for tracing predictions back.
    pub ids: Vec<String>,
}

impl Dataset {
    /// Builds a dataset, checking that the pieces agree in size and that every
    /// value is finite and every label is 0 or 1.
    pub fn new(feature_names: Vec<String>, x: Vec<f32>, y: Vec<f32>, ids: Vec<String>) -> Result<Self> {
        let d = feature_names.len();
        if d == 0 {
            return Err(ModelError::InvalidData("a dataset needs at least one feature".into()));
        }
        if x.len() != y.len() * d {
            return Err(ModelError::InvalidData(format!(
                "{} feature values for {} rows of {} features",
                x.len(),
                y.len(),
                d
            )));
        }
        if ids.len() != y.len() {
            return Err(ModelError::InvalidData(format!(
                "{} ids for {} rows",
                ids.len(),
                y.len()
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::InvalidData(format!(
                "row {} ({}) feature `{}` is not finite",
                i / d,
                ids[i / d],
                feature_names[i % d]
            )));
        }
        if let Some(i) = y.iter().position(|v| *v != 0.0 && *v != 1.0) {
            return Err(ModelError::InvalidData(format!(
                "row {i} ({}) label {} is not 0 or 1",
                ids[i], y[i]
            )));
        }
        Ok(Self {
            feature_names,
            x,
            y,
            ids,
        })
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.y.len()
    }

    /// Number of features per row.
    pub fn d(&self) -> usize {
        self.feature_names.len()
    }

    /// Whether the dataset has no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The features of row `i` (panics if `i >= n()`, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.d();
        &self.x[i * d..(i + 1) * d]
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let d = self.d();
        let mut x = Vec::with_capacity(indices.len() * d);
        let mut y = Vec::with_capacity(indices.len());
        let mut ids = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(self.row(i));
            y.push(self.y[i]);
            ids.push(self.ids[i].clone());
        }
        Dataset {
            feature_names: self.feature_names.clone(),
            x,
            y,
            ids,
        }
    }

    /// Shuffles the rows with a ChaCha8 RNG seeded by `seed` and cuts them in
    /// two: the first part has `round(frac * n)` rows, the second the rest.
    /// `frac` is clamped to `[0, 1]` (NaN counts as 0). Deterministic.
    pub fn split(&self, frac: f64, seed: u64) -> (Dataset, Dataset) {
        let frac = if frac.is_nan() { 0.0 } else { frac.clamp(0.0, 1.0) };
        let mut order: Vec<usize> = (0..self.n()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let cut = ((self.n() as f64) * frac).round() as usize;
        let cut = cut.min(self.n());
        (self.subset(&order[..cut]), self.subset(&order[cut..]))
    }

    /// Share of rows labelled 1 (blue won); NaN for an empty dataset.
    pub fn positive_rate(&self) -> f64 {
        self.y.iter().map(|v| f64::from(*v)).sum::<f64>() / self.n() as f64
    }
}

/// Per-feature standardization `(x - mean) / std`, fitted on training rows
/// only and stored with the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of each feature over the training rows.
    pub mean: Vec<f32>,
    /// Population standard deviation of each feature (1 where it was ~0).
    pub std: Vec<f32>,
}

impl Normalization {
    /// Fits mean and population std of each column of `data`.
    pub fn fit(data: &Dataset) -> Result<Self> {
        let (n, d) = (data.n(), data.d());
        if n == 0 {
            return Err(ModelError::InvalidData(
                "cannot fit a normalization on zero rows".into(),
            ));
        }
        let mut sum = vec![0f64; d];
        for i in 0..n {
            for (s, v) in sum.iter_mut().zip(data.row(i)) {
                *s += f64::from(*v);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        let mut sq = vec![0f64; d];
        for i in 0..n {
            for ((s, v), m) in sq.iter_mut().zip(data.row(i)).zip(&mean) {
                let c = f64::from(*v) - m;
                *s += c * c;
            }
        }
        let std = sq
            .iter()
            .map(|s| {
                let sd = (s / n as f64).sqrt();
                if sd > 1e-9 {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Self {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std,
        })
    }

    /// Standardizes row-major `rows` in place (`rows.len()` must be a multiple
    /// of the feature count; a trailing partial row is left untouched).
    pub fn apply_in_place(&self, rows: &mut [f32]) {
        let d = self.mean.len();
        if d == 0 {
            return;
        }
        for row in rows.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

/// The per-team CSV columns (without the `blue`/`red` prefix) that
/// [`TeamTotals`] is read from. `EliteMonsters`, `GoldDiff`, `ExperienceDiff`,
/// `CSPerMin` and `GoldPerMin` are derived columns and are not used.
const TEAM_COLUMNS: [&str; 14] = [
    "Kills",
    "Deaths",
    "Assists",
    "WardsPlaced",
    "WardsDestroyed",
    "FirstBlood",
    "Dragons",
    "Heralds",
    "TowersDestroyed",
    "TotalGold",
    "TotalExperience",
    "AvgLevel",
    "TotalMinionsKilled",
    "TotalJungleMinionsKilled",
];

/// Column positions of one team's fields, found from the header.
struct TeamColumns {
    prefix: &'static str,
    idx: [usize; 14],
}

/// One CSV record plus where it came from, for error messages.
struct Row<'a> {
    record: &'a csv::StringRecord,
    path: &'a Path,
    line: u64,
}

impl Row<'_> {
    fn field(&self, idx: usize, column: &str) -> Result<&str> {
        self.record.get(idx).ok_or_else(|| {
            ModelError::InvalidData(format!(
                "{}:{}: column `{column}` is missing",
                self.path.display(),
                self.line
            ))
        })
    }

    fn bad(&self, column: &str, expected: &str, got: &str) -> ModelError {
        ModelError::InvalidData(format!(
            "{}:{}: column `{column}`: expected {expected}, got `{got}`",
            self.path.display(),
            self.line
        ))
    }

    /// A non-negative integer no larger than `max`; accepts `12` and `12.0`.
    fn count(&self, idx: usize, column: &str, max: u64) -> Result<u64> {
        let raw = self.field(idx, column)?;
        let expected = "a non-negative integer";
        let value = match raw.parse::<u64>() {
            Ok(v) => v,
            Err(_) => {
                let f: f64 = raw.parse().map_err(|_| self.bad(column, expected, raw))?;
                if !(f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= max as f64) {
                    return Err(self.bad(column, expected, raw));
                }
                f as u64
            }
        };
        if value > max {
            return Err(self.bad(column, &format!("at most {max}"), raw));
        }
        Ok(value)
    }

    fn count32(&self, idx: usize, column: &str) -> Result<u32> {
        let v = self.count(idx, column, u64::from(u32::MAX))?;
        u32::try_from(v).map_err(|_| self.bad(column, "a 32-bit count", &v.to_string()))
    }

    fn flag(&self, idx: usize, column: &str) -> Result<bool> {
        match self.count(idx, column, 1) {
            Ok(v) => Ok(v == 1),
            Err(_) => {
                let raw = self.field(idx, column)?;
                match raw.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(self.bad(column, "0 or 1", raw)),
                }
            }
        }
    }

    fn level(&self, idx: usize, column: &str) -> Result<f32> {
        let raw = self.field(idx, column)?;
        let expected = "a champion level between 0 and 30";
        match raw.parse::<f32>() {
            Ok(v) if v.is_finite() && (0.0..=30.0).contains(&v) => Ok(v),
            _ => Err(self.bad(column, expected, raw)),
        }
    }

    fn team(&self, cols: &TeamColumns) -> Result<TeamTotals> {
        let name = |i: usize| format!("{}{}", cols.prefix, TEAM_COLUMNS[i]);
        let c = &cols.idx;
        Ok(TeamTotals {
            kills: self.count32(c[0], &name(0))?,
            deaths: self.count32(c[1], &name(1))?,
            assists: self.count32(c[2], &name(2))?,
            wards_placed: self.count32(c[3], &name(3))?,
            wards_destroyed: self.count32(c[4], &name(4))?,
            first_blood: self.flag(c[5], &name(5))?,
            dragons: self.count32(c[6], &name(6))?,
            heralds: self.count32(c[7], &name(7))?,
            towers: self.count32(c[8], &name(8))?,
            total_gold: self.count(c[9], &name(9), u64::MAX)?,
            total_xp: self.count(c[10], &name(10), u64::MAX)?,
            avg_level: self.level(c[11], &name(11))?,
            total_cs: self.count32(c[12], &name(12))?,
            total_jungle_cs: self.count32(c[13], &name(13))?,
        })
    }
}

fn column_index(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| ModelError::InvalidData(format!("{}: header has no column `{name}`", path.display())))
}

fn team_columns(headers: &csv::StringRecord, prefix: &'static str, path: &Path) -> Result<TeamColumns> {
    let mut idx = [0usize; 14];
    for (slot, col) in idx.iter_mut().zip(TEAM_COLUMNS) {
        *slot = column_index(headers, &format!("{prefix}{col}"), path)?;
    }
    Ok(TeamColumns { prefix, idx })
}

/// One row of the 10-minute CSV as match state: what a replay producer
/// emits and what [`load_ten_minute_csv`] turns into features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenMinuteRow {
    /// The CSV's `gameId`.
    pub game_id: String,
    /// The CSV's `blueWins`.
    pub blue_wins: bool,
    /// Blue team totals at 10 minutes.
    pub blue: TeamTotals,
    /// Red team totals at 10 minutes.
    pub red: TeamTotals,
}

/// Reads every row of a 10-minute CSV (columns found by header name).
pub fn read_ten_minute_rows(path: impl AsRef<Path>) -> Result<Vec<TenMinuteRow>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(ModelError::io(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let headers = reader.headers().map_err(ModelError::csv(path))?.clone();
    let id_col = column_index(&headers, "gameId", path)?;
    let label_col = column_index(&headers, "blueWins", path)?;
    let blue_cols = team_columns(&headers, "blue", path)?;
    let red_cols = team_columns(&headers, "red", path)?;

    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(ModelError::csv(path))? {
        let line = record.position().map_or(0, |p| p.line());
        let row = Row {
            record: &record,
            path,
            line,
        };
        let game_id = row.field(id_col, "gameId")?.to_string();
        let blue_wins = row.flag(label_col, "blueWins")?;
        let blue = row.team(&blue_cols)?;
        let red = row.team(&red_cols)?;
        if blue.first_blood && red.first_blood {
            return Err(ModelError::InvalidData(format!(
                "{}:{line}: both blueFirstBlood and redFirstBlood are 1",
                path.display()
            )));
        }
        rows.push(TenMinuteRow {
            game_id,
            blue_wins,
            blue,
            red,
        });
    }
    Ok(rows)
}

/// Loads the Kaggle "League of Legends Diamond Ranked Games (10 min)" CSV as
/// a [`Dataset`] of [`LIVE_FEATURE_NAMES`] features, labelled by `blueWins`.
pub fn load_ten_minute_csv(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let rows = read_ten_minute_rows(path)?;
    if rows.is_empty() {
        return Err(ModelError::InvalidData(format!("{}: no data rows", path.display())));
    }
    let d = LIVE_FEATURE_NAMES.len();
    let mut x = Vec::with_capacity(rows.len() * d);
    let mut y = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        x.extend_from_slice(&live_features(&row.blue, &row.red));
        y.push(if row.blue_wins { 1.0 } else { 0.0 });
        ids.push(row.game_id);
    }
    Dataset::new(LIVE_FEATURE_NAMES.iter().map(|s| s.to_string()).collect(), x, y, ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEADER: &str = "gameId,blueWins,blueWardsPlaced,blueWardsDestroyed,blueFirstBlood,blueKills,blueDeaths,blueAssists,blueEliteMonsters,blueDragons,blueHeralds,blueTowersDestroyed,blueTotalGold,blueAvgLevel,blueTotalExperience,blueTotalMinionsKilled,blueTotalJungleMinionsKilled,blueGoldDiff,blueExperienceDiff,blueCSPerMin,blueGoldPerMin,redWardsPlaced,redWardsDestroyed,redFirstBlood,redKills,redDeaths,redAssists,redEliteMonsters,redDragons,redHeralds,redTowersDestroyed,redTotalGold,redAvgLevel,redTotalExperience,redTotalMinionsKilled,redTotalJungleMinionsKilled,redGoldDiff,redExperienceDiff,redCSPerMin,redGoldPerMin";
    const ROW: &str = "4296004784,1,19,5,1,6,2,6,1,1,0,0,17354,7.4,19609,263,64,2944,3092,26.3,1735.4,21,6,0,2,6,2,0,0,0,0,14410,6.4,16517,232,44,-2944,-3092,23.2,1441.0";

    pub(crate) fn write_temp(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("model-dataset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).expect("temp file");
        f.write_all(body.as_bytes()).expect("write");
        path
    }

    #[test]
    fn reads_a_row_by_header_name() {
        let path = write_temp("ok.csv", &format!("{HEADER}\n{ROW}\n"));
        let ds = load_ten_minute_csv(&path).expect("load");
        assert_eq!((ds.n(), ds.d()), (1, LIVE_FEATURE_NAMES.len()));
        assert_eq!(ds.ids, vec!["4296004784".to_string()]);
        assert_eq!(ds.y, vec![1.0]);
        let f = ds.row(0);
        assert_eq!(f[0], 2944.0); // gold diff
        assert_eq!(f[1], 3092.0); // xp diff
        assert_eq!(f[2], 4.0); // kills 6 - 2
        assert!((f[6] - 1.0).abs() < 1e-5); // level 7.4 - 6.4
        assert_eq!(f[12], 1.0); // blue first blood
    }

    #[test]
    fn column_order_does_not_matter() {
        // Reverse the columns of header and row alike.
        let rev = |s: &str| s.split(',').rev().collect::<Vec<_>>().join(",");
        let a = load_ten_minute_csv(write_temp("a.csv", &format!("{HEADER}\n{ROW}\n"))).expect("a");
        let b = load_ten_minute_csv(write_temp("b.csv", &format!("{}\n{}\n", rev(HEADER), rev(ROW)))).expect("b");
        assert_eq!(a, b);
    }

    #[test]
    fn bad_rows_name_the_line_and_column() {
        let bad = ROW.replacen(",6,2,6,", ",six,2,6,", 1);
        let path = write_temp("bad.csv", &format!("{HEADER}\n{ROW}\n{bad}\n"));
        let err = load_ten_minute_csv(&path).expect_err("must fail").to_string();
        assert!(err.contains(":3:") && err.contains("blueKills"), "{err}");

        let both_fb = ROW.replacen(",21,6,0,", ",21,6,1,", 1);
        let err = load_ten_minute_csv(write_temp("fb.csv", &format!("{HEADER}\n{both_fb}\n")))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains(":2:") && err.contains("FirstBlood"), "{err}");

        let short = &ROW[..ROW.len() - 8];
        let err = load_ten_minute_csv(write_temp("short.csv", &format!("{HEADER}\n{short}\n")))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("short.csv") && err.contains("line: 2"), "{err}");

        let no_col = HEADER.replace("redDragons", "redDrakes");
        let err = load_ten_minute_csv(write_temp("nocol.csv", &format!("{no_col}\n{ROW}\n")))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("redDragons"), "{err}");

        let err = load_ten_minute_csv("/nonexistent/ten.csv").expect_err("must fail");
        assert!(matches!(err, ModelError::Io { .. }), "{err}");
    }

    #[test]
    fn split_is_deterministic_and_complete() {
        let n = 101;
        let ds = Dataset::new(
            vec!["a".into()],
            (0..n).map(|i| i as f32).collect(),
            (0..n).map(|i| (i % 2) as f32).collect(),
            (0..n).map(|i| i.to_string()).collect(),
        )
        .expect("dataset");
        let (a, b) = ds.split(0.8, 3);
        let (a2, b2) = ds.split(0.8, 3);
        assert_eq!((a.n(), b.n()), (81, 20));
        assert_eq!((&a, &b), (&a2, &b2));
        let (c, _) = ds.split(0.8, 4);
        assert_ne!(a.ids, c.ids);
        let mut all: Vec<f32> = a.x.iter().chain(&b.x).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, ds.x);
    }

    #[test]
    fn normalization_standardizes_and_survives_constants() {
        let ds = Dataset::new(
            vec!["a".into(), "const".into()],
            vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0],
            vec![0.0, 1.0, 0.0],
            vec!["x".into(), "y".into(), "z".into()],
        )
        .expect("dataset");
        let norm = Normalization::fit(&ds).expect("fit");
        assert_eq!(norm.mean, vec![2.0, 5.0]);
        assert!((norm.std[0] - (2.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(norm.std[1], 1.0);
        let mut x = ds.x.clone();
        norm.apply_in_place(&mut x);
        assert_eq!(x[1], 0.0);
        assert!((x[0] + x[4]).abs() < 1e-6);
    }
}
